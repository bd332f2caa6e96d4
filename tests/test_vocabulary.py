"""One vocabulary for failures, read from documents in the new format and the old one.

A failure is a request that did not succeed (no 2xx response), split by status (non-2xx) and
by kind (no response: connect, timeout, ...).  These tests build documents by hand -- new
format (``failures_by_status``, ``failures_by_kind``, ``success_latency_ms``, intervals with
``successes``/``failures``) and old (``errors``) -- and check that the report, the progress
line, the thresholds, the document checks and the charts all say the same thing.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_report import LATENCY_KEYS, assert_real_png, block

from loadgen.cli import status_of
from loadgen.commands.report import report_command as _report_command
from loadgen.output.charts import draw_capacity, draw_summary, failure_rate, failure_share
from loadgen.output.progress import Progress
from loadgen.output.table import render_table
from loadgen.stats.failures import (
    failure_count,
    failures_by_kind,
    failures_by_status,
    interval_counts,
    percent_text,
    share_text,
)
from loadgen.stats.thresholds import evaluate, parse_thresholds, render_thresholds


# commands raise; the CLI prints the one line and exits with the status (loadgen.cli)
def report_command(*args: Any, **kwargs: Any) -> int:
    return status_of(_report_command, *args, **kwargs)


NO_LATENCY = dict.fromkeys(LATENCY_KEYS)


def new_block(codes: dict[str, int], kinds: dict[str, int] | None = None, base_ms: float = 1.0,
              success_ms: float | None = None, duration_s: float = 10.0) -> dict[str, Any]:
    """An S block in the new format, consistent by construction (requests = the counts)."""
    kinds = kinds or {}
    successes = sum(n for c, n in codes.items() if c.startswith("2"))
    requests = sum(codes.values()) + sum(kinds.values())
    s = block(requests, successes, base_ms, codes=codes, duration_s=duration_s)
    del s["errors"]
    s["failures_by_status"] = {c: n for c, n in codes.items() if not c.startswith("2")}
    s["failures_by_kind"] = kinds
    s["success_latency_ms"] = (NO_LATENCY if success_ms is None else
                               {k: success_ms * (i + 1) for i, k in enumerate(LATENCY_KEYS)})
    return s


def new_interval(t: float, successes: int, failures: int, p99: float | None = 1.0,
                 length_s: float = 1.0) -> dict[str, Any]:
    requests = successes + failures
    return {"t": t, "start": "2026-11-24T13:40:00.000+00:00", "length_s": length_s,
            "partial": length_s < 1.0, "requests": requests, "successes": successes,
            "failures": failures, "rps": requests / length_s,
            "latency_ms": {"p50": p99, "p90": p99, "p99": p99, "max": p99}}


def new_doc(endpoints: dict[str, dict[str, Any]], summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": "loadgen/1", "status": "complete", "problems": [], "model": "closed",
        "config": {"url": "http://localhost:5000", "endpoints": list(endpoints),
                   "concurrency": 10},
        "summary": summary,
        "endpoints": [{"endpoint": name, "concurrency": 10, **s} for name, s in endpoints.items()],
        "histograms": {}, "generator_limited": False, "generator": {"reasons": []},
        "intervals": [new_interval(float(t), 0, 100) for t in range(1, 11)],
    }


@pytest.fixture
def all_500() -> dict[str, Any]:
    """The run from the issue: every response a 500."""
    s = new_block({"500": 1000}, base_ms=0.3)
    return new_doc({"GET /": s}, s)


@pytest.fixture
def mixed() -> dict[str, Any]:
    ok = new_block({"200": 500}, success_ms=2.0)
    bad = new_block({"200": 480, "503": 15}, {"timeout": 3, "connect": 2}, success_ms=4.0)
    summary = new_block({"200": 980, "503": 15}, {"timeout": 3, "connect": 2}, success_ms=3.0)
    return new_doc({"GET /ok": ok, "GET /flaky": bad}, summary)


# --- the report ---------------------------------------------------------------------------------


def test_all_500_is_a_failure_everywhere_in_the_report(all_500):
    text = render_table(all_500)
    lines = text.splitlines()
    assert lines[0].endswith("| 1,000 requests in 10.0 s | 100 req/s | 0.00% success")
    assert ("Failures: 1,000 of 1,000 requests (100.00%; 0.00% success) — by status: "
            "500 × 1,000; by kind: none") in lines
    assert "Status codes: 500 × 1,000" in lines
    assert "Errors" not in text and "none (100" not in text


def test_successes_only_table_when_some_failed(mixed):
    lines = render_table(mixed).splitlines()
    assert "Every request, failures included:" in lines
    start = lines.index("Latency of successful requests only (2xx):")
    assert lines[start + 1].split()[:3] == ["Endpoint", "Successes", "Avg"]
    rows = {line.split("  ")[0]: line.split()[-8:] for line in lines[start + 3:start + 7]
            if not line.startswith("-")}
    assert rows["GET /flaky"][:3] == ["480", "8.00", "12.0"]     # successes, mean, p50
    assert rows["All endpoints"][0] == "980"
    assert ("Failures: 20 of 1,000 requests (2.00%; 98.00% success) — by status: 503 × 15; "
            "by kind: timeout × 3, connect × 2") in lines


def test_no_successes_only_table_without_failures():
    s = new_block({"200": 10}, success_ms=1.0)
    text = render_table(new_doc({"GET /": s}, s))
    assert "successful requests only" not in text and "failures included" not in text
    assert "Failures: none (100.00% success)" in text.splitlines()


def test_successes_only_table_shows_dashes_when_nothing_succeeded(all_500):
    lines = render_table(all_500).splitlines()
    start = lines.index("Latency of successful requests only (2xx):")
    total = next(line for line in lines[start:] if line.startswith("All endpoints"))
    assert total.split()[2:] == ["0"] + ["-"] * 7


def test_the_new_keys_win_over_status_codes():
    """``failures_by_status`` is what the engine counted; ``status_codes`` is only the fallback."""
    s = new_block({"200": 8, "404": 2})
    s["failures_by_status"] = {"404": 2, "599": 0}
    assert failures_by_status(s) == {"404": 2}
    assert failures_by_kind({"failures_by_kind": {"read": 1}, "errors": {"timeout": 9}}) == {
        "read": 1}


def test_old_documents_fall_back_to_errors_and_status_codes():
    old = block(12, 7, codes={"200": 7, "500": 2, "302": 1}, errors={"timeout": 2, "read": 0})
    assert failures_by_status(old) == {"500": 2, "302": 1}
    assert failures_by_kind(old) == {"timeout": 2}
    assert failure_count(old) == 5
    assert failure_count({"failures_by_status": {"500": 2}, "failures_by_kind": {"read": 1}}) == 3
    text = render_table(new_doc({"GET /": old}, old))
    assert ("Failures: 5 of 12 requests (41.67%; 58.33% success) — by status: 302 × 1, "
            "500 × 2; by kind: timeout × 2") in text.splitlines()


@pytest.mark.parametrize("part, whole, text", [
    (0, 10, "0.00%"), (10, 10, "100.00%"), (1, 3, "33.33%"), (3, 1_000_000, "<0.01%"),
    (999_997, 1_000_000, ">99.99%"), (1, 0, "-"),
])
def test_shares_never_round_to_a_misleading_0_or_100(part, whole, text):
    assert share_text(part, whole) == text


def test_percent_text_of_fractions():
    assert percent_text(0.5) == "50.00%" and percent_text(1e-9) == "<0.01%"
    assert percent_text(1 - 1e-9) == ">99.99%" and percent_text(1.0) == "100.00%"


# --- the progress line --------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def progress_line(intervals: list[dict[str, Any]], duration_s: float | None = 60.0) -> str:
    stream = Terminal()
    Progress(False, None, duration_s, stream).update(intervals)
    return stream.getvalue().removeprefix("\r").removesuffix("\x1b[K")


def test_progress_line_counts_failures_and_success_rate():
    intervals = [new_interval(float(t), 4000, 40) for t in range(1, 15)]
    intervals.append({**new_interval(15.0, 5000, 1, p99=10.2), "rps": 6177.3})
    assert progress_line(intervals) == ("[15s/60s] 61,561 requests | 6,177 req/s | 99.1% success"
                                        " | p99 10.2 ms (last second) | 561 failures")


def test_progress_line_for_all_500_says_so():
    line = progress_line([new_interval(1.0, 0, 1000)], duration_s=None)
    assert line == ("[1s] 1,000 requests | 1,000 req/s | 0.0% success | p99 1.00 ms "
                    "(last second) | 1,000 failures")


def test_progress_numbers_are_plain_notation():
    line = progress_line([new_interval(1.0, 1, 0, p99=3012.4)])
    assert "p99 3,012 ms" in line and "e+" not in line
    assert "| 1 failure" not in line and line.endswith("| 0 failures")
    assert progress_line([new_interval(1.0, 0, 0, p99=None)]).endswith(
        "0 requests | 0 req/s | - success | p99 - (last second) | 0 failures")


def test_progress_reads_old_intervals():
    """Old intervals counted only transport failures, as ``errors``; still readable."""
    old = {"t": 2.0, "requests": 10, "errors": 1, "rps": 10.0, "latency_ms": {"p99": 2.0}}
    assert interval_counts(old) == (9, 1)
    assert progress_line([old]).endswith("90.0% success | p99 2.00 ms (last second) | 1 failure")


# --- thresholds ---------------------------------------------------------------------------------


def test_thresholds_count_every_failure(all_500):
    results = evaluate(parse_thresholds(["failures<1%", "errors<1%", "success>=99%"]), all_500)
    assert [r.actual for r in results] == [1.0, 1.0, 0.0]
    assert render_thresholds(results).splitlines() == [
        "FAIL  failures<1%   (actual 100.00% failures)",
        "FAIL  errors<1%     (actual 100.00% failures)",
        "FAIL  success>=99%  (actual 0.00% success)",
        "Thresholds: 3 of 3 failed"]


def test_failures_and_success_are_complements(mixed):
    [failures, success] = evaluate(parse_thresholds(["GET /flaky: failures<=2%",
                                                     "GET /flaky: success>=98%"]), mixed)
    assert failures.actual + success.actual == pytest.approx(1.0)
    assert failures.actual == pytest.approx(20 / 500)
    assert not failures.passed and not success.passed


# --- loadgen report: the document checks --------------------------------------------------------


def save(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / "run.json"
    path.write_bytes(orjson.dumps(doc))
    return str(path)


def test_report_command_reads_the_new_format(tmp_path, capsys, mixed):
    assert report_command(save(tmp_path, mixed), False, None, False) == 0
    out, err = capsys.readouterr()
    assert err == "" and "Latency of successful requests only (2xx):" in out


@pytest.mark.parametrize("damage, words", [
    (lambda d: d["summary"].update(failures_by_kind={"timeout": "3"}),
     "summary: 'failures_by_kind' is not an object of counts"),
    (lambda d: d["endpoints"][1].update(failures_by_status=[503]),
     "endpoints[1]: 'failures_by_status' is not an object of counts"),
    (lambda d: d["summary"].update(success_latency_ms={"p99": "slow"}),
     "summary: 'success_latency_ms' is not an object of numbers"),
    (lambda d: d["summary"].update(failures="20"), "summary: 'failures' is not a number"),
    (lambda d: d["intervals"][2].update(failures=None, successes="many"),
     "intervals[2]: 'successes' is not a number"),
    (lambda d: d["intervals"][0].update(partial="no"), "intervals[0]: 'partial' is not true or"),
    (lambda d: d["intervals"][0].update(start=1.0), "intervals[0]: 'start' is not a string"),
    (lambda d: d["intervals"][0].update(errors=[1]), "intervals[0]: 'errors' is not a number"),
])
def test_damaged_new_keys_are_one_line(tmp_path, capsys, mixed, damage, words):
    damage(mixed)
    assert report_command(save(tmp_path, mixed), False, None, False) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert f"is not a valid loadgen results file: {words}" in err


# --- charts -------------------------------------------------------------------------------------


def test_failure_rate_per_second_from_new_and_old_intervals():
    assert failure_rate(new_interval(1.0, 75, 25, length_s=0.5)) == pytest.approx(50.0)
    assert failure_rate({"requests": 10, "errors": 2, "rps": 20.0}) == pytest.approx(4.0)
    assert failure_rate({"requests": 0, "rps": 0.0}) == 0.0


def test_chart_with_failures_over_time(tmp_path, mixed):
    mixed["intervals"] = [new_interval(float(t), 90, 10 * (t % 3)) for t in range(1, 8)]
    out = tmp_path / "failures.png"
    draw_summary(mixed, str(out))
    assert_real_png(out)


def test_capacity_chart_reads_failure_share_and_the_old_error_share(tmp_path):
    assert failure_share({"failure_share": 0.25, "error_share": 0.5}) == 0.25
    assert failure_share({"error_share": 0.5}) == 0.5
    steps = [{"rate": 100.0, "passed": True, "p99_ms": 5.0, "failure_share": 0.0},
             {"rate": 200.0, "passed": False, "p99_ms": 50.0, "error_share": 0.1}]
    out = tmp_path / "cap.png"
    draw_capacity({"steps": steps, "capacity_rps": 100.0, "slos": ["failures<1%"]}, str(out))
    assert_real_png(out)


# --- combined figures only over what was recorded -----------------------------------------------


def test_merged_min_ignores_an_endpoint_that_recorded_nothing():
    from loadgen.stats.metrics import Totals, latency_ms

    busy, idle = Totals(), Totals()
    for us in (5_000, 7_000, 9_000):
        busy.hist.record_value(us)
    busy.codes.update({"200": 3})
    merged = Totals()
    merged.merge(busy)
    merged.merge(idle)
    assert latency_ms(merged.hist)["min"] == latency_ms(busy.hist)["min"] == 5.0
    everything = Totals()
    everything.merge(idle)
    everything.merge(busy)
    assert latency_ms(everything.hist)["min"] == 5.0
