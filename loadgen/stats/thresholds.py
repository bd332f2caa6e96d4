"""SLO thresholds (``p99<200ms``, ``failures<1%``, ``GET /api/health: p99<50ms``) checked on a run.

Grammar (white space anywhere between the parts)::

    [ENDPOINT ":" SPACE] METRIC OP NUMBER [UNIT]

    METRIC  min mean p50 p75 p90 p95 p99 p99.9 (or p999) max   latency: us, ms, s; bare = ms
            failures   share of requests that did not succeed: NUMBER% or a bare
                       fraction <= 1 (``errors`` is the same metric, an older name)
            success    success rate (2xx / requests): NUMBER% or a bare fraction <= 1
            checks     share of checked responses that passed their ``expect`` checks:
                       NUMBER% or a bare fraction <= 1 (see below)
            rps        requests per second (optional "/s", "req/s" or "rps")
            requests   request count
    OP      <  <=  >  >=

The endpoint is split off at the *last* colon followed by white space, because
endpoint names ("GET /api/v1/items") hold spaces and slashes and paths may hold
colons.  A bare path ("/api/health: p99<50ms") matches the run's one endpoint
with that path, whatever its method.

Values are kept in canonical units (ms, a 0..1 fraction, req/s, a count) so a
check is one comparison.  Latency thresholds read ``latency_ms``: in the open
model that is the corrected latency, the one users feel.  A metric without data
(no responses, so no latency) fails: an SLO that could not be checked has not
been met.

A failure is any request without a 2xx response: a non-2xx status or no
response at all (connect, timeout, ...), the same meaning as in the report
and the progress line, so ``failures<1%`` and ``success>=99%`` are exact
complements.  Both read the totals (``failures``, i.e. requests - successes);
no threshold reads the per-status or per-kind counts, each of which holds only
one cause of failure.

``checks`` reads ``checked`` and ``checks_failed`` (endpoints with ``expect`` body
checks): over the responses whose body was checked, i.e. the responses in the
success set of endpoints with checks (a wrong status is a failure by status, not a
failed check; requests without a response were not checked).  A run, or an
endpoint, without checks has no data for it, so ``checks>=99%`` fails there.

A threshold naming an endpoint the run does not have is a ``ConfigError``
(exit 2), not a failure (exit 1): it is a typo in the command, and reporting it
as a server regression would send someone hunting for a problem that is not
there.  ``check_endpoints`` lets the CLI reject it before sending anything.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from loadgen.config.model import ConfigError
from loadgen.schema import LATENCY_KEYS
from loadgen.stats.failures import checks_rate, failure_count, percent_text

LATENCY = LATENCY_KEYS
_ALIASES = {"p99.9": "p999", "errors": "failures"}
KNOWN = ("min", "mean", "p50", "p75", "p90", "p95", "p99", "p99.9", "p999", "max",
         "failures", "errors", "success", "checks", "rps", "requests")
SHARES = ("failures", "errors", "success", "checks")   # metrics that are a share of the requests
OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}

_SPLIT = re.compile(r"(.*):(\s+[^:]*|)", re.DOTALL)
_METRIC = re.compile(r"\s*([A-Za-z][A-Za-z0-9.]*)\s*(.*)", re.DOTALL)
_OP = re.compile(r"(<=|>=|<|>)\s*(.*)", re.DOTALL)
_NUMBER = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(.*?)\s*", re.DOTALL)

#: Unit -> factor to canonical, per kind of metric ("" is a bare number).
_LATENCY_UNITS = {"us": 0.001, "µs": 0.001, "μs": 0.001, "ms": 1.0, "s": 1000.0, "": 1.0}
_RPS_UNITS = {"": 1.0, "/s": 1.0, "req/s": 1.0, "rps": 1.0}


@dataclass(frozen=True)
class Threshold:
    """One parsed threshold; ``value`` is in ms, a 0..1 fraction, req/s or a count."""

    endpoint: str | None
    metric: str
    op: str
    value: float
    text: str

    def holds(self, actual: float) -> bool:
        return OPS[self.op](actual, self.value)


@dataclass(frozen=True)
class ThresholdResult:
    """A threshold checked against a run; ``actual`` is None when the run has no data for it."""

    threshold: Threshold
    actual: float | None
    passed: bool


def parse_threshold(text: str) -> Threshold:
    """Parse one threshold; any mistake is a one-line ConfigError naming the threshold."""
    source = str(text).strip()
    m = _SPLIT.fullmatch(source)
    endpoint, expr = (m.group(1), m.group(2)) if m else (None, source)
    if endpoint is not None:
        endpoint = _normalize_endpoint(endpoint)
        if not endpoint:
            _fail(source, "no endpoint before ':'")
    if not expr.strip():
        _fail(source, "empty" if endpoint is None else "no metric expression after the endpoint")
    metric, rest = _parse_metric(source, expr)
    op, rest = _parse_op(source, metric, rest)
    value = _parse_value(source, metric, rest)
    return Threshold(endpoint, _ALIASES.get(metric, metric), op, value, source)


def _fail(source: str, problem: str) -> NoReturn:
    raise ConfigError(f"threshold {source!r}: {problem}")


def _normalize_endpoint(name: str) -> str:
    """'get   /api/health ' -> 'GET /api/health', the form endpoint names have in results.

    A journey step's row ('shopper: GET /shop/items', 'browser: list') starts with its
    kind's name, never a method: it is matched as written (white space collapsed)."""
    words = name.split()
    if len(words) >= 2 and ": " not in name:
        words[0] = words[0].upper()
    return " ".join(words)


