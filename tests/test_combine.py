"""``combine_runs`` and ``bench/compare-configs``: repeats of one configuration become one run.

The combined document is checked against the real runs it came from: counts
add up, the merged histogram holds every request of every repeat, the
per-second series continues across runs, and ``rps`` is total requests over
total time under load.  compare-configs is run end to end once, on two tiny
scenario files pointing at the session's target server.
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

from loadgen.metrics import decode_histogram
from loadgen.results import combine_runs, read_document

COMPARE_CONFIGS = REPO / "bench" / "compare-configs"


@pytest.fixture(scope="module")
def two_runs(target_server: Any, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Two real 2-second open-model runs of the same configuration (two endpoints)."""
    folder = tmp_path_factory.mktemp("combine")
    docs = []
    for i in (1, 2):
        run = loadgen("run", "--url", target_server.url, "--endpoint", "/api/health",
                      "--endpoint", "/delay/1", "--rate", "50", "--duration", "2s", "--quiet",
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


def write_config(path: Path, url: str, concurrency: int) -> Path:
    path.write_text(f'url = "{url}"\nendpoints = ["/delay/2"]\nrate = 40\nduration = "2s"\n'
                    f"concurrency = {concurrency}\nmax_connections = {concurrency}\n")
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
