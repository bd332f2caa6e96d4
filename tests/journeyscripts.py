"""Journey scenarios for tests/workerharness.py: hand-built plans and a scripted shop server.

Imported only by the harness (monkey-patched, in its own interpreter).  A scenario with
``"script": NAME`` gets ``SCRIPTS[NAME]``: the ``RunConfig`` made by hand (the run's
options through ``build_config``, then the journey's endpoints and ``Journeys`` laid
over it, as the ``[[users]]`` parser will), and the app the server runs.  The server
reads whole requests (bodies too), answers through the app, and logs every request it
read: what the tests compare with what the workers recorded.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.event import Event
from gevent.server import StreamServer
from journeyplans import shop_journey, two_kinds  # tests/ is sys.path[0] in the harness
from rawservers import read_body, read_head

from loadgen.config.model import RunConfig, plan_workers
from loadgen.engine.channel import Channel
from loadgen.engine.worker import Worker
from loadgen.stats.aggregate import Aggregate, WorkerState
from loadgen.stats.metrics import decode_histogram

# -- the scripted shop ---------------------------------------------------------------------


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    connection: int


@dataclass
class Shop:
    """The server side: tokens per user, cookies, ids shown to a user, orders.

    ``empty_every`` / ``bad_every``: every n-th items response has no item / an id that
    cannot go in a path; ``token_uses``: a token answers 401 after that many uses;
    ``failed_logins``: the first n logins answer 500; ``login_delay_s``: each login is
    answered that much later.
    """

    empty_every: int = 0
    bad_every: int = 0
    token_uses: int = 0
    failed_logins: int = 0
    login_delay_s: float = 0.0
    tokens: dict[str, tuple[str, int]] = field(default_factory=dict)   # token -> (user, uses)
    shown: dict[str, str] = field(default_factory=dict)                # item id -> user
    ordered: set[str] = field(default_factory=set)
    logins: int = 0
    listed: int = 0
    problems: list[str] = field(default_factory=list)   # what a correct client never causes

    def answer(self, r: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        path = r.target.partition("?")[0]
        if r.method == "POST" and path == "/login":
            self.logins += 1
            gevent.sleep(self.login_delay_s)
            if self.logins <= self.failed_logins:
                return 500, [], b"down"
            user = json.loads(r.body)["username"]
            token = f"tok{self.logins}-{user}"
            self.tokens[token] = (user, 0)
            return 200, [("Set-Cookie", f"sid=s-{user}; Path=/")], \
                json.dumps({"token": token}).encode()
        if path.startswith("/browse/"):
            return 200, [], b"browsing"
        user = self._user(r)
        if user is None:
            return 401, [], b"who?"
        if "authorization" in r.headers and r.headers.get("cookie") != f"sid=s-{user}":
            self.problems.append(f"cookie {r.headers.get('cookie')!r} from {user}")
        if r.method == "GET" and path == "/items":
            self.listed += 1
            n = self.listed
            if self.empty_every and n % self.empty_every == 0:
                return 200, [], b'{"items": []}'
            item = f"bad id {n}" if self.bad_every and n % self.bad_every == 0 else f"it{n}"
            self.shown[item] = user
            return 200, [], json.dumps({"items": [{"id": item}]}).encode()
        m = re.fullmatch(r"/orders/(.+)", path)
        if r.method == "POST" and m:
            item = m.group(1)
            if (self.shown.get(item) != user or item in self.ordered
                    or json.loads(r.body).get("item") != item):
                self.problems.append(f"order {item!r} by {user}")
                return 400, [], b"not yours"
            self.ordered.add(item)
            return 201, [], json.dumps({"order_id": len(self.ordered)}).encode()
        return 404, [], b"no"

    def _user(self, r: Request) -> str | None:
        """The token's user, or the cookie's when the journey has no login."""
        auth = r.headers.get("authorization", "")
        if not auth:
            cookie = r.headers.get("cookie", "")
            return cookie[len("sid=s-"):] if cookie.startswith("sid=s-") else "anonymous"
        found = self.tokens.get(auth.removeprefix("Bearer "))
        if found is None:
            return None
        user, uses = found
        if self.token_uses and uses >= self.token_uses:
            return None
        self.tokens[auth.removeprefix("Bearer ")] = (user, uses + 1)
        return user


class ShopServer:
    """A raw HTTP/1.1 server (StreamServer on 127.0.0.1 port 0) answering through a Shop,
    logging every request it read before answering it."""

    def __init__(self, shop: Shop, stop_after: int = 0) -> None:
        self.shop = shop
        self.log: list[Request] = []
        self.connections = 0
        self.stop_after = stop_after
        self.reached = Event()
        self.handlers: list[gevent.Greenlet] = []
        self.server = StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()
        self.port = self.server.address[1]

    def _handle(self, conn: socket.socket, _address: Any) -> None:
        self.handlers.append(gevent.getcurrent())
        slot = self.connections
        self.connections += 1
        buffer = bytearray()
        try:
            while (r := self._read(conn, buffer, slot)) is not None:
                self.log.append(r)
                if self.stop_after and len(self.log) >= self.stop_after:
                    self.reached.set()
                status, headers, body = self.shop.answer(r)
                head = "".join(f"{n}: {v}\r\n" for n, v in headers)
                conn.sendall(f"HTTP/1.1 {status} X\r\n{head}Content-Length: {len(body)}\r\n\r\n"
                             .encode() + body)
        except OSError:
            pass
        finally:
            conn.close()

    @staticmethod
    def _read(conn: socket.socket, buffer: bytearray, slot: int) -> Request | None:
        raw = read_head(conn, buffer)
        if raw is None:
            return None
        lines = raw.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            lower = name.strip().lower()
            headers[lower] = (headers[lower] + "; " if lower in headers else "") + value.strip()
        return Request(method, target, headers, read_body(conn, buffer, raw), slot)

    def finish(self) -> None:
        self.server.stop(timeout=0)
        gevent.joinall(self.handlers, timeout=5)


# name -> (shop settings, config builder)
Builder = Callable[[str, dict[str, Any], dict[str, Any]], RunConfig]
SCRIPTS: dict[str, tuple[dict[str, Any], Builder]] = {
    "shop": ({}, shop_journey),
    "shop_empty": ({"empty_every": 3}, shop_journey),
    "shop_bad_id": ({"bad_every": 3}, shop_journey),
    "shop_refresh": ({"token_uses": 2},
                     lambda url, o, b: shop_journey(url, o, b, refresh=True)),
    "shop_login_fails": ({"failed_logins": 2},
                         lambda url, o, b: shop_journey(url, o, b, think=(0.05, 0.05))),
    "shop_think": ({}, lambda url, o, b: shop_journey(url, o, b, think=(0.3, 0.3),
                                                       on_start=False)),
    "two_kinds": ({}, two_kinds),
    "slow_login": ({"login_delay_s": 0.2}, shop_journey),
    "shop_paced": ({}, lambda url, o, b: shop_journey(url, o, b, think=(0.01, 0.01))),
}


# -- playing the coordinator for every worker -------------------------------------------------


def run_journey(spec: dict[str, Any], base: dict[str, Any], kept_open: list[socket.socket],
                deadline_s: float) -> dict[str, Any]:
    settings, build = SCRIPTS[spec["script"]]
    shop = Shop(**settings)
    server = ShopServer(shop, int(spec.get("stop_after") or 0))
    try:
        with gevent.Timeout(deadline_s, TimeoutError("the scenario did not end")):
            got = _coordinate(spec, server, build, base, kept_open)
    except TimeoutError as exc:
        got = {"error": str(exc)}
    server.finish()
    got["server"] = {
        "requests": [[r.method, r.target, r.headers.get("authorization"),
                      r.headers.get("cookie"), r.body.decode("latin-1"), r.connection]
                     for r in server.log],
        "connections": server.connections,
        "problems": shop.problems,
    }
    return got


def _coordinate(spec: dict[str, Any], server: ShopServer, build: Builder,
                base: dict[str, Any], kept_open: list[socket.socket]) -> dict[str, Any]:
    config = build(f"http://127.0.0.1:{server.port}", spec["options"], base)
    plans = plan_workers(config)
    channels, running = [], []
    for plan in plans:
        coordinator_end, worker_end = socket.socketpair()
        kept_open.extend((coordinator_end, worker_end))   # see workerharness.run_scenario
        worker = Worker(plan, Channel(worker_end.fileno()))
        channels.append(Channel(coordinator_end.fileno()))
        running.append(gevent.spawn(worker.run))
    for channel in channels:
        ready = channel.recv()
        if ready.get("type") != "ready":
            return {"error": f"expected ready, got {ready}"}
    at = time.monotonic() + 0.02
    for channel in channels:
        channel.send({"type": "start", "at": at})
    if server.stop_after:
        def stop() -> None:
            server.reached.wait()
            for channel in channels:
                channel.send({"type": "stop"})
        gevent.spawn(stop)
    names = [e.name for e in config.endpoints]
    agg = Aggregate(names, [WorkerState(p.index) for p in plans],
                    [e.expect_status for e in config.endpoints])
    kinds = config.journeys.kinds
    journeys = [{"successes": 0, "failures": 0, "cut": 0, "failed_at": {}, "max_us": 0}
                for _ in kinds]
    messages = []

    def collect(channel: Channel) -> None:
        while True:
            message = channel.recv()
            messages.append(message["type"])
            if message["type"] == "error":
                raise RuntimeError(message["message"])
            agg.add(message)
            for total, wire in zip(journeys, message["journeys"], strict=True):
                total["successes"] += _count(wire["hist"])
                total["max_us"] = max(total["max_us"], _max(wire["hist"]))
                total["failures"] += _count(wire["failed"])
                total["cut"] += wire["cut"]
                for e, n in wire["failed_at"].items():
                    total["failed_at"][names[int(e)]] = total["failed_at"].get(names[int(e)], 0) + n
            if message["type"] == "final":
                return
    collectors = [gevent.spawn(collect, c) for c in channels]
    gevent.joinall(collectors, raise_error=True)
    gevent.joinall(running)
    agg.finish()
    return {
        "messages": messages,
        "workers": len(plans),
        "rows": {name: {"requests": t.requests, "codes": dict(t.codes), "errors": dict(t.errors),
                        "checks_failed": dict(t.checks_failed), "checked": t.checked,
                        "max_us": t.hist.get_max_value() if t.requests else 0}
                 for name, t in zip(names, agg.totals)},
        "journeys": {k.name: j for k, j in zip(kinds, journeys)},
        "waited": sum(w.waited for w in agg.workers),
        "connections": sum(w.connections for w in agg.workers),
    }


def _count(payload: str) -> int:
    return decode_histogram(payload).get_total_count() if payload else 0


def _max(payload: str) -> int:
    return decode_histogram(payload).get_max_value() if payload else 0
