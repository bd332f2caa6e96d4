"""Per-endpoint intervals, ``--csv`` and ``--junit`` on synthetic documents: no processes.

The documents come from the real ``Aggregate`` and ``build_document``
(``tests/synthetic.py``); the CSV is read back with the csv module (as pandas or a
spreadsheet would read it: a header, plain numbers) and the XML with junitparser, a
JUnit reader used by CI tools, plus a shape check of the attributes the common JUnit
XSD (Jenkins, GitLab) requires.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import junitparser  # the test extra has it: a missing one fails the tests, never skips them
import pytest
from helpers import one_line_error, run_in_process
from synthetic import WALL_START, iso, journey_run, message, new_aggregate, synthetic_run, tally

from loadgen.config.model import ConfigError
from loadgen.output.csvfiles import cell_text, intervals_table, stats_table, write_csv
from loadgen.output.junit import render
from loadgen.output.paths import check_csv_prefix
from loadgen.output.results import ResultsError, build_document, interval_endpoints
from loadgen.output.validate import check_document
from loadgen.stats.metrics import latency_ms, new_histogram
from loadgen.stats.thresholds import parse_thresholds


def two_endpoint_run(thresholds: tuple[str, ...] = ()) -> dict[str, Any]:
    """Two workers, endpoints a and b: 2 whole seconds, then 0.5 s in which only a is busy."""
    agg = new_aggregate(workers=2, endpoints=("GET /a", "GET /b"))
    for k in (1, 2):
        for w in (0, 1):
            agg.add(message(w, k + 0.0004, [tally(ok=10 * k, ok_us=2_000),
                                            tally(ok=3, status_500=w, ok_us=9_000)]))
    for w in (0, 1):
        agg.add(message(w, 2.5, [tally(ok=4), tally()], final=True))
    agg.finish()
    started = dt.datetime.fromtimestamp(WALL_START, dt.UTC)
    return build_document({"model": "closed", "concurrency": 4}, agg, "complete", [],
                          started, thresholds=parse_thresholds(thresholds))


# -- per-endpoint intervals in the document --------------------------------------------------

def test_intervals_split_by_endpoint_exactly() -> None:
    doc = two_endpoint_run()
    first, second, last = doc["intervals"]
    assert list(first["endpoints"]) == ["GET /a", "GET /b"]
    a, b = first["endpoints"]["GET /a"], first["endpoints"]["GET /b"]
    assert (a["requests"], a["successes"], a["failures"]) == (20, 20, 0)
    assert (b["requests"], b["successes"], b["failures"]) == (7, 6, 1)   # worker 1's 500
    assert second["endpoints"]["GET /a"]["requests"] == 40
    for interval in doc["intervals"]:   # the endpoints add up to the interval, exactly
        parts = interval["endpoints"].values()
        for key in ("requests", "successes", "failures"):
            assert sum(p[key] for p in parts) == interval[key]
        assert sum(p["rps"] for p in parts) == pytest.approx(interval["rps"])
    # b's latency in second 1: the HDR figures of exactly what it recorded
    hist = new_histogram()
    for _ in (0, 1):
        for i in range(3):
            hist.record_value(9_000 + i)
    hist.record_value(3_000)   # the 500
    expected = latency_ms(hist)
    assert b["latency_ms"] == {key: expected[key] for key in ("p50", "p90", "p99", "max")}
    # the last half second: b was idle, so it is left out (documents stay small)
    assert last["partial"] and list(last["endpoints"]) == ["GET /a"]
    assert last["endpoints"]["GET /a"]["rps"] == pytest.approx(8 / 0.5)


def test_one_endpoint_runs_keep_their_intervals_as_they_were() -> None:
    doc = synthetic_run()
    assert all("endpoints" not in i for i in doc["intervals"])
    figures = interval_endpoints(doc["intervals"][0], ["GET /a"])
    assert figures is not None
    assert figures["GET /a"]["requests"] == doc["intervals"][0]["requests"]


def test_a_sliver_joins_the_second_before_it_endpoint_by_endpoint() -> None:
    agg = new_aggregate(workers=1, endpoints=("GET /a", "GET /b"))
    agg.add(message(0, 1.0002, [tally(ok=5), tally(ok=2)]))
    agg.add(message(0, 1.05, [tally(), tally(ok=1)], final=True))   # a 0.05 s sliver
    agg.finish()
    (only,) = agg.intervals
    assert only["endpoints"]["GET /b"]["requests"] == 3
    assert only["requests"] == 8


def test_interval_endpoints_of_idle_and_old_files() -> None:
    doc = two_endpoint_run()
    last = doc["intervals"][-1]
    figures = interval_endpoints(last, ["GET /a", "GET /b"])
    assert figures is not None
    assert figures["GET /b"]["requests"] == 0 and figures["GET /b"]["latency_ms"]["p99"] is None
    old = {k: v for k, v in last.items() if k != "endpoints"}   # written before the split
    assert interval_endpoints(old, ["GET /a", "GET /b"]) is None


def test_validate_reads_old_files_and_refuses_damaged_endpoints() -> None:
    doc = two_endpoint_run()
    check_document(doc, "run.json", charts=True)
    old = copy.deepcopy(doc)
    for interval in old["intervals"]:
        del interval["endpoints"]
    check_document(old, "old.json", charts=False)
    bad = copy.deepcopy(doc)
    bad["intervals"][0]["endpoints"]["GET /a"]["requests"] = "many"
    with pytest.raises(ResultsError, match=r"intervals\[0\]: endpoints\['GET /a'\] 'requests'"):
        check_document(bad, "bad.json", charts=False)
    bad["intervals"][0]["endpoints"] = []
    with pytest.raises(ResultsError, match="'endpoints' is not an object"):
        check_document(bad, "bad.json", charts=False)
    judged = two_endpoint_run(("p99<50ms",))
    check_document(judged, "judged.json", charts=False)
    judged["thresholds"][0]["passed"] = "yes"   # --junit reads them: refused, never a traceback
    with pytest.raises(ResultsError, match=r"thresholds\[0\] is not a threshold"):
        check_document(judged, "judged.json", charts=False)


# -- CSV -------------------------------------------------------------------------------------

def read_csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def rendered(rows: list[list[object]]) -> list[dict[str, str]]:
    from loadgen.output.csvfiles import render as render_csv

    return read_csv(render_csv(rows))


def test_stats_csv_is_the_table() -> None:
    doc = two_endpoint_run()
    rows = rendered(stats_table(doc))
    assert [(r["row"], r["endpoint"]) for r in rows] == [
        ("total", ""), ("endpoint", "GET /a"), ("endpoint", "GET /b")]
    for row, block in zip(rows, [doc["summary"], *doc["endpoints"]]):
        assert int(row["requests"]) == block["requests"]
        assert int(row["failures"]) == block["failures"]
        assert float(row["rps"]) == pytest.approx(block["rps"])
        assert float(row["latency_p99_ms"]) == block["latency_ms"]["p99"]
        assert float(row["latency_mean_ms"]) == block["latency_ms"]["mean"]
        assert int(row["bytes_in"]) == block["bytes_in"]


def test_intervals_csv_has_every_endpoint_every_second() -> None:
    doc = two_endpoint_run()
    rows = rendered(intervals_table(doc))
    assert len(rows) == 3 * 3   # 3 seconds x (total, a, b)
    assert [r["start"] for r in rows[::3]] == [iso(0), iso(1), iso(2)]
    for k, interval in enumerate(doc["intervals"]):
        total, a, b = rows[3 * k: 3 * k + 3]
        assert (total["row"], a["endpoint"], b["endpoint"]) == ("total", "GET /a", "GET /b")
        assert int(total["requests"]) == interval["requests"]
        assert int(a["requests"]) + int(b["requests"]) == interval["requests"]
        assert float(total["t"]) == interval["t"]
    idle = rows[-1]
    assert idle["requests"] == "0" and idle["latency_p99_ms"] == ""   # no value: empty cell


def test_old_files_have_only_the_total_rows() -> None:
    doc = two_endpoint_run()
    for interval in doc["intervals"]:
        del interval["endpoints"]
    rows = rendered(intervals_table(doc))
    assert [r["row"] for r in rows] == ["total"] * 3


def test_numbers_are_plain() -> None:
    assert cell_text(0.00001) == "0.00001"
    assert cell_text(1234567.5) == "1234567.5"
    assert cell_text(12) == "12" and cell_text(None) == "" and cell_text(float("nan")) == ""
    data = b"".join(write_bytes_of(two_endpoint_run()))
    for line in data.decode().splitlines()[1:]:
        for cell in next(csv.reader([line])):
            assert "e-" not in cell and "e+" not in cell


def write_bytes_of(doc: dict[str, Any]) -> list[bytes]:
    from loadgen.output.csvfiles import render as render_csv

    return [render_csv(stats_table(doc)), render_csv(intervals_table(doc))]


def test_journey_runs_add_a_row_per_kind_and_their_iterations() -> None:
    doc = journey_run()
    rows = rendered(stats_table(doc))
    journeys = [r for r in rows if r["row"] == "journey"]
    assert [r["endpoint"] for r in journeys] == ["shopper", "browser"]
    shopper = doc["journeys"][0]["iterations"]
    assert int(journeys[0]["successes"]) == shopper["successes"]
    assert int(journeys[0]["failures"]) == shopper["failures"]
    seconds = rendered(intervals_table(doc))
    totals = [r for r in seconds if r["row"] == "total"]
    assert [int(r["iterations"]) for r in totals] == [i["iterations"] for i in doc["intervals"]]


def test_write_csv_writes_both_files(tmp_path: Path) -> None:
    doc = two_endpoint_run()
    stats, intervals = write_csv(str(tmp_path / "run"), doc)
    assert (stats, intervals) == (str(tmp_path / "run_stats.csv"),
                                  str(tmp_path / "run_intervals.csv"))
    assert read_csv(Path(stats).read_bytes())[0]["row"] == "total"


def capacity_doc() -> dict[str, Any]:
    """A capacity search's document: 2 steps, the first held, the second did not (as the
    search says: its own figures are those of the same synthetic run)."""
    held, failed = synthetic_run(), synthetic_run(ok=40)
    return {"schema": "loadgen-capacity/1", "tool": "loadgen", "status": "complete",
            "started_at": iso(0), "config": {}, "slos": ["p50<5ms"], "capacity_rps": 50.0,
            "verdict": "capacity: 50 req/s", "generator_limited": False,
            "steps": [{"rate": 50.0, "passed": True, "achieved_rps": 50.0, "p99_ms": 2.0,
                       "failure_share": 0.0, "slo_failures": [], "generator_limited": False,
                       "note": None, "result": held},
                      {"rate": 100.0, "passed": False, "achieved_rps": 99.0, "p99_ms": 9.0,
                       "failure_share": 0.0, "slo_failures": ["p50<5ms (actual 8 ms)"],
                       "generator_limited": False, "note": None, "result": failed}]}


def test_capacity_csv_has_the_steps() -> None:
    rows = rendered(stats_table(capacity_doc()))
    assert [(r["step"], r["rate"], r["row"]) for r in rows] == [
        ("1", "50", "total"), ("1", "50", "endpoint"), ("2", "100", "total"),
        ("2", "100", "endpoint")]
    seconds = rendered(intervals_table(capacity_doc()))
    assert {r["step"] for r in seconds} == {"1", "2"}


def test_bad_prefixes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="folder .* does not exist"):
        check_csv_prefix(str(tmp_path / "missing" / "run"))
    os.mkfifo(tmp_path / "run_intervals.csv")
    with pytest.raises(ConfigError, match="run_intervals.csv is not a regular file"):
        check_csv_prefix(str(tmp_path / "run"))
    (tmp_path / "dir_stats.csv").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        check_csv_prefix(str(tmp_path / "dir"))
    with pytest.raises(ConfigError, match="empty prefix"):
        check_csv_prefix(" ")
    check_csv_prefix(str(tmp_path / "fine"))


def test_report_refuses_a_bad_prefix_before_reading(tmp_path: Path) -> None:
    run = run_in_process("report", str(tmp_path / "absent.json"), "--csv",
                         str(tmp_path / "nowhere" / "x"))
    assert "folder" in one_line_error(run)
    run = run_in_process("report", str(tmp_path / "absent.json"), "--junit", str(tmp_path))
    assert "--junit" in one_line_error(run)


# -- JUnit -----------------------------------------------------------------------------------

def parsed(doc: dict[str, Any]) -> Any:
    """The XML read by junitparser, after a check of the JUnit XSD's required attributes."""
    data = render(doc)
    root = ET.fromstring(data)
    assert root.tag == "testsuites"
    for suite in root:
        assert suite.tag == "testsuite"
        assert {"name", "tests", "failures", "errors", "time"} <= set(suite.attrib)
        assert int(suite.get("tests", "")) == len(suite.findall("testcase"))
        assert int(suite.get("failures", "")) == len(suite.findall("testcase/failure"))
        float(suite.get("time", ""))
        # the JUnit XSD's timestamp: ISO 8601 without a zone or fraction
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp", ""))
        for case in suite:
            assert case.tag == "testcase"
            assert {"name", "classname", "time"} <= set(case.attrib)
            for failure in case.findall("failure"):
                assert failure.get("message")
    return junitparser.JUnitXml.fromstring(data)