def _parse_metric(source: str, expr: str) -> tuple[str, str]:
    m = _METRIC.fullmatch(expr)
    if not m:
        _fail(source, f"expected a metric first; known: {', '.join(KNOWN)}")
    metric = m.group(1).lower()
    if metric not in KNOWN:
        _fail(source, f"unknown metric {m.group(1)!r}; known: {', '.join(KNOWN)}")
    return metric, m.group(2)


def _parse_op(source: str, metric: str, rest: str) -> tuple[str, str]:
    m = _OP.fullmatch(rest)
    if not m:
        _fail(source, f"expected one of < <= > >= after {metric!r}, got {rest.strip()!r}")
    return m.group(1), m.group(2)


def _parse_value(source: str, metric: str, rest: str) -> float:
    m = _NUMBER.fullmatch(rest)
    if not m:
        _fail(source, f"expected a number after the operator, got {rest.strip()!r}")
    number, unit = float(m.group(1)), m.group(2)
    if metric in SHARES:
        return _fraction(source, metric, number, unit)
    if metric == "rps":
        units, hint = _RPS_UNITS, "a bare number or req/s"
    elif metric == "requests":
        units, hint = {"": 1.0}, "a bare count"
    else:
        units, hint = _LATENCY_UNITS, "us, ms or s; a bare number means ms"
    factor = units.get(unit.lower() if unit not in units else unit)
    if factor is None:
        _fail(source, f"unknown unit {unit!r} for {metric} (use {hint})")
    return number * factor


def _fraction(source: str, metric: str, number: float, unit: str) -> float:
    """'1%' or '0.01' -> 0.01; a bare number above 1 is surely a forgotten '%'."""
    if unit == "%":
        if number > 100:
            _fail(source, f"{metric} cannot exceed 100%")
        return number / 100.0
    if unit:
        _fail(source, f"unknown unit {unit!r} for {metric} (use % or a fraction 0..1)")
    if number > 1:
        _fail(source, f"a bare {metric} value is a fraction 0..1; did you mean {number:g}%?")
    return number


def parse_thresholds(texts: Iterable[str]) -> list[Threshold]:
    return [parse_threshold(t) for t in texts]


