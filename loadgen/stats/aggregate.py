"""Merge the workers' per-second deltas into run totals and a per-second series.

The n-th message of every worker covers the same second (all workers share
the start time and report on the same absolute schedule), so the series is
merged by message index.  A second is reduced to a few numbers as soon as
every worker still running has delivered it, so memory stays flat however
long the run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from loadgen.config.journey import Journeys
from loadgen.schema import (
    Block,
    Interval,
    IntervalEndpoint,
    IntervalLatencyMs,
    Journey,
    LagMs,
)
from loadgen.stats.journeys import (
    IterationTotals,
    iteration_figures,
    journey_block,
    named_failures,
)
from loadgen.stats.metrics import (
    DEFAULT_SUCCESS,
    Totals,
    decode_histogram,
    encode_histogram,
    latency_ms,
    new_histogram,
    percentiles_us,
    summarize,
)
from loadgen.stats.phases import PhaseTotals
from loadgen.stats.verdict import Evidence, WorkerLoad, judge


@dataclass
class WorkerState:
    index: int
    messages: int = 0
    requests: int = 0
    elapsed_s: float = 0.0
    cpu_s: float = 0.0
    run_delay_s: float = 0.0
    reconnects: int = 0
    connections: int = 0
    waited: int = 0
    cpu_percent_max: float = 0.0
    # the (nearly) whole second in which the worker wanted the most CPU: used + denied
    demand_percent_max: float = 0.0
    demand_cpu_percent: float = 0.0
    demand_wait_percent: float = 0.0
    demand_second: int = 0
    wait_percent_max: float = 0.0   # the most time spent runnable but not running, in a second
    wait_second: int = 0
    done: bool = False     # sent its final message
    lost: str = ""         # why it ended without one


@dataclass
class SecondTally:
    """One endpoint's second: every request's latency and the counts an interval shows.

    Lighter than ``Totals`` on purpose: a second needs no success-only histogram, status
    or byte counts, and each worker delta is decoded straight into ``hist``.  Every
    reduced second pays for it once per endpoint that had requests in it.
    """

    hist: HdrHistogram = field(default_factory=new_histogram)
    requests: int = 0
    successes: int = 0

    def add_wire(self, wire: dict[str, Any], expect: frozenset[int]) -> None:
        for key in ("hist", "failed"):
            if wire.get(key):
                self.hist.decode_and_add(wire[key])
        codes: dict[str, int] = wire["codes"]
        self.requests += sum(codes.values()) + sum(wire["errors"].values())
        # as ``Totals``: a status counts when its endpoint's success set has it
        self.successes += sum(n for code, n in codes.items()
                              if code.isascii() and code.isdigit() and int(code) in expect)

    def merge(self, other: SecondTally) -> None:
        if other.hist.get_total_count():   # an empty one's minimum of 0 would be merged
            self.hist.add(other.hist)
        self.requests += other.requests
        self.successes += other.successes


@dataclass
class _Second:
    """What every worker recorded in one second, until the second is complete.

    ``endpoints``: each endpoint's tally of the second, by endpoint index, only for the
    endpoints that had requests in it.  The second's own figures are their merge
    (``merged``): each worker delta is decoded once for the second, as it always was.
    """

    endpoints: dict[int, SecondTally] = field(default_factory=dict)
    length: float = 0.0
    lag: HdrHistogram = field(default_factory=new_histogram)
    users: float | None = None   # --user-stage: the workers' mean active users, summed
    iterations: int | None = None   # journeys: iterations completed (ok + failed) in the second

    @property
    def requests(self) -> int:
        return sum(t.requests for t in self.endpoints.values())

    def merged(self) -> SecondTally:
        """Every endpoint's figures of the second together (exact: an HDR merge)."""
        if len(self.endpoints) == 1:
            return next(iter(self.endpoints.values()))
        total = SecondTally()
        for one in self.endpoints.values():
            total.merge(one)
        return total

    def merge(self, other: _Second) -> None:
        """Take in ``other``'s endpoint figures (a last sliver joining the second before it)."""
        for i, tally in other.endpoints.items():
            if i in self.endpoints:
                self.endpoints[i].merge(tally)
            else:
                self.endpoints[i] = tally


