"""``--html FILE``: the run as one self-contained HTML page, rendered from its results document.

Why one file with everything inline: the report is passed around (attached to
a ticket, archived by CI, opened on a laptop without network) and must look
the same wherever it is opened, years later.  So the styles are in a
``<style>`` element, the charts are inline SVG drawn by matplotlib (the same
drawing code as ``output.charts``' PNG), and the page has no script, no font
and no URL it would fetch.

Why from the document only: ``loadgen report RUN.json --html`` must re-render
exactly the page the run wrote.  Nothing here reads the clock or the
environment, and the SVGs are made deterministic (matplotlib's random ids get
a fixed salt per chart, its date metadata is dropped), so the same document
gives the same bytes.

Every string that comes from the document (URLs, endpoint names, kinds'
names, problems) is escaped with ``html.escape``: a results file is untrusted
input, and an endpoint called ``<script>`` must show as text.  Inside the
SVGs matplotlib escapes the text it writes itself; mathtext is turned off so
a ``$`` in a name is drawn as a dollar sign, not parsed.  The document holds
no secrets (``RunConfig.public``), and nothing else is added here.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import itertools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loadgen.output.files import write_bytes
from loadgen.output.results import interval_endpoints
from loadgen.output.server import (
    BYTE_UNITS,
    format_bytes,
    has_server,
    sample_series,
    samples_line,
    server_lines,
)
from loadgen.output.sinks import FileSink
from loadgen.output.table import (
    ALL_ENDPOINTS,
    HEADERS,
    JOURNEY_HEADERS,
    JOURNEY_LATENCY_KEYS,
    LATENCY_COLUMNS,
    LIMITED_CLOSED,
    LIMITED_OPEN,
    MISSING,
    PHASE_COLUMNS,
    PHASE_ROWS,
    SERVICE_COLUMNS,
    SUCCESS_HEADERS,
    format_number,
    format_percent,
    format_seconds,
    has_service_time,
    has_success_latency,
    is_open_model,
    proxy_words,
    success_caption,
    target_rates,
    user_ramp_words,
)
from loadgen.schema import CAPACITY_SCHEMA
from loadgen.stats.failures import (
    checks_failed,
    failure_count,
    failures_by_kind,
    failures_by_status,
    interval_counts,
    share_text,
)

Document = Mapping[str, Any]
Say = Callable[[str], None]

SVG_DPI = 72   # SVG sizes are in points: 72 per inch keeps the figure's inches as drawn
PANEL_SIZE = (6.4, 3.6)   # inches: two side by side on a laptop screen
BAR_SHARE = 0.9   # of its second a bar fills: a gap between seconds, so each reads alone
ENDPOINT_PANEL_SIZE = (6.4, 4.6)   # inches: room under the axes for a legend of up to 8 names
SERVER_PANEL_SIZE = (12.8, 6.4)   # the full width: CPU and memory under one time axis
MAX_ENDPOINT_LINES = 8   # more lines than this blur into each other: the rest fold into "others"
STYLE = """
:root { --ok: #2e7d32; --bad: #c62828; --warn: #ef6c00; --muted: #666; --rule: #ddd; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       margin: 0 auto; padding: 1.5em 2em 3em; max-width: 1400px; }
h1 { font-size: 1.5em; margin: 0 0 .2em; word-break: break-all; }
h2 { font-size: 1.15em; margin: 1.8em 0 .5em; border-bottom: 1px solid var(--rule);
     padding-bottom: .2em; }
h3 { font-size: 1em; margin: 1.2em 0 .4em; }
.sub { color: var(--muted); margin: 0 0 1em; }
.badge { display: inline-block; padding: .15em .6em; border-radius: 4px; color: #fff;
         font-weight: 600; font-size: .9em; }
.pass, .complete { background: var(--ok); } .fail, .failed { background: var(--bad); }
.interrupted, .running, .other { background: var(--warn); }
.banner { border: 2px solid var(--bad); background: #fdecea; padding: .6em 1em; margin: 1em 0;
          border-radius: 4px; }
.banner strong { color: var(--bad); }
table { border-collapse: collapse; margin: .3em 0 1em; font-variant-numeric: tabular-nums; }
th, td { padding: .25em .7em; border-bottom: 1px solid var(--rule); text-align: right;
         white-space: nowrap; }
th:first-child, td:first-child { text-align: left; white-space: normal; word-break: break-all; }
th { background: #f5f5f5; font-weight: 600; }
tr.total td { font-weight: 600; border-top: 2px solid #999; }
td.pass { color: var(--ok); background: none; font-weight: 600; }
td.fail { color: var(--bad); background: none; font-weight: 600; }
dl.config { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1.2em; margin: 0; }
dl.config dt { color: var(--muted); } dl.config dd { margin: 0; word-break: break-all; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr));
          gap: 1em; }
figure { margin: 0; border: 1px solid var(--rule); border-radius: 4px; padding: .5em; }
figure svg { width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: .9em; }
figure.wide { grid-column: 1 / -1; }
.swatch { display: inline-block; width: .9em; height: .9em; margin-right: .4em;
          border-radius: 2px; vertical-align: -.1em; }
.side { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 1.5em; }
footer { margin-top: 3em; color: var(--muted); font-size: .85em; }
"""


# --- the page ---------------------------------------------------------------------------------


def render_html(doc: Document) -> str:
    """The whole page of a run (or of a capacity search) as text."""
    if doc.get("schema") == CAPACITY_SCHEMA:
        return _page(f"loadgen capacity: {_url(doc)}", _capacity_body(doc), doc)
    return _page(f"loadgen report: {_url(doc)}", run_body(doc), doc)


def render_comparison_html(docs: Sequence[Document], labels: Sequence[str],
                           comparison: Mapping[str, Any] | None = None) -> str:
    """Several runs side by side: the comparison's verdicts (when given), the overlay charts,
    then each run's own report in a column, in the order given (the first is the baseline)."""
    parts = [f"<h1>loadgen: {len(docs)} runs compared</h1>"]
    if comparison is not None:
        parts.append(_comparison_table(comparison))
    parts.append("<h2>Charts</h2>")
    parts.append(_charts([_figure("comparison", "P99 over time and percentile spectra, "
                                  "all endpoints of each run", _comparison_svg(docs, labels))]))
    columns = []
    for i, (doc, label) in enumerate(zip(docs, labels), 1):
        columns.append(f"<section class=\"run\" id=\"run{i}\"><h2>{_e(label)}</h2>"
                       f"{_scoped(run_body(doc, 3, False), f'run{i}')}</section>")
    parts.append(f"<div class=\"side\">{''.join(columns)}</div>")
    title = "loadgen comparison: " + ", ".join(labels)
    return _wrap(title, "\n".join(parts), _tool(docs[0]) if docs else "loadgen")


def _page(title: str, body: str, doc: Document) -> str:
    return _wrap(title, f"<h1>{_e(title)}</h1>\n{body}", _tool(doc))


def _wrap(title: str, body: str, tool: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n"
            f"<footer>Rendered by {_e(tool)} from the results document: "
            f"<code>loadgen report FILE --html OUT</code> renders this page again.</footer>\n"
            f"</body>\n</html>\n")


def run_body(doc: Document, level: int = 2, charts: bool = True) -> str:
    """A run's sections: summary and verdict, config, tables, failures, journeys, charts."""
    h = f"h{level}"
    parts = [_subtitle(doc), _verdict(doc),
             f"<{h}>What was run</{h}>", _config(doc),
             f"<{h}>Endpoints</{h}>", _endpoint_tables(doc),
             f"<{h}>Failures</{h}>", _failures(doc)]
    for title, section in (("Checks failed", _checks), ("Journeys", _journeys),
                           ("Phases", _phases), ("Connections, logins, nodes", _more),
                           ("Server", _server)):
        body = section(doc)   # "" when the run has none: no heading either
        if body:
            parts += [f"<{h}>{title}</{h}>", body]
    if charts:
        parts += [f"<{h}>Charts</{h}>", _charts(run_figures(doc))]
        series = _endpoint_series(doc)
        if series:
            parts += [f"<h{level + 1}>Each endpoint over time</h{level + 1}>", series]
    return "\n".join(p for p in parts if p)


def _subtitle(doc: Document) -> str:
    """When, how long, how many: the line under the title."""
    summary = doc.get("summary") or {}
    requests = _int(summary.get("requests"))
    bits = [f"started {_e(_when(doc.get('started_at')))}"]
    duration = summary.get("duration_s")
    if isinstance(duration, (int, float)):
        bits.append(f"ran {_e(format_seconds(float(duration)))}")
    bits.append(f"<span id=\"summary-requests\" data-value=\"{requests}\">{requests:,}</span> "
                "requests")
    rps = summary.get("rps")
    if isinstance(rps, (int, float)):
        bits.append(f"{_e(format_number(float(rps), thousands=True))} req/s")
    p99 = (summary.get("latency_ms") or {}).get("p99")
    bits.append(f"p99 <span id=\"summary-p99\" data-value=\"{_e(str(p99))}\">"
                f"{_e(format_number(_num(p99)))}</span> ms")
    bits.append(_e(_tool(doc)))
    return f"<p class=\"sub\">{' · '.join(bits)}</p>"


def _verdict(doc: Document) -> str:
    """Status, thresholds, generator: what a reader must know before reading any number."""
    status = str(doc.get("status", "unknown"))
    klass = status if status in ("complete", "failed", "interrupted", "running") else "other"
    parts = [f"<p>Run <span class=\"badge {klass}\" id=\"run-status\">{_e(status)}</span>"]
    results = [r for r in doc.get("thresholds") or [] if isinstance(r, dict)]
    if results:
        failed = sum(1 for r in results if not r.get("passed"))
        word = "FAIL" if failed else "PASS"
        parts.append(f" · thresholds <span class=\"badge {word.lower()}\" id=\"thresholds\">"
                     f"{word}</span> ({len(results) - failed} of {len(results)} passed)")
    parts.append("</p>")
    parts += _generator(doc)
    problems = [p for p in doc.get("problems") or [] if isinstance(p, str)]
    if problems:
        parts.append("<ul class=\"problems\">" + "".join(
            f"<li>Problem: {_e(p)}</li>" for p in problems) + "</ul>")
    if results:
        rows = [[_cell(str(r.get("threshold", "?"))),
                 _cell("PASS" if r.get("passed") else "FAIL",
                       "pass" if r.get("passed") else "fail"),
                 _cell(_actual(r))] for r in results]
        parts.append(_table(("Threshold", "Verdict", "Actual"), rows, table_id="threshold-table"))
    return "\n".join(parts)


def _actual(result: Mapping[str, Any]) -> str:
    """The threshold's actual figure with its unit, as the terminal prints it."""
    from loadgen.stats.thresholds import format_actual, parse_threshold

    actual = result.get("actual")
    if not isinstance(actual, (int, float)):
        return "no data"
    try:
        metric = parse_threshold(str(result.get("threshold", ""))).metric
    except ValueError:   # a hand-edited file: the bare number still says something
        return format_number(float(actual))
    return format_actual(metric, float(actual))


def _generator(doc: Document) -> list[str]:
    """The generator-limited banner with its reasons, or one line saying loadgen kept up."""
    from loadgen.output.table import _generator_figures

    generator = _dict(doc.get("generator"))
    figures = _generator_figures(generator)
    if doc.get("generator_limited"):
        headline = LIMITED_OPEN if is_open_model(doc) else LIMITED_CLOSED
        reasons = "".join(f"<li>{_e(str(r))}</li>" for r in generator.get("reasons") or [])
        return [(f"<div class=\"banner\" id=\"generator\"><strong>{_e(headline)}</strong>"
                 f"<ul>{reasons}</ul>{_e(figures)}</div>")]
    if "generator_limited" not in doc:
        return []
    words = "kept the schedule" if is_open_model(doc) else "not the limit"
    return [f"<p id=\"generator\">Generator: {words}" + (f" ({_e(figures)})" if figures else "")
            + "</p>"]


def _config(doc: Document, search: bool = False) -> str:
    """The run's settings as a definition list: only what the document says, escaped.

    ``search``: a capacity search's config is its first step's; the rate and length of
    each step are in the steps table, so they are left out here.
    """
    config = _dict(doc.get("config"))
    rows: list[tuple[str, str]] = [("URL", _e(str(config.get("url", "?")) + proxy_words(config)))]
    model = "open" if is_open_model(doc) or config.get("model") == "open" else "closed"
    rows.append(("Model", model))
    journeys = config.get("journeys")
    if isinstance(journeys, list) and journeys:
        rows.append(("Journeys", "<br>".join(_journey_config(j) for j in journeys
                                             if isinstance(j, dict))))
    else:
        names = [str(n) for n in config.get("endpoints") or []]
        weights = _dict(config.get("weights"))
        shown = [_e(n) + (f" (weight {_e(format_number(_num(weights.get(n))))})"
                          if len(names) > 1 and isinstance(weights.get(n), (int, float)) else "")
                 for n in names]
        if shown:
            rows.append(("Endpoints", "<br>".join(shown)))
    rates = target_rates(doc)
    schedule = config.get("schedule")
    if rates and isinstance(schedule, list) and not search:
        rows.append(("Rate", _e(_stages_words(schedule))))
    ramp = user_ramp_words(doc)
    if ramp:
        rows.append(("Users", _e(ramp) + " (--user-stage)"))
    skipped = ("requests", "duration_s") if search else ()
    for key, label, show in (
            ("requests", "Requests", lambda v: f"{v:,}"),
            ("iterations", "Iterations", lambda v: f"{v:,}"),
            ("duration_s", "Duration", lambda v: format_seconds(float(v))),
            ("concurrency", "Concurrency", lambda v: f"{v:,}"),
            ("max_connections", "Max connections", lambda v: f"{v:,}"),
            ("workers", "Workers", lambda v: f"{v:,}"),
            ("timeout_s", "Timeout", lambda v: format_seconds(float(v)))):
        value = config.get(key)
        if key not in skipped and isinstance(value, (int, float)) and not isinstance(value, bool):
            rows.append((label, _e(show(value))))
    if config.get("keepalive") is False:
        rows.append(("Keep-alive", "off (a new connection per request)"))
    if config.get("auth"):
        rows.append(("Auth", "login as " + _e(str(config.get("username") or "?"))))
    feeder = config.get("feeder")
    if isinstance(feeder, dict):
        rows.append(("Feeder", _e(f"{feeder.get('file')} ({feeder.get('mode')}, "
                                  f"{feeder.get('rows')} rows)")))
    if config.get("cluster"):
        rows.append(("Cluster", _e(str(config["cluster"]))))
    thresholds = config.get("thresholds")
    if isinstance(thresholds, list) and thresholds:
        rows.append(("Thresholds", _e(", ".join(str(t) for t in thresholds))))
    rows.append(("Started", _e(_when(doc.get("started_at")))))
    summary = doc.get("summary") or {}
    if isinstance(summary.get("duration_s"), (int, float)):
        rows.append(("Ran for", _e(format_seconds(float(summary["duration_s"])))))
    rows.append(("loadgen", _e(_tool(doc))))
    items = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in rows)
    return f"<dl class=\"config\" id=\"config\">{items}</dl>"


