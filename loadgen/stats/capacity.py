"""``loadgen capacity``: the highest constant rate at which the SLOs still hold.

Open-model steps (latency from the intended send time, so a server that
falls behind shows it), rising geometrically until one fails, then
bisecting between the last good and the first bad rate.  Besides the user's
SLOs a step must achieve 95% of its target rate: a server that silently
queues has not "held" a rate it never served.

loadgen's own limit (``loadgen.stats.verdict``) decides only what it could have
changed: a step that held is a pass even if loadgen was strained (the server
met the SLOs under at least the load asked for), and a failed step stops the
search only if loadgen may have caused the failure.  One exception is a full
connection pool at a step where the server's own service time rose to
``SATURATED_SERVICE`` times its lowest at a step that held (the server's
unloaded pace): the server was queueing work it could not finish, so the
failure is the server's.  A fast server behind a pool that is too small
keeps its pace (ratio ~1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loadgen.schema import CapacityStep

ACHIEVED_SHARE = 0.95
SATURATED_SERVICE = 1.5


@dataclass
class Step:
    rate: float
    passed: bool
    achieved_rps: float
    p99_ms: float | None
    failure_share: float    # requests without a 2xx response / requests
    failures: list[str]
    generator_limited: bool
    doc: Mapping[str, Any] = field(repr=False)
    note: str = ""          # why a generator-limited step still counts

    @property
    def service_mean_ms(self) -> float | None:
        return ((self.doc.get("summary") or {}).get("service_time_ms") or {}).get("mean")

    def public(self) -> CapacityStep:
        return {"rate": self.rate, "passed": self.passed, "achieved_rps": self.achieved_rps,
                "p99_ms": self.p99_ms, "failure_share": self.failure_share,
                "slo_failures": self.failures, "generator_limited": self.generator_limited,
                "note": self.note or None, "result": self.doc}


@dataclass
class Search:
    steps: list[Step] = field(default_factory=list)
    capacity: float | None = None       # highest rate that held; None if none did
    verdict: str = ""
    generator_limited: bool = False


Evaluate = Callable[[Mapping[str, Any]], list[str]]   # a step's document -> SLO failures
#: Runs one step at the given rate (requests/s) and returns its results document.  The
#: caller (``commands.capacity``) makes the step's config: the search only chooses rates.
RunStep = Callable[[float], Mapping[str, Any]]


def judge(rate: float, doc: Mapping[str, Any], slo_failures: list[str]) -> Step:
    summary = doc["summary"]
    failures = list(slo_failures)
    if summary["rps"] < ACHIEVED_SHARE * rate:
        failures.append(f"achieved {summary['rps']:.0f} req/s, under {ACHIEVED_SHARE:.0%} "
                        f"of {rate:g}")
    requests = summary["requests"]
    return Step(rate=rate, passed=not failures and doc["status"] == "complete",
                achieved_rps=summary["rps"], p99_ms=summary["latency_ms"]["p99"],
                failure_share=summary["failures"] / requests if requests else 0.0,
                failures=failures, generator_limited=bool(doc.get("generator_limited")),
                doc=doc)


def search(run_step: RunStep, evaluate: Evaluate, start_rate: float, max_rate: float,
           precision: float = 0.05, on_step: Callable[[Step], None] | None = None) -> Search:
    """Raise ×2 until a step fails (or ``max_rate``), then bisect to ``precision``."""
    result = Search()

    def attempt(rate: float) -> Step | None:
        doc = run_step(rate)
        step = judge(rate, doc, evaluate(doc))
        if step.generator_limited:
            paced = [s for s in result.steps if s.passed and s.service_mean_ms]
            held = min(paced, key=lambda s: s.service_mean_ms or 0.0, default=None)
            step.note = _limited_note(step, held)
        result.steps.append(step)
        if on_step:
            on_step(step)
        if doc["status"] != "complete":
            result.verdict = f"stopped at {rate:g} req/s: the run {doc['status']}"
            return None
        if step.generator_limited and not step.passed and not step.note.startswith("server"):
            result.generator_limited = True
            floor = max((s.rate for s in result.steps if s.passed), default=None)
            known = (f"the SLOs held up to {floor:g} req/s; " if floor is not None else "")
            result.verdict = (f"stopped at {rate:g} req/s: the step failed while loadgen itself "
                              f"was the limit ({'; '.join(doc['generator']['reasons'])}); "
                              f"{known}whether the server holds more is unknown")
            return None
        return step

    good: float | None = None
    bad: float | None = None
    rate = min(start_rate, max_rate)
    while True:
        step = attempt(rate)
        if step is None:
            result.capacity = good
            return result
        if not step.passed:
            bad = rate
            break
        good = rate
        if rate >= max_rate:
            break
        rate = min(rate * 2, max_rate)
    if good is not None and bad is None:
        result.capacity = good
        result.verdict = f"the SLOs held up to --max-rate {max_rate:g} req/s (the highest tried: {good:g})"
        return result
    if good is None:
        result.verdict = f"the SLOs failed already at --start-rate {start_rate:g} req/s"
        return result
    assert bad is not None
    while (bad - good) / good > precision:
        mid = round((good + bad) / 2, 1)
        step = attempt(mid)
        if step is None:
            result.capacity = good
            return result
        if step.passed:
            good = mid
        else:
            bad = mid
    result.capacity = good
    result.verdict = (f"capacity ≈ {good:g} req/s: the SLOs held at {good:g} and failed at "
                      f"{bad:g} req/s")
    return result


def _limited_note(step: Step, held: Step | None) -> str:
    """Why a generator-limited step still says something about the server ('' if not)."""
    if step.passed:
        return "held although loadgen was strained: the server met the SLOs all the same"
    causes = set((step.doc.get("generator") or {}).get("causes") or [])
    now, before = step.service_mean_ms, held.service_mean_ms if held else None
    if causes == {"pool"} and held and now and before and now >= SATURATED_SERVICE * before:
        return (f"server saturated: its service time rose to {now:.3g} ms from {before:.3g} ms "
                f"at {held.rate:g} req/s, so the full connection pool was its queue, not "
                "loadgen's limit")
    return ""
