"""``combine_runs`` and ``bench/compare-configs``: repeats of one configuration become one run.

The combined document is checked against the real runs it came from: counts
add up, the merged histogram holds every request of every repeat, the
per-second series continues across runs, and ``rps`` is total requests over
total time under load.  compare-configs is run end to end once, on two tiny
scenario files pointing at the session's target server.  The document format
(failure kinds, success-only histograms, interval fields, the generator block)
is checked on synthetic documents built by the real ``Aggregate`` from worker
messages (``tests/synthetic.py``), and on the same documents rewritten in the
old format (``errors``, no success histograms, bare intervals).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import REPO, loadgen
from synthetic import WALL_START, synthetic_run

from loadgen.output.results import read_document
from loadgen.stats.combine import _worst_generator, combine_runs
from loadgen.stats.metrics import decode_histogram, latency_ms

COMPARE_CONFIGS = REPO / "bench" / "compare-configs"


@pytest.fixture(scope="module")
def two_runs(target_server: Any, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Two real 2-second open-model runs of the same configuration (two endpoints)."""
    folder = tmp_path_factory.mktemp("combine")
    docs = []
    for i in (1, 2):
        run = loadgen("run", "--url", target_server.url, "--endpoint", "/api/health",
                      "--endpoint", "/delay/1", "--rate", "50", "--duration", "2s", "--quiet",
                      "--workers", "1",   # combining runs does not depend on their split
                      save=folder / f"run-{i}.json")
        assert run.status == 0, (run.stdout, run.stderr)
        assert run.doc is not None and run.doc["status"] == "complete"
        docs.append(run.doc)
    return docs


def test_counts_add_up(two_runs: list[dict[str, Any]]) -> None:
    combined = combine_runs(two_runs)
    assert combined["schema"] == "loadgen/1"
    assert combined["status"] == "complete"
    assert combined["combined_from"] == 2
    assert combined["config"] == two_runs[0]["config"]
    for key in ("requests", "successes", "failures", "bytes_in", "bytes_out"):
        assert combined["summary"][key] == sum(d["summary"][key] for d in two_runs), key
    assert combined["summary"]["requests"] == 200  # 50/s for 2 s, twice, exactly
    for i, entry in enumerate(combined["endpoints"]):
        parts = [d["endpoints"][i] for d in two_runs]
        assert entry["endpoint"] == parts[0]["endpoint"]
        assert entry["requests"] == sum(p["requests"] for p in parts)
        assert entry["status_codes"] == {"200": sum(p["status_codes"]["200"] for p in parts)}
    # each run's own figures stay, for compare's between-run method
    for run, doc in zip(combined["combined_runs"], two_runs):
        assert run["rps"] == doc["summary"]["rps"]
        assert run["latency_ms"] == doc["summary"]["latency_ms"]


def test_merged_histograms_hold_every_request(two_runs: list[dict[str, Any]]) -> None:
    combined = combine_runs(two_runs)
    for i, entry in enumerate(combined["endpoints"]):
        name = entry["endpoint"]
        hist = decode_histogram(combined["histograms"][name])
        assert hist.get_total_count() == sum(
            decode_histogram(d["histograms"][name]).get_total_count() for d in two_runs)
        assert hist.get_total_count() == entry["requests"]
        service = decode_histogram(combined["service_histograms"][name])
        assert service.get_total_count() == entry["requests"]
        success = decode_histogram(combined["success_histograms"][name])
        assert success.get_total_count() == entry["successes"]
        # the percentiles are the merged histogram's, so they lie within the runs' extremes
        latency = entry["latency_ms"]
        assert latency["max"] == max(d["endpoints"][i]["latency_ms"]["max"] for d in two_runs)
        assert latency["min"] <= latency["p50"] <= latency["p99"] <= latency["max"]


def test_intervals_continue_and_rps_is_consistent(two_runs: list[dict[str, Any]]) -> None:
    combined = combine_runs(two_runs)
    intervals = combined["intervals"]
    assert len(intervals) == sum(len(d["intervals"]) for d in two_runs)
    times = [i["t"] for i in intervals]
    assert times == sorted(times) and len(set(times)) == len(times)
    first_duration = two_runs[0]["summary"]["duration_s"]
    second_start = intervals[len(two_runs[0]["intervals"])]
    assert second_start["t"] == pytest.approx(two_runs[1]["intervals"][0]["t"] + first_duration,
                                              abs=0.002)
    assert sum(i["requests"] for i in intervals) == combined["summary"]["requests"]
    duration = sum(d["summary"]["duration_s"] for d in two_runs)
    assert combined["summary"]["duration_s"] == pytest.approx(duration)
    assert combined["summary"]["rps"] == pytest.approx(combined["summary"]["requests"] / duration)
    assert 45 <= combined["summary"]["rps"] <= 51