def _journey_config(journey: Mapping[str, Any]) -> str:
    steps = " → ".join(str(s) for s in journey.get("steps") or [])
    start = ", ".join(str(s) for s in journey.get("on_start") or [])
    text = f"{journey.get('name', '?')} (weight {format_number(_num(journey.get('weight')))})"
    text += (f": once {start}; then " if start else ": ") + steps
    return _e(text)


def _stages_words(schedule: list[Any]) -> str:
    """'100 req/s for 10 s' or '0→200 req/s over 30 s, 200 req/s for 1m 00s'."""
    words = []
    for stage in schedule:
        if not isinstance(stage, dict):
            continue
        start, end = stage.get("start_rate"), stage.get("end_rate")
        length = stage.get("duration_s")
        span = format_seconds(float(length)) if isinstance(length, (int, float)) else "?"
        if start == end:
            words.append(f"{format_number(_num(start), thousands=True)} req/s for {span}")
        else:
            words.append(f"{format_number(_num(start), thousands=True)}→"
                         f"{format_number(_num(end), thousands=True)} req/s over {span}")
    return ", ".join(words)


def _endpoint_tables(doc: Document) -> str:
    """The terminal's tables as HTML: every request; successes alone; service time."""
    endpoints = [e for e in doc.get("endpoints") or [] if isinstance(e, dict)]
    summary = _dict(doc.get("summary"))
    default_conc = (doc.get("config") or {}).get("concurrency")

    def row(name: str, block: Mapping[str, Any], concurrency: Any) -> list[str]:
        latency = block.get("latency_ms") or {}
        requests = _int(block.get("requests"))
        return [_cell(name, "endpoint"), _cell(f"{requests:,}", key="requests"),
                _cell(f"{concurrency:,}" if isinstance(concurrency, int) else MISSING),
                _cell(format_percent(block.get("success_rate"), requests,
                                     _int(block.get("successes")))),
                _cell(format_number(_num(block.get("rps")), thousands=True)),
                *(_cell(format_number(_num(latency.get(key))), key=key)
                  for _, key in LATENCY_COLUMNS)]

    open_model = is_open_model(doc)
    parts = []
    if open_model:
        parts.append("<h3>Latency, corrected (from intended send time)</h3>")
    rows = [row(str(e.get("endpoint", "?")), e, e.get("concurrency", default_conc))
            for e in endpoints]
    parts.append(_table(HEADERS, rows, row(ALL_ENDPOINTS, summary, default_conc),
                        table_id="endpoints"))
    if has_success_latency(doc) and failure_count(summary) > 0:
        def ok_row(name: str, block: Mapping[str, Any]) -> list[str]:
            latency = block.get("success_latency_ms") or {}
            return [_cell(name), _cell(f"{_int(block.get('successes')):,}"),
                    *(_cell(format_number(_num(latency.get(key)))) for _, key in LATENCY_COLUMNS)]
        parts.append(f"<h3>{_e(success_caption(doc).rstrip(':'))}</h3>")
        parts.append(_table(SUCCESS_HEADERS, [ok_row(str(e.get("endpoint", "?")), e)
                                              for e in endpoints],
                            ok_row(ALL_ENDPOINTS, summary), table_id="successes"))
    if has_service_time(doc):
        def service_row(name: str, block: Mapping[str, Any]) -> list[str]:
            service = block.get("service_time_ms") or {}
            return [_cell(name), *(_cell(format_number(_num(service.get(key))))
                                   for _, key in SERVICE_COLUMNS)]
        parts.append("<h3>Service time (uncorrected, from actual send)</h3>")
        parts.append(_table(("Endpoint", *(h for h, _ in SERVICE_COLUMNS)),
                            [service_row(str(e.get("endpoint", "?")), e) for e in endpoints],
                            service_row(ALL_ENDPOINTS, summary), table_id="service"))
    return "\n".join(parts)


