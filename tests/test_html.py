"""``--html FILE``: the self-contained report page (loadgen.output.html).

Fast tests render synthetic documents (tests/synthetic.py) and read the page
with the standard library's HTML parser; one real short run writes the page
through ``run --html`` and ``report --html``; a real browser (headless
Chromium, network off) opens it, and its DOM must hold the JSON's figures.
"""

from __future__ import annotations

import copy
import html
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import RefusingPort, loadgen, one_line_error, run_in_process
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from synthetic import endpoints_run, journey_run, monitored, synthetic_run

from loadgen.output.charts import plotted_intervals
from loadgen.output.html import MAX_ENDPOINT_LINES, HtmlSink, render_comparison_html, render_html
from loadgen.output.results import ResultsError
from loadgen.output.table import format_number
from loadgen.output.validate import check_document
from loadgen.schema import CAPACITY_SCHEMA

BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser")
                if shutil.which(name)), None)
SECRET = "hunter2-not-for-reports"
NASTY = '<script>alert("x")</script>&"\'$x$'


class Page(HTMLParser):
    """The page as a reader sees it: its text, each element's attributes, by tag."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def joined(self) -> str:
        return " ".join(" ".join(self.text).split())

    def by_id(self, ident: str) -> dict[str, str | None]:
        found = [attrs for _, attrs in self.tags if attrs.get("id") == ident]
        assert len(found) == 1, (ident, len(found))
        return found[0]


def assert_self_contained(text: str) -> None:
    """Nothing the page would fetch: no script, no embedded object, no stylesheet link, no
    reference that is not to an id in the page itself (``#...``)."""
    tags = Page(text).tags
    assert not {"script", "link", "iframe", "img", "object", "embed", "image"} & {
        tag for tag, _ in tags}
    for _, attrs in tags:
        assert "src" not in attrs and not any(name.startswith("on") for name in attrs), attrs
        for name in ("href", "xlink:href"):
            value = attrs.get(name)
            assert value is None or value.startswith("#"), (name, value)
    assert "@import" not in text
    assert re.findall(r"url\(\s*([^)]*)\)", text) == re.findall(r"url\((#[^)]*)\)", text)


def figure_svg(text: str, chart: str) -> str:
    """The ``<figure>`` of one chart, as text (its SVG and caption)."""
    return text.split(f'id="chart-{chart}"', 1)[1].split("</figure>", 1)[0]


def series_rows(text: str) -> dict[str, list[str]]:
    """The per-endpoint series table, by row label: its other cells' text (peak req/s,
    when, highest p50, when, highest p99, when)."""
    table = text.split('<table id="endpoint-series">', 1)[1].split("</table>", 1)[0]
    body = table.split("<tbody>", 1)[1]
    rows: dict[str, list[str]] = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body, flags=re.DOTALL):
        cells = [html.unescape(re.sub(r"<[^>]*>", "", cell))
                 for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.DOTALL)]
        rows[cells[0]] = cells[1:]
    return rows


def figures_of(doc: dict[str, Any]) -> list[str]:
    """What the page must show of a run document: request count, p99, endpoint names."""
    summary = doc["summary"]
    return [f"{summary['requests']:,}", format_number(summary["latency_ms"]["p99"]),
            *(e["endpoint"] for e in doc["endpoints"])]


# --- synthetic documents ------------------------------------------------------------------------


def test_a_closed_run_shows_its_figures_tables_and_charts() -> None:
    doc = synthetic_run()
    text = render_html(doc)
    page = Page(text)
    words = page.joined()
    for figure in figures_of(doc):
        assert figure in words, figure
    assert page.by_id("summary-requests")["data-value"] == str(doc["summary"]["requests"])
    assert page.by_id("summary-p99")["data-value"] == str(doc["summary"]["latency_ms"]["p99"])
    assert "HTTP 500" in words and "timeout" in words   # failures by status and by kind
    assert "Status codes: 200 × 150, 500 × 4" in words
    assert f"Connections open at the end: {doc['generator']['connections']}" in words
    assert "Service time" not in words                  # closed model: no uncorrected table
    for chart in ("over-time", "failures", "spectrum"):
        assert "<svg" in text.split(f'id="chart-{chart}"', 1)[1].split("</figure>", 1)[0]
    assert "chart-rate" not in text and "chart-users" not in text
    assert_self_contained(text)


def test_the_same_document_gives_the_same_bytes() -> None:
    """``report`` re-renders what the run wrote: no clock, no random ids."""
    doc = synthetic_run(open_model=True)
    assert render_html(doc) == render_html(copy.deepcopy(doc))


