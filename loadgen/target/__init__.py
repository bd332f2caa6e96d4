"""Built-in demo/test target server for loadgen.

It stands in for the "BiztelAI API" used by the seed script, plus a handful of
httpbin-style utility routes (``/delay``, ``/status``, ``/bytes``,
``/chunked``, ``/close``), a small shop (``/shop/items``, ``/shop/orders``)
whose ids a user journey must extract, and exact counters (``/__stats``,
``/__reset``) so load runs can be checked against what the server really saw.

This package root deliberately imports nothing: the load-generator
coordinator must never import gevent, and ``loadgen.target.server`` only
monkey-patches and imports gevent inside :func:`loadgen.target.server.serve`.
"""