def _failures(doc: Document) -> str:
    """Failures by status and by kind, per endpoint and in all, or 'none' said plainly."""
    summary = _dict(doc.get("summary"))
    requests = _int(summary.get("requests"))
    failed = failure_count(summary)
    codes = sorted(_dict(summary.get("status_codes")).items(), key=lambda kv: _code_key(kv[0]))
    statuses_line = ("<p id=\"status-codes\">Status codes: "
                     + (_e(", ".join(f"{c} × {_int(n):,}" for c, n in codes)) or "none") + "</p>")
    if not failed:
        return ("<p id=\"failures\">Failures: none"
                + (f" ({share_text(requests, requests)} success)" if requests else
                   " (no requests)") + "</p>" + statuses_line)
    blocks = [(str(e.get("endpoint", "?")), e) for e in doc.get("endpoints") or []
              if isinstance(e, dict)]
    statuses = sorted(failures_by_status(summary), key=_code_key)
    kinds = sorted(failures_by_kind(summary), key=lambda k: (-failures_by_kind(summary)[k], k))
    headers = ("Endpoint", "Failures", "Share", *(f"HTTP {s}" for s in statuses), *kinds)

    def row(name: str, block: Mapping[str, Any]) -> list[str]:
        by_status, by_kind = failures_by_status(block), failures_by_kind(block)
        n = failure_count(block)
        return [_cell(name), _cell(f"{n:,}"), _cell(share_text(n, _int(block.get("requests")))),
                *(_cell(f"{by_status.get(s, 0):,}") for s in statuses),
                *(_cell(f"{by_kind.get(k, 0):,}") for k in kinds)]

    line = (f"<p id=\"failures\">Failures: {failed:,} of {requests:,} requests "
            f"({_e(share_text(failed, requests))}). By status: responses outside the success "
            "set; by kind: no response (connect, timeout, write, read, protocol) or a failed "
            "check or extraction.</p>")
    return line + statuses_line + _table(headers, [row(n, b) for n, b in blocks],
                                         row(ALL_ENDPOINTS, summary), table_id="failure-table")


