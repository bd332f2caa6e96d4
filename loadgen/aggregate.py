"""Merge the workers' per-second deltas into run totals and a per-second series.

The n-th message of every worker covers the same second (all workers share
the start time and report on the same absolute schedule), so the series is
merged by message index.  A second is reduced to a few numbers as soon as
every worker still running has delivered it, so memory stays flat however
long the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadgen.metrics import Totals, latency_ms, new_histogram, percentiles_us, summarize

CPU_LIMIT_PERCENT = 90.0      # a worker this busy is measuring itself, not the server
LATENESS_LIMIT_MS = 5.0       # gevent timers are ~1 ms late at p99 when the process has room


@dataclass
class WorkerState:
    index: int
    messages: int = 0
    requests: int = 0
    elapsed_s: float = 0.0
    cpu_s: float = 0.0
    reconnects: int = 0
    connections: int = 0
    waited: int = 0
    cpu_percent_max: float = 0.0
    done: bool = False     # sent its final message
    lost: str = ""         # why it ended without one


@dataclass
class Aggregate:
    endpoint_names: list[str]
    workers: list[WorkerState]
    totals: list[Totals] = field(init=False)
    intervals: list[dict[str, Any]] = field(default_factory=list)
    _pending: dict[int, tuple[Totals, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.totals = [Totals() for _ in self.endpoint_names]
        self.lateness = new_histogram()
        # by worker index: a cluster node aggregates only its own share of the global indices
        self._by_index = {w.index: w for w in self.workers}

    def add(self, message: dict[str, Any]) -> None:
        """Merge one interval or final message from a worker."""
        state = self._by_index[message["worker"]]
        state.messages += 1
        span = message["elapsed_s"] - state.elapsed_s
        if span >= 0.5:  # CPU share over a (nearly) whole second; shorter tails are noise
            busy = 100.0 * (message["cpu_s"] - state.cpu_s) / span
            state.cpu_percent_max = max(state.cpu_percent_max, busy)
        state.elapsed_s = message["elapsed_s"]
        state.cpu_s = message["cpu_s"]
        state.reconnects = message["reconnects"]
        state.connections = message["connections"]
        state.waited = message["waited"]
        if message["lateness"]:
            self.lateness.decode_and_add(message["lateness"])
        second, length = self._pending.get(state.messages, (Totals(), 0.0))
        for totals, wire in zip(self.totals, message["endpoints"]):
            totals.add_wire(wire)
            second.add_wire(wire)
        state.requests += sum(sum(w["codes"].values()) + sum(w["errors"].values())
                              for w in message["endpoints"])
        span = message["elapsed_s"] - (state.messages - 1)
        self._pending[state.messages] = (second, max(length, min(1.0, span)))
        if message["type"] == "final":
            state.done = True
        self._close_seconds()

    def lose(self, index: int, why: str) -> None:
        self._by_index[index].lost = why
        self._close_seconds()

    def finish(self) -> None:
        """Reduce whatever seconds are still pending (the run is over)."""
        for k in sorted(self._pending):
            self._reduce(k)

    def _close_seconds(self) -> None:
        running = [w.messages for w in self.workers if not w.done and not w.lost]
        complete_upto = min(running) if running else max(self._pending, default=0)
        for k in sorted(self._pending):
            if k <= complete_upto:
                self._reduce(k)

    def _reduce(self, k: int) -> None:
        second, length = self._pending.pop(k)
        if length <= 0 and second.requests == 0:
            return  # a final message sent just after a second boundary it had nothing for
        lat = latency_ms(second.hist)
        self.intervals.append({
            "t": round(k - 1 + length, 3),
            "requests": second.requests,
            "errors": sum(second.errors.values()),
            "rps": second.requests / length if length > 0 else 0.0,
            "latency_ms": {key: lat[key] for key in ("p50", "p90", "p99", "max")},
        })

    def generator_verdict(self) -> dict[str, Any]:
        """Whether loadgen itself was the bottleneck, with the figures behind the verdict."""
        late, lateness = self.lateness, None
        if late.get_total_count():
            p50, p99 = percentiles_us(late, [50.0, 99.0])
            lateness = {"p50": p50 / 1000.0, "p99": p99 / 1000.0,
                        "max": late.get_max_value() / 1000.0}
        cpu = max((w.cpu_percent_max for w in self.workers), default=0.0)
        reasons = []
        if lateness and lateness["p99"] > LATENESS_LIMIT_MS:
            reasons.append(f"sends left late: p99 {lateness['p99']:.1f} ms behind schedule "
                           f"(limit {LATENESS_LIMIT_MS:g} ms)")
        if cpu >= CPU_LIMIT_PERCENT:
            reasons.append(f"a worker process used {cpu:.0f}% of a CPU "
                           f"(limit {CPU_LIMIT_PERCENT:g}%): add --workers or cores")
        return {"limited": bool(reasons), "reasons": reasons, "lateness_ms": lateness,
                "cpu_percent_max": round(cpu, 1),
                "waited_for_connection": sum(w.waited for w in self.workers),
                "connections": sum(w.connections for w in self.workers)}

    @property
    def duration_s(self) -> float:
        return max((w.elapsed_s for w in self.workers), default=0.0)

    def all_totals(self) -> Totals:
        merged = Totals()
        for totals in self.totals:
            merged.merge(totals)
        return merged

    def summaries(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        duration = self.duration_s
        endpoints = [{"endpoint": name, **summarize(t, duration)}
                     for name, t in zip(self.endpoint_names, self.totals)]
        return summarize(self.all_totals(), duration), endpoints
