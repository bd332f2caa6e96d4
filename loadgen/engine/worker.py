"""One worker process's load loop: greenlets per connection, deltas up the pipe.

Shared-nothing like wrk: each process owns its connections, its tallies and
its share of the requests; the coordinator only merges.  Every second (on an
absolute schedule, so timer lateness never accumulates) the tallies are
swapped for fresh ones and the old ones go up the pipe, which keeps the
coordinator's view at most a second old even if this process is killed.

One serve loop sends, times and records every request; the two models differ
only in the request source that feeds it ``(index, intended send time)``:
- closed: the next ticket, now (each connection sends, reads the whole
  response, sends again);
- open (``--rate``/``--stage``): a dispatcher releases requests at their
  scheduled times into a queue that connections drain.  Latency runs from
  the *intended* send time (wrk2's coordinated-omission correction); the
  actual send-to-response time is kept beside it as service time.
A source is a generator: resuming one costs less than a method call, and the
open model's queue items are passed through as they are.  The stop conditions
live in the sources (tickets, duration, the dispatcher's end, a stop), never in
the serve loop.  A *population* (how many virtual users run, over time:
``--user-stage``) is how many serve greenlets run, each on its own connection
and its own source (``user_tickets``, which also obeys the user's stop flag), so
the constant closed model keeps ``tickets()`` untouched.  A templated endpoint
(``{{ }}``, config.templated) has b"" as its prebuilt ``requests[e]`` and a maker
in ``makers[e]`` that renders request ``k`` of its user (engine.render, the feeder's
row picker); a static endpoint keeps its prebuilt bytes, and pays one truth test.
Everything but a static request is sent by ``exchange`` (send, time, record a failure),
which journey steps share: with ``[[users]]`` (``plan.journeys``) engine.journey's
virtual users replace the serve loops, fed by the same tickets and dispatcher.

Imported only after gevent.monkey.patch_all().
"""

from __future__ import annotations

import gc
import os
import random
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event
from gevent.queue import SimpleQueue

from loadgen.config.model import Endpoint, SendSchedule, WorkerPlan, asks_to_close, merge_headers
from loadgen.engine.channel import Channel, ChannelClosed
from loadgen.engine.checks import Outcome, evaluate
from loadgen.engine.client import (
    TIMEOUT,
    Connection,
    Keeper,
    RequestError,
    build_request,
    make_pool,
    proxy_form,
)
from loadgen.engine.render import compile_endpoint
from loadgen.stats.metrics import HIGHEST_US, Tally, encode_histogram, new_histogram
from loadgen.stats.phases import PhaseRecorder

if TYPE_CHECKING:
    from loadgen.engine.journey import JourneyRunner

# Seconds between deltas.  Only bench/intervals.py changes it (to price the machinery);
# the coordinator's per-second series assumes 1.
INTERVAL_S = float(os.environ.get("LOADGEN_INTERVAL_S", "1"))
# Open model: requests released but not yet sent, at most (~120 bytes each).  Stale ones
# (older than the timeout) are dropped as timeouts when taken, so the queue drains.
MAX_QUEUED = 250_000
# Period of the event-loop lag probe: 200 wake-ups a second cost ~0.2% of a core.
PROBE_S = 0.005
# Open model: a wait for the next due time at least this long also ends on a stop (a low
# rate, early in a ramp from zero: minutes at --rate 0.01); shorter ones are plain sleeps,
# the cheapest wait, and delay a stop by less than this.
LONG_WAIT_S = 0.05

#: A templated endpoint's request maker: (global request index, virtual user) -> its bytes.
Maker = Callable[[int, int], bytes]


