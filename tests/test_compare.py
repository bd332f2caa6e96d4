"""Tests for ``loadgen compare``: the block bootstrap, the between-run method for repeats, the
noise floor, interval handling, verdicts, warnings and loading.

Documents are built by hand; per-second intervals come from a seeded
``random.Random`` (or numpy generator) so every verdict below is reproducible.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from loadgen.commands.compare import load_for_compare
from loadgen.config.model import ConfigError
from loadgen.output.results import ResultsError
from loadgen.stats.combine import combine_runs
from loadgen.stats.compare import (
    FLOORS,
    METHOD_BOOTSTRAP,
    METHOD_RUNS,
    TESTED_METRICS,
    compare_documents,
    default_labels,
    full_intervals,
    regressions,
    render_comparison,
    significance,
)


def intervals(rng: random.Random, n: int, p50_ms: float, rps: float = 1000.0,
              partial_last: bool = True) -> list[dict[str, Any]]:
    """``n`` full seconds around ``p50_ms`` / ``rps`` (5% noise), then a partial 0.3 s second."""
    out = []
    for k in range(1, n + 1):
        p50 = p50_ms * rng.uniform(0.95, 1.05)
        out.append({"t": float(k), "requests": round(rps), "errors": 0,
                    "rps": rps * rng.uniform(0.95, 1.05),
                    "latency_ms": {"p50": p50, "p90": p50 * 1.5, "p99": p50 * 2 * rng.uniform(
                        0.9, 1.1), "max": p50 * 3}})
    if partial_last:
        out.append({"t": n + 0.3, "requests": 30, "errors": 0, "rps": 100.0,
                    "latency_ms": {"p50": 999.0, "p90": 999.0, "p99": 999.0, "max": 999.0}})
    return out


def make_doc(seed: int = 1, n: int = 10, p50_ms: float = 10.0, rps: float = 1000.0,
             **config: Any) -> dict[str, Any]:
    rng = random.Random(seed)
    requests = int(rps * n)
    latency = {"min": p50_ms / 4, "mean": p50_ms, "p50": p50_ms, "p75": p50_ms * 1.2,
               "p90": p50_ms * 1.5, "p95": p50_ms * 1.7, "p99": p50_ms * 2, "p999": p50_ms * 3,
               "max": p50_ms * 4}
    summary = {"requests": requests, "successes": requests, "failures": 0, "success_rate": 1.0,
               "rps": rps, "duration_s": float(n), "latency_ms": latency}
    return {"schema": "loadgen/1", "status": "complete", "problems": [],
            "config": {"url": "http://127.0.0.1:5000", "endpoints": ["GET /api/health"],
                       "concurrency": 10, "model": "closed", "schedule": None, **config},
            "model": config.get("model", "closed"), "generator_limited": False,
            "summary": summary, "endpoints": [{**summary, "endpoint": "GET /api/health"}],
            "histograms": {}, "intervals": intervals(rng, n, p50_ms, rps)}


def verdicts_of(comparison: dict[str, Any], run: int = 1) -> dict[str, dict[str, Any] | None]:
    return {m["metric"]: m["tests"][run] for m in comparison["metrics"]}


def test_partial_intervals_are_dropped() -> None:
    doc = make_doc(n=6)
    assert len(doc["intervals"]) == 7
    kept = full_intervals(doc)
    assert [i["t"] for i in kept] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    doc["intervals"].insert(0, {"t": 0.4, "rps": 5.0, "latency_ms": {}})   # a short first one
    assert [i["t"] for i in full_intervals(doc)][:2] == [2.0, 3.0]


def test_new_intervals_say_themselves_whether_they_are_partial() -> None:
    """New files mark the partial last second and give each second's real length."""
    new = [{"t": 1.0, "length_s": 1.0, "partial": False, "rps": 10.0, "latency_ms": {}},
           {"t": 2.05, "length_s": 1.05, "partial": False, "rps": 10.0, "latency_ms": {}},
           {"t": 2.9, "length_s": 0.85, "partial": False, "rps": 10.0, "latency_ms": {}},
           {"t": 3.9, "length_s": 1.0, "partial": False, "rps": 10.0, "latency_ms": {}},
           {"t": 4.3, "length_s": 0.4, "partial": True, "rps": 3.0, "latency_ms": {}}]
    kept = full_intervals({"intervals": new})
    assert [i["t"] for i in kept] == [1.0, 2.05, 3.9]