def check_endpoints(thresholds: Iterable[Threshold], names: Sequence[str]) -> None:
    """Raise ConfigError for a threshold naming an endpoint not among ``names``.

    The CLI can call this with the configured endpoint names before the run,
    so a typo costs nothing; ``evaluate`` calls it again on the document.
    """
    for t in thresholds:
        if t.endpoint is not None:
            _resolve(t, names)


def _resolve(t: Threshold, names: Sequence[str]) -> str:
    """The results' name of the threshold's endpoint (a bare path matches a unique endpoint)."""
    assert t.endpoint is not None
    if t.endpoint in names:
        return t.endpoint
    if t.endpoint.startswith("/"):
        matches = [n for n in names if n.partition(" ")[2] == t.endpoint]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ConfigError(f"threshold {t.text!r}: {t.endpoint!r} is ambiguous; "
                              f"name one of {', '.join(matches)}")
    raise ConfigError(f"threshold {t.text!r}: no endpoint {t.endpoint!r} in this run; "
                      f"endpoints: {', '.join(names) or '(none)'}")


def evaluate(thresholds: Iterable[Threshold],
             doc: Mapping[str, Any]) -> list[ThresholdResult]:
    """Check every threshold against a results document (summary or one endpoint's block)."""
    thresholds = list(thresholds)
    blocks = {e.get("endpoint"): e for e in doc.get("endpoints") or []}
    names = [n for n in blocks if isinstance(n, str)]
    check_endpoints(thresholds, names)
    results = []
    for t in thresholds:
        block = doc["summary"] if t.endpoint is None else blocks[_resolve(t, names)]
        actual = actual_value(t.metric, block)
        results.append(ThresholdResult(t, actual, actual is not None and t.holds(actual)))
    return results


def actual_value(metric: str, block: dict[str, Any]) -> float | None:
    """The run's figure for ``metric`` from one S block, in canonical units (None: no data)."""
    requests = block.get("requests") or 0
    metric = _ALIASES.get(metric, metric)
    if metric in LATENCY:
        value = (block.get("latency_ms") or {}).get(metric)
    elif metric == "failures":   # every request that did not succeed, whatever the cause
        value = failure_count(block) / requests if requests else None
    elif metric == "success":
        value = block.get("successes", 0) / requests if requests else None
    elif metric == "checks":
        value = checks_rate(block)
    elif metric == "rps":
        value = block.get("rps")
    else:
        value = requests
    return None if value is None else float(value)


def format_actual(metric: str, value: float | None) -> str:
    """The figure with its unit: '12.3 ms', '0.40% failures', '99.60% success'."""
    if value is None:
        return "no data"
    metric = _ALIASES.get(metric, metric)
    if metric in ("failures", "success"):
        return f"{percent_text(value)} {metric}"
    if metric == "checks":
        return f"{percent_text(value)} of checks passed"
    if metric == "rps":
        return f"{value:.1f} req/s"
    if metric == "requests":
        return f"{value:.0f}"
    return f"{value:.3g} ms" if value < 1000 else f"{value:.0f} ms"


def _actual(r: ThresholdResult) -> str:
    if r.actual is None:
        return "no data: fails"
    return f"actual {format_actual(r.threshold.metric, r.actual)}"


def render_thresholds(results: Sequence[ThresholdResult]) -> str:
    """``PASS  p99<200ms  (actual 12.3 ms)`` lines, then one summary line."""
    if not results:
        return ""
    width = max(len(r.threshold.text) for r in results)
    lines = [f"{'PASS' if r.passed else 'FAIL'}  {r.threshold.text:<{width}}  ({_actual(r)})"
             for r in results]
    failed = sum(not r.passed for r in results)
    lines.append(f"Thresholds: all {len(results)} passed" if not failed else
                 f"Thresholds: {failed} of {len(results)} failed")
    return "\n".join(lines)