def test_an_open_run_shows_service_time_and_target_rate() -> None:
    doc = synthetic_run(open_model=True)
    text = render_html(doc)
    words = Page(text).joined()
    assert "Latency, corrected (from intended send time)" in words
    assert "Service time (uncorrected, from actual send)" in words
    assert "60.0 req/s for 2.50 s" in words                  # the schedule, as configured
    assert 'id="chart-rate"' in text
    assert "Generator: kept the schedule" in words
    assert_self_contained(text)


def test_a_generator_limited_run_has_its_banner() -> None:
    doc = synthetic_run(causes_cpu=True)
    assert doc["generator_limited"]
    page = Page(render_html(doc))
    assert "GENERATOR LIMITED" in page.joined()
    assert page.by_id("generator")["class"] == "banner"


def test_a_user_ramp_draws_users_over_time() -> None:
    doc = synthetic_run()
    for n, interval in enumerate(doc["intervals"]):
        interval["users"] = 2.0 * n
    doc["config"]["user_stages"] = [{"duration_s": 2.5, "start_users": 0, "end_users": 6}]
    text = render_html(doc)
    assert 'id="chart-users"' in text and "0→6 (--user-stage)" in Page(text).joined()


def test_a_page_that_cannot_be_written_after_the_run_is_one_line_exit_3(tmp_path, capsys) -> None:
    """The load happened: like the chart, a page it cannot write is a broken record."""
    fifo = tmp_path / "nobody-reads"
    os.mkfifo(fifo)
    said: list[str] = []
    assert HtmlSink(str(fifo), said.append).on_finish(synthetic_run()) == 3
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("loadgen: cannot write HTML report to"), err
    assert said == []


def test_thresholds_show_pass_and_fail_with_actual_values() -> None:
    doc = synthetic_run()
    doc["thresholds"] = [{"threshold": "p99<5s", "actual": 1000.0, "passed": True},
                         {"threshold": "failures<1%", "actual": 0.0506, "passed": False}]
    page = Page(render_html(doc))
    words = page.joined()
    assert page.by_id("thresholds")["class"] == "badge fail"
    assert "p99<5s PASS 1000 ms" in words
    assert "failures<1% FAIL 5.06% failures" in words


def test_a_journey_run_shows_its_iterations() -> None:
    doc = journey_run()
    doc["config"]["journeys"] = [
        {"name": "shopper", "weight": 2.0, "on_start": ["shopper: POST /api/auth/login"],
         "steps": ["shopper: GET /shop/items", "shopper: POST /shop/orders"]},
        {"name": "browser", "weight": 1.0, "on_start": [], "steps": ["browser: GET /shop/items"]}]
    words = Page(render_html(doc)).joined()
    assert ("shopper (weight 2.00): once shopper: POST /api/auth/login; then shopper: GET "
            "/shop/items → shopper: POST /shop/orders") in words
    assert "Journeys" in words
    for kind in doc["journeys"]:
        assert kind["name"] in words
        assert f"{kind['iterations']['total']:,}" in words
    assert "Where iterations failed" in words and "shopper: POST /shop/orders" in words
    for figure in figures_of(doc):
        assert figure in words


def test_a_journey_run_draws_iterations_per_second() -> None:
    """Iterations per second on the over-time chart, and each step row over time."""
    doc = journey_run()
    assert any(i.get("iterations") for i in doc["intervals"])
    text = render_html(doc)
    assert "<!-- Iterations/s -->" in figure_svg(text, "over-time")
    legend = figure_svg(text, "endpoint-throughput")
    for row in doc["endpoints"]:
        assert f"<!-- {row['endpoint']} -->" in legend


# --- each endpoint over time, the server -------------------------------------------------------


def test_each_endpoint_has_its_throughput_and_latency_over_time() -> None:
    doc = endpoints_run(["GET /a", "POST /b"])
    text = render_html(doc)
    for chart in ("endpoint-throughput", "endpoint-latency"):
        figure = figure_svg(text, chart)
        assert "<svg" in figure
        assert "<!-- GET /a -->" in figure and "<!-- POST /b -->" in figure   # the legend
    rows = series_rows(text)
    assert list(rows) == ["GET /a", "POST /b"]
    seconds = plotted_intervals(doc)
    for name, cells in rows.items():
        figures = [i["endpoints"][name] for i in seconds if name in i.get("endpoints", {})]
        peak = max(f["rps"] for f in figures)
        p99 = max(f["latency_ms"]["p99"] for f in figures)
        assert cells[0] == format_number(peak, thousands=True), (name, cells)
        assert cells[4] == format_number(p99), (name, cells)
    # POST /b got slower each second: its highest p99 is in the last whole second
    assert rows["POST /b"][5] == format_number(3.0)
    assert_self_contained(text)


