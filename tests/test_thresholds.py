"""Tests for SLO thresholds: the grammar, its error messages, evaluation and the report block."""

from __future__ import annotations

from typing import Any

import pytest

from loadgen.config.model import ConfigError
from loadgen.stats.thresholds import (
    Threshold,
    check_endpoints,
    evaluate,
    parse_threshold,
    parse_thresholds,
    render_thresholds,
)


def block(requests: int = 1000, failures: int = 10, rps: float = 500.0,
          p99: float | None = 12.3, name: str | None = None) -> dict[str, Any]:
    latency = {k: (None if p99 is None else p99 * f) for k, f in (
        ("min", 0.1), ("mean", 0.4), ("p50", 0.3), ("p75", 0.5), ("p90", 0.7), ("p95", 0.8),
        ("p99", 1.0), ("p999", 1.5), ("max", 2.0))}
    s = {"requests": requests, "successes": requests - failures, "failures": failures,
         "success_rate": (requests - failures) / requests if requests else 0.0, "rps": rps,
         "latency_ms": latency}
    return s if name is None else {**s, "endpoint": name}


def doc(**summary: Any) -> dict[str, Any]:
    return {"schema": "loadgen/1", "status": "complete", "summary": block(**summary),
            "endpoints": [block(400, 0, 200.0, 5.0, "GET /api/health"),
                          block(600, 10, 300.0, None, "POST /api/dataset/transform")]}


@pytest.mark.parametrize("text, expected", [
    ("p99<200ms", (None, "p99", "<", 200.0)),
    ("p95<0.5s", (None, "p95", "<", 500.0)),
    ("p50 <= 800us", (None, "p50", "<=", 0.8)),
    ("max<250", (None, "max", "<", 250.0)),
    ("  P99.9  <  1.5 S ", (None, "p999", "<", 1500.0)),
    ("p999>=3ms", (None, "p999", ">=", 3.0)),
    ("mean<2µs", (None, "mean", "<", 0.002)),
    ("failures<1%", (None, "failures", "<", 0.01)),
    ("errors<1%", (None, "failures", "<", 0.01)),        # the older name, same metric
    ("errors<=0.005", (None, "failures", "<=", 0.005)),
    ("success>=99.5%", (None, "success", ">=", 0.995)),
    ("rps>1000", (None, "rps", ">", 1000.0)),
    ("rps > 1000 req/s", (None, "rps", ">", 1000.0)),
    ("requests>=5000", (None, "requests", ">=", 5000.0)),
    ("checks>=99%", (None, "checks", ">=", 0.99)),
    ("GET /api/health: p99<50ms", ("GET /api/health", "p99", "<", 50.0)),
    ("get  /api/health :  p99 < 50 ms", ("GET /api/health", "p99", "<", 50.0)),
    ("GET /api/items/a:b: failures<2%", ("GET /api/items/a:b", "failures", "<", 0.02)),
    ("/api/health: rps>10", ("/api/health", "rps", ">", 10.0)),
])
def test_grammar(text: str, expected: tuple[Any, ...]) -> None:
    t = parse_threshold(text)
    assert (t.endpoint, t.metric, t.op) == expected[:3]
    assert t.value == pytest.approx(expected[3])
    assert t.text == text.strip()


