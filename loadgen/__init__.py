"""loadgen: a multiprocess HTTP load generator with exact HDR percentiles.

Kept import-free on purpose: worker processes are started with the ``spawn``
method and must monkey-patch gevent before anything touches sockets, so the
package root may not import urllib3, gevent or ssl.
"""

__version__ = "0.1.0"