def test_run_compared_with_itself_is_never_significant() -> None:
    doc = make_doc()
    comparison = compare_documents([doc, doc], ["a", "a again"])
    for metric in comparison["metrics"]:
        assert metric["change_pct"][1] == 0.0
    tested = {k: t for k, t in verdicts_of(comparison).items() if t is not None}
    assert set(tested) == {"rps", "p50", "p99"}
    for test in tested.values():
        assert test["verdict"] == "not significant"
        assert test["method"] == METHOD_BOOTSTRAP
        assert test["difference"] == 0.0
        low, high = test["ci"]
        assert low <= 0 <= high
        assert test["intervals"] == [10, 10]
    assert comparison["warnings"] == []


def test_same_load_different_seeds_not_significant() -> None:
    comparison = compare_documents([make_doc(seed=1), make_doc(seed=2)], ["a", "b"])
    for key in ("rps", "p50", "p99"):
        assert verdicts_of(comparison)[key]["verdict"] == "not significant"  # type: ignore[index]


def test_slower_run_is_significantly_worse() -> None:
    fast, slow = make_doc(seed=3, p50_ms=10.0), make_doc(seed=4, p50_ms=30.0)
    comparison = compare_documents([fast, slow], ["fast", "slow"])
    tests = verdicts_of(comparison)
    for key in ("p50", "p99"):
        test = tests[key]
        assert test is not None and test["significant"]
        assert (test["direction"], test["assessment"]) == ("higher", "worse")
        assert test["ci_pct"][0] > 150.0   # the whole interval: tripled, give or take
        assert test["verdict"].startswith("significantly higher (95% CI +")
        assert test["verdict"].endswith("), worse")
    p50 = next(m for m in comparison["metrics"] if m["metric"] == "p50")
    assert p50["change_pct"][1] == pytest.approx(200.0)
    # And the other way round: lower latency is better.
    back = verdicts_of(compare_documents([slow, fast], ["slow", "fast"]))["p50"]
    assert back is not None and back["verdict"].startswith("significantly lower (95% CI -")
    assert back["verdict"].endswith("), better")


def test_higher_rps_is_better() -> None:
    comparison = compare_documents([make_doc(seed=5, rps=1000), make_doc(seed=6, rps=1500)],
                                   ["before", "after"])
    test = verdicts_of(comparison)["rps"]
    assert test is not None and test["verdict"].startswith("significantly higher (95% CI +")
    assert test["verdict"].endswith("), better")


def test_interval_wording() -> None:
    """The verdict quotes the interval of the difference in % of the baseline's median second."""
    comparison = compare_documents([make_doc(seed=8, n=5), make_doc(seed=9, n=5, p50_ms=30.0)],
                                   ["a", "b"])
    test = verdicts_of(comparison)["p50"]
    assert test is not None
    low, high = test["ci_pct"]
    assert test["verdict"] == f"significantly higher (95% CI {low:+.0f}% to {high:+.0f}%), worse"
    assert 150 < low < 200 < high < 250


def test_too_short_runs_are_never_significant() -> None:
    short = make_doc(seed=10, n=4, p50_ms=10.0)
    long_slow = make_doc(seed=11, n=20, p50_ms=100.0)
    for pair in ((short, long_slow), (long_slow, short)):
        comparison = compare_documents(list(pair), ["x", "y"])
        for key in ("rps", "p50", "p99"):
            test = verdicts_of(comparison)[key]
            assert test is not None
            assert test["verdict"] == "too short to tell (4 intervals; need ≥ 5)"
            assert not test["significant"] and test["ci"] is None
    no_intervals = make_doc(seed=12)
    del no_intervals["intervals"]
    comparison = compare_documents([make_doc(), no_intervals], ["x", "y"])
    assert verdicts_of(comparison)["p50"]["verdict"].startswith(  # type: ignore[index]
        "too short to tell (0 intervals")