class Worker:
    def __init__(self, plan: WorkerPlan, channel: Channel) -> None:
        self.plan = plan
        self.channel = channel
        self.open_model = plan.schedule is not None
        headers = self._endpoint_headers(plan.headers)
        # per-worker seeds: uuid / randint draws and the random feeder mode are reproducible
        self.rng = random.Random(f"render:{plan.index}")
        self.pick = plan.feeder.picker(plan.index) if plan.feeder is not None else None
        # static endpoints: their prebuilt bytes; templated ones: b"" here and a maker
        self.makers: list[Maker | None] = []
        # endpoints with ``expect`` checks: their rules (else None); their prebuilt bytes
        # are b"" and a maker gives them, so the serve loop's slow branch takes them
        self.rules = [e.rules for e in plan.endpoints]
        # journeys: no request of their own here (engine.journey compiles the steps)
        self.requests = (self._build_requests(headers) if plan.journeys is None
                         else [b""] * len(plan.endpoints))
        self.heads = [e.head for e in plan.endpoints]
        # endpoints whose requests say Connection: close: the connection ends with the
        # response, whatever the server answered (RFC 9112 §9.6)
        self.closes = [not plan.keepalive or asks_to_close(h) for h in headers]
        self.phases = PhaseRecorder(tls=plan.target.scheme == "https")
        self.tallies = self._new_tallies()
        self.send_lag = new_histogram()   # open model: intended send time -> bytes written
        self.loop_lag = new_histogram()   # how late the event loop ran a timer (both models)
        self.next_ticket = plan.first_ticket
        self.last_ticket = plan.first_ticket + plan.tickets if plan.tickets is not None else -1
        self.stopping = False
        self.stopped = Event()   # set with ``stopping``: ends the dispatcher's long waits
        self.start = self.cpu0 = self.finished_at = 0.0
        self.run_delay0 = 0.0
        self.end_at = float("inf")
        self.pool: Any = None
        self.connections: list[Connection] = []
        self.loops: list[gevent.Greenlet] = []
        self.queue: SimpleQueue = SimpleQueue()
        self.idle = 0          # open model: connections waiting for work
        self.waited = 0        # open model: sends that found every connection busy, none to add
        self.finished = Event()
        # --user-stage: the users running now, their user-seconds since the last interval
        self.active_users = 0
        self.peak_users = 0
        self.user_seconds = 0.0
        self.users_since = 0.0         # perf_counter of the last change (or interval)
        self.interval_began = 0.0
        self.retired_reconnects = 0    # of users' connections already closed
        self.wake = Event()            # the ramp's controller: stop, or tickets ran out
        # user journeys (engine.journey): their users replace the serve loops
        self.journey: JourneyRunner | None = None
        if plan.journeys is not None:
            from loadgen.engine.journey import JourneyRunner
            self.journey = JourneyRunner(self, headers, self._prefix())

    def _endpoint_headers(self, run: tuple[tuple[str, str], ...]) -> list[list[tuple[str, str]]]:
        """Each endpoint's headers: the run's, the endpoint's over them, the proxy's."""
        _, to_proxy = proxy_form(self.plan.target, self.plan.proxy)
        return [merge_headers(to_proxy, merge_headers(run, e.headers))
                for e in self.plan.endpoints]

    def _build_requests(self, headers: list[list[tuple[str, str]]]) -> list[bytes]:
        """Each endpoint's prebuilt bytes (b"" for a templated one, whose maker is set in
        ``self.makers``, in place: serve loops hold that very list)."""
        plan = self.plan
        host, base = plan.target.host_header, plan.target.base_path
        origin, _ = proxy_form(plan.target, plan.proxy)   # ("", []) without one
        requests: list[bytes] = []
        makers: list[Maker | None] = []
        for e, h in zip(plan.endpoints, headers):
            if e.templates is None:   # no {{ }} anywhere: exactly today's bytes
                requests.append(build_request(e.method, host, origin + base + e.path, h, e.body,
                                              close=not plan.keepalive))
                makers.append(None)
                continue
            made = self._compile(e, h, origin + base)
            requests.append(made if isinstance(made, bytes) else b"")
            makers.append(None if isinstance(made, bytes) else made)
        for i, e in enumerate(plan.endpoints):   # checked endpoints: the serve loop's slow branch
            if e.rules is not None and requests[i]:
                makers[i] = _constant(requests[i])
                requests[i] = b""
        self.makers[:] = makers
        return requests

    def _compile(self, e: Endpoint, headers: list[tuple[str, str]], prefix: str
                 ) -> bytes | Maker:
        """A templated endpoint compiled once (engine.render): its bytes if every template
        turned out static, else ``make(k, user)``, the feeder row picked when it uses one."""
        plan = self.plan
        made, uses_row = compile_endpoint(
            e.method, plan.target.host_header, e.templates, e.body, headers,
            plan.feeder.columns if plan.feeder is not None else (), close=not plan.keepalive,
            prefix=prefix, rng=self.rng)
        if isinstance(made, bytes):
            return made
        render, pick = made.render, self.pick
        if not uses_row or pick is None:
            return render

        def make(k: int, user: int) -> bytes:
            return render(k, user, pick(k, user))
        return make

    def replace_headers(self, new: list[tuple[str, str]]) -> None:
        """A renewed login: ``new`` replaces the run's headers of the same names.

        The request bytes are rebuilt and swapped *in place*: every serve loop holds
        this very list (``requests[e]``), so the next request of each connection
        carries the new header, and the loop itself does not change (nor its cost).
        """
        names = {name.lower() for name, _ in new}
        run = (*((n, v) for n, v in self.plan.headers if n.lower() not in names),
               *((str(n), str(v)) for n, v in new))
        if self.journey is not None:
            self.journey.compile(self._endpoint_headers(run), self._prefix())
            return
        self.requests[:] = self._build_requests(self._endpoint_headers(run))   # makers too

    def _prefix(self) -> str:
        """What goes before an endpoint's path: a proxy's origin (absolute form), the base."""
        origin, _ = proxy_form(self.plan.target, self.plan.proxy)
        return origin + self.plan.target.base_path

    def _new_tallies(self) -> list[Tally]:
        return [Tally(self.open_model, e.expect_status) for e in self.plan.endpoints]

    # -- the serve loop ---------------------------------------------------------------
    def serve(self, conn: Connection, source: Iterator[tuple[int, float]],
              user: int = 0) -> None:
        """Send, time and record every request ``source`` releases on one connection.

        ``source`` yields ``(k, intended)``: the global request index and the
        perf_counter time the request was meant to leave (closed: now, so
        latency runs from just before the request, reconnects included; open:
        the schedule's time, wrk2's coordinated-omission correction).  Latency
        and the timeout run from ``intended``; in the open model service time
        and send lag run from the moment the bytes were written.  A request
        that waited past its timeout is a timeout without being sent, so a
        stalled server cannot keep the run going past its last send plus the
        timeout; a response later than the timeout is a timeout, whatever the
        watchdog saw.  One greenlet serving one source is one virtual user, ``user`` its
        global index (``{{ user }}``).  A templated endpoint's prebuilt bytes are b"": it is
        rendered for request ``k`` (one truth test per request for static endpoints).
        """
        requests, heads, closes, cycle = self.requests, self.heads, self.closes, self.plan.cycle
        makers = self.makers
        n_cycle, clock, monotonic = len(cycle), time.perf_counter, time.monotonic
        timeout, open_model = self.plan.timeout_s, self.open_model
        for k, intended in source:
            e = cycle[k % n_cycle]
            data = requests[e]
            if not data:   # templated, or checked: rendered, then sent by exchange()
                self._serve_rendered(conn, e, makers[e](k, user), intended)  # type: ignore[misc]
                continue
            # a static endpoint: exchange() inlined (one call less per request)
            t0 = clock() if open_model else intended   # closed: the source's now is the send
            left = intended + timeout - t0
            if left <= 0:   # never sent: at least this late
                self._record_lag(t0 - intended)
                self._failed(e, TIMEOUT, 0, t0 - intended)
                continue
            try:
                status, received = conn.request(data, heads[e], monotonic() + left)
            except RequestError as err:
                t1 = clock()
                if open_model and conn.sent_at >= t0:   # written before it failed
                    self._lag(conn, t0, intended)
                    self.tallies[e].record_service(int((t1 - conn.sent_at) * 1e6))
                self._failed(e, err.kind, len(data), t1 - intended)
                gevent.sleep(0)  # a refused connect never yields: let the others run
                continue
            t1 = clock()
            if closes[e]:
                conn.close()
            tally = self.tallies[e]   # swapped every second by the reporter
            if open_model:
                self._lag(conn, t0, intended)
                tally.record_service(int((t1 - conn.sent_at) * 1e6))
            if t1 - intended > timeout:
                self._failed(e, TIMEOUT, len(data), t1 - intended)
            else:
                tally.record(status, int((t1 - intended) * 1e6), received, len(data))
        self.finished_at = max(self.finished_at, clock())

    def _serve_rendered(self, conn: Connection, e: int, data: bytes, intended: float) -> None:
        """The serve loop's slow branch: a templated or checked endpoint's request, sent by
        ``exchange`` and recorded (judged by its checks when it has any)."""
        rules = self.rules[e]
        keeper = Keeper(rules.max_body, self.heads[e]) if rules is not None else None
        got = self.exchange(conn, e, data, intended, keeper)
        if got is None:
            return
        status, latency_us, received = got
        tally = self.tallies[e]
        if keeper is None:
            tally.record(status, latency_us, received, len(data))
        else:
            self.record_checked(tally, e, keeper, status, latency_us, received, len(data))

    def exchange(self, conn: Connection, e: int, data: bytes, intended: float,
                 keeper: Keeper | None = None, lag: float | None = 0.0
                 ) -> tuple[int, int, int] | None:
        """Send one request of endpoint ``e`` on ``conn``, time it; what the serve loop does
        for a static request, for everything else: templated and checked endpoints, journey
        steps (engine.journey).

        Latency runs from ``intended`` (closed: the send; open: the intended time), the
        timeout too.  A request that got no answer in time is recorded here (its failure
        kind) and gives None; an answer gives ``(status, latency_us, bytes_in)`` for the
        caller to record as it judges it (``Tally.record``, ``record_checked``).  Open
        model: the service time is recorded, and the send lag less ``lag`` seconds (the
        server's time spent for this request before it: a fresh journey user's on_start),
        or not at all when ``lag`` is None (a journey's later steps are sent when due).
        """
        clock = time.perf_counter
        timeout, open_model = self.plan.timeout_s, self.open_model
        t0 = clock() if open_model else intended
        left = intended + timeout - t0
        if left <= 0:   # never sent: at least this late
            self._record_lag(t0 - intended)
            self._failed(e, TIMEOUT, 0, t0 - intended)
            return None
        try:
            status, received = conn.request(data, self.heads[e], time.monotonic() + left,
                                            keeper)
        except RequestError as err:
            t1 = clock()
            if open_model and conn.sent_at >= t0:   # written before it failed
                if lag is not None:
                    self._lag(conn, t0, intended + lag)
                self.tallies[e].record_service(int((t1 - conn.sent_at) * 1e6))
            self._failed(e, err.kind, len(data), t1 - intended)
            gevent.sleep(0)  # a refused connect never yields: let the others run
            return None
        t1 = clock()
        if self.closes[e]:
            conn.close()
        if open_model:
            if lag is not None:
                self._lag(conn, t0, intended + lag)
            self.tallies[e].record_service(int((t1 - conn.sent_at) * 1e6))
        if t1 - intended > timeout:
            self._failed(e, TIMEOUT, len(data), t1 - intended)
            return None
        return status, int((t1 - intended) * 1e6), received

    def record_checked(self, tally: Tally, e: int, keeper: Keeper, status: int,
                       latency_us: int, received: int, sent: int,
                       vet: Callable[[Outcome], Outcome] | None = None) -> Outcome | None:
        """A response on an endpoint with ``expect`` checks (issue 12 section 3), or a
        journey step with rules; its outcome (None: a failure by status).

        A response whose status is in the success set is checked
        (``engine.checks.evaluate`` on what the ``Keeper`` kept): one that fails a check
        is a failure of kind ``check``, counted under the check's name.  A wrong status
        stays a failure by status (the body is not checked), as on every endpoint.
        ``vet`` (journeys) may turn a passing outcome into a failed one (an extracted
        value that cannot be sent), recorded the same way.
        """
        if status not in tally.ok:
            tally.record(status, latency_us, received, sent)
            return None
        tally.checked += 1
        outcome = evaluate(self.rules[e], status, keeper.headers, keeper.body())
        if outcome.kind is None and vet is not None:
            outcome = vet(outcome)
        if outcome.kind is None:
            tally.record(status, latency_us, received, sent)
        else:
            tally.check_failed(outcome.detail or outcome.kind, received, sent, latency_us,
                               outcome.kind)
        return outcome

    # -- the request sources ----------------------------------------------------------
    def tickets(self) -> Iterator[tuple[int, float]]:
        """Closed model: the next ticket, now, until tickets, time or a stop run out."""
        clock, end_at = time.perf_counter, self.end_at
        while not self.stopping:
            t0 = clock()
            i = self.next_ticket
            if i == self.last_ticket or t0 >= end_at:
                return
            self.next_ticket = i + 1
            yield i, t0

    def user_tickets(self, user: _User) -> Iterator[tuple[int, float]]:
        """A ramp's user: ``tickets()`` that also ends when the user is told to stop.

        Only ramps use it, so the constant closed model's source keeps its speed.
        The user finishes the request it is in, then leaves.
        """
        clock, end_at = time.perf_counter, self.end_at
        while not self.stopping and not user.stopped:
            t0 = clock()
            i = self.next_ticket
            if i == self.last_ticket:
                self.wake.set()   # no more work: the controller starts nobody else
                return
            if t0 >= end_at:
                return
            self.next_ticket = i + 1
            yield i, t0

    def released(self) -> Iterator[tuple[int, float]]:
        """Open model: what the dispatcher released, in order, until it (or a stop) says so."""
        get = self.queue.get
        while True:
            self.idle += 1
            item = get()
            self.idle -= 1
            if item is None or self.stopping:
                return
            yield item

    def _failed(self, e: int, kind: str, bytes_out: int, elapsed: float) -> None:
        """A failure at the time it failed; a timeout never below the timeout."""
        if kind == TIMEOUT:
            elapsed = max(elapsed, self.plan.timeout_s)
        self.tallies[e].error(kind, bytes_out, int(elapsed * 1e6))

    def _lag(self, conn: Connection, t0: float, intended: float) -> None:
        """Send lag: intended time -> bytes written, less a connect made for this request
        (the server's kernel answers a connect: that time is the server's, not loadgen's)."""
        lag = conn.sent_at - intended
        if conn.connected_at > t0:
            lag -= conn.connect_s
        self._record_lag(lag)

    def _record_lag(self, seconds: float) -> None:
        self.send_lag.record_value(min(max(0, int(seconds * 1e6)), HIGHEST_US))

    def dispatch(self) -> None:
        """Release this worker's requests (index, index+stride, ...) at their scheduled times."""
        plan, clock = self.plan, time.perf_counter
        schedule: SendSchedule = plan.schedule   # only time_of(k): exact, the same on every node
        k, limit, end = plan.index, plan.requests_total, plan.duration_s or float("inf")
        journey = self.journey   # journeys: arrivals start iterations (engine.journey)
        sent = 0
        while not self.stopping and (limit is None or k < limit):
            due = schedule.time_of(k)
            if due is None or due >= end:
                break
            intended = self.start + due
            now = clock()
            if intended > now:
                if intended - now >= LONG_WAIT_S:   # rare (a low rate): a stop ends it
                    if self.stopped.wait(intended - now - LONG_WAIT_S / 2):
                        break
                    now = clock()
                # gevent.sleep reads the clock before arming its timer, so it never wakes
                # early; an Event's timeout may (the loop's time can be stale): it stops short
                gevent.sleep(intended - now)
                now = clock()
            sent += 1
            if not sent & 63 and now - intended > 0.01:   # far behind: let connections run
                gevent.sleep(0)
                while self.queue.qsize() > MAX_QUEUED and not self.stopping:
                    gevent.sleep(0.001)   # memory stays bounded; the send lag shows it
            if journey is not None:
                journey.release(k, intended)
                k += plan.stride
                continue
            if not self.idle:
                if len(self.connections) < plan.max_connections:
                    self._add_connection()
                else:
                    self.waited += 1
            self.queue.put((k, intended))
            k += plan.stride
        if journey is not None:
            journey.end()
        for _ in self.connections:
            self.queue.put(None)

    # -- a population: --user-stage -----------------------------------------------------
    def populate(self) -> None:
        """Start and stop this worker's users on the schedule, then return.

        Worker ``index`` of ``stride`` owns the users ``u % stride == index``
        (engine.population), so the workers' counts add up to the schedule's at
        every instant.  Each change is due at an absolute time from the common
        start (timers wake late; lateness never accumulates).  A stopped user
        ends its current request, then closes its connection, so the server
        sees its connections follow the ramp.
        """
        plan, clock = self.plan, time.perf_counter
        users: dict[int, _User] = {}
        self._note_users(0)
        for u, conn in zip(range(plan.index, plan.index + plan.stride * len(self.connections),
                                 plan.stride), list(self.connections)):
            self._start_user(users, u, conn)   # the first users: connected before the start
        for t, u, starts in plan.user_schedule.changes(plan.index, plan.stride):
            at = self.start + t
            if at >= self.end_at:
                break
            delay = at - clock()
            if delay > 0 and self.wake.wait(delay):
                break   # a stop, or the tickets ran out
            if self.stopping or self.wake.is_set():
                break
            if starts:
                conn = Connection(self.pool, plan.timeout_s, self.phases)
                self.connections.append(conn)
                self._start_user(users, u, conn, connect=True)
            elif (user := users.pop(u, None)) is not None:
                user.stopped = True

    def _start_user(self, users: dict[int, _User], u: int, conn: Connection,
                    connect: bool = False) -> None:
        user = _User(u, conn)
        users[u] = user
        self._note_users(1)
        self.loops.append(gevent.spawn(self._run_user, users, user, connect))

    def _run_user(self, users: dict[int, _User], user: _User, connect: bool) -> None:
        """One user: connect (outside any latency, as the pool's connections are before
        the start), serve until stopped, then leave with its connection closed."""
        conn = user.conn
        try:
            if connect and not all(self.closes):   # else each request connects anyway
                self._preconnect(conn)
            if self.journey is not None:
                self.journey.closed_user(conn, user.index, user)
            else:
                self.serve(conn, self.user_tickets(user), user.index)
        finally:
            if users.get(user.index) is user:
                del users[user.index]
            self._note_users(-1)
            self.retired_reconnects += conn.reconnects
            self.connections.remove(conn)
            conn.release()   # closed; urllib3's object goes back for a later user

    def _note_users(self, delta: int) -> None:
        """Add the user-seconds since the last change, then change the count."""
        now = time.perf_counter()
        self.user_seconds += self.active_users * (now - self.users_since)
        self.users_since = now
        self.active_users += delta
        self.peak_users = max(self.peak_users, self.active_users)

    def _users_mean(self, now: float) -> float:
        """Time-weighted mean of the active users since the last interval; starts the next."""
        self._note_users(0)
        span = now - self.interval_began
        mean = self.user_seconds / span if span > 0 else float(self.active_users)
        self.user_seconds, self.interval_began = 0.0, now
        return mean

    def _add_connection(self) -> None:
        conn = Connection(self.pool, self.plan.timeout_s, self.phases)
        self.connections.append(conn)
        self.loops.append(gevent.spawn(self.serve, conn, self.released(),
                                       self.plan.user_offset + len(self.connections) - 1))

    # -- around them ------------------------------------------------------------------
    def run(self) -> None:
        plan = self.plan
        self.pool = make_pool(plan.target.scheme, plan.target.host, plan.target.port,
                              max(plan.connections, plan.max_connections), plan.timeout_s,
                              plan.insecure, plan.tls, plan.proxy)
        self.connections = [Connection(self.pool, plan.timeout_s, self.phases)
                            for _ in range(plan.connections)]
        if not all(self.closes):   # else every request opens its own: connect in its latency
            gevent.joinall([gevent.spawn(self._preconnect, c) for c in self.connections])
        elif self.connections:
            self._warm_up(self.connections[0])
        if plan.user_schedule is not None and not self.connections:   # a ramp from 0 users
            probe = Connection(self.pool, plan.timeout_s, self.phases)
            self._warm_up(probe)
            probe.release()
        # Everything allocated so far lives for the whole run: move it out of the
        # collector's sight so full collections stay short and do not stall greenlets.
        gc.collect()
        gc.freeze()
        self.channel.send({"type": "ready", "worker": plan.index})
        start = self.channel.recv()
        if start.get("type") != "start":
            return
        if self.open_model and self.journey is not None:   # the first users take them
            self.journey.spare = list(self.connections)
        elif self.open_model:   # every connection waits on the queue before the first send
            self.loops = [gevent.spawn(self.serve, c, self.released(), plan.user_offset + i)
                          for i, c in enumerate(self.connections)]
            while self.idle < len(self.loops) and not any(g.dead for g in self.loops):
                gevent.sleep(0)
        gevent.sleep(max(0.0, start["at"] - time.monotonic()))
        self.start = time.perf_counter()
        self.cpu0 = time.process_time()
        self.run_delay0 = run_delay_s()
        if plan.duration_s is not None:
            self.end_at = self.start + plan.duration_s
        self.users_since = self.interval_began = self.start
        gevent.spawn(self._control)
        gevent.spawn(self._watchdog)
        gevent.spawn(self._probe)
        reporter = gevent.spawn(self._report_intervals)
        if self.open_model:
            self.dispatch()
        elif plan.user_schedule is not None:
            self.populate()
        elif self.journey is not None:
            self.loops = [gevent.spawn(self.journey.closed_user, c, plan.user_offset + i)
                          for i, c in enumerate(self.connections)]
        else:
            self.loops = [gevent.spawn(self.serve, c, self.tickets(), plan.user_offset + i)
                          for i, c in enumerate(self.connections)]
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

    @staticmethod
    def _warm_up(conn: Connection) -> None:
        """Without preconnects, resolve the host once before the start: a process's first
        name lookup imports modules (idna, gevent's resolver and thread pool) while the
        event loop waits, ~10 ms that would land in the first requests and the loop lag."""
        try:
            socket.getaddrinfo(conn.conn.host, conn.conn.port, 0, socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            pass   # the first request's connect fails and says why

    def _control(self) -> None:
        """Obey the coordinator; if it is gone, nobody will read our results: exit now."""
        try:
            while True:
                message = self.channel.recv()
                if message.get("type") == "headers":
                    self.replace_headers(message["headers"])
                elif message.get("type") == "stop":
                    self.stopping = True
                    self.wake.set()      # a ramp's controller waits on it
                    self.stopped.set()   # so do the dispatcher's long waits
                    for _ in self.connections:   # wake idle open-model connections
                        self.queue.put(None)
                    if self.journey is not None:   # and idle journey users
                        self.journey.end()
        except ChannelClosed:
            os._exit(1)

    def _watchdog(self) -> None:
        """Time out requests at their deadline (sockets have no timeout of their own).

        It sleeps until the earliest deadline in flight (at most ``period``):
        a new request's deadline is never earlier than one already in flight
        (closed: now + timeout; open: the queue is first in, first out), so
        deadlines are enforced on time while an idle watchdog wakes rarely.
        """
        period = min(0.1, self.plan.timeout_s / 10)
        monotonic, finished = time.monotonic, self.finished
        while not finished.is_set():
            now = monotonic()
            wake = now + period
            for conn in self.connections:
                deadline = conn.deadline
                if deadline:
                    if now >= deadline:
                        conn.expire()
                    elif deadline < wake:
                        wake = deadline
            gevent.sleep(wake - now)

    def _probe(self) -> None:
        """Event-loop lag, as jHiccup measures it: how late a timer on an absolute
        schedule runs.  Whatever delays it (CPU starvation, a long greenlet, a GC
        pause) delays every response this worker reads, in both models."""
        clock, finished = time.perf_counter, self.finished   # loop_lag is swapped every second
        due = self.start + PROBE_S
        while not finished.is_set():
            now = clock()
            if due > now:
                gevent.sleep(due - now)
                now = clock()
            self.loop_lag.record_value(min(max(0, int((now - due) * 1e6)), HIGHEST_US))
            due += PROBE_S
            if due < now:   # a long stall: one sample for it, then a fresh schedule
                due = now + PROBE_S

    def _report_intervals(self) -> None:
        k = 1
        while not self.finished.wait(max(0.0, self.start + k * INTERVAL_S - time.perf_counter())):
            self._send_interval(final=False)
            k += 1

    def _send_interval(self, final: bool) -> None:
        tallies, self.tallies = self.tallies, self._new_tallies()
        send_lag, self.send_lag = self.send_lag, new_histogram()
        loop_lag, self.loop_lag = self.loop_lag, new_histogram()
        now = time.perf_counter()
        end = self.finished_at if final and self.finished_at else now
        message: dict[str, Any] = {
            "type": "final" if final else "interval",
            "worker": self.plan.index,
            "t": round(now - self.start, 6),
            "elapsed_s": round(end - self.start, 6),
            "cpu_s": round(time.process_time() - self.cpu0, 6),
            "run_delay_s": round(run_delay_s() - self.run_delay0, 6),
            "reconnects": self.retired_reconnects + sum(c.reconnects for c in self.connections),
            "connections": max(len(self.connections), self.peak_users),
            "waited": self.waited,
            "lateness": encode_histogram(send_lag),
            "loop_lag": encode_histogram(loop_lag),
            "endpoints": [t.to_wire() for t in tallies],
            "phases": self.phases.to_wire(),
        }
        if self.plan.user_schedule is not None:
            message["users"] = round(self._users_mean(now), 4)
        if self.journey is not None:   # per kind, in the order of journeys.kinds
            message["journeys"] = self.journey.swap()
        try:
            self.channel.send(message)
        except ChannelClosed:
            os._exit(1)


def _constant(data: bytes) -> Maker:
    """A maker for a static request that must take the slow branch (it has checks)."""
    def make(k: int, user: int) -> bytes:
        return data
    return make


class _User:
    """One virtual user of a ramp: its global index, its connection, whether to leave."""

    __slots__ = ("conn", "index", "stopped")

    def __init__(self, index: int, conn: Connection) -> None:
        self.index = index
        self.conn = conn
        self.stopped = False


def run_delay_s() -> float:
    """Seconds this process's main thread has spent runnable but not running (Linux).

    The second field of /proc/self/schedstat: the CPU a worker was denied.
    CPU time alone cannot show starvation (two workers on one core each read
    50%); 0.0 where the kernel does not expose it.
    """
    try:
        with open("/proc/self/schedstat", "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def run_worker(plan: WorkerPlan, fd: int) -> None:
    channel = Channel(fd)
    try:
        Worker(plan, channel).run()
    except ChannelClosed:
        return
    except Exception as exc:  # noqa: BLE001 - report it, so the coordinator can name what broke
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        channel.send({"type": "error", "worker": plan.index, "message": detail})