def test_status_limits_and_mismatched_endpoints(two_runs: list[dict[str, Any]]) -> None:
    interrupted = {**two_runs[1], "status": "interrupted", "generator_limited": True}
    combined = combine_runs([two_runs[0], interrupted])
    assert combined["status"] == "interrupted"
    assert combined["generator_limited"] is True
    other = {**two_runs[1], "endpoints": two_runs[1]["endpoints"][:1]}
    with pytest.raises(ValueError, match="endpoints"):
        combine_runs([two_runs[0], other])
    with pytest.raises(ValueError):
        combine_runs([])


# --- the document format, on synthetic documents (no processes) ---------------------------------


def old_format(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` as loadgen wrote it before: ``errors``, no success histograms, bare intervals."""
    def block(s: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in s.items() if k not in ("failures_by_kind", "failures_by_status",
                                                        "success_latency_ms")}
        return {**out, "errors": s["failures_by_kind"]}

    old = {k: v for k, v in doc.items() if k != "success_histograms"}
    old["summary"] = block(doc["summary"])
    old["endpoints"] = [block(e) for e in doc["endpoints"]]
    old["intervals"] = [{"t": i["t"], "requests": i["requests"], "errors": i["failures"],
                         "rps": i["rps"], "latency_ms": i["latency_ms"]}
                        for i in doc["intervals"]]
    return old


@pytest.fixture(scope="module")
def synthetic_runs() -> list[dict[str, Any]]:
    return [synthetic_run(ok=30, status_500=1, timeouts=1),
            synthetic_run(ok=20, status_500=2, timeouts=3, wall_start=WALL_START + 3600,
                          causes_cpu=True)]


def test_failure_kinds_and_successes_are_merged(synthetic_runs: list[dict[str, Any]]) -> None:
    combined = combine_runs(synthetic_runs)
    summary = combined["summary"]
    assert summary["failures_by_kind"] == {"timeout": 2 * 2 * 1 + 2 * 2 * 3}
    assert summary["failures_by_status"] == {"500": 2 * 2 * 1 + 2 * 2 * 2}
    for key in ("requests", "successes", "failures"):
        assert summary[key] == sum(d["summary"][key] for d in synthetic_runs), key
    assert summary["failures"] == 4 + 12 + 4 + 8
    assert "errors" not in summary
    # every request in latency_ms (the 1 s timeouts too), the successes alone beside it
    success = decode_histogram(combined["success_histograms"]["GET /a"])
    assert success.get_total_count() == summary["successes"]
    assert summary["success_latency_ms"] == latency_ms(success)
    assert summary["success_latency_ms"]["max"] < 3.0
    assert summary["latency_ms"]["max"] >= 1000.0
    every = decode_histogram(combined["histograms"]["GET /a"])
    assert every.get_total_count() == summary["requests"]
    assert combined["endpoints"][0]["success_latency_ms"] == summary["success_latency_ms"]
    # each run's own figures stay
    assert [r["requests"] for r in combined["combined_runs"]] == [
        d["summary"]["requests"] for d in synthetic_runs]


def test_old_files_are_read_with_their_errors_key(synthetic_runs: list[dict[str, Any]]) -> None:
    new = combine_runs(synthetic_runs)
    old = combine_runs([old_format(d) for d in synthetic_runs])
    assert old["summary"]["failures_by_kind"] == new["summary"]["failures_by_kind"]
    assert old["summary"]["failures_by_status"] == new["summary"]["failures_by_status"]
    assert old["summary"]["latency_ms"] == new["summary"]["latency_ms"]
    assert old["summary"]["requests"] == new["summary"]["requests"]
    # no success histograms saved: no successes-only figures rather than wrong ones
    assert "success_histograms" not in old
    assert set(old["summary"]["success_latency_ms"].values()) == {None}
    assert old["intervals"][0].keys() == {"t", "requests", "errors", "rps", "latency_ms"}


def test_a_mix_of_old_and_new_files_has_no_success_figures(
        synthetic_runs: list[dict[str, Any]]) -> None:
    combined = combine_runs([synthetic_runs[0], old_format(synthetic_runs[1])])
    assert "success_histograms" not in combined
    assert set(combined["summary"]["success_latency_ms"].values()) == {None}
    assert combined["summary"]["failures_by_kind"] == {"timeout": 4 + 12}


def test_failures_by_kind_wins_over_errors(synthetic_runs: list[dict[str, Any]]) -> None:
    doc = synthetic_runs[0]
    both = {**doc, "endpoints": [{**e, "errors": {"connect": 99}} for e in doc["endpoints"]]}
    assert combine_runs([both])["summary"]["failures_by_kind"] == {"timeout": 4}


def test_check_counts_are_merged_by_name(synthetic_runs: list[dict[str, Any]]) -> None:
    """``checked`` and ``checks_failed`` add up over the runs (only the counts are read)."""
    runs = [{**d, "endpoints": [{**e, "checked": 10 + i,
                                 "checks_failed": {'body_contains "x"': 1 + i, f"json a{i}": 2}}
                                for e in d["endpoints"]]}
            for i, d in enumerate(synthetic_runs)]
    combined = combine_runs(runs)
    for block in (combined["summary"], combined["endpoints"][0]):
        assert block["checked"] == 21
        assert block["checks_failed"] == {'body_contains "x"': 3, "json a0": 2, "json a1": 2}
    assert "checked" not in combine_runs(synthetic_runs)["summary"]


def test_intervals_keep_their_start_and_partial(synthetic_runs: list[dict[str, Any]]) -> None:
    first, second = synthetic_runs
    assert [i["partial"] for i in first["intervals"]] == [False, False, True]
    combined = combine_runs(synthetic_runs)
    intervals = combined["intervals"]
    assert len(intervals) == 6
    assert [i["partial"] for i in intervals] == [False, False, True] * 2
    assert [i["start"] for i in intervals] == [i["start"] for i in first["intervals"]
                                                + second["intervals"]]
    assert intervals[3]["start"] > intervals[2]["start"]   # the second run's own wall clock
    assert [i["length_s"] for i in intervals] == [1.0, 1.0, 0.5] * 2
    duration = first["summary"]["duration_s"]
    assert duration == pytest.approx(2.5)
    assert [i["t"] for i in intervals] == pytest.approx([1.0, 2.0, 2.5, 3.5, 4.5, 5.0])
    for merged, own in zip(intervals, first["intervals"] + second["intervals"]):
        assert {k: v for k, v in merged.items() if k != "t"} == {
            k: v for k, v in own.items() if k != "t"}


def test_generator_block_has_the_worst_run(synthetic_runs: list[dict[str, Any]]) -> None:
    combined = combine_runs(synthetic_runs)
    assert combined["generator_limited"] is True
    generator = combined["generator"]
    assert generator["causes"] == ["cpu"]
    assert len(generator["reasons"]) == 1 and generator["reasons"][0].startswith("run 2: ")
    assert generator["cpu_percent_max"] == synthetic_runs[1]["generator"]["cpu_percent_max"]
    assert generator["cpu_percent_max"] == pytest.approx(95.0, abs=0.2)


def test_worst_generator_of_new_and_old_blocks() -> None:
    new = {"reasons": ["pool is small", "worker 0 starved"], "causes": ["pool", "starved"],
           "lateness_ms": {"p50": 1.0, "p90": 5.0, "p99": 40.0, "max": 90.0},
           "lag_limit_ms": 10.0, "loop_lag_ms": {"p50": 0.2, "p90": 0.5, "p99": 3.0, "max": 7.0},
           "cpu_percent_max": 55.0, "demand_percent_max": 100.0, "run_queue_percent_max": 45.0,
           "waited_for_connection": 30, "waited_share": 0.1, "connections": 8,
           "connections_needed": 12.5}
    other = {"reasons": ["sends left late"], "causes": ["lag"],
             "lateness_ms": {"p50": 2.0, "p90": 3.0, "p99": 20.0, "max": 95.0},
             "lag_limit_ms": 12.0, "loop_lag_ms": {"p50": 0.4, "p90": 0.4, "p99": 9.0, "max": 9.0},
             "cpu_percent_max": 70.0, "demand_percent_max": 80.0, "run_queue_percent_max": 5.0,
             "waited_for_connection": 2, "waited_share": 0.02, "connections": 16,
             "connections_needed": 3.0}
    old = {"reasons": [], "lateness_ms": {"p50": 9.0, "p99": 10.0, "max": 11.0},
           "cpu_percent_max": 20.0, "waited_for_connection": 1, "connections": 4}
    out = _worst_generator([new, other, old])
    assert out["reasons"] == ["run 1: pool is small", "run 1: worker 0 starved",
                              "run 2: sends left late"]
    assert out["causes"] == ["pool", "starved", "lag"]   # causes[i] names reasons[i]
    assert out["lateness_ms"] == {"p50": 9.0, "p99": 40.0, "max": 95.0}   # keys all runs have
    assert out["loop_lag_ms"] == {"p50": 0.4, "p90": 0.5, "p99": 9.0, "max": 9.0}
    assert out["lag_limit_ms"] == 12.0
    assert out["cpu_percent_max"] == 70.0
    assert out["demand_percent_max"] == 100.0 and out["run_queue_percent_max"] == 45.0
    assert out["waited_for_connection"] == 33 and out["waited_share"] == 0.1
    assert out["connections"] == 16 and out["connections_needed"] == 12.5
    empty = _worst_generator([{}, {}])
    assert empty["causes"] == [] and empty["lateness_ms"] is None
    assert empty["loop_lag_ms"] is None and empty["connections_needed"] is None


def test_open_model_documents_keep_service_histograms() -> None:
    runs = [synthetic_run(open_model=True), synthetic_run(open_model=True)]
    combined = combine_runs(runs)
    service = decode_histogram(combined["service_histograms"]["GET /a"])
    assert service.get_total_count() == sum(
        decode_histogram(d["service_histograms"]["GET /a"]).get_total_count() for d in runs)
    assert combined["generator"]["waited_for_connection"] == sum(
        d["generator"]["waited_for_connection"] for d in runs)
    assert combined["generator"]["lateness_ms"]["p99"] == pytest.approx(0.4, rel=0.01)
    assert combined["generator"]["connections_needed"] is not None


def write_config(path: Path, url: str, concurrency: int) -> Path:
    path.write_text(f'url = "{url}"\nendpoints = ["/delay/2"]\nrate = 40\nduration = "2s"\n'
                    f"concurrency = {concurrency}\nmax_connections = {concurrency}\n"
                    "workers = 1\n")   # one process per run: the script is under test, not the split
    return path


def compare_configs(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(COMPARE_CONFIGS), *args], check=False,
                          capture_output=True, text=True, timeout=180, env=env,
                          stdin=subprocess.DEVNULL)


def test_compare_configs_end_to_end(target_server: Any, tmp_path: Path) -> None:
    a = write_config(tmp_path / "few.toml", target_server.url, 1)
    b = write_config(tmp_path / "many.toml", target_server.url, 4)
    out = tmp_path / "out"
    proc = compare_configs(str(a), str(b), "--repeat", "1", "--out", str(out))
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "few" in proc.stdout and "many" in proc.stdout and "latency p99" in proc.stdout
    assert "[1/2] few (run 1 of 1)" in proc.stderr and "[2/2] many (run 1 of 1)" in proc.stderr
    for name in ("few-1.json", "many-1.json", "few.json", "many.json", "compare.png"):
        assert (out / name).exists(), name
    combined = read_document(str(out / "few.json"))
    assert combined["combined_from"] == 1
    assert combined["summary"]["requests"] == 80
    assert orjson.loads((out / "few-1.json").read_bytes())["summary"]["requests"] == 80


def test_compare_configs_unreachable_url_is_one_line(tmp_path: Path) -> None:
    a = write_config(tmp_path / "a.toml", "http://127.0.0.1:1", 1)
    b = write_config(tmp_path / "b.toml", "http://127.0.0.1:1", 2)
    proc = compare_configs(str(a), str(b), "--repeat", "2", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines()
             if not line.startswith(("[", "2 configurations"))]
    assert lines == ["loadgen: cannot reach http://127.0.0.1:1: Connection refused"]
    assert "[2/4]" not in proc.stderr  # stopped at the first run


def test_compare_configs_checks_every_file_before_any_run(tmp_path: Path) -> None:
    good = write_config(tmp_path / "good.toml", "http://127.0.0.1:1", 1)
    bad = tmp_path / "bad.toml"
    bad.write_text("rate = 40\nconcurency = 3\n")
    proc = compare_configs(str(good), str(bad), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.count("\n") == 1 and "concurency" in proc.stderr
    assert not (tmp_path / "out").exists()
    same = tmp_path / "other"
    same.mkdir()
    twin = write_config(same / "good.toml", "http://127.0.0.1:1", 2)
    proc = compare_configs(str(good), str(twin))
    assert proc.returncode == 2 and "'good' is given twice" in proc.stderr