def test_seconds_without_latency_are_skipped() -> None:
    stalled = make_doc(seed=13, n=8)
    for entry in stalled["intervals"][:4]:
        entry["latency_ms"] = {"p50": None, "p90": None, "p99": None, "max": None}
    test = verdicts_of(compare_documents([make_doc(), stalled], ["a", "b"]))["p50"]
    assert test is not None and test["verdict"] == "too short to tell (4 intervals; need ≥ 5)"


def test_config_difference_and_generator_limit_warnings() -> None:
    base = make_doc()
    other = make_doc(seed=2, url="http://127.0.0.1:6000", concurrency=50, model="open",
                     schedule=[{"duration_s": None, "start_rate": 500.0, "end_rate": 500.0}])
    other["generator_limited"] = True
    other["status"] = "interrupted"
    warnings = compare_documents([base, other], ["base", "other"])["warnings"]
    assert warnings[0] == ("'other' ran with another config than 'base': "
                           "url http://127.0.0.1:5000 vs http://127.0.0.1:6000; "
                           "model closed vs open; rate none vs 500/s; concurrency 10 vs 50")
    assert warnings[1] == ("'other' was generator-limited: its numbers describe loadgen's "
                           "limit, not the server's")
    assert warnings[2] == "'other' did not complete (status 'interrupted')"
    text = render_comparison(compare_documents([base, other], ["base", "other"]))
    assert "WARNING: 'other' ran with another config than 'base'" in text
    endpoints = make_doc(endpoints=["GET /api/health", "GET /api/dataset/summary"])
    assert "endpoints [GET /api/health] vs [GET /api/health, GET /api/dataset/summary]" in (
        compare_documents([base, endpoints], ["a", "b"])["warnings"][0])


def test_render_table() -> None:
    docs = [make_doc(seed=3), make_doc(seed=4, p50_ms=30.0), make_doc(seed=5, n=3)]
    text = render_comparison(compare_documents(docs, ["fast", "slow", "short"]))
    lines = text.splitlines()
    assert lines[0].split() == ["metric", "fast", "slow", "change", "verdict", "short", "change",
                                "verdict"]
    p50 = next(line for line in lines if line.startswith("latency p50 (ms)"))
    assert "10.0 " in p50 and "30.0" in p50 and "+200.0%" in p50
    assert "significantly higher (95% CI +" in p50
    assert "too short to tell (3 intervals; need ≥ 5)" in p50
    assert any(line.startswith("success rate") and "100.00%" in line for line in lines)
    assert "Full intervals: fast 10, slow 10, short 3" in text
    assert ("Never significant within the noise floor: p50 ±5% (≥ 0.5 ms), p99 ±20% (≥ 2 ms), "
            "rps ±10%.") in text
    assert all(line == line.rstrip() for line in lines)


def test_comparison_is_json_able() -> None:
    comparison = compare_documents([make_doc(), make_doc(seed=2)], ["a", "b"])
    assert orjson.loads(orjson.dumps(comparison)) == comparison


def test_compare_needs_two_documents() -> None:
    with pytest.raises(ValueError):
        compare_documents([make_doc()], ["a"])
    with pytest.raises(ValueError):
        compare_documents([make_doc(), make_doc()], ["a"])


# --- the method's error rates on autocorrelated seconds ------------------------------------


def ar1_seconds(rng: np.random.Generator, n: int, level: float, phi: float = 0.7,
                sigma: float = 0.05) -> list[float]:
    """``n`` per-second values around ``level``: log-normal AR(1) noise, like a machine whose
    slow and fast stretches last several seconds (stationary sd ``sigma``, lag-1 corr. ``phi``)."""
    e = np.empty(n)
    e[0] = rng.normal(0, sigma)
    for i in range(1, n):
        e[i] = phi * e[i - 1] + math.sqrt(1 - phi * phi) * rng.normal(0, sigma)
    return list(level * np.exp(e))


