"""One worker process's load loop: a greenlet per connection, deltas up the pipe.

Shared-nothing like wrk: each process owns its connections, its tallies and
its share of the request tickets; the coordinator only merges.  Every second
(on an absolute schedule, so timer lateness never accumulates) the tallies
are swapped for fresh ones and the old ones go up the pipe, which makes the
coordinator's view at most a second old even if this process is killed.

Imported only after gevent.monkey.patch_all().
"""

from __future__ import annotations

import gc
import os
import time
import traceback
from typing import Any

import gevent
from gevent.event import Event

from loadgen.channel import Channel, ChannelClosed
from loadgen.client import Connection, RequestError, build_request, make_pool
from loadgen.config import WorkerPlan
from loadgen.metrics import Tally

INTERVAL_S = 1.0


class Worker:
    def __init__(self, plan: WorkerPlan, channel: Channel) -> None:
        self.plan = plan
        self.channel = channel
        host = plan.target.host_header
        base = plan.target.base_path
        self.requests = [build_request(e.method, host, base + e.path,
                                       [*plan.headers, *e.headers], e.body)
                         for e in plan.endpoints]
        self.heads = [e.head for e in plan.endpoints]
        self.tallies = [Tally() for _ in plan.endpoints]
        self.next_ticket = plan.first_ticket
        self.last_ticket = plan.first_ticket + plan.tickets if plan.tickets is not None else -1
        self.stopping = False
        self.start = 0.0
        self.end_at = float("inf")
        self.finished_at = 0.0
        self.cpu0 = 0.0
        self.connections: list[Connection] = []
        self.finished = Event()

    # -- the hot loop -----------------------------------------------------------------
    def closed_loop(self, conn: Connection) -> None:
        """Send, read the whole response, send again: until tickets, time or a stop run out."""
        requests, heads, n_endpoints = self.requests, self.heads, len(self.requests)
        clock, end_at = time.perf_counter, self.end_at
        while not self.stopping:
            t0 = clock()
            i = self.next_ticket
            if i == self.last_ticket or t0 >= end_at:
                break
            self.next_ticket = i + 1
            e = i % n_endpoints
            data = requests[e]
            try:
                status, received = conn.request(data, heads[e])
            except RequestError as err:
                self.tallies[e].error(err.kind, len(data))
                gevent.sleep(0)  # a refused connect never yields: let the others run
                continue
            self.tallies[e].record(status, int((clock() - t0) * 1e6), received, len(data))
        self.finished_at = max(self.finished_at, clock())

    # -- around it --------------------------------------------------------------------
    def run(self) -> None:
        plan = self.plan
        pool = make_pool(plan.target.scheme, plan.target.host, plan.target.port,
                         plan.connections, plan.timeout_s, plan.insecure)
        self.connections = [Connection(pool, plan.timeout_s) for _ in range(plan.connections)]
        gevent.joinall([gevent.spawn(self._preconnect, c) for c in self.connections])
        # Everything allocated so far lives for the whole run: move it out of the
        # collector's sight so full collections stay short and do not stall greenlets.
        gc.collect()
        gc.freeze()
        self.channel.send({"type": "ready", "worker": plan.index})
        start = self.channel.recv()
        if start.get("type") != "start":
            return
        gevent.sleep(max(0.0, start["at"] - time.monotonic()))
        self.start = time.perf_counter()
        self.cpu0 = time.process_time()
        if plan.duration_s is not None:
            self.end_at = self.start + plan.duration_s
        gevent.spawn(self._control)
        reporter = gevent.spawn(self._report_intervals)
        gevent.joinall([gevent.spawn(self.closed_loop, c) for c in self.connections])
        self.finished.set()  # not kill(): that could cut a frame half-written to the pipe
        reporter.join()
        self._send_interval(final=True)
        for conn in self.connections:
            conn.release()
        pool.close()

    def _preconnect(self, conn: Connection) -> None:
        """Open connections before the start so connect time is not in the first latencies."""
        try:
            conn.open()
        except RequestError:
            pass  # retried (and counted as an error) by the first request

    def _control(self) -> None:
        """Obey the coordinator; if it is gone, nobody will read our results: exit now."""
        try:
            while True:
                if self.channel.recv().get("type") == "stop":
                    self.stopping = True
        except ChannelClosed:
            os._exit(1)

    def _report_intervals(self) -> None:
        k = 1
        while not self.finished.wait(max(0.0, self.start + k * INTERVAL_S - time.perf_counter())):
            self._send_interval(final=False)
            k += 1

    def _send_interval(self, final: bool) -> None:
        tallies, self.tallies = self.tallies, [Tally() for _ in self.plan.endpoints]
        now = time.perf_counter()
        end = self.finished_at if final and self.finished_at else now
        message: dict[str, Any] = {
            "type": "final" if final else "interval",
            "worker": self.plan.index,
            "t": round(now - self.start, 6),
            "elapsed_s": round(end - self.start, 6),
            "cpu_s": round(time.process_time() - self.cpu0, 6),
            "reconnects": sum(c.reconnects for c in self.connections),
            "endpoints": [t.to_wire() for t in tallies],
        }
        try:
            self.channel.send(message)
        except ChannelClosed:
            os._exit(1)


def run_worker(plan: WorkerPlan, fd: int) -> None:
    channel = Channel(fd)
    try:
        Worker(plan, channel).run()
    except ChannelClosed:
        return
    except Exception as exc:  # report, so the coordinator can name what broke
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        channel.send({"type": "error", "worker": plan.index, "message": detail})
