"""User journeys' iterations, merged in the coordinator (issue 12 section 2).

A worker sends, in every interval and final message of a journey run,
``"journeys": [IterationTally.to_wire() for each kind]`` (``stats.metrics``; the
kinds in ``RunConfig.journeys.kinds`` order).  ``IterationTotals`` merges those
deltas exactly (HDR merge, counts summed), as ``Totals`` does for an endpoint's
requests; ``journey_block`` turns one kind's totals into the results document's
``journeys`` entry.

Why a module of its own: the steps of a journey already are ordinary endpoint rows
(``"<kind>: METHOD path"``), so everything per request stays in ``Totals``; what
only journeys have is the *iteration* (one pass through a kind's steps), with its
own count, time and the step it failed at.  Its document shape is declared in
``loadgen.schema`` (``Journey``, ``IterationFigures``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from loadgen.schema import IterationFigures, Journey
from loadgen.stats.metrics import decode_histogram, latency_ms, new_histogram


@dataclass
class IterationTotals:
    """One kind's iterations, merged over workers (and, on a cluster, nodes).

    ``hist``: the time of each successful iteration (think time left out);
    ``failed``: each failed one, at the time it failed; ``failed_at``: failures by the
    endpoint index of the step that failed; ``cut``: iterations the run's end (or a
    leaving user) interrupted, neither success nor failure.  Empty histograms are
    never added (their minimum of 0 would become the merged minimum).
    """

    hist: HdrHistogram = field(default_factory=new_histogram)
    failed: HdrHistogram = field(default_factory=new_histogram)
    failed_at: Counter[int] = field(default_factory=Counter)
    cut: int = 0
    overflow: int = 0

    def add_wire(self, wire: dict[str, Any]) -> int:
        """Merge one worker delta; the number of iterations it completed (success or failure)."""
        completed = 0
        if wire.get("hist"):
            ok = decode_histogram(wire["hist"])
            completed += ok.get_total_count()
            self.hist.add(ok)
        if wire.get("failed"):
            self.failed.decode_and_add(wire["failed"])
        failed_at = {int(step): int(n) for step, n in (wire.get("failed_at") or {}).items()}
        self.failed_at.update(failed_at)
        completed += sum(failed_at.values())
        self.cut += int(wire.get("cut") or 0)
        self.overflow += int(wire.get("overflow") or 0)
        return completed

    @property
    def successes(self) -> int:
        return int(self.hist.get_total_count())

    @property
    def failures(self) -> int:
        return sum(self.failed_at.values())


def iteration_figures(success: HdrHistogram, failed_at: dict[str, int], cut: int,
                      overflow: int, duration_s: float) -> IterationFigures:
    """The ``iterations`` object of a ``journeys`` entry.

    ``per_second`` counts completed iterations (successes and failures: a cut one
    did not complete) over the run's time under load, as ``rps`` counts requests.
    ``latency_ms`` is the time of the *successful* iterations only: a failed one
    stopped at its failing step, so its time says how soon it failed, not how long
    a journey takes.  Shared by the aggregate and ``stats.combine``.
    """
    successes = int(success.get_total_count())
    failures = sum(failed_at.values())
    completed = successes + failures
    return {
        "total": completed + cut,
        "successes": successes,
        "failures": failures,
        "cut": cut,
        "per_second": completed / duration_s if duration_s > 0 else 0.0,
        "latency_ms": latency_ms(success),
        "latency_overflow": overflow,
        "failed_at": dict(sorted(failed_at.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def journey_block(name: str, weight: float, on_start: list[str], steps: list[str],
                  iterations: IterationFigures) -> Journey:
    """One kind's entry of the document's ``journeys``: which rows it runs, and its iterations."""
    return {"name": name, "weight": weight, "on_start": on_start, "steps": steps,
            "iterations": iterations}


def named_failures(totals: IterationTotals, endpoint_names: list[str]) -> dict[str, int]:
    """``failed_at`` by step row name (an index the run does not have keeps its number)."""
    return {(endpoint_names[i] if 0 <= i < len(endpoint_names) else str(i)): n
            for i, n in totals.failed_at.items() if n}