def test_autocorrelated_identical_runs_are_rarely_significant() -> None:
    """A/A on AR(1) seconds: the U test, which takes seconds as independent, cries wolf; the
    block bootstrap with its floor stays under 5% and still finds a 30% change."""
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(42)
    pairs, floor, floor_ms = 200, *FLOORS["p50"]
    false_positives = old_false_positives = detected = 0
    for _ in range(pairs):
        a, b = ar1_seconds(rng, 20, 10.0), ar1_seconds(rng, 20, 10.0)
        slower = ar1_seconds(rng, 20, 13.0)
        false_positives += significance(a, b, "lower", floor=floor,
                                        floor_abs=floor_ms)["significant"]
        old_false_positives += mannwhitneyu(a, b).pvalue < 0.05
        test = significance(a, slower, "lower", floor=floor, floor_abs=floor_ms)
        detected += test["significant"] and test["assessment"] == "worse"
    assert false_positives <= 0.05 * pairs, false_positives
    assert old_false_positives >= 0.25 * pairs, old_false_positives  # the problem is real here
    assert detected >= 0.95 * pairs, detected


def test_same_input_same_verdict() -> None:
    """Seeded: rerunning compare on the same files never flips a verdict."""
    rng = np.random.default_rng(3)
    a, b = ar1_seconds(rng, 12, 10.0), ar1_seconds(rng, 12, 10.6)
    first = significance(a, b, "lower", floor=0.0)
    assert significance(a, b, "lower", floor=0.0) == first


def test_difference_inside_the_floor_is_never_significant() -> None:
    steady = [10.0, 10.01, 9.99, 10.0, 10.02, 9.98, 10.0, 10.01, 9.99, 10.0]
    up_3pct = [v * 1.03 for v in steady]
    test = significance(steady, up_3pct, "lower", floor=5.0, floor_abs=0.5)
    assert test["ci"][0] > 0   # clearly higher: the seconds do not overlap ...
    assert test["verdict"] == "within noise floor (±5%)"   # ... but by less than the floor
    assert not test["significant"] and test["floor_pct"] == 5.0
    no_floor = significance(steady, up_3pct, "lower", floor=0.0)
    assert no_floor["significant"] and no_floor["verdict"].startswith("significantly higher")
    # 1 ms latency +30% is 0.3 ms: below the 0.5 ms absolute floor (50% of 1 ms)
    fast = [v / 10 for v in steady]
    test = significance(fast, [v * 1.3 for v in fast], "lower", floor=5.0, floor_abs=0.5)
    assert test["verdict"] == "within noise floor (±50%)" and test["floor_pct"] == 50.0
    # the floor in the comparison: --floor replaces the percentages, keeps the milliseconds
    base, up = make_doc(seed=20, p50_ms=20.0), make_doc(seed=21, p50_ms=20.6)
    for doc in (base, up):
        for entry in doc["intervals"]:
            entry["latency_ms"]["p50"] = doc["summary"]["latency_ms"]["p50"]
    assert verdicts_of(compare_documents([base, up], ["a", "b"]))["p50"]["verdict"] == (
        "within noise floor (±5%)")  # type: ignore[index]
    assert verdicts_of(compare_documents([base, up], ["a", "b"], floor=1.0))["p50"][
        "significant"]  # type: ignore[index]
    assert compare_documents([base, up], ["a", "b"], floor=1.0)["floor"]["p50"] == {
        "pct": 1.0, "abs": 0.5, "unit": "ms"}


def combined(seed: int, runs: int, p50_ms: float) -> dict[str, Any]:
    """``runs`` repeats merged as bench/compare-configs does, each run a little different."""
    rng = random.Random(seed)
    return combine_runs([make_doc(seed=seed * 100 + i, p50_ms=p50_ms * rng.uniform(0.97, 1.03))
                         for i in range(runs)])


