"""``loadgen capacity``: the highest constant rate at which the SLOs still hold.

Open-model steps (latency from the intended send time, so a server that
falls behind shows it), rising geometrically until one fails, then
bisecting between the last good and the first bad rate.  Besides the user's
SLOs a step must achieve 95% of its target rate: a server that silently
queues has not "held" a rate it never served.  When loadgen itself is the
limit (saturation detection), the search stops and says so rather than
reporting loadgen's ceiling as the server's capacity.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from loadgen.config import RunConfig
from loadgen.pacer import build_schedule

ACHIEVED_SHARE = 0.95


@dataclass
class Step:
    rate: float
    passed: bool
    achieved_rps: float
    p99_ms: float | None
    failure_share: float    # requests without a 2xx response / requests
    failures: list[str]
    generator_limited: bool
    doc: dict[str, Any] = field(repr=False)

    def public(self) -> dict[str, Any]:
        return {"rate": self.rate, "passed": self.passed, "achieved_rps": self.achieved_rps,
                "p99_ms": self.p99_ms, "failure_share": self.failure_share,
                "slo_failures": self.failures, "generator_limited": self.generator_limited,
                "result": self.doc}


@dataclass
class Search:
    steps: list[Step] = field(default_factory=list)
    capacity: float | None = None       # highest rate that held; None if none did
    verdict: str = ""
    generator_limited: bool = False


Evaluate = Callable[[dict[str, Any]], list[str]]   # a step's document -> SLO failures
RunStep = Callable[[RunConfig], dict[str, Any]]


def step_config(base: RunConfig, rate: float, step_s: float) -> RunConfig:
    return replace(base, schedule=build_schedule(rate, [], step_s), duration_s=step_s,
                   requests=None)


def judge(rate: float, doc: dict[str, Any], slo_failures: list[str]) -> Step:
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


def search(base: RunConfig, run_step: RunStep, evaluate: Evaluate, start_rate: float,
           max_rate: float, step_s: float, precision: float = 0.05,
           on_step: Callable[[Step], None] | None = None) -> Search:
    """Raise ×2 until a step fails (or ``max_rate``), then bisect to ``precision``."""
    result = Search()

    def attempt(rate: float) -> Step | None:
        doc = run_step(step_config(base, rate, step_s))
        step = judge(rate, doc, evaluate(doc))
        result.steps.append(step)
        if on_step:
            on_step(step)
        if step.generator_limited:
            result.generator_limited = True
            result.verdict = (f"stopped at {rate:g} req/s: loadgen itself was the limit "
                              f"({'; '.join(doc['generator']['reasons'])}); the server's "
                              "capacity is above what this machine can generate")
            return None
        if doc["status"] != "complete":
            result.verdict = f"stopped at {rate:g} req/s: the run {doc['status']}"
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