@pytest.mark.parametrize("text, problem", [
    ("p98<200ms", "unknown metric 'p98'; known: min, mean, p50"),
    ("latency<5", "unknown metric 'latency'"),
    ("<200ms", "expected a metric first"),
    ("p99=200ms", "expected one of < <= > >= after 'p99', got '=200ms'"),
    ("p99<", "expected a number after the operator"),
    ("p99<-5ms", "expected a number"),
    ("p99<200xs", "unknown unit 'xs' for p99 (use us, ms or s"),
    ("errors<5", "did you mean 5%?"),
    ("errors<150%", "cannot exceed 100%"),
    ("errors<1ms", "unknown unit 'ms' for errors"),
    ("failures<1ms", "unknown unit 'ms' for failures"),
    ("failures<101%", "failures cannot exceed 100%"),
    ("rps>10ms", "unknown unit 'ms' for rps"),
    ("requests>10k", "unknown unit 'k' for requests"),
    ("", "empty"),
    ("GET /x: ", "no metric expression after the endpoint"),
    (": p99<5ms", "no endpoint before ':'"),
])
def test_mistakes_are_one_line_config_errors(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_threshold(text)
    message = str(info.value)
    assert message.startswith(f"threshold {text.strip()!r}: ")
    assert problem in message
    assert "\n" not in message


def test_threshold_is_frozen_and_hashable() -> None:
    t = parse_threshold("p99<200ms")
    assert t == Threshold(None, "p99", "<", 200.0, "p99<200ms")
    with pytest.raises(AttributeError):
        t.value = 1.0  # type: ignore[misc]
    assert len({t, parse_threshold("p99<200ms")}) == 1


def test_evaluate_summary_metrics() -> None:
    results = evaluate(parse_thresholds([
        "p99<200ms", "p99<10ms", "errors<2%", "failures<0.5%", "rps>=500", "requests>1000",
        "success>=99%", "p99<=12.3"]), doc())
    assert [r.passed for r in results] == [True, False, True, False, True, False, True, True]
    actual = {r.threshold.text: r.actual for r in results}
    assert actual["errors<2%"] == actual["failures<0.5%"] == pytest.approx(0.01)
    assert actual["success>=99%"] == pytest.approx(0.99)
    assert actual["requests>1000"] == 1000


def test_evaluate_per_endpoint_and_bare_path() -> None:
    results = evaluate(parse_thresholds(["GET /api/health: p99<6ms", "/api/health: errors<=0",
                                         "POST /api/dataset/transform: rps>250"]), doc())
    assert [r.passed for r in results] == [True, True, True]
    assert results[0].actual == pytest.approx(5.0)


def test_checks_is_the_share_of_checked_responses_that_passed() -> None:
    """Over ``checked`` (bodies checked), not over every request; no checks: no data."""
    d = doc()
    d["summary"]["checked"] = 200
    d["summary"]["checks_failed"] = {'body_contains "id"': 3, "json a == 1": 1}
    d["endpoints"][0]["checked"] = 400
    d["endpoints"][0]["checks_failed"] = {}
    results = evaluate(parse_thresholds(["checks>=99%", "checks>=97%",
                                         "GET /api/health: checks>=100%",
                                         "POST /api/dataset/transform: checks>0%"]), d)
    assert [r.actual for r in results] == [pytest.approx(0.98), pytest.approx(0.98), 1.0, None]
    assert [r.passed for r in results] == [False, True, True, False]
    assert "98.00% of checks passed" in render_thresholds(results)


def test_latency_without_data_fails() -> None:
    [r] = evaluate([parse_threshold("POST /api/dataset/transform: p99<1s")], doc())
    assert r.actual is None and not r.passed
    [r] = evaluate([parse_threshold("errors<1%")], doc(requests=0, failures=0))
    assert r.actual is None and not r.passed
    assert "(no data: fails)" in render_thresholds([r])


def test_unknown_endpoint_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^threshold 'GET /nope: p99<5ms': no endpoint "
                                          r"'GET /nope' in this run; endpoints: GET /api/health, "
                                          r"POST /api/dataset/transform$"):
        evaluate([parse_threshold("GET /nope: p99<5ms")], doc())
    check_endpoints([parse_threshold("GET /api/health: p99<5ms")], ["GET /api/health"])
    with pytest.raises(ConfigError, match="ambiguous"):
        check_endpoints([parse_threshold("/a: p99<5ms")], ["GET /a", "POST /a"])


def test_render() -> None:
    results = evaluate(parse_thresholds(["p99<200ms", "errors<0.5%", "rps>1000",
                                         "success>=99.5%"]), doc())
    lines = render_thresholds(results).splitlines()
    assert lines == ["PASS  p99<200ms       (actual 12.3 ms)",
                     "FAIL  errors<0.5%     (actual 1.00% failures)",
                     "FAIL  rps>1000        (actual 500.0 req/s)",
                     "FAIL  success>=99.5%  (actual 99.00% success)",
                     "Thresholds: 3 of 4 failed"]
    assert render_thresholds(results[:1]).splitlines()[-1] == "Thresholds: all 1 passed"
    assert render_thresholds([]) == ""
