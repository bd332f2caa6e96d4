"""Tests for the renderers of a results document: terminal table and PNG chart.

Documents are built by hand so these tests need neither a network nor the engine.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest

from loadgen.output.charts import (
    draw_comparison,
    draw_summary,
    percentile_label,
    plotted_intervals,
    spectrum_points,
)
from loadgen.output.table import format_number, format_percent, render_table
from loadgen.stats.metrics import decode_histogram, latency_ms, new_histogram

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


# --- open-model documents built from real HDR histograms ------------------------------------


def encoded(values_us: list[int]) -> str:
    """A histogram as the results document stores it (base64 HDR, "" when empty)."""
    hist = new_histogram()
    for value in values_us:
        hist.record_value(value)
    return hist.encode().decode() if values_us else ""


def service_samples(rng: random.Random, n: int, median_us: float) -> list[int]:
    """Log-normal service times: a realistic body with a long right tail."""
    return [max(1, int(rng.lognormvariate(0, 0.5) * median_us)) for _ in range(n)]


def corrected(service_us: list[int], stall_every: int, stall_us: int) -> list[int]:
    """What the open model records: service time plus the wait behind a periodic stall,
    which is exactly what the closed model (and the service time) would hide."""
    return [s + (stall_us * (stall_every - i % stall_every) // stall_every
                 if (i // stall_every) % 20 == 0 else 0)
            for i, s in enumerate(service_us)]


def block_from(name: str | None, main_us: list[int], service_us: list[int] | None,
               duration_s: float) -> dict[str, Any]:
    """An S block whose latencies are read from real histograms, like the engine's."""
    n = len(main_us)
    s = block(n, n, duration_s=duration_s)
    s["latency_ms"] = latency_ms(decode_histogram(encoded(main_us)))
    if service_us is not None:
        s["service_time_ms"] = latency_ms(decode_histogram(encoded(service_us)))
    if name is not None:
        s = {"endpoint": name, "concurrency": 10, **s}
    return s


def intervals(seconds: int, rps: float, stall_at: tuple[int, ...] = (12, 13)) -> list[dict]:
    """A per-second series with a throughput dip and a latency spike during the stall."""
    series = []
    for t in range(1, seconds + 1):
        stalled = t in stall_at
        rate = rps * (0.4 if stalled else 1.0)
        base = 40.0 if stalled else 2.0
        series.append({"t": float(t), "requests": int(rate), "errors": 0, "rps": rate,
                       "latency_ms": {"p50": base, "p90": base * 1.8, "p99": base * 3.5,
                                      "max": base * 6}})
    return series


def open_doc(limited: bool = False, status: str = "complete", seed: int = 1) -> dict[str, Any]:
    """A complete open-model document: two endpoints, corrected and service histograms,
    intervals and a generator verdict, shaped like results.build_document's."""
    rng = random.Random(seed)
    names = ("GET /api/health", "POST /api/dataset/transform")
    service = {names[0]: service_samples(rng, 6000, 800),
               names[1]: service_samples(rng, 3000, 4000)}
    main = {name: corrected(values, 50, 60_000) for name, values in service.items()}
    all_main = [v for values in main.values() for v in values]
    all_service = [v for values in service.values() for v in values]
    reasons = ["sends left late: p99 12.3 ms behind schedule (limit 5 ms)",
               "a worker process used 99% of a CPU (limit 90%): add --workers or cores"]
    return {
        "schema": "loadgen/1", "tool": "loadgen 0.1.0", "status": status, "problems": [],
        "started_at": "2026-11-24T13:40:00.000+00:00", "model": "open",
        "config": {"url": "http://localhost:5000", "endpoints": list(names), "requests": None,
                   "duration_s": 30.0, "concurrency": 10, "workers": 2, "model": "open",
                   "schedule": [{"duration_s": None, "start_rate": 300.0, "end_rate": 300.0}]},
        "summary": block_from(None, all_main, all_service, 30.0),
        "endpoints": [block_from(n, main[n], service[n], 30.0) for n in names],
        "histograms": {n: encoded(main[n]) for n in names},
        "service_histograms": {n: encoded(service[n]) for n in names},
        "histogram_unit": "us",
        "generator_limited": limited,
        "generator": {"lateness_ms": {"p50": 0.4, "p99": 12.3 if limited else 0.9,
                                      "max": 40.0 if limited else 2.5},
                      "cpu_percent_max": 99.0 if limited else 41.5,
                      "reasons": reasons if limited else []},
        "workers": [],
        "intervals": intervals(30, 300.0),
    }


