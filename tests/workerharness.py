"""Run ``loadgen.engine.worker.Worker`` in this process against a scripted raw HTTP server.

The worker must run monkey-patched and the pytest process must never be, so the
unit tests of the serve loop (tests/test_worker_unit.py) run this script in a
fresh interpreter.  It patches gevent *first*, then for each scenario: starts a
raw HTTP/1.1 server (a gevent StreamServer on 127.0.0.1 port 0, one scripted
behaviour, counting what it received per connection), builds the run's
``WorkerPlan`` with ``build_config`` and ``plan_workers`` as ``loadgen run``
does, and plays the coordinator over a socket pair (ready, start, an optional
stop, interval and final messages merged by ``stats.aggregate.Aggregate``).

Usage: a JSON list of scenarios on stdin, one JSON line on stdout::

    echo '[{"name": "a", "server": {"kind": "ok"}, "options": {"requests": 10}}]' \\
        | python tests/workerharness.py

A journey scenario (tests/test_journey_worker.py) names a ``script`` of
tests/journeyscripts.py instead of a ``server``: the plans are built by hand, every worker
(``options.workers``) runs in this process, and the shop server logs every request.

A scenario: ``name``; ``server`` (``kind``: ok, continue, drop, silent, close, fin,
chunked; ``every``: drop/fin after that many requests per connection;
``hold_until_queued``: hold the first response until the open model's queue holds
that many released requests; ``stall_first_s``: before the first response, block the
whole process that long, event loop included); ``options`` (laid over ``BASE_OPTIONS``, as the
CLI's would be); ``stop_after`` (send a stop once the server has seen that many
requests).  Every scenario has its own server, worker and pipe, and a deadline:
one that hangs is reported as ``{"error": ...}``, never waited for.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()   # first: before anything imports socket, ssl or urllib3

import json
import socket
import sys
import time
from typing import Any

import gevent
from gevent.event import Event
from gevent.server import StreamServer
from hdrh.histogram import HdrHistogram
from rawservers import read_request  # tests/ is sys.path[0]: this file runs as a script

from loadgen.commands.inputs import build_config
from loadgen.config.model import plan_workers
from loadgen.engine.channel import Channel
from loadgen.engine.worker import Worker
from loadgen.stats.aggregate import Aggregate, WorkerState
from loadgen.stats.metrics import new_histogram

# Click's values for what a scenario leaves out (one worker, one endpoint, a short timeout).
BASE_OPTIONS: dict[str, Any] = {
    "endpoints": ("/x",), "headers": (), "concurrency": 2, "workers": 1, "timeout": "2s",
    "insecure": False, "auth": False, "username": "u", "password": None,
    "login_endpoint": "/login", "token_field": "t", "method": None,
}
SCENARIO_DEADLINE_S = 10.0   # a scenario that has not ended by then is reported as hung
PERCENTILES = (0.0, 50.0, 90.0, 99.0, 100.0)
BODY = b"ok"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" + BODY
KEPT_OPEN: list[socket.socket] = []
BLOCKING_SLEEP = monkey.get_original("time", "sleep")


class ScriptedServer:
    """A raw HTTP/1.1 server with one behaviour; counts requests per connection.

    A request is counted as soon as its head has been read, before any answer,
    so by the time the worker records a request the server has counted it.
    """

    def __init__(self, spec: dict[str, Any], worker: list[Worker]) -> None:
        self.kind = spec["kind"]
        self.every = int(spec.get("every", 0))
        self.hold_until_queued = int(spec.get("hold_until_queued", 0))
        self.stall_first_s = float(spec.get("stall_first_s", 0))
        self.worker = worker      # filled in once the worker exists (hold_until_queued)
        self.per_connection: list[int] = []
        self.answered = 0
        self.dropped = 0
        self.held = False
        self.stop_after = 0
        self.reached = Event()   # the server has seen stop_after requests
        self.handlers: list[gevent.Greenlet] = []
        self.server = StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()
        self.port = self.server.address[1]

    @property
    def requests(self) -> int:
        return sum(self.per_connection)

    def _handle(self, conn: socket.socket, _address: Any) -> None:
        self.handlers.append(gevent.getcurrent())
        slot = len(self.per_connection)
        self.per_connection.append(0)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = bytearray()
        try:
            while read_request(conn, buffer):
                self.per_connection[slot] += 1
                if self.stop_after and self.requests >= self.stop_after:
                    self.reached.set()
                if not self._answer(conn, self.per_connection[slot]):
                    return
        except OSError:
            pass   # the worker shut the socket (a timeout) or reset it
        finally:
            conn.close()

    def _answer(self, conn: socket.socket, nth: int) -> bool:
        """Answer the ``nth`` request of this connection; False: the connection ends here."""
        kind, every = self.kind, self.every
        if kind == "silent":
            return True
        if kind == "drop" and nth % every == 0:
            self.dropped += 1
            return False
        if not self.held and (self.hold_until_queued or self.stall_first_s):
            self.held = True
            _wait_for(lambda: self.worker[0].queue.qsize() >= self.hold_until_queued)
            BLOCKING_SLEEP(self.stall_first_s)   # the whole process stalls, as under a GC pause
        if kind == "continue":   # an interim alone on the wire, then one with the final answer
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            gevent.sleep(0)
            conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + OK)
        elif kind == "close":
            conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        elif kind == "chunked":
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\no\r\n")
            gevent.sleep(0)
            conn.sendall(b"1\r\nk\r\n0\r\n\r\n")
        elif kind == "fin" and nth % every == 0:
            # the FIN rides with the response (TCP_CORK holds it until shutdown): the worker
            # knows of the close before its next request, so it must reconnect, uncounted
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            conn.sendall(OK)
            self.answered += 1
            conn.shutdown(socket.SHUT_RDWR)
            return False
        elif kind in ("ok", "fin", "drop"):
            conn.sendall(OK)
        else:
            raise ValueError(f"unknown server kind {kind!r}")
        self.answered += 1
        return kind != "close"

    def finish(self) -> dict[str, Any]:
        """Stop accepting, let every connection's handler see its end, then the counts."""
        self.server.stop(timeout=0)
        gevent.joinall(self.handlers, timeout=5)
        return {"requests": self.requests, "answered": self.answered, "dropped": self.dropped,
                "connections": len(self.per_connection), "per_connection": self.per_connection,
                "open_handlers": sum(1 for h in self.handlers if not h.dead)}