def cases(xml: Any) -> dict[str, Any]:
    return {case.name: case for suite in xml for case in suite}


def test_thresholds_are_test_cases_with_their_actual_value() -> None:
    doc = two_endpoint_run(("p99<50ms", "rps>1000000", "GET /b: failures<1%"))
    xml = parsed(doc)
    found = cases(xml)
    assert set(found) == {"run completed", "p99<50ms", "rps>1000000", "GET /b: failures<1%"}
    assert found["p99<50ms"].is_passed and found["run completed"].is_passed
    (rps,) = found["rps>1000000"].result
    assert rps.message == f"rps>1000000 failed: actual {doc['summary']['rps']:.1f} req/s"
    (share,) = found["GET /b: failures<1%"].result
    assert share.message == "GET /b: failures<1% failed: actual 14.29% failures"   # 2 of 14
    suite = next(iter(xml))
    assert (suite.tests, suite.failures, suite.errors) == (4, 2, 0)
    assert suite.time == pytest.approx(doc["summary"]["duration_s"], abs=0.001)


def test_checks_are_a_test_case_per_endpoint() -> None:
    doc = two_endpoint_run()
    doc["endpoints"][0].update(checked=40, checks_failed={"body has id": 3, "status ok": 1})
    doc["endpoints"][1].update(checked=12, checks_failed={})
    found = cases(parsed(doc))
    (failure,) = found["GET /a: expect checks"].result
    assert failure.message == "40 responses checked, 4 failed a check: body has id (3), status ok (1)"
    assert found["GET /b: expect checks"].is_passed