def _checks(doc: Document) -> str:
    """Endpoints with ``expect`` checks: which check failed how often."""
    summary = _dict(doc.get("summary"))
    checked = summary.get("checked")
    if not isinstance(checked, int) or isinstance(checked, bool) or checked <= 0:
        return ""
    failed = sum(checks_failed(summary).values())
    rows = []
    for block in doc.get("endpoints") or []:
        if not isinstance(block, dict):
            continue
        for name, n in sorted(checks_failed(block).items(), key=lambda kv: (-kv[1], kv[0])):
            rows.append([_cell(str(block.get("endpoint", "?"))), _cell(name), _cell(f"{n:,}")])
    head = (f"<p>Checks failed: {failed:,} of {checked:,} checked responses "
            f"({_e(share_text(failed, checked))})</p>")
    return head + (_table(("Endpoint", "Check", "Failed"), rows, table_id="checks")
                   if rows else "")


def _journeys(doc: Document) -> str:
    """A journey run's kinds: iterations, outcome, latency; where iterations failed."""
    journeys = [j for j in doc.get("journeys") or [] if isinstance(j, dict)]
    if not journeys:
        return ""
    rows, where = [], []
    for journey in journeys:
        figures = _dict(journey.get("iterations"))
        latency = figures.get("latency_ms") or {}
        rows.append([_cell(str(journey.get("name", "?"))),
                     *(_cell(_count(figures.get(k))) for k in ("total", "successes", "failures",
                                                               "cut")),
                     _cell(format_number(_num(figures.get("per_second")), thousands=True)),
                     *(_cell(format_number(_num(latency.get(k)))) for k in JOURNEY_LATENCY_KEYS)])
        for step, n in (figures.get("failed_at") or {}).items():
            if isinstance(n, int) and n:
                where.append([_cell(str(journey.get("name", "?"))), _cell(str(step)),
                              _cell(f"{n:,}")])
    caption = ("Latency of successful iterations: " + (
        "intended start" if is_open_model(doc) else "first send")
        + " to last response, think time excluded.")
    parts = [f"<p>{caption}</p>", _table(JOURNEY_HEADERS, rows, table_id="journeys")]
    if where:
        parts += ["<h3>Where iterations failed</h3>",
                  _table(("Journey", "Step", "Failed"), where, table_id="failed-at")]
    return "\n".join(parts)


def _phases(doc: Document) -> str:
    phases = (doc.get("summary") or {}).get("phases_ms")
    if not isinstance(phases, dict):
        return ""
    rows = []
    for key, label in PHASE_ROWS:
        figures = phases.get(key)
        if isinstance(figures, dict):
            rows.append([_cell(label), _cell(_count(figures.get("count"))),
                         *(_cell(format_number(_num(figures.get(k)))) for _, k in PHASE_COLUMNS)])
    if not rows:
        return ""
    return _table(("Phase", "Count", *(h for h, _ in PHASE_COLUMNS)), rows, table_id="phases")


