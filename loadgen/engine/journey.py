"""User journeys on the worker (issue 12 section 2): virtual users running their kind's steps.

A ``config.journey.UserKind`` names endpoint rows: ``on_start`` once per virtual user,
then ``steps`` in order, iteration after iteration.  Each step is an ordinary endpoint
(its own row, tally, success set, templates and rules), sent, timed and recorded by the
worker's one ``Worker.exchange``, so a step's figures mean exactly what an endpoint's do;
this module only adds what a user is: its connection, its cookie jar, its extracted
values, its think time, and the iterations (``stats.metrics.IterationTally`` per kind).

The two models (``/work/notes/journeys.md`` is the design):
- closed: each user (``--concurrency``, or ``--user-stage``'s) takes tickets, one per
  iteration, from the worker's range; ``--iterations`` is exact because a ticket is taken
  before the iteration's first request, on_start included;
- open: arrival ``k`` (the schedule's ``time_of(k)``, released by ``Worker.dispatch``)
  starts one iteration of kind ``kind_of(k)`` on an idle user of that kind, or on a new
  one (its on_start first) while the worker has fewer users than ``max_connections``;
  else it waits in its kind's queue (counted in ``waited``).  The first step's latency
  runs from the arrival's intended time (coordinated omission), later steps' from their
  send.

Decisions the design left open, made here:
- A ticket (closed) or arrival (open) whose on_start fails is an iteration that failed at
  that on_start row: a broken login then costs iterations, so ``--iterations N`` still
  ends, and the report says where they failed.  The user then pauses (think time, 1 s
  when think is 0) before its next try.
- Think time follows every step, on_start ones included, in the closed model (a ramp's
  user told to leave skips the one after its last step); in the open model never after
  on_start steps (they run while an arrival waits: that wait is latency) nor after the
  last step.
- Open model: the end of ``--duration`` ends the arrivals, not the iterations already
  released (as the plain open model still sends the requests it released); a stop cuts
  them after their in-flight step.
- An extracted value is checked (``config.template.header_value_safe`` /
  ``target_value_safe``) when it is extracted, for every place its kind renders it: the
  step that got it fails (kind ``check``, named ``extract <name>: ...``), so no request
  is recorded that the server did not see.
- Open model ranks: the j-th user of a kind created by worker ``i`` of ``stride`` has
  rank ``j * stride + i`` (a ``per-user`` feeder's row): distinct across workers.
- Open model: a kind's first user is made even when the worker is at ``max_connections``
  (so a worker may hold up to one user per kind beyond it): else that kind's arrivals
  would wait for ever behind the other kinds' users.
- The jar's cookies go in a Cookie header after the request line, or at the end of the
  step's own Cookie header when it has one.

Imported by engine.worker only when the plan has journeys (after gevent's patching).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import gevent
from gevent.queue import SimpleQueue

from loadgen.config.template import header_value_safe, target_value_safe
from loadgen.engine.checks import Outcome
from loadgen.engine.client import Connection, Keeper
from loadgen.engine.cookies import CookieJar
from loadgen.engine.render import compile_endpoint
from loadgen.engine.wire import build_request
from loadgen.stats.metrics import IterationTally

if TYPE_CHECKING:
    from loadgen.engine.worker import Worker

#: A failed on_start with no think time: the pause before the next try (a broken login
#: must not spin).
MIN_PAUSE_S = 1.0
#: ``_on_start`` / a step interrupted by the run's end: the iteration is cut.
CUT = -1
#: Open model: arrivals queued for busy users, at most (as the worker's MAX_QUEUED).
MAX_WAITING = 250_000


class _Step:
    """One step (an endpoint row) compiled for this worker: ``make`` gives its bytes."""

    __slots__ = ("cookie_line", "data", "e", "head", "max_body", "pick", "render", "rules",
                 "target")

    def __init__(self, e: int, head: bool, rules: Any) -> None:
        self.e = e
        self.head = head
        self.rules = rules if rules else None
        # bodies only for rules that read them; headers always (Set-Cookie)
        self.max_body = rules.max_body if rules and rules.needs_body else 0
        self.data = b""
        self.target = ""      # a static step's request target (cookie paths)
        self.render: Callable[..., bytes] | None = None
        self.pick: Callable[[int, int], list[str]] | None = None
        # the step's own Cookie header line start (b"\r\nCookie: "), if it has one: the
        # jar's cookies join it (a request carries one Cookie header, RFC 6265 §5.4)
        self.cookie_line = b""

    def make(self, seq: int, user: int, rank: int, ext: dict[str, str]) -> bytes:
        render = self.render
        if render is None:
            return self.data
        row = self.pick(seq, rank) if self.pick is not None else None
        return render(seq, user, row, ext)


class _Kind:
    """A ``UserKind`` on this worker: its steps compiled, its think time, its vetting."""

    def __init__(self, index: int, kind: Any, endpoints: Sequence[Any]) -> None:
        self.index = index
        self.name = kind.name
        self.lo, self.hi = kind.think
        self.refresh_on: frozenset[int] = frozenset(kind.refresh_on)
        self.feeder = kind.feeder
        self.on_start: list[_Step] = [_Step(e, endpoints[e].head, endpoints[e].rules)
                                      for e in kind.on_start]
        self.steps: list[_Step] = [_Step(e, endpoints[e].head, endpoints[e].rules)
                                   for e in kind.steps]
        # extracted names rendered into a path or a header by any of the kind's rows
        self.in_path: set[str] = set()
        self.in_header: set[str] = set()
        for e in kind.rows:
            t = endpoints[e].templates
            if t is None:
                continue
            self.in_path.update(t.path.extracted)
            for _, value in t.headers:
                self.in_header.update(value.extracted)

    def vet(self, outcome: Outcome) -> Outcome:
        """A passing outcome whose extracted values can all be sent where they go, or a
        failed one naming the value (never the value itself: it may be a secret)."""
        for name, value in outcome.values.items():
            if name in self.in_path and not target_value_safe(value):
                return Outcome({}, "extract",
                               f"extract {name}: value cannot be sent in a request path")
            if name in self.in_header and not header_value_safe(value):
                return Outcome({}, "extract",
                               f"extract {name}: value cannot be sent in a header")
        return outcome


class _User:
    """One virtual user: its kind, connection, cookies, on_start values."""

    __slots__ = ("base", "conn", "index", "jar", "kind", "rank", "ready", "thought")

    def __init__(self, index: int, rank: int, kind: _Kind, conn: Connection,
                 jar: CookieJar) -> None:
        self.index = index        # global: {{ user }}, and on_start's {{ seq }}
        self.rank = rank          # among its kind's users: a per-user feeder's row
        self.kind = kind
        self.conn = conn
        self.jar = jar
        self.base: dict[str, str] = {}   # what on_start extracted
        self.ready = False               # on_start succeeded (its values are in ``base``)
        self.thought = 0.0               # think time slept in the current iteration


class JourneyRunner:
    """The worker's journey runner: its users' loops, their tallies, the open-model pools."""

    def __init__(self, worker: Worker, headers: list[list[tuple[str, str]]],
                 prefix: str) -> None:
        self.w = worker
        plan = worker.plan
        self.plan = plan
        self.journeys = plan.journeys
        self.kinds = [_Kind(i, k, plan.endpoints) for i, k in enumerate(self.journeys.kinds)]
        self.tallies = self.new_tallies()
        self.think_rng = random.Random(f"think:{plan.index}")
        self.origin_len = len(prefix) - len(plan.target.base_path)   # a proxy's absolute form
        self.host, self.https = plan.target.host, plan.target.scheme == "https"
        self.compile(headers, prefix)
        # open model: per kind, the arrivals waiting, the idle users, the users made
        self.queues: list[SimpleQueue] = [SimpleQueue() for _ in self.kinds]
        self.idle = [0] * len(self.kinds)
        self.made = [0] * len(self.kinds)
        self.users = 0
        self.waiting = 0
        self.spare: list[Connection] = []   # preconnected before the start, for the first users

    def compile(self, headers: list[list[tuple[str, str]]], prefix: str) -> None:
        """Each step's bytes or renderer (again after a renewed login's new headers),
        with its kind's feeder (or the run's, for a kind without one)."""
        plan, w = self.plan, self.w
        for kind in self.kinds:
            feeder = kind.feeder if kind.feeder is not None else plan.feeder
            columns = feeder.columns if feeder is not None else ()
            pick = feeder.picker(plan.index, kind.index) if feeder is not None else None
            for step in (*kind.on_start, *kind.steps):
                e = plan.endpoints[step.e]
                own = [n for n, _ in headers[step.e] if n.lower() == "cookie"]
                step.cookie_line = b"\r\n%s: " % own[-1].encode("latin-1") if own else b""
                if e.templates is None:
                    made: Any = build_request(e.method, plan.target.host_header,
                                              prefix + e.path, headers[step.e], e.body,
                                              close=not plan.keepalive)
                    uses_row = False
                else:
                    made, uses_row = compile_endpoint(
                        e.method, plan.target.host_header, e.templates, e.body,
                        headers[step.e], columns, close=not plan.keepalive, prefix=prefix,
                        rng=w.rng)
                if isinstance(made, bytes):
                    step.data, step.render, step.pick = made, None, None
                    step.target = self._target(made)
                else:
                    step.render, step.pick = made.render, pick if uses_row else None

    def new_tallies(self) -> list[IterationTally]:
        return [IterationTally() for _ in self.kinds]

    def swap(self) -> list[dict[str, Any]]:
        """The interval's iteration tallies on the wire (fresh ones take their place)."""
        tallies, self.tallies = self.tallies, self.new_tallies()
        return [t.to_wire() for t in tallies]

    def _target(self, data: bytes) -> str:
        """A request's target (path and query) from its request line: cookie paths."""
        start = data.index(b" ") + 1
        return data[start:data.index(b" ", start)].decode("latin-1")[self.origin_len:]

    def _new_user(self, index: int, rank: int, kind: _Kind, conn: Connection) -> _User:
        return _User(index, rank, kind, conn, CookieJar(self.host, self.https))

    # -- the closed model ------------------------------------------------------------
    def closed_user(self, conn: Connection, u: int, stay: Any = None) -> None:
        """Closed-model user ``u`` (global) on ``conn``: iterations while tickets last.

        ``stay``: a ramp's user (``worker._User``), whose ``stopped`` flag makes it leave
        after its current iteration.
        """
        journeys = self.journeys
        user = self._new_user(u, journeys.rank(u), self.kinds[journeys.kind_of(u)], conn)
        while True:
            k = self._ticket(stay)
            if k is None:
                break
            failed_start = self._iteration(user, k, None)
            if stay is None or not stay.stopped:   # a user told to leave goes at once
                if failed_start:
                    self._pause(user)
                else:
                    self._think(user)   # after the last step, or the failed one
        self.w.finished_at = max(self.w.finished_at, time.perf_counter())

    def _ticket(self, stay: Any) -> int | None:
        """The next iteration's ticket, or None: tickets, time or a stop ran out (or the
        ramp told this user to leave)."""
        w = self.w
        if w.stopping or (stay is not None and stay.stopped):
            return None
        i = w.next_ticket
        if i == w.last_ticket:
            w.wake.set()   # a ramp's controller starts nobody else
            return None
        if time.perf_counter() >= w.end_at:
            return None
        w.next_ticket = i + 1
        return i

    # -- the open model ----------------------------------------------------------------
    def release(self, k: int, intended: float) -> None:
        """The dispatcher's arrival ``k``: to an idle user of its kind, a new user, or the
        kind's queue until one is free."""
        w = self.w
        kind = self.journeys.kind_of(k)
        if not self.idle[kind]:
            # a kind's first user is made even at the cap: else its arrivals would wait
            # for ever behind other kinds' users
            if self.users < self.plan.max_connections or not self.made[kind]:
                self._add_user(kind)
            else:
                w.waited += 1
        self.waiting += 1
        self.queues[kind].put((k, intended))
        while self.waiting > MAX_WAITING and not w.stopping:
            gevent.sleep(0.001)   # memory stays bounded; the latency shows it

    def _add_user(self, kind: int) -> None:
        w, plan = self.w, self.plan
        if self.spare:
            conn = self.spare.pop()
        else:
            conn = Connection(w.pool, plan.timeout_s, w.phases)
            w.connections.append(conn)
        index = plan.user_offset + self.users
        rank = self.made[kind] * plan.stride + plan.index
        self.users += 1
        self.made[kind] += 1
        user = self._new_user(index, rank, self.kinds[kind], conn)
        w.loops.append(gevent.spawn(self._open_user, user))

    def _open_user(self, user: _User) -> None:
        """One open-model user: an iteration per arrival of its kind, until none is left."""
        kind, get = user.kind.index, self.queues[user.kind.index].get
        w, idle = self.w, self.idle
        while True:
            idle[kind] += 1
            item = get()
            idle[kind] -= 1
            if item is None or w.stopping:
                break
            self.waiting -= 1
            if self._iteration(user, item[0], item[1]):
                self._pause(user)   # a failed on_start: not idle again at once
        w.finished_at = max(w.finished_at, time.perf_counter())

    def end(self) -> None:
        """No more arrivals (the schedule ended, or a stop): every user leaves once its
        kind's queue is drained (a stop: at once)."""
        for kind, queue in enumerate(self.queues):
            for _ in range(self.made[kind]):
                queue.put(None)

    # -- an iteration ------------------------------------------------------------------
    def _going(self) -> bool:
        """Whether another request may start: no stop, and (closed model) the duration
        not over.  Open model: an arrival released before the end runs to its end, as a
        released request is sent (the schedule, not the clock, ends the arrivals)."""
        w = self.w
        return not w.stopping and (w.open_model or time.perf_counter() < w.end_at)

    def _iteration(self, user: _User, k: int, arrival: float | None) -> bool:
        """Iteration ``k`` (the ticket, or the arrival) of ``user``; ``arrival``: the open
        model's intended time (None: closed).  Recorded once in its kind's tally.  True
        when its on_start failed (the caller pauses before the next try)."""
        kind, closed = user.kind, arrival is None
        user.thought = 0.0
        credit = 0.0   # open model: on_start's time is the server's, not send lag
        if not user.ready:
            began = time.perf_counter()
            failed = self._on_start(user, closed)
            credit = time.perf_counter() - began
            if failed is not None:
                if failed == CUT:
                    self.tallies[kind.index].cut_short()
                    return False
                self._failure(user, failed, began if arrival is None else arrival)
                return True
        values = dict(user.base)   # each iteration starts from the on_start values
        start = arrival
        for i, step in enumerate(kind.steps):
            if i:
                self._think(user)
                if not self._going():
                    self.tallies[kind.index].cut_short()
                    return False
            first = i == 0 and arrival is not None   # open: from the arrival's time
            intended = arrival if first and arrival is not None else time.perf_counter()
            if start is None:   # closed: the iteration runs from its first send
                start = intended
                user.thought = 0.0
            ok, status = self._send(user, step, k, values, intended, credit if first else None)
            failed_at = None if ok else step.e
            if failed_at is not None and status in kind.refresh_on:
                failed_at = self._refresh(user, step, k, values, closed)
                if failed_at == CUT:
                    self.tallies[kind.index].cut_short()
                    return False
            if failed_at is not None:
                self._failure(user, failed_at, start)
                return False
        self.tallies[kind.index].success(self._us(start, user))
        return False

    def _refresh(self, user: _User, step: _Step, k: int, values: dict[str, str],
                 closed: bool) -> int | None:
        """``refresh_on``: on_start again, then the step once more (each request counted in
        its row).  None: the retry succeeded; else where the iteration failed (the
        retried step, or the on_start step that failed: then the user is not ready), or
        CUT."""
        if not self._going():
            return CUT
        failed = self._on_start(user, closed)
        if failed is not None:
            return failed
        values.update(user.base)
        if not self._going():
            return CUT
        ok, _ = self._send(user, step, k, values, time.perf_counter(), None)
        return None if ok else step.e

    def _on_start(self, user: _User, think: bool) -> int | None:
        """Run the kind's on_start steps: None (done: ``user.base`` holds their values), the
        failing step's endpoint index, or CUT.  ``{{ seq }}`` is the user's index.
        ``think``: after each step (closed model; in the open model an arrival waits)."""
        user.ready = False
        values: dict[str, str] = {}
        for i, step in enumerate(user.kind.on_start):
            if i and think:
                self._think(user)
            if i and not self._going():
                return CUT
            ok, _ = self._send(user, step, user.index, values, time.perf_counter(), None)
            if not ok:
                return step.e
        if think and user.kind.on_start:
            self._think(user)
        user.base = values
        user.ready = True
        return None

    def _send(self, user: _User, step: _Step, seq: int, values: dict[str, str],
              intended: float, lag: float | None) -> tuple[bool, int]:
        """One step's request, through ``Worker.exchange``, recorded in the step's row:
        ``(succeeded, status)`` (status 0: no answer).  ``lag``: see ``exchange``.  Its extractions join ``values``;
        its Set-Cookie headers, the user's jar."""
        w = self.w
        data = step.make(seq, user.index, user.rank, values)
        target = step.target or self._target(data)
        jar = user.jar
        if len(jar):
            cookie = jar.header(target)
            if cookie:
                data = _with_cookie(data, cookie.encode("latin-1"), step.cookie_line)
        keeper = Keeper(step.max_body, step.head)
        got = w.exchange(user.conn, step.e, data, intended, keeper, lag)
        if got is None:
            return False, 0
        status, latency_us, received = got
        jar.receive(keeper.headers, target)
        tally = w.tallies[step.e]
        if step.rules is None:
            tally.record(status, latency_us, received, len(data))
            return status in tally.ok, status
        outcome = w.record_checked(tally, step.e, keeper, status, latency_us, received,
                                   len(data), user.kind.vet)
        if outcome is None or outcome.kind is not None:
            return False, status
        values.update(outcome.values)
        return True, status

    # -- time ------------------------------------------------------------------------------
    def _think(self, user: _User) -> None:
        """Think time: uniform in the kind's [lo, hi]; a stop or the duration's end wakes
        it early.  Added to ``user.thought``: never in an iteration's time."""
        lo, hi = user.kind.lo, user.kind.hi
        if hi <= 0:
            return
        self._sleep(user, lo if hi <= lo else self.think_rng.uniform(lo, hi))

    def _pause(self, user: _User) -> None:
        """After a failed on_start: think time, or MIN_PAUSE_S when there is none."""
        lo, hi = user.kind.lo, user.kind.hi
        self._sleep(user, self.think_rng.uniform(lo, hi) if hi > 0 else MIN_PAUSE_S)

    def _sleep(self, user: _User, seconds: float) -> None:
        w = self.w
        clock = time.perf_counter
        began = clock()
        if not w.open_model:   # the duration's end wakes a closed-model user
            seconds = min(seconds, w.end_at - began)
        # never wait on a stop already given: gevent (26.9) parks a wait on an Event that is
        # set but still notifying its waiters behind that notification, without its timeout
        # (AbstractLinkable._wait); open-model users were seen parked there for good after a
        # stop (2 harness runs in ~86; why the notification missed them is not pinned down)
        if seconds > 0 and not w.stopped.is_set():
            w.stopped.wait(seconds)
        user.thought += clock() - began

    def _failure(self, user: _User, e: int, start: float | None) -> None:
        self.tallies[user.kind.index].failure(e, self._us(start, user))

    @staticmethod
    def _us(start: float | None, user: _User) -> int:
        """Microseconds from ``start`` to now, the think time slept in between left out."""
        if start is None:   # a kind without steps
            return 0
        return max(0, int((time.perf_counter() - start - user.thought) * 1e6))


def _with_cookie(data: bytes, cookie: bytes, own_line: bytes) -> bytes:
    """``data`` with the jar's ``cookie`` pairs: a Cookie header spliced in after the
    request line, or appended to the request's own Cookie header (``own_line``)."""
    if own_line:
        at = data.find(own_line)
        if at >= 0:
            end = data.index(b"\r\n", at + len(own_line))
            return b"%s; %s%s" % (data[:end], cookie, data[end:])
    cut = data.index(b"\r\n") + 2
    return b"%sCookie: %s\r\n%s" % (data[:cut], cookie, data[cut:])
