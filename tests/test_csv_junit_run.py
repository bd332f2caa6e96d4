"""``--csv`` and ``--junit`` on a real run against the built-in target, and from ``report``.

One short open-model run (two endpoints, 2 s at a low rate): the CSV numbers must be
the JSON document's, the JUnit XML must hold the thresholds' PASS/FAIL with the actual
value, and ``loadgen report FILE --csv --junit`` must write the same files again.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import junitparser  # the test extra has it: a missing one fails the tests, never skips them
from helpers import loadgen, one_line_error


def rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def test_csv_and_junit_of_a_real_run(target_server, tmp_path: Path) -> None:
    save = tmp_path / "run.json"
    prefix, junit = tmp_path / "run", tmp_path / "run.xml"
    run = loadgen("run", "--url", target_server.url, "--endpoint", "/api/health",
                  "--endpoint", "/status/503", "--rate", "40", "--duration", "2s", "--quiet",
                  "--threshold", "p99<5s", "--threshold", "requests>1000000",
                  "--csv", str(prefix), "--junit", str(junit), save=save)
    assert run.status == 1, run.stderr   # requests>1000000 failed
    doc = run.doc
    assert doc is not None
    assert f"CSV saved to {prefix}_stats.csv and {prefix}_intervals.csv" in run.stdout
    assert f"JUnit XML saved to {junit}" in run.stdout

    stats = rows(Path(f"{prefix}_stats.csv"))
    assert [r["endpoint"] for r in stats] == ["", "GET /api/health", "GET /status/503"]
    for row, block in zip(stats, [doc["summary"], *doc["endpoints"]]):
        for key in ("requests", "successes", "failures", "bytes_in", "bytes_out"):
            assert int(row[key]) == block[key], key
        assert float(row["rps"]) == block["rps"]
        for key, value in block["latency_ms"].items():
            assert float(row[f"latency_{key}_ms"]) == value, key

    seconds = rows(Path(f"{prefix}_intervals.csv"))
    assert len(seconds) == 3 * len(doc["intervals"])
    for k, interval in enumerate(doc["intervals"]):
        total, *split = seconds[3 * k: 3 * k + 3]
        assert total["start"] == interval["start"] and float(total["t"]) == interval["t"]
        assert int(total["requests"]) == interval["requests"]
        for row in split:
            figures = interval["endpoints"].get(row["endpoint"])
            assert int(row["requests"]) == (figures["requests"] if figures else 0)
            if figures:
                assert float(row["latency_p99_ms"]) == figures["latency_ms"]["p99"]
    assert sum(int(r["failures"]) for r in seconds if r["endpoint"] == "GET /status/503") \
        == doc["endpoints"][1]["failures"] > 0

    xml = junitparser.JUnitXml.fromfile(str(junit))
    found = {case.name: case for suite in xml for case in suite}
    assert found["p99<5s"].is_passed and found["run completed"].is_passed
    (failure,) = found["requests>1000000"].result
    assert failure.message == (f"requests>1000000 failed: actual "
                               f"{doc['summary']['requests']}")

    # the same files from the saved document
    again, again_xml = tmp_path / "again", tmp_path / "again.xml"
    report = loadgen("report", str(save), "--csv", str(again), "--junit", str(again_xml))
    assert report.status == 0, report.stderr
    assert Path(f"{again}_stats.csv").read_bytes() == Path(f"{prefix}_stats.csv").read_bytes()
    assert Path(f"{again}_intervals.csv").read_bytes() == \
        Path(f"{prefix}_intervals.csv").read_bytes()
    assert again_xml.read_bytes() == junit.read_bytes()


def test_a_bad_prefix_stops_the_run_before_any_load(target_server, tmp_path: Path) -> None:
    target_server.reset()
    run = loadgen("run", "--url", target_server.url, "--requests", "5", "--quiet",
                  "--csv", str(tmp_path / "missing" / "run"))
    assert "--csv: cannot write" in one_line_error(run)
    run = loadgen("capacity", "--url", target_server.url, "--slo", "p99<1s", "--quiet",
                  "--junit", str(tmp_path))
    assert "--junit" in one_line_error(run)
    assert target_server.stats().get("requests", 0) == 0


def test_checks_are_junit_cases_with_their_counts(target_server, tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(f'url = "{target_server.url}"\n' + """
[[endpoints]]
path = "/api/health"
name = "good"
expect = { body_contains = "ok" }
[[endpoints]]
path = "/api/health"
name = "missing"
expect = { body_contains = ["ok", "nope"] }
""")
    junit = tmp_path / "checks.xml"
    run = loadgen("run", "--config", str(scenario), "--requests", "20", "--workers", "1",
                  "--concurrency", "2", "--quiet", "--junit", str(junit),
                  save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    found = {case.name: case for suite in junitparser.JUnitXml.fromfile(str(junit))
             for case in suite}
    assert found["good: expect checks"].is_passed
    (failure,) = found["missing: expect checks"].result
    assert failure.message == ('10 responses checked, 10 failed a check: '
                               'body_contains "nope" (10)')


def test_a_capacity_search_writes_both(target_server, tmp_path: Path) -> None:
    prefix, junit = tmp_path / "cap", tmp_path / "cap.xml"
    run = loadgen("capacity", "--url", target_server.url, "--slo", "p99<5s", "--start-rate",
                  "20", "--max-rate", "20", "--step-duration", "1s", "--concurrency", "2",
                  "--quiet", "--csv", str(prefix), "--junit", str(junit))
    assert run.status == 0, run.stderr
    stats = rows(Path(f"{prefix}_stats.csv"))
    assert [(r["step"], r["rate"], r["row"]) for r in stats] == [
        ("1", "20", "total"), ("1", "20", "endpoint")]
    seconds = rows(Path(f"{prefix}_intervals.csv"))
    assert sum(int(r["requests"]) for r in seconds if r["row"] == "total") \
        == int(stats[0]["requests"]) > 0
    found = {case.name: case for suite in junitparser.JUnitXml.fromfile(str(junit))
             for case in suite}
    assert found["capacity found"].is_passed and found["p99<5s"].is_passed