@dataclass
class Aggregate:
    """``success_sets``: each endpoint's statuses that count as a success (default 2xx).

    ``journeys``: a journey run's kinds (``RunConfig.journeys``), whose steps are among
    ``endpoint_names``; their workers' messages carry ``"journeys"`` (one
    ``IterationTally`` wire per kind), merged into ``iterations``.  None for an endpoint
    run: its messages, intervals and document are untouched.
    """

    endpoint_names: list[str]
    workers: list[WorkerState]
    success_sets: list[frozenset[int]] | None = None
    journeys: Journeys | None = None
    totals: list[Totals] = field(init=False)
    intervals: list[Interval] = field(default_factory=list)
    wall_start: float | None = None     # time.time() of the run's start, once known
    _pending: dict[int, _Second] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.success_sets is None:
            self.success_sets = [DEFAULT_SUCCESS] * len(self.endpoint_names)
        self.totals = [Totals(expect=ok) for ok in self.success_sets]
        self.iterations = ([IterationTotals() for _ in self.journeys.kinds]
                           if self.journeys is not None else [])
        self.lateness = new_histogram()   # send lag: intended send time -> bytes written
        self.loop_lag = new_histogram()   # event-loop lag probe of every worker
        self.phases = PhaseTotals()       # connect, TLS, time to first byte: every worker
        self.lag_p50_by_second: list[float] = []   # send lag median of each whole second
        # by worker index: a cluster node aggregates only its own share of the global indices
        self._by_index = {w.index: w for w in self.workers}
        self._last: tuple[int, _Second] | None = None
        # the newest whole second endpoint by endpoint (the live view's rows; None: idle in
        # it), and its length
        self.last_endpoints: list[SecondTally | None] = []
        self.last_length = 0.0   # the newest reduced second

    def add(self, message: dict[str, Any]) -> None:
        """Merge one interval or final message from a worker."""
        state = self._by_index[message["worker"]]
        state.messages += 1
        span = message["elapsed_s"] - state.elapsed_s
        if span >= 0.5:  # shares of a (nearly) whole second; shorter tails are noise
            busy = 100.0 * (message["cpu_s"] - state.cpu_s) / span
            denied = 100.0 * (message.get("run_delay_s", 0.0) - state.run_delay_s) / span
            state.cpu_percent_max = max(state.cpu_percent_max, busy)
            if denied > state.wait_percent_max:
                state.wait_percent_max, state.wait_second = denied, state.messages
            if busy + denied > state.demand_percent_max:
                state.demand_percent_max = busy + denied
                state.demand_cpu_percent, state.demand_wait_percent = busy, denied
                state.demand_second = state.messages
        state.elapsed_s = message["elapsed_s"]
        state.cpu_s = message["cpu_s"]
        state.run_delay_s = message.get("run_delay_s", 0.0)
        state.reconnects = message["reconnects"]
        state.connections = message["connections"]
        state.waited = message["waited"]
        second = self._pending.setdefault(state.messages, _Second())
        if message.get("users") is not None:   # each worker's mean over its second: they add up
            second.users = (second.users or 0.0) + message["users"]
        if message["lateness"]:
            lag = decode_histogram(message["lateness"])
            self.lateness.add(lag)
            second.lag.add(lag)
        if message.get("loop_lag"):
            self.loop_lag.decode_and_add(message["loop_lag"])
        self.phases.add_wire(message.get("phases"))   # absent from older workers' messages
        for i, (totals, wire) in enumerate(zip(self.totals, message["endpoints"])):
            totals.add_wire(wire)
            if wire["codes"] or wire["errors"]:   # an idle endpoint has nothing in the second
                one = second.endpoints.get(i)
                if one is None:
                    one = second.endpoints[i] = SecondTally()
                one.add_wire(wire, totals.expect)
        if self.journeys is not None:   # every second of a journey run counts its iterations
            second.iterations = (second.iterations or 0) + sum(
                iterations.add_wire(wire)
                for iterations, wire in zip(self.iterations, message.get("journeys") or []))
        state.requests += sum(sum(w["codes"].values()) + sum(w["errors"].values())
                              for w in message["endpoints"])
        span = message["elapsed_s"] - (state.messages - 1)
        second.length = max(second.length, min(1.0, span))
        if message["type"] == "final":
            state.done = True
        self._close_seconds()

    def lose(self, index: int, why: str) -> None:
        self._by_index[index].lost = why
        self._close_seconds()

    def finish(self) -> None:
        """Reduce whatever seconds are still pending (the run is over).

        A last sliver (under SLIVER_S: responses that completed just after a
        second boundary) joins the second before it instead of standing alone
        with an absurd rate.
        """
        final = max(self._pending, default=0)
        for k in sorted(self._pending):
            second = self._pending[k]
            if k == final and second.length < 1.0 and not second.requests:
                del self._pending[k]   # a last partial second with nothing in it
            elif k == final and second.length < SLIVER_S and self._can_fold(k):
                del self._pending[k]
                self._fold_into_last(second)
            else:
                self._reduce(k)

    def _can_fold(self, k: int) -> bool:
        """The second before ``k`` was reduced as a whole second: a sliver can join it."""
        return self._last is not None and self._last[0] == k - 1 and self._last[1].length >= 1.0

    def _fold_into_last(self, sliver: _Second) -> None:
        assert self._last is not None
        k, merged = self._last
        merged.merge(sliver)
        if sliver.lag.get_total_count():
            merged.lag.add(sliver.lag)
        if sliver.users is not None and merged.users is not None:   # time-weighted
            length = merged.length + max(0.0, sliver.length)
            merged.users = ((merged.users * merged.length + sliver.users * max(0.0, sliver.length))
                            / length if length > 0 else merged.users)
        merged.length += max(0.0, sliver.length)
        if sliver.iterations is not None:
            merged.iterations = (merged.iterations or 0) + sliver.iterations
        self.intervals[-1] = self._interval(k, merged)

    def _close_seconds(self) -> None:
        running = [w.messages for w in self.workers if not w.done and not w.lost]
        if not running:
            return   # every worker is done: finish() reduces the rest, folding a last sliver
        complete_upto = min(running)
        for k in sorted(self._pending):
            if k <= complete_upto:
                self._reduce(k)

    def _reduce(self, k: int) -> None:
        second = self._pending.pop(k)
        if second.length <= 0 and second.requests == 0:
            return  # a final message sent just after a second boundary it had nothing for
        if second.length >= 1.0 and second.lag.get_total_count():
            self.lag_p50_by_second.append(percentiles_us(second.lag, [50.0])[0] / 1000.0)
        self.intervals.append(self._interval(k, second))
        self._last = (k, second)
        self.last_endpoints = [second.endpoints.get(i) for i in range(len(self.endpoint_names))]
        self.last_length = second.length

    def _interval(self, k: int, second: _Second) -> Interval:
        """Second ``k`` (1-based) of the run: it starts k-1 seconds after the start."""
        totals, length = second.merged(), second.length
        entry: Interval = {
            "t": round(k - 1 + length, 3),
            "start": _iso(self.wall_start + k - 1) if self.wall_start is not None else None,
            "length_s": round(length, 6),
            "partial": length < 1.0,
            "requests": totals.requests,
            "successes": totals.successes,
            "failures": totals.requests - totals.successes,
            "rps": totals.requests / length if length > 0 else 0.0,
            "latency_ms": _interval_latency(totals),
        }
        if len(self.endpoint_names) > 1:   # one endpoint: the interval is that endpoint's
            entry["endpoints"] = {
                self.endpoint_names[i]: _endpoint_second(second.endpoints[i], length)
                for i in sorted(second.endpoints)}
        if second.users is not None:
            entry["users"] = round(second.users, 2)
        if second.iterations is not None:
            entry["iterations"] = second.iterations
        if second.lag.get_total_count():
            p50, p99 = percentiles_us(second.lag, [50.0, 99.0])
            entry["send_lag_ms"] = {"p50": p50 / 1000.0, "p99": p99 / 1000.0}
        return entry

    def generator_verdict(self, open_model: bool, max_connections: int | None = None,
                          target_rps: float | None = None) -> dict[str, Any]:
        """Whether loadgen itself was the bottleneck, with the figures behind the verdict."""
        merged = self.all_totals()
        service = merged.service if merged.service is not None else merged.hist
        figures = latency_ms(service)
        return judge(Evidence(
            open_model=open_model,
            send_lag_ms=_lag_figures(self.lateness),
            lag_p50_by_second=list(self.lag_p50_by_second),
            loop_lag_ms=_lag_figures(self.loop_lag),
            service_p99_ms=figures["p99"],
            service_mean_ms=figures["mean"],
            target_rps=target_rps,
            workers=[WorkerLoad(w.index, w.cpu_percent_max, w.demand_percent_max,
                                w.demand_cpu_percent, w.demand_wait_percent, w.demand_second,
                                w.wait_percent_max, w.wait_second)
                     for w in self.workers],
            waited=sum(w.waited for w in self.workers),
            requests=sum(w.requests for w in self.workers),
            connections=sum(w.connections for w in self.workers),
            max_connections=max_connections))

    @property
    def duration_s(self) -> float:
        return max((w.elapsed_s for w in self.workers), default=0.0)

    def all_totals(self) -> Totals:
        merged = Totals()
        for totals in self.totals:
            merged.merge(totals)
        return merged

    def journey_summaries(self) -> list[Journey] | None:
        """The document's ``journeys`` (one entry per kind, in order); None without journeys."""
        if self.journeys is None:
            return None
        duration = self.duration_s
        names = self.endpoint_names
        return [journey_block(
                    kind.name, kind.weight, [names[i] for i in kind.on_start],
                    [names[i] for i in kind.steps],
                    iteration_figures(totals.hist, named_failures(totals, names), totals.cut,
                                      totals.overflow, duration))
                for kind, totals in zip(self.journeys.kinds, self.iterations)]

    def journey_histograms(self) -> dict[str, str]:
        """The successful iterations' times by kind name (base64 HDR, "" when none)."""
        kinds = self.journeys.kinds if self.journeys is not None else ()
        return {kind.name: encode_histogram(totals.hist)
                for kind, totals in zip(kinds, self.iterations)}

    def summaries(self) -> tuple[Block, list[Block]]:
        duration = self.duration_s
        endpoints: list[Block] = [{"endpoint": name, **summarize(t, duration)}
                                  for name, t in zip(self.endpoint_names, self.totals)]
        return summarize(self.all_totals(), duration), endpoints