def _more(doc: Document) -> str:
    """The terminal's closing lines that the tables do not hold: the workers' connections,
    ``--auth`` logins, ``--cluster`` nodes; each line as the terminal says it, escaped."""
    from loadgen.output.table import _nodes_lines, auth_lines

    lines = []
    generator = _dict(doc.get("generator"))
    workers = [w for w in doc.get("workers") or [] if isinstance(w, dict)]
    if isinstance(generator.get("connections"), int):
        reconnects = sum(_int(w.get("reconnects")) for w in workers)
        lines.append(f"Connections open at the end: {generator['connections']:,}"
                     + (f" (reconnects during the run: {reconnects:,})" if reconnects else ""))
    lines += auth_lines(_dict(doc.get("auth")) or None)
    lines += [line.strip() for line in _nodes_lines(doc)]
    return "".join(f"<p>{_e(line)}</p>" for line in lines)


def _server(doc: Document) -> str:
    """``--monitor-*``: the terminal's Server lines, and each source's sample count (failed
    samples said even when none failed: a reader should know the figures are complete)."""
    server = doc.get("server")
    if not isinstance(server, Mapping):
        return ""
    lines = [line for line in server_lines(server) if not line.startswith("Server samples")]
    lines += [samples_line(name, server[name]) for name in ("process", "host")
              if isinstance(server.get(name), Mapping)]
    return f"<div id=\"server\">{''.join(f'<p>{_e(line)}</p>' for line in lines)}</div>"


# --- each endpoint over time -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EndpointLine:
    """One endpoint's series over the plotted intervals (or "others": several folded)."""

    label: str
    names: tuple[str, ...]    # the endpoints it stands for (one, or the folded ones)
    color: str
    rps: list[float]
    p50: list[float]          # NaN (a gap) in a second without responses
    p99: list[float]


def endpoint_lines(doc: Document, intervals: Sequence[Mapping[str, Any]]
                   ) -> list[EndpointLine]:
    """Each endpoint's throughput and latency per second, at most ``MAX_ENDPOINT_LINES``.

    None (an empty list) for a run of one endpoint (the run's own lines are that
    endpoint's) and for files written before intervals were split by endpoint (never a
    guess).  Past the
    limit the busiest endpoints keep their lines and the rest become "others": their
    requests per second add up exactly, but percentiles do not, so its latency is the
    highest of the folded endpoints' in each second (the figures' captions say so).
    """
    from loadgen.output.charts import _colors

    names = [str(e.get("endpoint", "?")) for e in doc.get("endpoints") or []
             if isinstance(e, dict)]
    if len(names) < 2 or not any(isinstance(i.get("endpoints"), dict) for i in intervals):
        return []
    seconds = []
    for interval in intervals:
        # a new file leaves ``endpoints`` out of a second without requests (all idle); a
        # hand-edited one may hold anything: what is not an endpoint's figures counts as idle
        given = {name: figures for name, figures in _dict(interval.get("endpoints")).items()
                 if isinstance(figures, dict)}
        figures = interval_endpoints({"endpoints": given}, names)
        assert figures is not None   # given ``endpoints``, never None
        seconds.append(figures)
    totals = {n: sum(_int(s[n].get("requests")) for s in seconds) for n in names}
    if len(names) > MAX_ENDPOINT_LINES:
        busiest = sorted(names, key=lambda n: -totals[n])[:MAX_ENDPOINT_LINES - 1]
        kept = [n for n in names if n in busiest]
        folded = tuple(n for n in names if n not in busiest)
    else:
        kept, folded = names, ()

    def ms(figures: Mapping[str, Any], key: str) -> float:
        value = _num(_dict(figures.get("latency_ms")).get(key))
        return math.nan if value is None else value

    groups: list[tuple[str, tuple[str, ...]]] = [(n, (n,)) for n in kept]
    if folded:
        groups.append((f"others ({len(folded)} endpoints)", folded))
    lines = []
    for (label, members), color in zip(groups, _colors(len(groups))):
        rps: list[float] = []
        p50: list[float] = []
        p99: list[float] = []
        for figures in seconds:
            rps.append(sum(_num0(figures[n].get("rps")) for n in members))
            for series, key in ((p50, "p50"), (p99, "p99")):
                values = [v for v in (ms(figures[n], key) for n in members) if not math.isnan(v)]
                series.append(max(values) if values else math.nan)
        lines.append(EndpointLine(label, members, color, rps, p50, p99))
    return lines


def _endpoint_series(doc: Document) -> str:
    """The per-endpoint charts' legend as a table: each line's colour, name and figures
    (peak requests per second, highest p50 and p99 of a second, and when)."""
    from loadgen.output.charts import plotted_intervals

    intervals = plotted_intervals(doc)
    lines = endpoint_lines(doc, intervals)
    if not lines:
        return ""
    times = [float(i["t"]) for i in intervals]

    def peak(values: list[float], unit: str) -> list[str]:
        known = [(v, t) for v, t in zip(values, times) if not math.isnan(v)]
        if not known:
            return [_cell(MISSING), _cell(MISSING)]
        value, when = max(known, key=lambda vt: vt[0])
        return [_cell(format_number(value, thousands=unit == "rps"), key=unit),
                _cell(format_number(when))]

    rows = []
    for line in lines:
        name = (f"<td class=\"endpoint\"><span class=\"swatch\" style=\"background: "
                f"{line.color}\"></span>{_e(line.label)}</td>")
        rows.append([name, *peak(line.rps, "rps"), *peak(line.p50, "p50"),
                     *peak(line.p99, "p99")])
    table = _table(("Endpoint", "Peak req/s", "at (s)", "Highest P50 (ms)", "at (s)",
                    "Highest P99 (ms)", "at (s)"), rows, table_id="endpoint-series")
    folded = [n for line in lines if len(line.names) > 1 for n in line.names]
    if folded:
        table += f"<p id=\"endpoint-others\">Others: {_e(', '.join(folded))}</p>"
    return table


