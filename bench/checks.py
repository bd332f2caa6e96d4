"""Price a step's response rules per request: checks, extractions, the cookie jar.

Usage::

    python bench/checks.py [--calls 20000] [--rounds 15]

These run in the worker only for a step that extracts or checks (issue 12, sections 2
and 3); every other request keeps the zero-copy drain and pays nothing.  This script
times one typical call of each, µs per call, on synthetic responses shaped like the
issue's journey, the cases interleaved round by round (the order rotated each round, so
machine drift hits all alike), and prints each case's median over the rounds:

* ``orjson.loads``      the JSON parse alone, on the login body: the floor for a json: rule
* ``login extract``     ``evaluate``: ``extract = { token = "json:access_token" }``
                        on a 200 login response (~120 bytes)
* ``order expect``      ``evaluate``: ``expect = { status = [201], body_contains =
                        "order_id", json = { "item" = "abc" } }`` on a 201 (~90 bytes)
* ``list extract 3``    ``evaluate``: a json:, a header: and a regex: extraction on
                        a listing of 20 items (~1.7 kB)
* ``  ... interpreter`` the same with ``json:items[0].id`` run by jmespath's interpreter
                        instead of ``config.jsonpath.FieldPath`` (what it was before)
* ``cookie header``     ``CookieJar.header`` for the next request (two cookies; cached)
* ``cookie receive``    ``CookieJar.receive`` of one response with one Set-Cookie
                        (with Expires: the date parse is most of it)
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import jmespath
import orjson

from loadgen.config.checks import Extraction, ResponseRules, parse_rules
from loadgen.engine.checks import evaluate
from loadgen.engine.cookies import CookieJar

LOGIN_BODY = orjson.dumps({"access_token": "eyJhbGciOiJIUzI1NiJ9." + "x" * 60,
                           "token_type": "bearer", "expires_in": 3600})
ORDER_BODY = orjson.dumps({"order_id": "o-123", "item": "abc", "status": "created"})
LIST_BODY = orjson.dumps({"items": [{"id": f"item-{i}", "name": f"Item {i}", "price": 9.5,
                                     "href": f"/shop/items/item-{i}?ref=list"}
                                    for i in range(20)], "page": 1, "next": "/shop/items?p=2"})
HEADERS = [(b"Content-Type", b"application/json"), (b"Content-Length", b"1234"),
           (b"X-Session", b"s-42"), (b"Date", b"Tue, 01 Dec 2026 14:00:00 GMT")]
SET_COOKIE = [(b"Set-Cookie", (b"sid=abc123; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT; "
                              b"HttpOnly"))]

LOGIN = parse_rules({"extract": {"token": "json:access_token"}}, "bench")
ORDER = parse_rules({"expect": {"status": [201], "body_contains": "order_id",
                                "json": {"item": "abc"}}}, "bench")
LISTING = parse_rules({"extract": {"item": "json:items[0].id", "sid": "header:X-Session",
                                   "next": "regex:\"next\":\"([^\"]+)\""}}, "bench")


def interpreted(rules: ResponseRules) -> ResponseRules:
    """``rules`` with every json: extraction searched by jmespath's own interpreter."""
    extractions = []
    for e in rules.extract:
        e = Extraction(e.name, e.kind, e.expression)
        if e.kind == "json":
            object.__setattr__(e, "compiled", jmespath.compile(e.expression))
        extractions.append(e)
    return ResponseRules(tuple(extractions), rules.expect, rules.max_body)


def cases() -> dict[str, Callable[[], object]]:
    jar = CookieJar("127.0.0.1", https=False)
    jar.receive(SET_COOKIE + [(b"Set-Cookie", b"cart=c1; Path=/shop")], "/login")
    fresh = CookieJar("127.0.0.1", https=False)
    assert evaluate(LOGIN, 200, HEADERS, LOGIN_BODY).kind is None
    assert evaluate(ORDER, 201, HEADERS, ORDER_BODY).kind is None
    slow = interpreted(LISTING)
    assert evaluate(LISTING, 200, HEADERS, LIST_BODY) == evaluate(slow, 200, HEADERS, LIST_BODY)
    assert evaluate(LISTING, 200, HEADERS, LIST_BODY).kind is None, "listing rules must pass"
    assert jar.header("/shop/items") == "cart=c1; sid=abc123"
    return {
        "orjson.loads": lambda: orjson.loads(LOGIN_BODY),
        "login extract": lambda: evaluate(LOGIN, 200, HEADERS, LOGIN_BODY),
        "order expect": lambda: evaluate(ORDER, 201, HEADERS, ORDER_BODY),
        "list extract 3": lambda: evaluate(LISTING, 200, HEADERS, LIST_BODY),
        "  ... interpreter": lambda: evaluate(slow, 200, HEADERS, LIST_BODY),
        "cookie header": lambda: jar.header("/shop/items"),
        "cookie receive": lambda: fresh.receive(SET_COOKIE, "/login"),
    }


def per_call_us(call: Callable[[], object], calls: int) -> float:
    began = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - began) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per case per round")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds")
    args = parser.parse_args()
    todo = cases()
    names = list(todo)
    results: dict[str, list[float]] = {name: [] for name in names}
    for name in names:   # warm up: caches, allocator
        per_call_us(todo[name], args.calls // 10 or 1)
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            results[name].append(per_call_us(todo[name], args.calls))
    print(f"{'case':<18} {'median µs/call':>15} {'min':>8} {'max':>8}   "
          f"({args.rounds} interleaved rounds x {args.calls} calls)")
    for name in names:
        values = results[name]
        print(f"{name:<18} {statistics.median(values):>15.2f} {min(values):>8.2f} "
              f"{max(values):>8.2f}")
    print(f"bodies: login {len(LOGIN_BODY)} B, order {len(ORDER_BODY)} B, "
          f"listing {len(LIST_BODY)} B")


if __name__ == "__main__":
    main()
