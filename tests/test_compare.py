"""Tests for ``loadgen compare``: the U test, interval handling, verdicts, warnings and loading.

Documents are built by hand; per-second intervals come from a seeded
``random.Random`` so every verdict below is reproducible.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from loadgen.compare import (compare_documents, default_labels, full_intervals, load_for_compare,
                             mann_whitney_u, render_comparison)
from loadgen.config import ConfigError
from loadgen.results import ResultsError


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


def test_u_test_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(7)
    cases = [([rng.gauss(10, 2) for _ in range(m)], [rng.gauss(11, 2) for _ in range(n)])
             for m, n in ((5, 5), (5, 40), (8, 8), (9, 12), (30, 25))]
    cases.append(([1, 2, 2, 3, 3, 3], [2, 3, 4, 4, 5]))          # ties: normal approximation
    cases.append(([1.0] * 6, [1.0] * 7))                          # all equal
    for x, y in cases:
        u, p = mann_whitney_u(x, y)
        expected = stats.mannwhitneyu(y, x, alternative="two-sided")
        assert u == pytest.approx(expected.statistic)
        assert p == pytest.approx(expected.pvalue, rel=1e-9), (x, y)


def test_u_test_exact_small_sample() -> None:
    # 5 vs 5 fully separated: the two most extreme of C(10, 5) = 252 orderings.
    u, p = mann_whitney_u([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert u == 25 and p == pytest.approx(2 / 252)


def test_partial_intervals_are_dropped() -> None:
    doc = make_doc(n=6)
    assert len(doc["intervals"]) == 7
    kept = full_intervals(doc)
    assert [i["t"] for i in kept] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    doc["intervals"].insert(0, {"t": 0.4, "rps": 5.0, "latency_ms": {}})   # a short first one
    assert [i["t"] for i in full_intervals(doc)][:2] == [2.0, 3.0]


def test_run_compared_with_itself_is_never_significant() -> None:
    doc = make_doc()
    comparison = compare_documents([doc, doc], ["a", "a again"])
    for metric in comparison["metrics"]:
        assert metric["change_pct"][1] == 0.0
    tested = {k: t for k, t in verdicts_of(comparison).items() if t is not None}
    assert set(tested) == {"rps", "p50", "p99"}
    for test in tested.values():
        assert test["verdict"] == "not significant"
        assert test["p"] == pytest.approx(1.0)
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
        assert test["p"] < 0.001
        assert test["verdict"] == "significantly higher (p<0.001), worse"
    p50 = next(m for m in comparison["metrics"] if m["metric"] == "p50")
    assert p50["change_pct"][1] == pytest.approx(200.0)
    # And the other way round: lower latency is better.
    back = verdicts_of(compare_documents([slow, fast], ["slow", "fast"]))["p50"]
    assert back is not None and back["verdict"] == "significantly lower (p<0.001), better"


def test_higher_rps_is_better() -> None:
    comparison = compare_documents([make_doc(seed=5, rps=1000), make_doc(seed=6, rps=1500)],
                                   ["before", "after"])
    test = verdicts_of(comparison)["rps"]
    assert test is not None and test["verdict"] == "significantly higher (p<0.001), better"


def test_p_value_wording() -> None:
    # 5 full intervals each, fully separated: exact p = 2/252 = 0.008.
    comparison = compare_documents([make_doc(seed=8, n=5), make_doc(seed=9, n=5, p50_ms=30.0)],
                                   ["a", "b"])
    assert verdicts_of(comparison)["p50"]["verdict"] == (  # type: ignore[index]
        "significantly higher (p=0.008), worse")


def test_too_short_runs_are_never_significant() -> None:
    short = make_doc(seed=10, n=4, p50_ms=10.0)
    long_slow = make_doc(seed=11, n=20, p50_ms=100.0)
    for pair in ((short, long_slow), (long_slow, short)):
        comparison = compare_documents(list(pair), ["x", "y"])
        for key in ("rps", "p50", "p99"):
            test = verdicts_of(comparison)[key]
            assert test is not None
            assert test["verdict"] == "too short to tell (4 intervals; need ≥ 5)"
            assert not test["significant"] and test["p"] is None
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
    assert "significantly higher (p<0.001), worse" in p50
    assert "too short to tell (3 intervals; need ≥ 5)" in p50
    assert any(line.startswith("success rate") and "100.00%" in line for line in lines)
    assert "Full intervals: fast 10, slow 10, short 3" in text
    assert all(line == line.rstrip() for line in lines)


def test_comparison_is_json_able() -> None:
    comparison = compare_documents([make_doc(), make_doc(seed=2)], ["a", "b"])
    assert orjson.loads(orjson.dumps(comparison)) == comparison


def test_compare_needs_two_documents() -> None:
    with pytest.raises(ValueError):
        compare_documents([make_doc()], ["a"])
    with pytest.raises(ValueError):
        compare_documents([make_doc(), make_doc()], ["a"])


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