def _wait_for(condition: Any, limit_s: float = 10.0) -> None:
    """Wait until ``condition()`` holds (checked every millisecond), at most ``limit_s``."""
    end = time.monotonic() + limit_s
    while not condition() and time.monotonic() < end:
        gevent.sleep(0.001)


def _figures(hist: HdrHistogram | None) -> dict[str, Any] | None:
    """A histogram's count and bounds in µs; ``min_upper_us``: the top of the lowest
    recorded value's bucket, so ``min_upper_us >= x`` says no value was recorded below x."""
    if hist is None:
        return None
    count = hist.get_total_count()
    return {
        "count": count,
        "min_upper_us": hist.get_highest_equivalent_value(hist.get_min_value()) if count else None,
        "max_us": hist.get_max_value() if count else None,
        "percentiles_us": [hist.get_value_at_percentile(p) for p in PERCENTILES] if count else [],
    }


def run_scenario(spec: dict[str, Any]) -> dict[str, Any]:
    if "script" in spec:   # a journey (tests/journeyscripts.py): its plans are built by hand
        from journeyscripts import run_journey

        return run_journey(spec, BASE_OPTIONS, KEPT_OPEN, SCENARIO_DEADLINE_S)
    holder: list[Worker] = []
    server = ScriptedServer(spec["server"], holder)
    server.stop_after = int(spec.get("stop_after") or 0)
    coordinator_end, worker_end = socket.socketpair()
    # The worker's control greenlet waits on its end for ever (and exits the process if it
    # closes): both ends stay open until this process ends, else the next scenario's pipe
    # could reuse the descriptor under that greenlet, which would read its messages.
    KEPT_OPEN.extend((coordinator_end, worker_end))
    try:
        with gevent.Timeout(SCENARIO_DEADLINE_S, TimeoutError("the scenario did not end")):
            result = _coordinate(spec, server, holder, coordinator_end, worker_end)
    except TimeoutError as exc:
        result = {"error": str(exc), "server": server.finish()}
    return result


def _coordinate(spec: dict[str, Any], server: ScriptedServer, holder: list[Worker],
                coordinator_end: socket.socket, worker_end: socket.socket) -> dict[str, Any]:
    """Play the coordinator: ready, start, (stop), merge until the final message."""
    options = {**BASE_OPTIONS, "url": f"http://127.0.0.1:{server.port}", **spec["options"]}
    config = build_config(options)
    (plan,) = plan_workers(config)
    worker = Worker(plan, Channel(worker_end.fileno()))
    holder.append(worker)
    coordinator = Channel(coordinator_end.fileno())
    running = gevent.spawn(worker.run)
    ready = coordinator.recv()
    if ready.get("type") != "ready":
        return {"error": f"expected ready, got {ready}", "server": server.finish()}
    coordinator.send({"type": "start", "at": time.monotonic() + 0.02})
    stopper = None
    if server.stop_after:
        def stop() -> None:
            server.reached.wait()
            coordinator.send({"type": "stop"})
        stopper = gevent.spawn(stop)
    agg = Aggregate([e.name for e in config.endpoints], [WorkerState(plan.index)],
                    [e.expect_status for e in config.endpoints])
    kinds = []
    failed = new_histogram()   # the failures alone (the aggregate keeps all, and successes)
    while True:
        message = coordinator.recv()
        kinds.append(message["type"])
        if message["type"] == "error":
            return {"error": message["message"], "server": server.finish()}
        agg.add(message)
        for wire in message["endpoints"]:
            if wire["failed"]:
                failed.decode_and_add(wire["failed"])
        if message["type"] == "final":
            break
    running.join()
    stop_sent = stopper is not None and stopper.dead
    if stopper is not None:
        stopper.kill()
    agg.finish()
    totals = agg.all_totals()
    state = agg.workers[0]
    connects = agg.phases.hists.get("connect")
    return {
        "server": server.finish(),
        "messages": kinds,
        "stop_sent": stop_sent,
        "plan": {"connections": plan.connections, "max_connections": plan.max_connections,
                 "timeout_us": int(plan.timeout_s * 1e6), "request_bytes": len(worker.requests[0])},
        "requests": totals.requests,
        "codes": dict(totals.codes),
        "errors": dict(totals.errors),
        "bytes_out": totals.bytes_out,
        "reconnects": state.reconnects,
        "connections": state.connections,
        "connects": connects.get_total_count() if connects is not None else 0,
        "latency": _figures(totals.hist),
        "success": _figures(totals.success),
        "failed": _figures(failed),
        "service": _figures(totals.service),
        "send_lag": _figures(agg.lateness),
    }


def main() -> None:
    specs = json.load(sys.stdin)
    results = {spec["name"]: run_scenario(spec) for spec in specs}
    sys.stdout.write(json.dumps(results) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
