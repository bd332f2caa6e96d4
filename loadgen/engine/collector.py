"""The skeleton of every run, whatever carries its messages.

A local run (``engine.coordinator.Coordinator``: worker processes and pipes)
and a cluster run (``engine.cluster.run.Cluster``: Dask nodes, a queue and
variables) live through the same steps, so those steps are written once here
and each keeps only its transport:

1. launch the workers (``_launch``);
2. wait until every one is ready (``_poll_ready``), or give up at the
   deadline, on a failure or on Ctrl-C;
3. start them all at one time (``_start``), or call the run off (``_call_off``);
4. merge what they send into one ``Aggregate`` (``_poll`` hands interval and
   final reports to ``_merge``), noticing lost workers (``_check_lost``);
5. a first Ctrl-C (or ``stop``) asks the workers to stop (``_send_stop``) and
   their last reports are still merged; a second one stops at once;
6. release the transport (``_release``) and name the run's status (``run_status``).

With ``--auth`` an ``engine.renewal.Renewal`` (``auth``) logs in again in its
own thread; the collect loop tells it of the 401s it merges and hands each new
bearer header to the workers (``_send_headers``), once they have started.

No statistics here (that is ``stats.aggregate``) and no gevent.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from loadgen.config.model import RunConfig, WorkerPlan
from loadgen.stats.aggregate import Aggregate, WorkerState

#: Headers for every request of the run, (name, value): a renewed login's bearer header.
Headers = tuple[tuple[str, str], ...]


class HeaderSource(Protocol):
    """What the collect loop needs of ``engine.renewal.Renewal`` (and of a node's inbox)."""

    def take(self) -> Headers | None:
        """New headers for the workers since the last call, else None."""

    def unauthorized(self, count: int) -> None:
        """The workers reported ``count`` 401 answers."""


class HeaderInbox:
    """Headers put by another thread for the collect loop: a cluster node's coordinator
    gets each renewed login from the central one (``engine.cluster.node``), which alone
    logs in and so alone acts on 401s."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._headers: Headers | None = None

    def put(self, headers: Sequence[Sequence[str]]) -> None:
        with self._lock:
            self._headers = tuple((str(name), str(value)) for name, value in headers)

    def take(self) -> Headers | None:
        with self._lock:
            headers, self._headers = self._headers, None
            return headers

    def unauthorized(self, count: int) -> None:
        pass

READY_TIMEOUT_S = 30.0
# A worker reports every interval; one silent for longer than this is stuck and is lost.
# bench/intervals.py stretches the interval (LOADGEN_INTERVAL_S) and the limit with it.
SILENCE_LIMIT_S = 5.0 + max(0.0, float(os.environ.get("LOADGEN_INTERVAL_S", "1")) - 1.0)


@dataclass
class Outcome:
    status: str                   # complete | interrupted | failed
    aggregate: Aggregate
    problems: list[str]
    nodes: list[dict[str, Any]] | None = None   # a cluster run: what each node did


def run_status(agg: Aggregate, problems: list[str], interrupts: int, hard_stop: bool) -> str:
    """complete, interrupted or failed; a hard stop is named among the problems."""
    if problems or any(w.lost for w in agg.workers):
        return "failed"
    if not interrupts:
        return "complete"
    if hard_stop:
        problems.append("stopped at once by a second Ctrl-C: in-flight requests "
                        "and each worker's last partial second are not counted")
    return "interrupted"


class Collector(ABC):
    """Runs ``plans`` through a transport and collects their reports into one ``Aggregate``.

    Subclasses implement the transport hooks; ``collect`` is the run's life,
    the same for every transport, so messages, problems and statuses agree.
    """

    def __init__(self, config: RunConfig,
                 on_interval: Callable[[Aggregate], None] | None = None,
                 auth: HeaderSource | None = None) -> None:
        self.config = config
        self.on_interval = on_interval
        self.auth = auth
        self.interrupts = 0
        self.hard_stop = False
        self.problems: list[str] = []
        # told the run's start (``time.time()`` clock) once the workers were given it:
        # ``engine.monitor`` samples the server on the run's own seconds
        self.on_start: Callable[[float], None] | None = None

    def stop(self) -> None:
        """Stop as a first Ctrl-C does: in-flight requests finish and are counted."""
        self.interrupts = max(self.interrupts, 1)

    def collect(self, plans: list[WorkerPlan]) -> Outcome:
        """Launch, wait for ready, start, merge until every worker is done or lost, release."""
        config = self.config
        agg = Aggregate([e.name for e in config.endpoints], [WorkerState(p.index) for p in plans],
                        [e.expect_status for e in config.endpoints], journeys=config.journeys)
        self._launch(plans)
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        started = False
        try:
            if self._await_ready(agg):
                started = self._start(agg)
                if started and self.on_start is not None and agg.wall_start is not None:
                    self.on_start(agg.wall_start)
                if started:
                    self._collect(agg)
            else:
                self._call_off()
        except OSError as exc:
            self._transport_failed(agg, exc)
        finally:
            signal.signal(signal.SIGINT, previous)
            self._release(started)
        agg.finish()
        status = run_status(agg, self.problems, self.interrupts, self.hard_stop)
        return Outcome(status, agg, self.problems, nodes=self._describe(agg))

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.interrupts += 1

    def _await_ready(self, agg: Aggregate) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S + self.config.timeout_s
        while not self._all_ready():
            if self.interrupts:
                return False
            if time.monotonic() > deadline:
                self.problems.append(self._not_ready_problem())
                return False
            if not self._poll_ready(agg):
                return False
        return True

    def _collect(self, agg: Aggregate) -> None:
        stop_sent = False
        while self._active():
            if self.interrupts and not stop_sent:
                self._send_stop()
                stop_sent = True
            if self.interrupts > 1:
                self.hard_stop = True   # second Ctrl-C: keep what was merged, wait for nothing
                return
            if self.auth is not None:
                headers = self.auth.take()
                if headers is not None:
                    self._send_headers(headers)
            self._poll(agg)
            self._check_lost(agg, time.monotonic())

    def _merge(self, agg: Aggregate, message: dict[str, Any]) -> None:
        """One worker's interval or final report; ``on_interval`` once per merged second."""
        seconds = len(agg.intervals)
        agg.add(message)
        if self.auth is not None:
            self.auth.unauthorized(sum(e["codes"].get("401", 0) for e in message["endpoints"]))
        if self.on_interval and len(agg.intervals) > seconds:
            self.on_interval(agg)   # once per merged second, not per message

    # -- the transport's hooks --------------------------------------------------------------

    @abstractmethod
    def _launch(self, plans: list[WorkerPlan]) -> None:
        """Start the workers (before Ctrl-C is caught: a failure here is a plain error)."""

    @abstractmethod
    def _all_ready(self) -> bool:
        """Has every worker said it is ready?"""

    @abstractmethod
    def _poll_ready(self, agg: Aggregate) -> bool:
        """Wait a moment for ready messages; False (with a problem) if the run cannot start."""

    @abstractmethod
    def _not_ready_problem(self) -> str:
        """The problem line when the workers are not ready by the deadline."""

    @abstractmethod
    def _start(self, agg: Aggregate) -> bool:
        """Start every worker at one time, set ``agg.wall_start``; False if called off."""

    def _call_off(self) -> None:
        """The run will not start (not ready, failed or interrupted): tell whoever waits."""

    @abstractmethod
    def _active(self) -> bool:
        """Is any worker neither done nor lost?"""

    @abstractmethod
    def _send_stop(self) -> None:
        """Ask every worker to stop gracefully (once)."""

    def _send_headers(self, headers: Headers) -> None:
        """Give every running worker ``headers`` (a renewed login) for its next requests."""

    @abstractmethod
    def _poll(self, agg: Aggregate) -> None:
        """Wait a moment for messages and handle them (``_merge`` for reports)."""

    @abstractmethod
    def _check_lost(self, agg: Aggregate, now: float) -> None:
        """Lose the workers that are silent for too long or gone."""

    def _transport_failed(self, agg: Aggregate, exc: OSError) -> None:
        """The transport itself broke (an OSError reached ``collect``): by default an error."""
        raise exc

    @abstractmethod
    def _release(self, started: bool) -> None:
        """Tear the transport down (always; ``started``: the start was given)."""

    def _describe(self, agg: Aggregate) -> list[dict[str, Any]] | None:
        """What each node did, for a cluster run's ``Outcome.nodes``."""
        return None
