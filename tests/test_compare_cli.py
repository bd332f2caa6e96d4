"""End-to-end tests of ``loadgen compare`` on real runs against the built-in target.

Two open-model runs (``/delay/10`` and ``/delay/30``, 50 req/s for 6 s, so
at least 5 full per-second intervals each) are made once per module, one after
the other, and every test below compares the saved files through the real command
line (``python -m loadgen compare``).  The tests of the method itself, on
hand-built documents, are in ``test_compare.py``; ``--fail-on-regression`` is
tested here on saved hand-built files too.  Bad input and the gate on hand-built
files run the same ``cli.main`` in this process (``compare_here``: no interpreter
start per call); the gate on real runs goes through the real command line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import Run, loadgen, one_line_error, run_in_process
from test_compare import make_doc

from loadgen.stats.compare import METHOD_BOOTSTRAP, full_intervals

#: timing-sensitive (verdicts, stalls, rates): run alone, after the parallel tests
pytestmark = pytest.mark.serial

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The per-second-tested metrics and their rows in the table.
TESTED_ROWS = {"rps": "rps (req/s)", "p50": "latency p50 (ms)", "p99": "latency p99 (ms)"}
# p50 carries the detection; a single run's per-second p99 on a busy 2-core machine can be too
# noisy for the block bootstrap to call a 10 vs 30 ms change (it then says "not significant",
# never the wrong direction: each test checks that too)
LATENCY_ROWS = ("p50",)


@dataclass
class Runs:
    fast: Path   # /delay/10
    slow: Path   # /delay/30


@pytest.fixture(scope="module")
def runs(target_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """One 10 ms and one 30 ms run, one after the other, one worker each (plenty for 50 req/s).

    Not in parallel: per-second p99 at 50 req/s is about the slowest of 50
    requests, so the stalls that two runs sharing a small machine cause each other
    are enough to blur the p99 verdict.  On a busy machine a run may still be
    flagged generator-limited, which only adds a warning to the comparison.
    """
    folder = tmp_path_factory.mktemp("compare-runs")
    paths = {ms: folder / f"delay{ms}.json" for ms in (10, 30)}

    def run(ms: int) -> Run:
        return loadgen("run", "--url", target_server.url, "--endpoint", f"/delay/{ms}",
                       "--rate", "50", "--duration", "6s", "--concurrency", "10", "--workers", "1",
                       "--quiet", save=paths[ms])

    results = {ms: run(ms) for ms in paths}
    for ms, result in results.items():
        assert result.status == 0, (ms, result.stdout, result.stderr)
        assert result.doc is not None and result.doc["status"] == "complete"
        assert result.doc["summary"]["failures"] == 0
        assert len(full_intervals(result.doc)) >= 5, (ms, result.doc["intervals"])
    return Runs(fast=paths[10], slow=paths[30])


def compare(*args: str | Path) -> Run:
    """``python -m loadgen compare ARGS``: the real command line."""
    return loadgen("compare", *map(str, args), timeout=60)


def compare_here(*args: str | Path) -> Run:
    """``loadgen compare ARGS`` through ``cli.main`` in this process: for files only
    (compare sends nothing), so it is the same code without an interpreter start."""
    return run_in_process("compare", *map(str, args))


def table_verdicts(stdout: str) -> dict[str, str]:
    """The verdict column of a two-run table, by metric key (p50, p99, rps)."""
    rows = {}
    for line in stdout.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells
    header = rows["metric"]
    assert header[-1] == "verdict", header
    out = {}
    for key, row_label in TESTED_ROWS.items():
        cells = rows[row_label]
        assert len(cells) == len(header), cells
        out[key] = cells[-1]
    return out


def json_tests(comparison: dict[str, Any], run: int = 1) -> dict[str, dict[str, Any]]:
    return {m["metric"]: m["tests"][run] for m in comparison["metrics"]
            if m["metric"] in TESTED_ROWS}


# --- good runs -------------------------------------------------------------------------------


def test_a_run_compared_with_itself_is_not_significant(runs):
    result = compare(runs.fast, runs.fast, "--label", "first", "--label", "again")
    assert result.status == 0, result.stderr
    assert result.stderr == ""
    assert table_verdicts(result.stdout) == {key: "not significant" for key in TESTED_ROWS}
    assert "+0.0%" in result.stdout
    assert "another config" not in result.stdout
    assert "did not complete" not in result.stdout


@pytest.fixture(scope="module")
def fast_vs_slow(runs: Runs) -> Run:
    """The table of 10ms against 30ms, read by two tests."""
    return compare(runs.fast, runs.slow, "--label", "10ms", "--label", "30ms")


def test_30ms_run_is_significantly_higher_and_worse(fast_vs_slow):
    result = fast_vs_slow
    assert result.status == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if line.startswith("metric"))
    assert header.split()[:3] == ["metric", "10ms", "30ms"]
    verdicts = table_verdicts(result.stdout)
    for key in LATENCY_ROWS:
        assert verdicts[key].startswith("significantly higher ("), verdicts
        assert verdicts[key].endswith(", worse"), verdicts
    assert "better" not in verdicts["p99"], verdicts
    assert "Changes against '10ms'" in result.stdout
    assert re.search(r"Full intervals: 10ms (\d+), 30ms (\d+)", result.stdout)
    # Different endpoints are a different config: said, but still compared.
    assert "WARNING: '30ms' ran with another config than '10ms'" in result.stdout


def test_swapped_order_is_significantly_lower_and_better(runs):
    result = compare(runs.slow, runs.fast, "--label", "30ms", "--label", "10ms")
    assert result.status == 0, result.stderr
    verdicts = table_verdicts(result.stdout)
    for key in LATENCY_ROWS:
        assert verdicts[key].startswith("significantly lower ("), verdicts
        assert verdicts[key].endswith(", better"), verdicts
    assert "worse" not in verdicts["p99"], verdicts
    assert "Changes against '30ms'" in result.stdout


def test_json_has_the_same_verdicts_and_the_chart_is_a_png(runs, fast_vs_slow, tmp_path):
    image = tmp_path / "cmp.png"
    result = compare(runs.fast, runs.slow, "--label", "10ms", "--label", "30ms", "--json",
                     "--visualize", "--output-image", image)
    assert result.status == 0, result.stderr
    comparison = orjson.loads(result.stdout)  # stdout is one JSON document, nothing else
    assert comparison["labels"] == ["10ms", "30ms"]
    assert comparison["baseline"] == "10ms"
    assert comparison["alpha"] == 0.05
    assert all(n >= 5 for n in comparison["full_intervals"]), comparison["full_intervals"]
    tests = json_tests(comparison)
    assert comparison["method"] == METHOD_BOOTSTRAP
    assert comparison["floor"]["p50"] == {"pct": 5.0, "abs": 0.5, "unit": "ms"}
    for key in LATENCY_ROWS:
        test = tests[key]
        assert test["significant"] is True
        assert test["direction"] == "higher" and test["assessment"] == "worse"
        assert test["method"] == METHOD_BOOTSTRAP
        low, high = test["ci_pct"]
        assert test["floor_pct"] < low <= high   # the whole interval beyond the floor
    assert {k: t["verdict"] for k, t in tests.items()} == table_verdicts(fast_vs_slow.stdout)
    p50 = next(m for m in comparison["metrics"] if m["metric"] == "p50")
    assert p50["values"][1] > p50["values"][0] and p50["change_pct"][1] > 0
    # The chart message went to stderr, so stdout stayed parseable.
    assert f"Chart saved to {image}" in result.stderr
    data = image.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 10_000


def test_json_swapped_says_lower_and_better(runs):
    result = compare(runs.slow, runs.fast, "--json")
    assert result.status == 0, result.stderr
    comparison = orjson.loads(result.stdout)
    assert comparison["labels"] == ["delay30", "delay10"]  # default labels: the file names
    tests = json_tests(comparison)
    for key in LATENCY_ROWS:
        assert tests[key]["direction"] == "lower" and tests[key]["assessment"] == "better"
        assert tests[key]["verdict"].startswith("significantly lower (")


def test_json_of_a_run_with_itself(runs):
    result = compare(runs.slow, runs.slow, "--json")
    assert result.status == 0, result.stderr
    tests = json_tests(orjson.loads(result.stdout))
    for key in TESTED_ROWS:
        assert tests[key]["verdict"] == "not significant"
        assert tests[key]["significant"] is False
        low, high = tests[key]["ci"]
        assert low <= 0 <= high


# --- bad input: one line on stderr, exit 2, nothing else -------------------------------------


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_one_file_only(runs):
    result = compare_here(runs.fast)
    line = one_line_error(result)
    assert "at least two results files" in line
    assert result.stdout == ""


def test_no_files_at_all():
    result = compare_here()
    assert "at least two results files" in one_line_error(result)


def test_missing_file(runs, tmp_path):
    missing = tmp_path / "nope.json"
    result = compare_here(runs.fast, missing)
    line = one_line_error(result)
    assert str(missing) in line and "cannot read" in line
    assert result.stdout == ""


def test_truncated_file(runs, tmp_path):
    data = runs.fast.read_bytes()
    truncated = write(tmp_path / "truncated.json", data[: len(data) // 2])
    result = compare_here(runs.fast, truncated)
    line = one_line_error(result)
    assert str(truncated) in line and "not JSON" in line
    assert result.stdout == ""


@pytest.mark.parametrize("content", [b'{"foo": 1}', b"[1, 2, 3]", b'"loadgen/1"'],
                         ids=["object", "array", "string"])
def test_json_from_another_tool(runs, tmp_path, content):
    foreign = write(tmp_path / "foreign.json", content)
    result = compare_here(foreign, runs.fast)
    line = one_line_error(result)
    assert str(foreign) in line and "not a loadgen/1 results file" in line
    assert result.stdout == ""


def test_results_of_another_schema_version(runs, tmp_path):
    doc = orjson.loads(runs.slow.read_bytes())
    doc["schema"] = "loadgen/2"
    future = write(tmp_path / "future.json", orjson.dumps(doc))
    result = compare_here(runs.fast, future)
    line = one_line_error(result)
    assert str(future) in line and "'loadgen/2'" in line
    assert result.stdout == ""


@pytest.mark.parametrize("labels", [["only"], ["a", "b", "c"]], ids=["too-few", "too-many"])
def test_label_count_must_match_the_files(runs, tmp_path, labels):
    image = tmp_path / "never.png"
    args = [a for label in labels for a in ("--label", label)]
    result = compare_here(runs.fast, runs.slow, *args, "--output-image", image)
    line = one_line_error(result)
    assert f"{len(labels)} --label for 2 files" in line
    assert result.stdout == ""
    assert not image.exists()  # nothing drawn for a refused command


# --- --fail-on-regression: the CI gate ---------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Hand-built runs, saved: 10 ms, again 10 ms, and 30 ms."""
    folder = tmp_path_factory.mktemp("synthetic")
    docs = {"fast": make_doc(seed=1, p50_ms=10.0), "fast2": make_doc(seed=2, p50_ms=10.0),
            "slow": make_doc(seed=3, p50_ms=30.0)}
    return {name: write(folder / f"{name}.json", orjson.dumps(doc)) for name, doc in docs.items()}


