"""Tests for the renderers of a results document: terminal table and PNG chart.

Documents are built by hand so these tests need neither a network nor the engine.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from loadgen.charts import draw_summary
from loadgen.report import format_number, format_percent, render_table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LATENCY_KEYS = ("min", "mean", "p50", "p75", "p90", "p95", "p99", "p999", "max")


def block(requests: int, successes: int, base_ms: float | None = 10.0,
          codes: dict[str, int] | None = None, errors: dict[str, int] | None = None,
          duration_s: float = 10.0) -> dict[str, Any]:
    """An S block; ``base_ms=None`` means no latency samples (all latencies null)."""
    if base_ms is None:
        latency = {k: None for k in LATENCY_KEYS}
    else:
        factors = (0.5, 1.0, 0.9, 1.1, 1.5, 2.0, 3.0, 4.0, 5.0)
        latency = {k: base_ms * f for k, f in zip(LATENCY_KEYS, factors)}
    return {
        "requests": requests, "successes": successes, "failures": requests - successes,
        "success_rate": successes / requests if requests else 0.0,
        "rps": requests / duration_s, "duration_s": duration_s, "latency_ms": latency,
        "status_codes": codes if codes is not None else ({"200": successes} if successes else {}),
        "errors": errors or {}, "bytes_in": 100 * requests, "bytes_out": 50 * requests,
    }


def make_doc(endpoints: dict[str, dict[str, Any]], summary: dict[str, Any] | None = None,
             status: str = "complete") -> dict[str, Any]:
    """A results document with the given endpoint blocks (name -> S)."""
    entries = [{"endpoint": name, "concurrency": 10, **s} for name, s in endpoints.items()]
    if summary is None:
        summary = next(iter(endpoints.values())) if endpoints else block(0, 0, None)
    return {
        "schema": "loadgen/1", "status": status,
        "config": {"url": "http://localhost:5000", "endpoints": [e["endpoint"] for e in entries],
                   "method": "GET", "requests": summary["requests"], "concurrency": 10,
                   "workers": 2, "duration_s": None, "timeout_s": 10.0, "auth": False},
        "summary": summary, "endpoints": entries, "histograms": {},
    }


@pytest.fixture
def two_endpoint_doc() -> dict[str, Any]:
    health = block(5000, 5000, 0.412)
    users = block(5000, 4990, 12.3, codes={"200": 4990, "503": 10},
                  errors={"timeout": 3, "connect": 1})
    summary = block(10000, 9990, 1234.0, codes={"503": 10, "200": 9990},
                    errors={"timeout": 3, "connect": 1})
    return make_doc({"GET /api/health": health, "GET /api/users": users}, summary)


def table_lines(text: str) -> list[str]:
    return text.splitlines()


# --- table ------------------------------------------------------------------------------------


def test_table_has_a_row_per_endpoint_and_an_all_endpoints_row(two_endpoint_doc):
    text = render_table(two_endpoint_doc)
    rows = [line for line in table_lines(text) if line.startswith(("GET ", "All endpoints"))]
    assert [r.split("  ")[0].strip() for r in rows] == [
        "GET /api/health", "GET /api/users", "All endpoints"]


def test_table_headers_are_in_order_and_say_milliseconds(two_endpoint_doc):
    header = next(line for line in table_lines(render_table(two_endpoint_doc))
                  if line.startswith("Endpoint"))
    names = ["Endpoint", "Requests", "Concurrency", "Success %", "Req/s", "Avg (ms)",
             "Median (ms)", "P95 (ms)", "P99 (ms)", "P99.9 (ms)", "Min (ms)", "Max (ms)"]
    positions = [header.index(n) for n in names]
    assert positions == sorted(positions)


def test_table_numbers_are_formatted(two_endpoint_doc):
    text = render_table(two_endpoint_doc)
    health = next(line for line in table_lines(text) if line.startswith("GET /api/health"))
    users = next(line for line in table_lines(text) if line.startswith("GET /api/users"))
    total = next(line for line in table_lines(text) if line.startswith("All endpoints"))
    assert health.split()[2:] == ["5,000", "10", "100.0", "500", "0.412", "0.371", "0.824",
                                  "1.24", "1.65", "0.206", "2.06"]
    assert users.split()[2:6] == ["5,000", "10", "99.8", "500"]
    assert users.split()[6] == "12.3"
    assert total.split()[2:7] == ["10,000", "10", "99.9", "1,000", "1234"]


def test_table_columns_are_aligned(two_endpoint_doc):
    lines = [line for line in table_lines(render_table(two_endpoint_doc))
             if line.startswith(("Endpoint", "GET ", "All endpoints"))]
    # Numbers are right-aligned and the last column is never padded: all lines end together.
    assert len({len(line) for line in lines}) == 1


def test_status_codes_and_errors_are_listed(two_endpoint_doc):
    text = render_table(two_endpoint_doc)
    assert "Status codes: 200 × 9,990   503 × 10" in text
    assert "Errors: timeout × 3, connect × 1" in text


def test_header_line_has_status_url_duration_and_rate(two_endpoint_doc):
    first = table_lines(render_table(two_endpoint_doc))[0]
    for part in ("complete", "http://localhost:5000", "10,000 requests", "10.0 s", "1,000 req/s"):
        assert part in first


def test_no_errors_says_none():
    text = render_table(make_doc({"GET /": block(10, 10)}))
    assert "Errors: none" in text
    assert "Status codes: 200 × 10" in text
    assert "All endpoints" in text  # kept even for a single endpoint


def test_endpoint_without_samples_shows_dashes():
    dead = block(0, 0, None, duration_s=5.0)
    failing = block(4, 0, None, codes={}, errors={"connect": 4}, duration_s=5.0)
    doc = make_doc({"GET /dead": dead, "GET /down": failing}, summary=failing, status="failed")
    text = render_table(doc)
    dead_row = next(line for line in table_lines(text) if line.startswith("GET /dead"))
    down_row = next(line for line in table_lines(text) if line.startswith("GET /down"))
    assert dead_row.split()[2:] == ["0", "10", "-", "0"] + ["-"] * 7
    assert down_row.split()[2:5] == ["4", "10", "0.0"]
    assert "Status codes: none" in text
    assert "Errors: connect × 4" in text
    assert text.splitlines()[0].startswith("Run failed")


def test_problems_are_shown():
    doc = make_doc({"GET /": block(10, 10)}, status="interrupted")
    doc["problems"] = ["worker 1 exited early"]
    assert "worker 1 exited early" in render_table(doc)


@pytest.mark.parametrize("value, expected", [
    (0.412, "0.412"), (0.0412, "0.041"), (1.2345, "1.23"), (12.345, "12.3"),
    (123.4, "123"), (1234.4, "1234"), (0.0, "0"), (None, "-"),
])
def test_format_number(value, expected):
    assert format_number(value) == expected


def test_format_number_thousands():
    assert format_number(12345.6, thousands=True) == "12,346"


def test_success_percent_never_hides_a_failure_or_a_success():
    assert format_percent(9999 / 10000, 10000, 9999) == ">99.9"
    assert format_percent(1 / 10000, 10000, 1) == "<0.1"
    assert format_percent(1.0, 5, 5) == "100.0"
    assert format_percent(0.0, 0, 0) == "-"


def test_report_does_not_import_matplotlib():
    # The table is rendered in processes that must stay light.
    code = "import sys, loadgen.report, loadgen.charts; print('matplotlib' in sys.modules)"
    import subprocess
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


# --- chart ------------------------------------------------------------------------------------


def assert_real_png(path: Path) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = matplotlib.image.imread(path)
    height, width = pixels.shape[:2]
    assert width >= 800 and height >= 400
    assert pixels.std() > 0  # not a blank canvas


def test_chart_single_endpoint(tmp_path, two_endpoint_doc):
    doc = make_doc({"GET /api/health": block(100, 100, 3.2)})
    out = tmp_path / "one.png"
    assert draw_summary(doc, str(out)) == str(out)
    assert_real_png(out)


def test_chart_five_endpoints_with_long_names(tmp_path):
    endpoints = {f"POST /api/v1/some/rather/long/resource/{i}": block(1000, 1000 - 37 * i, 2.0 ** i)
                 for i in range(5)}
    out = tmp_path / "five.png"
    draw_summary(make_doc(endpoints, block(5000, 4630, 8.0)), str(out))
    assert_real_png(out)


def test_chart_endpoint_without_successes_or_latency(tmp_path):
    endpoints = {"GET /ok": block(50, 50, 4.0),
                 "GET /down": block(50, 0, None, codes={}, errors={"connect": 50}),
                 "GET /never": block(0, 0, None)}
    out = tmp_path / "gaps.png"
    draw_summary(make_doc(endpoints, block(100, 50, 4.0), status="interrupted"), str(out))
    assert_real_png(out)


def test_chart_does_not_leak_pyplot_figures(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    doc = make_doc({"GET /": block(10, 10)})
    for i in range(3):
        draw_summary(doc, str(tmp_path / f"{i}.png"))
    assert len(plt.get_fignums()) == before
