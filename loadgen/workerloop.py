"""One worker process's load loop: greenlets per connection, deltas up the pipe.

Shared-nothing like wrk: each process owns its connections, its tallies and
its share of the requests; the coordinator only merges.  Every second (on an
absolute schedule, so timer lateness never accumulates) the tallies are
swapped for fresh ones and the old ones go up the pipe, which keeps the
coordinator's view at most a second old even if this process is killed.

Two models share everything but the loop itself:
- closed: each connection sends, reads the whole response, sends again;
- open (``--rate``/``--stage``): a dispatcher releases requests at their
  scheduled times into a queue that connections drain.  Latency runs from
  the *intended* send time (wrk2's coordinated-omission correction); the
  actual send-to-response time is kept beside it as service time.

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
from gevent.queue import SimpleQueue

from loadgen.channel import Channel, ChannelClosed
from loadgen.client import TIMEOUT, Connection, RequestError, build_request, make_pool
from loadgen.config import WorkerPlan
from loadgen.metrics import HIGHEST_US, Tally, encode_histogram, new_histogram

# Seconds between deltas.  Only bench/intervals.py changes it (to price the machinery);
# the coordinator's per-second series assumes 1.
INTERVAL_S = float(os.environ.get("LOADGEN_INTERVAL_S", "1"))
# Open model: requests released but not yet sent, at most (~120 bytes each).  Stale ones
# (older than the timeout) are dropped as timeouts when taken, so the queue drains.
MAX_QUEUED = 250_000


class Worker:
    def __init__(self, plan: WorkerPlan, channel: Channel) -> None:
        self.plan = plan
        self.channel = channel
        self.open_model = plan.schedule is not None
        host, base = plan.target.host_header, plan.target.base_path
        self.requests = [build_request(e.method, host, base + e.path,
                                       [*plan.headers, *e.headers], e.body)
                         for e in plan.endpoints]
        self.heads = [e.head for e in plan.endpoints]
        self.tallies = self._new_tallies()
        self.lateness = new_histogram()   # open model: how late the dispatcher released requests
        self.next_ticket = plan.first_ticket
        self.last_ticket = plan.first_ticket + plan.tickets if plan.tickets is not None else -1
        self.stopping = False
        self.start = self.cpu0 = self.finished_at = 0.0
        self.end_at = float("inf")
        self.pool: Any = None
        self.connections: list[Connection] = []
        self.loops: list[gevent.Greenlet] = []
        self.queue: SimpleQueue = SimpleQueue()
        self.idle = 0          # open model: connections waiting for work
        self.waited = 0        # open model: requests released while every connection was busy
        self.finished = Event()

    def _new_tallies(self) -> list[Tally]:
        return [Tally(self.open_model) for _ in self.plan.endpoints]

    # -- the hot loops ----------------------------------------------------------------
    def closed_loop(self, conn: Connection) -> None:
        """Send, read the whole response, send again: until tickets, time or a stop run out."""
        requests, heads, cycle = self.requests, self.heads, self.plan.cycle
        n_cycle, clock, end_at = len(cycle), time.perf_counter, self.end_at
        while not self.stopping:
            t0 = clock()
            i = self.next_ticket
            if i == self.last_ticket or t0 >= end_at:
                break
            self.next_ticket = i + 1
            e = cycle[i % n_cycle]
            data = requests[e]
            try:
                status, received = conn.request(data, heads[e])
            except RequestError as err:
                self.tallies[e].error(err.kind, len(data))
                gevent.sleep(0)  # a refused connect never yields: let the others run
                continue
            self.tallies[e].record(status, int((clock() - t0) * 1e6), received, len(data))
        self.finished_at = max(self.finished_at, clock())

    def open_loop(self, conn: Connection) -> None:
        """Take (index, intended time) from the dispatcher's queue until it says stop.

        The timeout runs from the intended send time, like the latency: a request that
        waited in the queue for longer is a timeout without being sent.  So a stalled
        server cannot keep the run going past its last send time plus the timeout.
        """
        requests, heads, cycle = self.requests, self.heads, self.plan.cycle
        n_cycle, clock, get = len(cycle), time.perf_counter, self.queue.get
        timeout, monotonic = self.plan.timeout_s, time.monotonic
        while True:
            self.idle += 1
            item = get()
            self.idle -= 1
            if item is None or self.stopping:
                break
            k, intended = item
            e = cycle[k % n_cycle]
            data = requests[e]
            t0 = clock()
            left = intended + timeout - t0
            if left <= 0:
                self.tallies[e].error(TIMEOUT, 0)
                continue
            try:
                status, received = conn.request(data, heads[e], monotonic() + left)
            except RequestError as err:
                self.tallies[e].error(err.kind, len(data))
                gevent.sleep(0)
                continue
            t1 = clock()
            tally = self.tallies[e]
            tally.record(status, int((t1 - intended) * 1e6), received, len(data))
            tally.record_service(int((t1 - t0) * 1e6))
        self.finished_at = max(self.finished_at, clock())

    def dispatch(self) -> None:
        """Release this worker's requests (index, index+stride, ...) at their scheduled times."""
        plan, schedule, clock = self.plan, self.plan.schedule, time.perf_counter
        k, limit, end = plan.index, plan.requests_total, plan.duration_s or float("inf")
        sent = 0
        while not self.stopping and (limit is None or k < limit):
            due = schedule.time_of(k)
            if due is None or due >= end:
                break
            intended = self.start + due
            now = clock()
            if intended > now:
                gevent.sleep(intended - now)
                now = clock()
            self.lateness.record_value(min(int((now - intended) * 1e6), HIGHEST_US))
            sent += 1
            if not sent & 63 and now - intended > 0.01:   # far behind: let connections run
                gevent.sleep(0)
                while self.queue.qsize() > MAX_QUEUED and not self.stopping:
                    gevent.sleep(0.001)   # memory stays bounded; the lateness shows it
            if not self.idle:
                self.waited += 1
                if len(self.connections) < plan.max_connections:
                    self._add_connection()
            self.queue.put((k, intended))
            k += plan.stride
        for _ in self.connections:
            self.queue.put(None)

    def _add_connection(self) -> None:
        conn = Connection(self.pool, self.plan.timeout_s)
        self.connections.append(conn)
        self.loops.append(gevent.spawn(self.open_loop, conn))

    # -- around them ------------------------------------------------------------------
    def run(self) -> None:
        plan = self.plan
        self.pool = make_pool(plan.target.scheme, plan.target.host, plan.target.port,
                              max(plan.connections, plan.max_connections), plan.timeout_s,
                              plan.insecure)
        self.connections = [Connection(self.pool, plan.timeout_s)
                            for _ in range(plan.connections)]
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
        gevent.spawn(self._watchdog)
        reporter = gevent.spawn(self._report_intervals)
        loop = self.open_loop if self.open_model else self.closed_loop
        self.loops = [gevent.spawn(loop, c) for c in self.connections]
        if self.open_model:
            self.dispatch()
        while self.loops:   # the dispatcher may have added loops
            self.loops.pop().join()
        self.finished.set()  # not kill(): that could cut a frame half-written to the pipe
        reporter.join()
        self._send_interval(final=True)
        for conn in self.connections:
            conn.release()
        self.pool.close()

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
                    for _ in self.connections:   # wake idle open-model connections
                        self.queue.put(None)
        except ChannelClosed:
            os._exit(1)

    def _watchdog(self) -> None:
        """Time out requests past their deadline (sockets have no timeout of their own)."""
        period = min(0.1, self.plan.timeout_s / 10)
        while not self.finished.wait(period):
            now = time.monotonic()
            for conn in self.connections:
                if conn.deadline and now > conn.deadline:
                    conn.expire()

    def _report_intervals(self) -> None:
        k = 1
        while not self.finished.wait(max(0.0, self.start + k * INTERVAL_S - time.perf_counter())):
            self._send_interval(final=False)
            k += 1

    def _send_interval(self, final: bool) -> None:
        tallies, self.tallies = self.tallies, self._new_tallies()
        lateness, self.lateness = self.lateness, new_histogram()
        now = time.perf_counter()
        end = self.finished_at if final and self.finished_at else now
        message: dict[str, Any] = {
            "type": "final" if final else "interval",
            "worker": self.plan.index,
            "t": round(now - self.start, 6),
            "elapsed_s": round(end - self.start, 6),
            "cpu_s": round(time.process_time() - self.cpu0, 6),
            "reconnects": sum(c.reconnects for c in self.connections),
            "connections": len(self.connections),
            "waited": self.waited,
            "lateness": encode_histogram(lateness),
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