def test_fail_on_regression_exits_1_when_the_later_run_is_worse(saved):
    result = compare_here(saved["fast"], saved["slow"], "--fail-on-regression", "p99")
    assert result.status == 1, (result.stdout, result.stderr)
    assert "significantly higher" in table_verdicts(result.stdout)["p99"]
    assert result.stderr.startswith("REGRESSION slow: latency p99 significantly higher (")
    assert result.stderr.count("\n") == 1
    both = compare_here(saved["fast"], saved["slow"], "--fail-on-regression", "p50",
                   "--fail-on-regression", "P99", "--json")
    assert both.status == 1 and both.stderr.count("REGRESSION") == 2
    assert orjson.loads(both.stdout)["labels"] == ["fast", "slow"]   # stdout still pure JSON
    assert compare_here(saved["fast"], saved["fast2"], saved["slow"],
                   "--fail-on-regression", "any").status == 1


def test_fail_on_regression_exits_0_when_not_worse(saved):
    better = compare_here(saved["slow"], saved["fast"], "--fail-on-regression", "any")
    assert better.status == 0 and better.stderr == ""   # lower latency is no regression
    same = compare_here(saved["fast"], saved["fast2"], "--fail-on-regression", "any")
    assert same.status == 0 and same.stderr == ""
    other_metric = compare_here(saved["fast"], saved["slow"], "--fail-on-regression", "rps")
    assert other_metric.status == 0, other_metric.stderr   # worse latency, same rps
    # Inside a --floor of 300%, tripled latency is no longer a significant difference.
    floored = compare_here(saved["fast"], saved["slow"], "--fail-on-regression", "any",
                      "--floor", "300")
    assert floored.status == 0, floored.stderr
    assert table_verdicts(floored.stdout)["p50"] == "within noise floor (±300%)"