def test_repeats_are_judged_by_the_variance_between_runs() -> None:
    same = compare_documents([combined(1, 3, 10.0), combined(2, 3, 10.0)], ["a", "a2"])
    assert same["method"] == METHOD_RUNS and same["runs"] == [3, 3]
    for key in ("p50", "p99", "rps"):
        test = verdicts_of(same)[key]
        assert test is not None and test["method"] == METHOD_RUNS and test["runs"] == [3, 3]
        assert not test["significant"], test
        assert test["p"] is not None
    slower = compare_documents([combined(3, 3, 10.0), combined(4, 3, 13.0)], ["a", "b"])
    test = verdicts_of(slower)["p50"]
    assert test is not None and test["significant"] and test["assessment"] == "worse"
    assert test["verdict"].startswith("significantly higher (95% CI +")
    assert "Runs combined: a 3, b 3" in render_comparison(slower)
    # Fewer than three runs on a side: the seconds of all of them, by the block bootstrap.
    two = compare_documents([combined(5, 2, 10.0), combined(6, 3, 13.0)], ["a", "b"])
    test = verdicts_of(two)["p50"]
    assert test is not None and test["method"] == METHOD_BOOTSTRAP and test["runs"] is None
    assert test["intervals"] == [20, 30] and test["significant"]
    # Combined before runs kept their figures (or hand-edited): judged by the seconds.
    old_style = [combined(7, 3, 10.0), combined(8, 3, 13.0)]
    for run in old_style[0]["combined_runs"]:
        del run["latency_ms"], run["rps"]
    old_style[1]["combined_runs"][0]["rps"] = "fast"
    tests = verdicts_of(compare_documents(old_style, ["a", "b"]))
    assert {tests[k]["method"] for k in ("p50", "p99", "rps")} == {METHOD_BOOTSTRAP}  # type: ignore[index]
    assert tests["p50"]["significant"]  # type: ignore[index]


def test_regressions_name_the_worse_runs() -> None:
    fast, slow = make_doc(seed=3, p50_ms=10.0), make_doc(seed=4, p50_ms=30.0)
    comparison = compare_documents([fast, slow, fast], ["fast", "slow", "fast again"])
    found = regressions(comparison, ["p50"])
    assert len(found) == 1 and found[0].startswith("slow: latency p50 significantly higher (")
    assert len(regressions(comparison, ["any"])) == 2   # p50 and p99
    assert regressions(comparison, ["rps"]) == []
    assert regressions(compare_documents([slow, fast], ["slow", "fast"]), ["any"]) == []


def write(path: Path, doc: dict[str, Any]) -> str:
    path.write_bytes(orjson.dumps(doc))
    return str(path)


def test_load_for_compare(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", make_doc())
    b = write(tmp_path / "b.json", make_doc(seed=2))
    docs = load_for_compare([a, b])
    assert [d["config"]["url"] for d in docs] == ["http://127.0.0.1:5000"] * 2
    with pytest.raises(ConfigError, match="at least two results files, got 1"):
        load_for_compare([a])
    foreign = write(tmp_path / "k6.json", {"metrics": {"http_req_duration": {}}})
    with pytest.raises(ResultsError, match="is not a loadgen/1 results file"):
        load_for_compare([a, foreign])
    future = write(tmp_path / "v2.json", {**make_doc(), "schema": "loadgen/2"})
    with pytest.raises(ResultsError, match=r"not a loadgen/1 results file \(schema 'loadgen/2'\)"):
        load_for_compare([future, a])
    with pytest.raises(ResultsError, match="cannot read"):
        load_for_compare([a, str(tmp_path / "missing.json")])


def test_default_labels() -> None:
    assert default_labels(["runs/before.json", "after.json"]) == ["before", "after"]
    assert default_labels(["a/run.json", "b/run.json"]) == ["a/run.json", "b/run.json"]


def test_the_command_line_offers_the_tested_metrics() -> None:
    from loadgen.cli import REGRESSION_METRICS

    assert sorted(REGRESSION_METRICS) == sorted((*TESTED_METRICS, "any"))