@pytest.fixture
def two_endpoint_doc() -> dict[str, Any]:
    health = block(5000, 5000, 0.412)
    users = block(5004, 4990, 12.3, codes={"200": 4990, "503": 10},
                  errors={"timeout": 3, "connect": 1})
    summary = block(10004, 9990, 1234.0, codes={"503": 10, "200": 9990},
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
    assert users.split()[2:6] == ["5,004", "10", "99.7", "500"]
    assert users.split()[6] == "12.3"
    assert total.split()[2:7] == ["10,004", "10", "99.9", "1,000", "1234"]


def test_table_columns_are_aligned(two_endpoint_doc):
    lines = [line for line in table_lines(render_table(two_endpoint_doc))
             if line.startswith(("Endpoint", "GET ", "All endpoints"))]
    # Numbers are right-aligned and the last column is never padded: all lines end together.
    assert len({len(line) for line in lines}) == 1


def test_status_codes_and_failures_are_listed(two_endpoint_doc):
    """An old document (``errors``, no ``failures_by_status``): both splits are still named."""
    text = render_table(two_endpoint_doc)
    assert "Status codes: 200 × 9,990   503 × 10" in text
    assert ("Failures: 14 of 10,004 requests (0.14%; 99.86% success) — by status: 503 × 10; "
            "by kind: timeout × 3, connect × 1") in text.splitlines()
    assert "Errors" not in text


def test_header_line_has_status_url_duration_and_rate(two_endpoint_doc):
    first = table_lines(render_table(two_endpoint_doc))[0]
    for part in ("complete", "http://localhost:5000", "10,004 requests", "10.0 s", "1,000 req/s",
                 "99.86% success"):
        assert part in first


def test_no_failures_says_none():
    text = render_table(make_doc({"GET /": block(10, 10)}))
    assert "Failures: none (100.00% success)" in text.splitlines()
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
    assert ("Failures: 4 of 4 requests (100.00%; 0.00% success) — by status: none; "
            "by kind: connect × 4") in text.splitlines()
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
    code = "import sys, loadgen.output.table, loadgen.output.charts; print('matplotlib' in sys.modules)"
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


# --- open model, generator verdict, running status: table ------------------------------------


def section(text: str, caption: str) -> list[str]:
    """The table lines under ``caption`` up to the next blank line."""
    lines = table_lines(text)
    start = lines.index(caption) + 1
    end = lines.index("", start)
    return lines[start:end]


def test_closed_document_has_no_open_model_sections(two_endpoint_doc):
    text = render_table(two_endpoint_doc)
    assert "corrected" not in text
    assert "Service time" not in text
    assert "GENERATOR LIMITED" not in text
    assert "open model" not in text


def test_open_document_labels_latency_as_corrected_and_adds_service_time():
    doc = open_doc()
    text = render_table(doc)
    lines = table_lines(text)
    assert lines.index("Latency, corrected (from intended send time):") < lines.index(
        "Service time (uncorrected, from actual send):")
    main = section(text, "Latency, corrected (from intended send time):")
    assert main[0].startswith("Endpoint") and "P99 (ms)" in main[0]
    service = section(text, "Service time (uncorrected, from actual send):")
    assert service[0].split() == ["Endpoint", "Median", "(ms)", "P90", "(ms)", "P99", "(ms)",
                                  "P99.9", "(ms)", "Max", "(ms)"]
    rows = {r.split("  ")[0].strip(): r.split()[-5:] for r in service
            if r.startswith(("GET ", "POST ", "All endpoints"))}
    assert list(rows) == ["GET /api/health", "POST /api/dataset/transform", "All endpoints"]
    health = doc["endpoints"][0]["service_time_ms"]
    assert rows["GET /api/health"] == [format_number(health[k])
                                       for k in ("p50", "p90", "p99", "p999", "max")]
    assert len({len(r) for r in service if not r.startswith("-")}) == 1  # aligned
    # The corrected tail is far above the service-time tail: both tables show their own.
    assert doc["summary"]["latency_ms"]["p99"] > 3 * doc["summary"]["service_time_ms"]["p99"]


def test_open_document_header_names_model_and_target_rate_and_generator_verdict():
    lines = table_lines(render_table(open_doc()))
    assert lines[0].startswith("Run complete: http://localhost:5000")
    assert lines[0].endswith("| open model, target 300 req/s")
    assert lines[1].startswith("Generator: kept the schedule (send lag p50 0.400 ms")
    assert "worker CPU max 42%" in lines[1]


def test_endpoint_without_service_time_shows_dashes():
    doc = open_doc()
    doc["endpoints"][1]["service_time_ms"] = {k: None for k in LATENCY_KEYS}
    del doc["endpoints"][0]["service_time_ms"]
    service = section(render_table(doc), "Service time (uncorrected, from actual send):")
    for row in service[2:4]:
        assert row.split()[-5:] == ["-"] * 5


def test_generator_limited_banner_comes_first_with_reasons():
    doc = open_doc(limited=True)
    lines = table_lines(render_table(doc))
    assert set(lines[0]) == {"!"}
    assert lines[1] == ("!! GENERATOR LIMITED: loadgen could not keep the requested rate; "
                        "these numbers describe loadgen's limit, not the server's")
    assert lines[2] == "!!   - sends left late: p99 12.3 ms behind schedule (limit 5 ms)"
    assert lines[3].startswith("!!   - a worker process used 99% of a CPU")
    assert "p99 12.3 ms" in lines[4] and "worker CPU max 99%" in lines[4]
    assert set(lines[5]) == {"!"} and len(lines[5]) == len(lines[0]) >= len(lines[1])
    assert lines[6].startswith("Run complete:")
    assert not any(line.startswith("Generator:") for line in lines)


def test_generator_limited_closed_run_says_loadgen_was_the_bottleneck():
    doc = make_doc({"GET /": block(10, 10)})
    doc.update(model="closed", generator_limited=True,
               generator={"lateness_ms": None, "cpu_percent_max": 97.0,
                          "reasons": ["a worker process used 97% of a CPU"]})
    text = render_table(doc)
    assert text.splitlines()[1] == ("!! GENERATOR LIMITED: loadgen itself was the bottleneck; "
                                    "these numbers describe loadgen's limit, not the server's")
    assert "!!   - a worker process used 97% of a CPU" in text
    assert "Service time" not in text and "corrected" not in text


def test_generator_not_limited_closed_run_adds_nothing(two_endpoint_doc):
    before = render_table(two_endpoint_doc)
    two_endpoint_doc.update(model="closed", generator_limited=False,
                            generator={"lateness_ms": None, "cpu_percent_max": 12.0,
                                       "reasons": []})
    assert render_table(two_endpoint_doc) == before


def test_running_status_is_shown_in_the_header():
    first = table_lines(render_table(open_doc(status="running")))[0]
    assert first.startswith("Run running (in progress: numbers so far): http://localhost:5000")
    closed = make_doc({"GET /": block(10, 10)}, status="running")
    assert table_lines(render_table(closed))[0].startswith("Run running")


def test_service_time_without_model_key_still_counts_as_open():
    doc = open_doc()
    del doc["model"]
    assert "Latency, corrected (from intended send time):" in render_table(doc)


# --- chart: four panels, spectrum, comparison -------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    import matplotlib.image

    height, width = matplotlib.image.imread(path).shape[:2]
    return width, height


def test_chart_open_document_has_four_panels(tmp_path):
    out = tmp_path / "open.png"
    assert draw_summary(open_doc(), str(out)) == str(out)
    assert_real_png(out)
    assert png_size(out) == (1300, 900)


def test_chart_generator_limited_running_document(tmp_path):
    out = tmp_path / "limited.png"
    draw_summary(open_doc(limited=True, status="running"), str(out))
    assert_real_png(out)


def test_chart_old_document_without_series_or_histograms_keeps_two_panels(tmp_path):
    out = tmp_path / "old.png"
    draw_summary(make_doc({"GET /": block(10, 10)}), str(out))
    assert_real_png(out)
    assert png_size(out) == (1100, 500)


def test_chart_closed_document_with_histograms_but_no_intervals(tmp_path):
    doc = make_doc({"GET /": block(10, 10)})
    doc["histograms"] = {"GET /": encoded([900, 1000, 1100, 5000])}
    out = tmp_path / "hist-only.png"
    draw_summary(doc, str(out))
    assert_real_png(out)
    assert png_size(out) == (1300, 900)


def test_chart_intervals_without_responses_and_empty_histograms(tmp_path):
    doc = make_doc({"GET /down": block(40, 0, None, codes={}, errors={"connect": 40})})
    doc["histograms"] = {"GET /down": ""}
    doc["service_histograms"] = {"GET /down": ""}
    doc["intervals"] = [{"t": float(t), "requests": 10, "errors": 10, "rps": 10.0,
                         "latency_ms": {"p50": None, "p90": None, "p99": None, "max": None}}
                        for t in range(1, 5)]
    out = tmp_path / "down.png"
    draw_summary(doc, str(out))
    assert_real_png(out)


def test_chart_single_interval_and_single_sample(tmp_path):
    doc = make_doc({"GET /": block(1, 1, 3.0)})
    doc["histograms"] = {"GET /": encoded([3000])}
    doc["intervals"] = [{"t": 0.2, "requests": 1, "errors": 0, "rps": 5.0,
                         "latency_ms": {"p50": 3.0, "p90": 3.0, "p99": 3.0, "max": 3.0}}]
    out = tmp_path / "tiny.png"
    draw_summary(doc, str(out))
    assert_real_png(out)


def test_a_last_sliver_of_a_second_is_not_plotted():
    doc = open_doc()
    sliver = {"t": 30.002, "requests": 1, "errors": 0, "rps": 408.0,
              "latency_ms": {"p50": 5.8, "p90": 5.8, "p99": 5.8, "max": 5.8}}
    doc["intervals"].insert(0, sliver)  # out of order on purpose: the series is sorted first
    assert [i["t"] for i in plotted_intervals(doc)] == [float(t) for t in range(1, 31)]
    short_run = {"intervals": [{"t": 0.252, "requests": 3000, "rps": 11904.0}]}
    assert len(plotted_intervals(short_run)) == 1  # the only interval of a short run stays
    assert plotted_intervals({"intervals": [{"requests": 1}, "junk"]}) == []


@pytest.mark.parametrize("x, label", [
    (1, "0%"), (2, "50%"), (10, "90%"), (100, "99%"), (1000, "99.9%"), (10_000, "99.99%"),
    (100_000, "99.999%"),
])
def test_percentile_labels_follow_the_nines(x, label):
    assert percentile_label(x) == label


def test_spectrum_points_cover_the_histogram_from_min_to_max():
    values = list(range(100, 10_100))  # 10,000 samples, 0.1 .. 10 ms
    hist = decode_histogram(encoded(values))
    xs, ys = spectrum_points(hist)
    assert xs[0] == 1.0 and xs[-1] == pytest.approx(10_000)
    assert xs == sorted(xs) and ys == sorted(ys)  # a spectrum never goes down
    assert ys[0] == pytest.approx(0.1, rel=1e-3)
    assert ys[-1] == hist.get_max_value() / 1000.0
    median = ys[min(range(len(xs)), key=lambda i: abs(xs[i] - 2.0))]
    assert median == pytest.approx(5.1, rel=0.02)


def test_spectrum_points_of_one_sample():
    xs, ys = spectrum_points(decode_histogram(encoded([2500])))
    assert xs[0] == 1.0
    assert all(y == pytest.approx(2.5, rel=1e-3) for y in ys)  # one bucket: a flat line


def test_comparison_chart_overlays_runs(tmp_path):
    closed = make_doc({"GET /": block(10, 10)})
    closed["histograms"] = {"GET /": encoded(service_samples(random.Random(5), 2000, 1500))}
    closed["intervals"] = intervals(20, 500.0, stall_at=())
    empty = make_doc({"GET /": block(0, 0, None)})
    out = tmp_path / "compare.png"
    docs = [open_doc(), open_doc(limited=True, seed=2), closed, empty]
    assert draw_comparison(docs, ["open", "limited", "closed", "empty"], str(out)) == str(out)
    assert_real_png(out)


def test_comparison_merges_endpoints_of_each_run(tmp_path, monkeypatch):
    from loadgen.output import charts

    seen: list[int] = []
    real = charts.spectrum_points
    monkeypatch.setattr(charts, "spectrum_points",
                        lambda hist: (seen.append(hist.get_total_count()), real(hist))[1])
    draw_comparison([open_doc()], ["run"], str(tmp_path / "merged.png"))
    assert seen == [9000]  # both endpoints (6,000 + 3,000) in one line


def test_comparison_needs_one_label_per_document(tmp_path):
    with pytest.raises(ValueError):
        draw_comparison([open_doc()], ["a", "b"], str(tmp_path / "x.png"))
    with pytest.raises(ValueError):
        draw_comparison([], [], str(tmp_path / "x.png"))


def test_new_charts_do_not_leak_pyplot_figures(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    draw_summary(open_doc(), str(tmp_path / "a.png"))
    draw_comparison([open_doc()], ["a"], str(tmp_path / "b.png"))
    assert len(plt.get_fignums()) == before


# --- the successes table says what counted as a success ----------------------------------------


def success_doc(expect_status: dict[str, str] | None) -> dict[str, Any]:
    """Two endpoints, some failures (so the successes table is drawn), the saved sets."""
    a, b = block(100, 90, codes={"201": 90, "500": 10}), block(100, 100, codes={"200": 100})
    for s in (a, b):
        s["success_latency_ms"] = s["latency_ms"]
    doc = make_doc({"POST /a": a, "GET /b": b}, summary=block(200, 190, codes={
        "200": 100, "201": 90, "500": 10}))
    doc["summary"]["success_latency_ms"] = doc["summary"]["latency_ms"]
    if expect_status is not None:
        doc["config"]["expect_status"] = expect_status
    return doc


@pytest.mark.parametrize("expect_status, caption", [
    (None, "Latency of successful requests only (2xx):"),   # a file older than the sets
    ({"POST /a": "200-299", "GET /b": "200-299"}, "Latency of successful requests only (2xx):"),
    ({"POST /a": "201", "GET /b": "201"},
     "Latency of successful requests only (expected statuses: 201):"),
    ({"POST /a": "200-399", "GET /b": "200-399"},
     "Latency of successful requests only (expected statuses: 200-399):"),
    ({"POST /a": "201", "GET /b": "200-299"},
     "Latency of successful requests only (expected statuses: POST /a 201; GET /b 200-299):"),
])
def test_success_caption_names_the_success_set(expect_status, caption):
    lines = render_table(success_doc(expect_status)).splitlines()
    assert caption in lines
    assert sum("successful requests only" in line for line in lines) == 1
    if expect_status and set(expect_status.values()) != {"200-299"}:
        assert "(2xx)" not in "\n".join(lines)