@pytest.mark.parametrize("args", [["--fail-on-regression", "p75"], ["--fail-on-regression", ""],
                                  ["--floor", "-5"], ["--floor", "lots"]],
                         ids=["unknown-metric", "empty-metric", "negative-floor", "text-floor"])
def test_bad_regression_options_are_one_line(saved, args):
    result = compare_here(saved["fast"], saved["slow"], *args)
    line = one_line_error(result)
    assert args[0] in line
    assert result.stdout == ""


def test_real_30ms_run_fails_the_gate(runs):
    result = compare(runs.fast, runs.slow, "--fail-on-regression", "p50")
    assert result.status == 1, (result.stdout, result.stderr)
    assert "REGRESSION delay30: latency p50 significantly higher" in result.stderr


def test_an_a_a_pair_of_separate_runs_is_never_called_different(runs, target_server, tmp_path):
    """The audit's A/A case: a second, separate run of the 10 ms configuration.  Its seconds
    are autocorrelated and the machine drifts between runs; the verdict must not cry wolf,
    and the CI gate must pass."""
    again = tmp_path / "delay10-again.json"
    run = loadgen("run", "--url", target_server.url, "--endpoint", "/delay/10", "--rate", "50",
                  "--duration", "6s", "--concurrency", "10", "--workers", "1", "--quiet",
                  save=again)
    assert run.status == 0, run.stderr
    result = compare(runs.fast, again, "--label", "A", "--label", "A-again",
                     "--fail-on-regression", "any")
    assert result.status == 0, result.stdout + result.stderr
    verdicts = table_verdicts(result.stdout)
    assert not any(v.startswith("significantly") for v in verdicts.values()), verdicts