def _capacity_body(doc: Document) -> str:
    """A capacity search: verdict, the steps, the chart, and the search's settings."""
    status = str(doc.get("status", "unknown"))
    klass = status if status in ("complete", "failed", "interrupted", "running") else "other"
    answer = doc.get("capacity_rps")
    parts = [(f"<p class=\"sub\">started {_e(_when(doc.get('started_at')))} · "
              f"{_e(_tool(doc))}</p>"),
             (f"<p>Search <span class=\"badge {klass}\" id=\"run-status\">{_e(status)}</span> · "
             f"capacity <strong id=\"capacity\">"
             f"{_e(format_number(_num(answer), thousands=True))}</strong> req/s · SLOs "
             f"{_e(', '.join(str(s) for s in doc.get('slos') or []))}</p>"),
             f"<p id=\"verdict\">{_e(str(doc.get('verdict', '')))}</p>"]
    if doc.get("generator_limited"):
        parts.append(f"<div class=\"banner\"><strong>{_e(LIMITED_OPEN)}</strong></div>")
    rows, details = [], []
    for i, step in enumerate(doc.get("steps") or [], 1):
        if not isinstance(step, dict):
            continue
        verdict = "held" if step.get("passed") else "FAILED"
        if isinstance(step.get("result"), dict):   # each step's own report, folded
            details.append(f"<details><summary>Step {i}: "
                           f"{_e(format_number(_num(step.get('rate')), thousands=True))} req/s, "
                           f"{verdict}</summary>"
                           f"{_scoped(run_body(step['result'], 4, False), f'step{i}')}"
                           "</details>")
        rows.append([_cell(str(i)), _cell(format_number(_num(step.get("rate")), thousands=True)),
                     _cell(format_number(_num(step.get("achieved_rps")), thousands=True)),
                     _cell(format_number(_num(step.get("p99_ms")))),
                     _cell(share_text(round(1_000_000 * _num0(step.get("failure_share"))),
                                      1_000_000)),
                     _cell(verdict, "pass" if step.get("passed") else "fail"),
                     _cell("; ".join(str(f) for f in step.get("slo_failures") or [])
                           + (f" ({step['note']})" if step.get("note") else ""))])
    parts += ["<h2>Steps</h2>",
              _table(("Step", "Rate (req/s)", "Achieved (req/s)", "P99 (ms)", "Failures",
                      "Verdict", "SLOs missed"), rows, table_id="steps"),
              *details,
              "<h2>What was run</h2>", _config(doc, search=True),
              "<h2>Charts</h2>",
              _charts([_figure("capacity", "P99 and failures by rate; the dashed line is the "
                               "capacity found", _capacity_svg(doc))])]
    return "\n".join(parts)


def _comparison_table(comparison: Mapping[str, Any]) -> str:
    """``compare``'s verdicts: each metric per run, its change and significance."""
    from loadgen.stats.compare import render_comparison

    return f"<h2>Comparison</h2><pre id=\"comparison\">{_e(render_comparison(dict(comparison)))}</pre>"


# --- HTML pieces -------------------------------------------------------------------------------


def _scoped(body: str, prefix: str) -> str:
    """A run's sections nested in a page of several: their ids prefixed, so each stays unique.

    Safe on the whole text: every ``id="..."`` in a body without charts is one this module
    wrote (a ``"`` from the document is escaped to ``&quot;``).
    """
    return re.sub(r' id="([^"]+)"', lambda m: f' id="{prefix}-{m.group(1)}"', body)


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _cell(text: str, klass: str = "", key: str = "") -> str:
    """One ``<td>``: text escaped; ``key`` names the figure (``data-key``) for readers/tests."""
    attrs = (f" class=\"{klass}\"" if klass else "") + (f" data-key=\"{key}\"" if key else "")
    return f"<td{attrs}>{_e(text)}</td>"


