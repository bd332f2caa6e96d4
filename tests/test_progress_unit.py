"""The live progress line (``loadgen.output.progress.Progress``) on synthetic intervals, in memory."""

from __future__ import annotations

import io
from typing import Any

import pytest

from loadgen.output import progress
from loadgen.output.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def second(t: float, requests: int, failures: int, p99: float | None = 4.2,
           rps: float | None = None) -> dict[str, Any]:
    return {"t": t, "length_s": 1.0, "partial": False, "requests": requests,
            "successes": requests - failures, "failures": failures,
            "rps": float(requests) if rps is None else rps,
            "latency_ms": {"p50": 1.0, "p90": 2.0, "p99": p99, "max": 9.0}}


def test_terminal_line_counts_since_the_start_and_is_rewritten() -> None:
    out = Terminal()
    live = Progress(quiet=False, requests=None, duration_s=60, stream=out)
    live.update([second(1.0, 1000, 0)])
    live.update([second(1.0, 1000, 0), second(2.0, 1200, 300, p99=1234.0)])
    text = out.getvalue()
    assert text.count("\r") == 2 and "\n" not in text
    line = text.rsplit("\r", 1)[1].removesuffix("\x1b[K")
    assert line.startswith("[2s/60s] 2,200 requests | 1,200 req/s | ")
    assert f"{100 * 1900 / 2200:.1f}% success" in line
    assert "p99 1,234 ms (last second)" in line
    assert line.endswith("| 300 failures")
    live.erase()
    assert out.getvalue().endswith("\r\x1b[K")
    live.close()   # erased: nothing left to end with a newline
    assert not out.getvalue().endswith("\n")


def test_failures_that_are_all_500s_are_never_shown_as_full_success() -> None:
    out = Terminal()
    live = Progress(quiet=False, requests=5000, duration_s=None, stream=out)
    live.update([second(1.0, 2000, 1)])
    line = out.getvalue()
    assert "[1s] 2,000/5,000 requests" in line
    assert ">99.9% success" in line and "| 1 failure" in line and "1 failures" not in line


def test_old_intervals_count_their_errors() -> None:
    out = Terminal()
    live = Progress(quiet=False, requests=None, duration_s=None, stream=out)
    live.update([{"t": 1.0, "requests": 10, "errors": 4, "rps": 10.0,
                  "latency_ms": {"p50": 1.0, "p90": 1.0, "p99": None, "max": 1.0}}])
    assert "60.0% success" in out.getvalue() and "p99 -" in out.getvalue()
    assert live.successes == 6 and live.failures == 4


def test_plain_lines_into_a_file_are_spaced_out(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    live = Progress(quiet=False, requests=None, duration_s=10, stream=out)
    live.update([second(1.0, 10, 0)])
    assert out.getvalue() == ""    # the first line waits PLAIN_EVERY_S
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    live.update([second(1.0, 10, 0), second(2.0, 10, 0)])
    assert out.getvalue().count("\n") == 1 and "\r" not in out.getvalue()
    assert out.getvalue().startswith("[2s/10s] 20 requests")
    live.close()
    assert out.getvalue().count("\n") == 1   # nothing live to end


def test_quiet_writes_nothing() -> None:
    out = Terminal()
    live = Progress(quiet=True, requests=None, duration_s=None, stream=out)
    live.update([second(1.0, 10, 0)])
    live.update([])
    live.close()
    assert out.getvalue() == ""


def test_a_journey_run_counts_its_completed_iterations() -> None:
    out = Terminal()
    live = Progress(quiet=False, requests=None, duration_s=None, stream=out, iterations=500)
    live.update([{**second(1.0, 30, 0), "iterations": 10},
                 {**second(2.0, 33, 1), "iterations": 11}])
    line = out.getvalue().rsplit("\r", 1)[1]
    assert line.startswith("[2s] 63 requests | 21/500 iterations | 33.0 req/s | ")
    unbounded = Terminal()
    Progress(quiet=False, requests=None, duration_s=60, stream=unbounded).update(
        [{**second(1.0, 30, 0), "iterations": 0}])
    assert "| 0 iterations |" in unbounded.getvalue()


def test_an_endpoint_run_says_nothing_of_iterations() -> None:
    out = Terminal()
    Progress(quiet=False, requests=None, duration_s=60, stream=out).update([second(1.0, 30, 0)])
    assert "iteration" not in out.getvalue()


def test_huge_values_print_in_plain_notation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never ``3e+03``: big latencies, rates and lengths keep every digit, with separators."""
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    out = io.StringIO()   # not a terminal: the plain line
    live = Progress(quiet=False, requests=None, duration_s=1_000_000, stream=out)
    live.update([second(1234.0, 1_234_567, 4_321, p99=3012.4, rps=1_234_567.0)])
    line = out.getvalue()
    assert line.startswith("[1,234s/1,000,000s] 1,234,567 requests | 1,234,567 req/s | ")
    assert "p99 3,012 ms (last second)" in line
    assert f"{100 * (1_234_567 - 4_321) / 1_234_567:.1f}% success" in line
    assert line.endswith("| 4,321 failures\n")
    assert "e+" not in line


def test_seconds_text_is_plain() -> None:
    assert [progress.seconds_text(s) for s in (60.0, 1.5, 0.25, 1e6, 90061.0)] == [
        "60", "1.5", "0.25", "1,000,000", "90,061"]