# A final interval shorter than this joins the second before it (see Aggregate.finish).
SLIVER_S = 0.1


def _interval_latency(tally: SecondTally) -> IntervalLatencyMs:
    """p50, p90, p99 and max (``INTERVAL_LATENCY_KEYS``) alone: the whole ``latency_ms``
    (mean, six percentiles) once per endpoint and second would cost the coordinator more
    than merging the deltas does."""
    hist = tally.hist
    if not hist.get_total_count():
        return {"p50": None, "p90": None, "p99": None, "max": None}
    p50, p90, p99 = percentiles_us(hist, [50.0, 90.0, 99.0])
    return {"p50": p50 / 1000.0, "p90": p90 / 1000.0, "p99": p99 / 1000.0,
            "max": hist.get_max_value() / 1000.0}


def _endpoint_second(totals: SecondTally, length: float) -> IntervalEndpoint:
    """One endpoint's figures in one second: the interval's few keys, nothing more (a long
    run with many endpoints has one of these per endpoint and second)."""
    return {"requests": totals.requests, "successes": totals.successes,
            "failures": totals.requests - totals.successes,
            "rps": totals.requests / length if length > 0 else 0.0,
            "latency_ms": _interval_latency(totals)}


def _lag_figures(hist: HdrHistogram) -> LagMs | None:
    if not hist.get_total_count():
        return None
    p50, p90, p99 = percentiles_us(hist, [50.0, 90.0, 99.0])
    return {"p50": p50 / 1000.0, "p90": p90 / 1000.0, "p99": p99 / 1000.0,
            "max": hist.get_max_value() / 1000.0}


def _iso(wall: float) -> str:
    return dt.datetime.fromtimestamp(wall, dt.UTC).isoformat(timespec="milliseconds")