def test_many_endpoints_keep_eight_lines_the_quietest_fold_into_others() -> None:
    names = [f"GET /e{i}" for i in range(11)]   # e0 is the quietest, e10 the busiest
    doc = endpoints_run(names)
    text = render_html(doc)
    rows = series_rows(text)
    assert len(rows) == MAX_ENDPOINT_LINES
    assert list(rows)[:-1] == names[4:] and list(rows)[-1] == "others (4 endpoints)"
    assert rows["others (4 endpoints)"][0] == format_number(5.0 + 10 + 15 + 20, thousands=True)
    assert "Others: GET /e0, GET /e1, GET /e2, GET /e3" in Page(text).joined()


def test_one_endpoint_and_old_files_draw_no_endpoint_lines() -> None:
    assert "chart-endpoint" not in render_html(synthetic_run())   # the run's lines are its own
    old = endpoints_run(["GET /a", "POST /b"])
    for interval in old["intervals"]:
        del interval["endpoints"]   # written before intervals were split by endpoint
    text = render_html(old)
    assert "chart-endpoint" not in text and "endpoint-series" not in text
    odd = endpoints_run(["GET /a", "POST /b"])   # hand-edited: what is not figures is idle
    odd["intervals"][0]["endpoints"] = {"GET /a": 5, "POST /b": {"rps": 2.0, "latency_ms": [1]}}
    odd["intervals"][1]["endpoints"] = ["GET /a"]
    assert list(series_rows(render_html(odd))) == ["GET /a", "POST /b"]


def test_a_monitored_run_shows_the_server_lines_and_its_chart() -> None:
    doc = monitored(endpoints_run(["GET /a", "POST /b"]))
    text = render_html(doc)
    page = Page(text)
    words = page.joined()
    assert page.by_id("server") is not None
    assert ("Server: CPU peak 100.0% (mean 66.7%; 100% = one core of 2), RSS peak 70.0 MiB, "
            "4 threads, 5 connections (pid 4321 gunicorn, 2 processes)") in words
    assert "Server host: CPU peak 25.0% of 4 CPUs (mean 20.0%), memory peak 3.00 GiB" in words
    assert "Server samples (process): 3 of 3, 0 failed" in words
    assert ("Server samples (host): 2 of 3, 1 failed: cannot read the metrics URL: "
            "timed out × 1") in words
    figure = figure_svg(text, "server")
    assert page.by_id("chart-server")["class"] == "wide"
    for label in ("Server CPU % (process tree)", "Host CPU % (all cores)", "P99 (ms)",
                  "Throughput", "Server RSS, process tree (MiB)", "Host memory used (%)"):
        assert f"<!-- {label} -->" in figure, label
    assert render_html(copy.deepcopy(doc)) == text   # still the same bytes
    assert_self_contained(text)
    plain = render_html(endpoints_run(["GET /a", "POST /b"]))
    assert "chart-server" not in plain and 'id="server"' not in plain