def _table(headers: Sequence[str], rows: Iterable[list[str]], total: list[str] | None = None,
           table_id: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    if total is not None:
        body += f"<tr class=\"total\">{''.join(total)}</tr>"
    ident = f" id=\"{table_id}\"" if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _charts(figures: list[str]) -> str:
    return f"<div class=\"charts\">{''.join(figures)}</div>" if figures else ""


def _figure(name: str, caption: str, svg: str, klass: str = "") -> str:
    attrs = f" class=\"{klass}\"" if klass else ""
    return (f"<figure id=\"chart-{name}\"{attrs}>{svg}<figcaption>{_e(caption)}</figcaption>"
            "</figure>")


def _dict(value: Any) -> dict[str, Any]:
    """A mapping from the document, or an empty one: a hand-edited file may hold anything."""
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def _num0(value: Any) -> float:
    return _num(value) or 0.0


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else MISSING


def _code_key(code: str) -> tuple[bool, str]:
    return (not code.isdigit(), code.zfill(3))


def _url(doc: Document) -> str:
    return str((doc.get("config") or {}).get("url", "?"))


def _tool(doc: Document) -> str:
    return str(doc.get("tool") or "loadgen")


def _when(started: Any) -> str:
    """The start as UTC wall-clock text; the raw value when it does not parse."""
    if not isinstance(started, str):
        return "?"
    try:
        moment = dt.datetime.fromisoformat(started)
    except ValueError:
        return started
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


# --- charts as inline SVG ----------------------------------------------------------------------


def run_figures(doc: Document) -> list[str]:
    """The run's charts, each its own ``<figure>``: over time, failures, spectrum, users."""
    from loadgen.output.charts import plotted_intervals

    intervals = plotted_intervals(doc)
    figures = [
        _figure("over-time", "Latency percentiles per second, throughput shaded behind (and "
                "failures and iterations per second when there were any)",
                _svg("over-time", lambda fig: _over_time(fig, intervals, is_open_model(doc)))),
        _figure("failures", "Successes and failures per second",
                _svg("failures", lambda fig: _failures_over_time(fig, intervals))),
    ]
    lines = endpoint_lines(doc, intervals)
    if lines:
        figures += [
            _figure("endpoint-throughput", "Throughput per endpoint, each second"
                    + ("; others: the rest added up" if len(lines[-1].names) > 1 else ""),
                    _svg("endpoint-throughput",
                         lambda fig: _endpoint_throughput(fig, intervals, lines),
                         ENDPOINT_PANEL_SIZE)),
            _figure("endpoint-latency", "P99 (solid) and P50 (dashed) per endpoint, each second"
                    + ("; others: the highest of the rest" if len(lines[-1].names) > 1 else ""),
                    _svg("endpoint-latency",
                         lambda fig: _endpoint_latency(fig, intervals, lines,
                                                       is_open_model(doc)),
                         ENDPOINT_PANEL_SIZE))]
    if has_server(intervals):
        figures.append(_figure(
            "server", "The server's CPU beside the run's throughput (shaded) and P99 (dashed), "
            "and its memory, each second; gaps are failed samples",
            _svg("server", lambda fig: _server_chart(fig, intervals, _dict(doc.get("server"))),
                 SERVER_PANEL_SIZE), "wide"))
    figures.append(_figure("spectrum", "Latency by percentile, from the saved histograms"
                           + (": corrected (solid) and service time (dashed)"
                              if is_open_model(doc) else ""),
                           _svg("spectrum", lambda fig: _spectrum(fig, doc))))
    if any(isinstance(i.get("users"), (int, float)) for i in intervals):
        figures.append(_figure("users", "Active users per second (mean over the second)",
                               _svg("users", lambda fig: _users(fig, intervals))))
    elif is_open_model(doc) and target_rates(doc):
        figures.append(_figure("rate", "Target and achieved rate per second",
                               _svg("rate", lambda fig: _rates(fig, doc, intervals))))
    return figures


def _svg(name: str, draw: Callable[[Any], None], size: tuple[float, float] = PANEL_SIZE) -> str:
    """One panel drawn by ``draw`` as an ``<svg>`` element, the same bytes every time.

    ``svg.hashsalt`` per chart: matplotlib's ids (clip paths) are random without a salt,
    and the same salt in two charts of one page could give two different clip paths the
    same id.  ``text.parse_math`` off: names from the document are text, not TeX.
    """
    import matplotlib
    from matplotlib.figure import Figure

    from loadgen.output.charts import laid_out

    with matplotlib.rc_context({"svg.hashsalt": f"loadgen-{name}", "text.parse_math": False,
                                "svg.fonttype": "path"}):
        fig = Figure(figsize=size, dpi=SVG_DPI, layout="constrained")
        draw(fig)
        laid_out(fig, "svg")    # the layout once, one draw (see there); no fig.clear (_save)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]   # drop the XML declaration and DOCTYPE


def _over_time(fig: Any, intervals: list[dict[str, Any]], corrected: bool) -> None:
    from loadgen.output.charts import _draw_over_time

    _draw_over_time(fig.subplots(), intervals, corrected)


def _failures_over_time(fig: Any, intervals: list[dict[str, Any]]) -> None:
    """Stacked per-second bars: successes green, failures red, so a burst shows as a share."""
    from loadgen.output.charts import FAILURE_COLOR, SUCCESS_COLOR, _no_data

    ax = fig.subplots()
    ax.set_title("Failures over time")
    ax.set_xlabel("Time since start (s)")
    ax.set_ylabel("Requests per second")
    if not intervals:
        _no_data(ax)
        return
    times = [float(i["t"]) for i in intervals]
    ok, bad, starts, widths = [], [], [], []
    for t, interval in zip(times, intervals):
        length = interval.get("length_s")
        seconds = float(length) if isinstance(length, (int, float)) and length > 0 else 1.0
        successes, failures = interval_counts(interval)
        ok.append(successes / seconds)
        bad.append(failures / seconds)
        starts.append(t - min(1.0, seconds))      # ``t`` is the end of its interval
        widths.append(min(1.0, seconds) * BAR_SHARE)
    ax.bar(starts, ok, width=widths, align="edge", color=SUCCESS_COLOR, label="Successes/s")
    ax.bar(starts, bad, width=widths, align="edge", bottom=ok, color=FAILURE_COLOR,
           label="Failures/s")
    ax.set_xlim(left=0)
    top = max(a + b for a, b in zip(ok, bad))
    ax.set_ylim(0, top * 1.3 if top > 0 else 1.0)
    if not any(bad):
        ax.text(0.5, 0.92, "no failures", ha="center", va="top", color="gray",
                transform=ax.transAxes)
    ax.legend(loc="upper left", fontsize=8, frameon=False, ncols=2)


def _endpoint_throughput(fig: Any, intervals: Sequence[Mapping[str, Any]],
                         lines: Sequence[EndpointLine]) -> None:
    """A step line of requests per second per endpoint; ``t`` ends its second, as in
    ``charts._draw_throughput``."""
    from loadgen.output.charts import HEADROOM, _shorten

    ax = fig.subplots()
    ax.set_title("Throughput per endpoint")
    ax.set_xlabel("Time since start (s)")
    ax.set_ylabel("Requests per second")
    times = [float(i["t"]) for i in intervals]
    xs = [max(0.0, times[0] - 1.0), *times]
    for line in lines:
        ax.step(xs, [line.rps[0], *line.rps], where="pre", color=line.color, linewidth=1.4,
                label=_shorten(line.label) if len(line.names) == 1 else line.label)
    top = max(max(line.rps) for line in lines)
    ax.set_xlim(0, max(times) * 1.02)
    ax.set_ylim(0, top * HEADROOM if top > 0 else 1.0)
    _legend_below(ax)


def _endpoint_latency(fig: Any, intervals: Sequence[Mapping[str, Any]],
                      lines: Sequence[EndpointLine], corrected: bool) -> None:
    """P99 solid and P50 dashed in the endpoint's colour: one legend entry per endpoint.
    ``corrected``: the open model's figures run from the intended send time, as the run's."""
    from loadgen.output.charts import HEADROOM, MARKERS_UP_TO, _shorten

    ax = fig.subplots()
    ax.set_title("Latency per endpoint" + (" (corrected)" if corrected else "")
                 + ": P99 solid, P50 dashed")
    ax.set_xlabel("Time since start (s)")
    ax.set_ylabel("Latency (ms)")
    times = [float(i["t"]) for i in intervals]
    marker = "o" if len(times) <= MARKERS_UP_TO else None
    tallest = 0.0
    for line in lines:
        ax.plot(times, line.p99, color=line.color, linewidth=1.6, marker=marker, markersize=3,
                label=_shorten(line.label) if len(line.names) == 1 else line.label)
        ax.plot(times, line.p50, color=line.color, linewidth=1.0, linestyle="--", alpha=0.8)
        tallest = max([tallest, *(v for v in line.p99 + line.p50 if not math.isnan(v))])
    ax.set_xlim(0, max(times) * 1.02)
    ax.set_ylim(0, tallest * HEADROOM if tallest > 0 else 1.0)
    _legend_below(ax)


def _legend_below(ax: Any) -> None:
    """Names under the axes, two columns: eight long endpoint names would hide the lines."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2, fontsize=7,
              frameon=False)


def _server_chart(fig: Any, intervals: Sequence[Mapping[str, Any]],
                  summary: Mapping[str, Any]) -> None:
    """``charts``' CPU panel (throughput and p99 beside it), and the memory under it on the
    same time axis: the process tree's RSS, the host's used memory."""
    from loadgen.output.charts import (
        HOST_CPU_COLOR,
        MARKERS_UP_TO,
        PROCESS_CPU_COLOR,
        _draw_server,
        _no_data,
    )

    cpu_ax, memory_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    _draw_server(cpu_ax, intervals, summary)
    times = [float(i["t"]) for i in intervals]
    marker = "o" if len(times) <= MARKERS_UP_TO else None
    memory_ax.set_title("Server memory")
    memory_ax.set_xlabel("Time since start (s)")
    rss = sample_series(intervals, "process", "rss_bytes")
    used = sample_series(intervals, "host", "memory_used_percent")
    handles: list[Any] = []
    if not all(math.isnan(v) for v in rss):
        top = max(v for v in rss if not math.isnan(v))
        unit = format_bytes(top).split()[-1]    # the unit the peak reads in: MiB, GiB, ...
        scale = 1024.0 ** BYTE_UNITS.index(unit)
        handles += memory_ax.plot(times, [v / scale for v in rss], color=PROCESS_CPU_COLOR,
                                  linewidth=1.6, marker=marker, markersize=3,
                                  label=f"Server RSS, process tree ({unit})")
        memory_ax.set_ylabel(f"RSS ({unit})")
        memory_ax.set_ylim(0, top / scale * 1.3 if top > 0 else 1.0)
    else:
        memory_ax.set_yticks([])
    if not all(math.isnan(v) for v in used):   # the host's on its own axis: GiB beside MiB
        host_ax = memory_ax.twinx()            # would flatten the process's line
        handles += host_ax.plot(times, used, color=HOST_CPU_COLOR, linewidth=1.6,
                                marker=marker, markersize=3, label="Host memory used (%)")
        host_ax.set_ylabel("Host memory used (%)")
        host_ax.set_ylim(0, 100)
    if not handles:
        _no_data(memory_ax)
        return
    memory_ax.legend(handles=handles, loc="upper left", fontsize=8, frameon=False, ncols=2)


def _spectrum(fig: Any, doc: Document) -> None:
    from loadgen.output.charts import _draw_spectrum, _endpoint_spectra

    _draw_spectrum(fig.subplots(), _endpoint_spectra(doc))


def _users(fig: Any, intervals: list[dict[str, Any]]) -> None:
    from loadgen.output.charts import _no_data

    ax = fig.subplots()
    ax.set_title("Users over time")
    ax.set_xlabel("Time since start (s)")
    ax.set_ylabel("Active users")
    points = [(float(i["t"]), float(i["users"])) for i in intervals
              if isinstance(i.get("users"), (int, float))]
    if not points:
        _no_data(ax)
        return
    xs, ys = zip(*points)
    ax.step([max(0.0, xs[0] - 1.0), *xs], [ys[0], *ys], where="pre", color="#4C72B0")
    ax.set_xlim(left=0)
    ax.set_ylim(0, max(ys) * 1.2 if max(ys) > 0 else 1.0)


def _rates(fig: Any, doc: Document, intervals: list[dict[str, Any]]) -> None:
    """The open model's schedule (target) against the achieved requests per second."""
    from loadgen.output.charts import _no_data

    ax = fig.subplots()
    ax.set_title("Target and achieved rate")
    ax.set_xlabel("Time since start (s)")
    ax.set_ylabel("Requests per second")
    xs, ys = [0.0], []
    start = 0.0
    for stage in (doc.get("config") or {}).get("schedule") or []:
        if not isinstance(stage, dict):
            continue
        length = _num0(stage.get("duration_s"))
        ys += [_num0(stage.get("start_rate")), _num0(stage.get("end_rate"))]
        start += length
        xs.append(start)
    if not ys:
        _no_data(ax)
        return
    target_x = [x for pair in itertools.pairwise(xs) for x in pair]
    ax.plot(target_x, ys, color="#999999", linestyle="--", label="Target")
    if intervals:
        times = [float(i["t"]) for i in intervals]
        ax.step([max(0.0, times[0] - 1.0), *times],
                [_num0(intervals[0].get("rps")), *(_num0(i.get("rps")) for i in intervals)],
                where="pre", color="#4C72B0", label="Achieved")
    top = max([*ys, *(_num0(i.get("rps")) for i in intervals)])
    ax.set_xlim(left=0)
    ax.set_ylim(0, top * 1.2 if top > 0 else 1.0)
    ax.legend(loc="upper left", fontsize=8, frameon=False)


def _capacity_svg(doc: Document) -> str:
    from loadgen.output.charts import capacity_figure

    def draw(fig: Any) -> None:
        capacity_figure(doc, fig)

    return _svg("capacity", draw, (11.0, 4.5))


def _comparison_svg(docs: Sequence[Document], labels: Sequence[str]) -> str:
    from loadgen.output.charts import comparison_figure

    def draw(fig: Any) -> None:
        comparison_figure(docs, list(labels), fig)

    return _svg("comparison", draw, (13.0, 5.0))



# --- writing it ------------------------------------------------------------------------------


def write_html(path: str, text: str) -> None:
    """Through ``output.files``: a regular file replaced atomically, a FIFO written once."""
    write_bytes(path, text.encode("utf-8"))


class HtmlSink(FileSink):
    """``--html FILE``: the page, rendered from the final document."""

    what = "HTML report"

    def write(self, doc: Document) -> str:
        write_html(self.path or "", render_html(doc))
        return self.path or ""