def test_a_broken_run_fails_its_status_case_and_names_are_escaped() -> None:
    doc = two_endpoint_run()
    doc["status"] = "failed"
    doc["problems"] = ["worker 1 lost <pipe & closed>\x00"]
    found = cases(parsed(doc))
    (failure,) = found["run completed"].result
    assert failure.message == "the run failed: worker 1 lost <pipe & closed>\ufffd"


def test_capacity_search_as_junit() -> None:
    found = cases(parsed(capacity_doc()))
    assert found["capacity found"].is_passed
    assert found["p50<5ms"].is_passed   # the SLO judged at the step the verdict stands on
    failed = capacity_doc()
    failed["capacity_rps"] = None
    failed["verdict"] = "no rate held the SLOs"
    for step in failed["steps"]:
        step["passed"] = False
    (failure,) = cases(parsed(failed))["capacity found"].result
    assert failure.message == "no rate held the SLOs"


def test_files_that_cannot_be_written_at_the_end(tmp_path: Path, capsys: Any) -> None:
    """The folder went away during the run: one line, exit 3 (run, capacity); from
    ``report`` the same is bad input (exit 2)."""
    from loadgen import errors
    from loadgen.errors import InputError
    from loadgen.output.csvfiles import CsvSink
    from loadgen.output.junit import JunitSink

    doc, said = two_endpoint_run(), []
    gone = tmp_path / "gone"
    for sink in (CsvSink(str(gone / "run"), said.append), JunitSink(str(gone / "j.xml"),
                                                                    said.append)):
        assert sink.on_finish(doc) == errors.BROKEN
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all(line.startswith("loadgen: cannot write ") for line in lines)
    assert said == [] and not gone.exists()
    with pytest.raises(InputError, match="cannot write JUnit XML"):
        JunitSink(str(gone / "j.xml"), said.append, input_error=True).on_finish(doc)