def test_server_names_from_the_document_are_escaped() -> None:
    doc = monitored(synthetic_run())
    doc["server"]["process"]["name"] = NASTY
    doc["server"]["host"]["url"] = NASTY
    doc["server"]["host"]["failures"] = {NASTY: 1}
    text = render_html(doc)
    assert "<script" not in text
    assert Page(text).joined().count(NASTY) == 3


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place inside ``value`` (dict keys and list indexes), itself included."""
    found = [prefix]
    items = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, list) else ())
    for key, inner in items:
        found += _paths(inner, (*prefix, key))
    return found


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_endpoint_and_server_blocks_that_validate_still_render(data: Any) -> None:
    """A hand-edited file that ``validate`` lets through must render, not raise: the new
    blocks (intervals' ``endpoints`` and ``server``, the ``server`` summary) replaced by
    arbitrary JSON here and there."""
    doc = monitored(endpoints_run(["GET /a", "POST /b"]))
    places = [p for i in range(len(doc["intervals"])) for key in ("endpoints", "server")
              for p in _paths(doc["intervals"][i].get(key), ("intervals", i, key))]
    places += _paths(doc["server"], ("server",))
    for _ in range(data.draw(st.integers(1, 3))):
        *parents, last = data.draw(st.sampled_from(places))
        holder: Any = doc
        try:
            for key in parents:
                holder = holder[key]
            holder[last] = data.draw(JSON_VALUES)
        except (KeyError, IndexError, TypeError):   # an earlier change removed that place
            continue
    try:
        check_document(doc, "edited.json", charts=True)
    except ResultsError:
        return
    assert "<svg" in render_html(doc)


def test_strings_from_the_document_are_escaped() -> None:
    """An endpoint name or URL holding markup is shown as text, never parsed as HTML."""
    doc = synthetic_run(open_model=True)
    old = doc["endpoints"][0]["endpoint"]
    doc["endpoints"][0]["endpoint"] = NASTY
    for key in ("histograms", "service_histograms", "success_histograms"):
        if key in doc:
            doc[key] = {NASTY if k == old else k: v for k, v in doc[key].items()}
    doc["config"]["url"] = f'http://x/"><img src=x onerror=alert(1)>{NASTY}'
    doc["config"]["endpoints"] = [NASTY]
    doc["problems"] = [NASTY]
    doc["status"] = NASTY
    text = render_html(doc)
    assert "<script" not in text and "<img" not in text
    assert NASTY in Page(text).joined()   # shown as written
    assert_self_contained(text)


def test_a_sparse_document_still_renders() -> None:
    """An old or hand-edited file: what is missing shows as missing, no exception."""
    text = render_html({"config": {"url": "http://old"}, "summary": {"requests": 3},
                        "endpoints": [{"endpoint": "GET /x", "requests": 3}]})
    words = Page(text).joined()
    assert "GET /x" in words and "http://old" in words and "no data" in text


def test_a_capacity_search_page() -> None:
    step = synthetic_run(open_model=True)
    doc = {"schema": CAPACITY_SCHEMA, "tool": "loadgen 0.1.0", "status": "complete",
           "started_at": step["started_at"], "config": {"url": "http://127.0.0.1:1"},
           "slos": ["p99<100ms"], "capacity_rps": 60.0, "verdict": "the SLOs held up to 60",
           "generator_limited": False,
           "steps": [{"rate": 60.0, "passed": True, "achieved_rps": 63.2, "p99_ms": 2.0,
                      "failure_share": 0.0, "slo_failures": [], "generator_limited": False,
                      "note": None, "result": step},
                     {"rate": 120.0, "passed": False, "achieved_rps": 110.0, "p99_ms": 300.0,
                      "failure_share": 0.1, "slo_failures": ["p99<100ms (actual 300 ms)"],
                      "generator_limited": False, "note": None, "result": step}]}
    text = render_html(doc)
    words = Page(text).joined()
    assert "the SLOs held up to 60" in words and "p99<100ms (actual 300 ms)" in words
    assert Page(text).by_id("capacity") is not None and "held" in words and "FAILED" in words
    assert 'id="chart-capacity"' in text
    assert text.count("<details>") == 2   # each step's own tables, folded
    ids = [a["id"] for _, a in Page(text).tags if a.get("id")]
    assert len(ids) == len(set(ids)) and "step2-summary-requests" in ids
    assert_self_contained(text)


def test_a_comparison_page_holds_each_run() -> None:
    a, b = synthetic_run(), synthetic_run(ok=20, open_model=True)
    text = render_comparison_html([a, b], ["before", "after"])
    words = Page(text).joined()
    assert "before" in words and "after" in words
    for doc in (a, b):
        assert f"{doc['summary']['requests']:,}" in words
    assert 'id="chart-comparison"' in text
    assert_self_contained(text)


# --- the command line ------------------------------------------------------------------------


@pytest.mark.parametrize("make,needle", [
    (lambda d: str(d / "no" / "such" / "r.html"), "does not exist"),
    (lambda d: str(d), "is a directory"),
    (lambda d: "-", "stdout"),
])
def test_a_bad_html_path_is_refused_before_the_run(tmp_path: Path, make, needle: str) -> None:
    """Aimed at a refusing port: the --html line comes first, so nothing is sent."""
    with RefusingPort() as port:
        for command in (["run"], ["capacity", "--slo", "p99<1s"]):
            run = run_in_process(*command, "--url", port.url, "--html", make(tmp_path))
            line = one_line_error(run)
            assert "--html" in line and needle in line, line


def test_report_refuses_a_bad_html_path_before_reading(tmp_path: Path) -> None:
    save = tmp_path / "r.json"
    save.write_bytes(orjson.dumps(synthetic_run()))
    run = run_in_process("report", str(save), "--html", str(tmp_path / "no" / "r.html"))
    assert "--html" in one_line_error(run)
    assert run.stdout == ""


def test_compare_writes_a_page(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_bytes(orjson.dumps(synthetic_run()))
    b.write_bytes(orjson.dumps(synthetic_run(ok=20)))
    out = tmp_path / "cmp.html"
    run = run_in_process("compare", str(a), str(b), "--html", str(out))
    assert run.status == 0, run.stderr
    assert f"HTML report saved to {out}" in run.stdout
    text = out.read_text()
    assert "<h2>a</h2>" in text and "<h2>b</h2>" in text   # each run's column, by label
    assert Page(text).by_id("comparison") is not None       # compare's own verdicts
    outside_charts = re.sub(r"<svg.*?</svg>", "", text, flags=re.DOTALL)
    ids = [a["id"] for _, a in Page(outside_charts).tags if a.get("id")]
    assert len(ids) == len(set(ids)) and "run2-summary-requests" in ids


# --- a real run, and a real browser --------------------------------------------------------


@pytest.fixture(scope="module")
def real_page(target_server: Any, tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[Path, dict[str, Any]]:
    """One short open-model run with two endpoints (one all 503s) and a failing threshold,
    the target's process monitored."""
    folder = tmp_path_factory.mktemp("html")
    page = folder / "run.html"
    run = loadgen("run", "--url", target_server.url, "--endpoint", "/api/health",
                  "--endpoint", "/status/503", "--rate", "40", "--duration", "1.5s", "--quiet",
                  "--monitor-pid", str(target_server.proc.pid),
                  "--threshold", "failures<1%", "--header", f"X-Api-Key: {SECRET}",
                  "--html", str(page), save=folder / "run.json")
    assert run.status == 1, run.stderr   # the threshold fails: 503s are half the requests
    assert f"HTML report saved to {page}" in run.stdout
    assert run.doc is not None
    return page, run.doc


def test_a_real_run_writes_the_page_and_report_renders_it_again(real_page, tmp_path) -> None:
    page, doc = real_page
    text = page.read_text()
    words = Page(text).joined()
    for figure in figures_of(doc):
        assert figure in words, figure
    assert "failures<1% FAIL" in words and "HTTP 503" in words
    assert SECRET not in text   # header values never reach the document, nor the page
    assert_self_contained(text)
    again = tmp_path / "again.html"
    run = run_in_process("report", str(page.with_suffix(".json")), "--html", str(again))
    assert run.status == 0, run.stderr
    assert again.read_bytes() == page.read_bytes()


def target_server_pid(doc: dict[str, Any]) -> int:
    return int(doc["server"]["process"]["pid"])


def _chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with the network off: every request goes to a proxy on port 9
    (discard, nothing listens), in a profile of its own."""
    assert BROWSER is not None
    return subprocess.run(
        [BROWSER, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
         "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
         f"--user-data-dir={cwd / 'profile'}", "--window-size=1400,2400", *args],
        capture_output=True, text=True, timeout=120, cwd=cwd, stdin=subprocess.DEVNULL,
        check=False)


@pytest.mark.skipif(BROWSER is None, reason="no chromium or chromium-browser on PATH "
                                            "(apt-get install chromium; .ci/run tries)")
def test_a_browser_shows_the_figures_of_the_json(real_page, tmp_path) -> None:
    page, doc = real_page
    url = page.resolve().as_uri()
    dom = _chromium("--dump-dom", url, cwd=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = Page(dom.stdout)
    words = rendered.joined()
    for figure in figures_of(doc):
        assert figure in words, figure
    assert rendered.by_id("summary-requests")["data-value"] == str(doc["summary"]["requests"])
    assert rendered.by_id("summary-p99")["data-value"] == str(doc["summary"]["latency_ms"]["p99"])
    assert len(re.findall(r"<svg", dom.stdout)) >= 6   # the charts made it into the DOM
    for chart in ("endpoint-throughput", "endpoint-latency", "server"):
        assert "<svg" in figure_svg(dom.stdout, chart), chart
    assert list(series_rows(dom.stdout)) == [e["endpoint"] for e in doc["endpoints"]]
    pid = target_server_pid(doc)
    assert f"(pid {pid} " in words and "Server samples (process):" in words
    shot = tmp_path / "page.png"
    taken = _chromium(f"--screenshot={shot}", url, cwd=tmp_path)
    assert taken.returncode == 0, taken.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    if os.environ.get("LOADGEN_KEEP_SCREENSHOT"):   # to look at it: the path of a copy
        shutil.copy(shot, os.environ["LOADGEN_KEEP_SCREENSHOT"])
