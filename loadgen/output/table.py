"""The terminal report of a finished run, rendered from its results document.

Pure and standard-library only: it takes the parsed results document (the
same dict that is written to disk) and returns text, so a saved run can be
re-rendered later exactly as it was shown live, and the tests need no network.
No ANSI colours, so the output can be piped, logged or pasted as-is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from loadgen.config.model import DEFAULT_EXPECT_STATUS, format_status_set
from loadgen.stats.failures import (
    checks_failed,
    failure_count,
    failures_by_kind,
    failures_by_status,
    percent_text,
    share_text,
)

ALL_ENDPOINTS = "All endpoints"
MISSING = "-"

# (header, key in latency_ms); all latencies are in milliseconds.
LATENCY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Avg (ms)", "mean"),
    ("Median (ms)", "p50"),
    ("P95 (ms)", "p95"),
    ("P99 (ms)", "p99"),
    ("P99.9 (ms)", "p999"),
    ("Min (ms)", "min"),
    ("Max (ms)", "max"),
)
HEADERS: tuple[str, ...] = (
    ("Endpoint", "Requests", "Concurrency", "Success %", "Req/s")
    + tuple(header for header, _ in LATENCY_COLUMNS)
)
# The uncorrected block is for comparing against the corrected tail, so it keeps only the
# columns where coordinated omission shows (the middle and the tail).
SERVICE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Median (ms)", "p50"),
    ("P90 (ms)", "p90"),
    ("P99 (ms)", "p99"),
    ("P99.9 (ms)", "p999"),
    ("Max (ms)", "max"),
)
CORRECTED_CAPTION = "Latency, corrected (from intended send time):"
SERVICE_CAPTION = "Service time (uncorrected, from actual send):"
EVERY_REQUEST_CAPTION = "Every request, failures included:"
SUCCESS_CAPTION = "Latency of successful requests only (2xx):"
DEFAULT_SUCCESS_TEXT = format_status_set(DEFAULT_EXPECT_STATUS)   # "200-299"
# The successes-only table answers "how fast is it when it works", so it shows the
# count it is computed over instead of the rates, which belong to the main table.
SUCCESS_HEADERS: tuple[str, ...] = (
    ("Endpoint", "Successes") + tuple(header for header, _ in LATENCY_COLUMNS))
# The phases table (summary.phases_ms): per worker, so one row per phase, no endpoints.
PHASE_ROWS: tuple[tuple[str, str], ...] = (
    ("connect", "Connect (DNS+TCP)"),
    ("tls", "TLS handshake"),
    ("ttfb", "First byte (TTFB)"),
)
PHASE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Avg (ms)", "mean"),
    ("Median (ms)", "p50"),
    ("P90 (ms)", "p90"),
    ("P99 (ms)", "p99"),
    ("Max (ms)", "max"),
)
# The journeys table (``journeys``): one row per user kind, its iterations.
JOURNEY_HEADERS: tuple[str, ...] = ("Journey", "Iterations", "OK", "Failed", "Cut", "It/s",
                                    "Median (ms)", "P95 (ms)", "P99 (ms)")
JOURNEY_LATENCY_KEYS = ("p50", "p95", "p99")
JOURNEYS_CAPTION = ("Journeys (latency of successful iterations: first send to last response, "
                    "think time excluded):")
JOURNEYS_OPEN_CAPTION = ("Journeys (latency of successful iterations: intended start to last "
                         "response, think time excluded):")
PHASES_CAPTION = "Phases (connect and TLS: each connection opened; first byte: each response):"
NO_KEEPALIVE_WORDS = "keep-alive off (a new connection per request)"
BANNER_MARK = "!!"
LIMITED_OPEN = ("GENERATOR LIMITED: loadgen could not keep the requested rate; "
                "these numbers describe loadgen's limit, not the server's")
LIMITED_CLOSED = ("GENERATOR LIMITED: loadgen itself was the bottleneck; "
                  "these numbers describe loadgen's limit, not the server's")
STATUS_WORDS = {"running": "running (in progress: numbers so far)"}


def render_table(doc: Mapping[str, Any]) -> str:
    """The whole report: [banner], header line, table(s), then status codes and failures.

    The summary lines sit under the table because that is where the eye
    lands after scanning the rows.  The generator banner comes first of all:
    a run that measured loadgen instead of the server must not be read as a
    result.  Open-model runs get a caption saying which latency the main
    table shows, and a second, uncorrected table, because the gap between the
    two is the queueing the closed model would have hidden.  The main table
    covers every request; when some failed, a second table gives the latency
    of the successes alone, because fast failures (an instant 500) would
    otherwise pass for a fast server.
    """
    summary = doc.get("summary") or {}
    lines = generator_banner(doc)
    lines.append(_header_line(doc))
    lines += _generator_lines(doc)
    lines += [f"Problem: {p}" for p in doc.get("problems") or []]
    lines.append("")
    successes_table = has_success_latency(doc) and failure_count(summary) > 0
    if is_open_model(doc):
        lines.append(CORRECTED_CAPTION)
    if successes_table:
        lines.append(EVERY_REQUEST_CAPTION)
    lines += [_table(doc), ""]
    if successes_table:
        lines += [success_caption(doc), _success_table(doc), ""]
    if has_service_time(doc):
        lines += [SERVICE_CAPTION, _service_table(doc), ""]
    lines += journeys_lines(doc)
    phases = _phases_table(summary.get("phases_ms"))
    if phases:
        lines += [PHASES_CAPTION, phases, ""]
    lines.append(_status_codes_line(summary.get("status_codes") or {}))
    lines.append(failures_line(summary))
    lines += checks_lines(doc)
    lines += auth_lines(doc.get("auth"))
    lines += _nodes_lines(doc)
    from loadgen.output.server import server_lines  # it formats with this module's helpers

    lines += server_lines(doc.get("server"))
    return "\n".join(lines) + "\n"


def journeys_lines(doc: Mapping[str, Any]) -> list[str]:
    """A journey run's kinds: caption, one row per kind, where iterations failed, a blank line.

    After the endpoint tables (each step already is a row there, named "<kind>: METHOD
    path"), because an iteration is made of those rows: first how each request did,
    then how the journeys they make up did.  ``Iterations failed: 4 of 40 (10.00%) —
    at shopper: POST /shop/orders × 4``, by step, most frequent first.  Nothing for an
    endpoint run (no ``journeys``).
    """
    journeys = [j for j in doc.get("journeys") or [] if isinstance(j, dict)]
    if not journeys:
        return []
    rows = []
    completed = failed = 0
    where: list[tuple[str, int]] = []
    for journey in journeys:
        figures = journey.get("iterations") or {}
        latency = figures.get("latency_ms") or {}
        failures = _count(figures.get("failures"))
        completed += _count(figures.get("successes")) + failures
        failed += failures
        where += [(str(step), n) for step, n in (figures.get("failed_at") or {}).items()
                  if isinstance(n, int) and n]
        rows.append([str(journey.get("name", "?")),
                     *(_count_text(figures.get(key))
                       for key in ("total", "successes", "failures", "cut")),
                     format_number(figures.get("per_second"), thousands=True),
                     *(format_number(latency.get(key)) for key in JOURNEY_LATENCY_KEYS)])
    caption = JOURNEYS_OPEN_CAPTION if is_open_model(doc) else JOURNEYS_CAPTION
    if failed:
        where.sort(key=lambda kv: -kv[1])   # stable: kinds' order among equal counts
        outcome = (f"Iterations failed: {failed:,} of {completed:,} "
                   f"({share_text(failed, completed)}) — at {_counts_text(where)}")
    else:
        outcome = "Iterations failed: none"
    return [caption, _layout(JOURNEY_HEADERS, rows), outcome, ""]


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _count_text(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else MISSING


def checks_lines(doc: Mapping[str, Any]) -> list[str]:
    """Endpoints with ``expect`` checks: how many checked responses failed, and which
    check how often, per endpoint (most frequent first); nothing for a run without checks.

    ``Checks failed: 20 of 30 checked responses (66.67%) — missing: body_contains "nope"
    × 10; wrong json: json status == "down" × 10``
    """
    summary = doc.get("summary") or {}
    checked = summary.get("checked")
    if not isinstance(checked, int) or isinstance(checked, bool) or checked <= 0:
        return []
    failed = sum(checks_failed(summary).values())
    if not failed:
        return [f"Checks failed: none ({checked:,} checked responses)"]
    parts = []
    for block in doc.get("endpoints") or []:
        counts = sorted(checks_failed(block).items(), key=lambda kv: (-kv[1], kv[0]))
        if counts:
            parts.append(f"{block.get('endpoint')}: {_counts_text(counts)}")
    return [f"Checks failed: {failed:,} of {checked:,} checked responses "
            f"({share_text(failed, checked)}) — " + "; ".join(parts)]


def auth_lines(auth: Mapping[str, Any] | None) -> list[str]:
    """``--auth``: ``Logins: 5 (4 before expiry, 1 after 401s)``, and failed logins by name.

    The first login (before the load) is among the count; files without ``auth``
    (no ``--auth``, or written before logins were renewed) print nothing.
    """
    if not auth:
        return []
    logins = auth.get("logins", 0)
    why = [f"{auth.get('renewed_before_expiry', 0):,} before expiry",
           f"{auth.get('renewed_after_401', 0):,} after 401s"]
    failed = auth.get("failed", 0)
    if failed:
        why.append(f"{failed:,} failed")
    lines = [f"Logins: {logins:,} ({', '.join(why)})"]
    lines += [f"Login problem: {p}; the run went on with the token it had"
              for p in auth.get("problems") or []]
    return lines


def _nodes_lines(doc: Mapping[str, Any]) -> list[str]:
    """A cluster run: what each node (Dask worker) sent, and which were lost."""
    nodes = doc.get("nodes") or []
    if not nodes:
        return []
    lines = [f"Nodes: {len(nodes)} (Dask workers)"]
    for n in nodes:
        state = f"LOST: {n['lost']}" if n.get("lost") else "ok"
        workers = f"{n['workers']} worker" + ("s" if n["workers"] != 1 else "")
        lines.append(f"  {n['address']}  {workers}  {n['requests']:,} requests  {state}")
    return lines


def is_open_model(doc: Mapping[str, Any]) -> bool:
    """Open-model documents say so; service times also imply it, in case ``model`` is absent."""
    return doc.get("model") == "open" or has_service_time(doc)


def has_service_time(doc: Mapping[str, Any]) -> bool:
    """Whether any S block carries the uncorrected latency (absent in closed-model runs)."""
    blocks = [doc.get("summary") or {}, *(doc.get("endpoints") or [])]
    return any(isinstance(b, dict) and b.get("service_time_ms") for b in blocks)


def has_success_latency(doc: Mapping[str, Any]) -> bool:
    """Whether the document keeps a successes-only latency (absent in old files)."""
    blocks = [doc.get("summary") or {}, *(doc.get("endpoints") or [])]
    return any(isinstance(b, dict) and isinstance(b.get("success_latency_ms"), dict)
               for b in blocks)


def generator_banner(doc: Mapping[str, Any]) -> list[str]:
    """Framed lines that cannot be missed when loadgen, not the server, set the numbers.

    Empty unless ``generator_limited`` is true.  Every line starts with the same
    mark so that grepping a log for it finds the whole warning.
    """
    if not doc.get("generator_limited"):
        return []
    generator = doc.get("generator") or {}
    headline = LIMITED_OPEN if is_open_model(doc) else LIMITED_CLOSED
    body = [f"{BANNER_MARK} {headline}"]
    body += [f"{BANNER_MARK}   - {reason}" for reason in generator.get("reasons") or []]
    figures = _generator_figures(generator)
    if figures:
        body.append(f"{BANNER_MARK}   ({figures})")
    rule = "!" * max(len(line) for line in body)
    return [rule, *body, rule]


def _generator_lines(doc: Mapping[str, Any]) -> list[str]:
    """In the open model, say that loadgen kept up, with the figures that show it.

    Closed-model runs have no schedule to keep, so the line would only be noise there;
    a limited run already has its banner.
    """
    generator = doc.get("generator")
    if doc.get("generator_limited") or not isinstance(generator, dict) or not is_open_model(doc):
        return []
    figures = _generator_figures(generator)
    if doc.get("generator_limited") is False:
        return ["Generator: kept the schedule" + (f" ({figures})" if figures else "")]
    return [f"Generator: {figures}"] if figures else []


def _generator_figures(generator: Mapping[str, Any]) -> str:
    """The measurements behind the generator verdict, in the units the reasons use."""
    parts = []
    lateness = generator.get("lateness_ms")
    if isinstance(lateness, dict):
        parts.append("send lag " + ", ".join(
            f"{key} {format_number(lateness.get(key))} ms" for key in ("p50", "p99", "max")))
    loop = generator.get("loop_lag_ms")
    if isinstance(loop, dict) and isinstance(loop.get("p99"), (int, float)):
        parts.append(f"event-loop lag p99 {format_number(loop['p99'])} ms")
    cpu = generator.get("cpu_percent_max")
    if isinstance(cpu, (int, float)):
        denied = generator.get("run_queue_percent_max")
        parts.append(f"worker CPU max {cpu:.0f}%" + (
            f" (waited to run up to {denied:.0f}%)"
            if isinstance(denied, (int, float)) and denied >= 1 else ""))
    waited = generator.get("waited_for_connection")
    if isinstance(waited, int) and waited:
        parts.append(f"{waited:,} send{'s' if waited > 1 else ''} waited for a free connection")
    return "; ".join(parts)


def _header_line(doc: Mapping[str, Any]) -> str:
    """One line answering 'did it finish, against what, how long, how fast'."""
    summary = doc.get("summary") or {}
    url = (doc.get("config") or {}).get("url", "?")
    via = proxy_words(doc.get("config") or {})
    status = doc.get("status", "unknown")
    status = STATUS_WORDS.get(status, status)
    requests = summary.get("requests", 0)
    duration = summary.get("duration_s") or 0.0
    rps = summary.get("rps") or 0.0
    model = (f" | {_model_words(doc)}" if is_open_model(doc)
             else f" | users {ramp}" if (ramp := user_ramp_words(doc)) else "")
    success = (f" | {share_text(requests - failure_count(summary), requests)} success"
               if requests else "")
    # files without the key were kept alive: it is said only when off
    keepalive = (f" | {NO_KEEPALIVE_WORDS}"
                 if (doc.get("config") or {}).get("keepalive") is False else "")
    return (f"Run {status}: {url}{via} | {requests:,} requests in {format_seconds(duration)}"
            f" | {format_number(rps, thousands=True)} req/s{success}{model}{keepalive}")


def proxy_words(config: Mapping[str, Any]) -> str:
    """" via proxy http://127.0.0.1:3128 (from HTTPS_PROXY)", or "" for a direct run.

    The environment can choose a proxy without a word on the command line, so a
    report must say when one carried the load (files before --proxy have none).
    """
    proxy = config.get("proxy")
    if not isinstance(proxy, dict) or not isinstance(proxy.get("url"), str):
        return ""
    source = proxy.get("source")
    return f" via proxy {proxy['url']}" + (f" (from {source})" if isinstance(source, str) else "")


def _model_words(doc: Mapping[str, Any]) -> str:
    """"open model" plus the target rate, so achieved and requested rates sit side by side."""
    rates = target_rates(doc)
    if not rates:
        return "open model"
    low, high = min(rates), max(rates)
    if low == high:
        return f"open model, target {format_number(low, thousands=True)} req/s"
    return (f"open model, target {format_number(low, thousands=True)}"
            f"..{format_number(high, thousands=True)} req/s")


def user_ramp_words(doc: Mapping[str, Any]) -> str:
    """'0→6→6→0': the users at the start and at the end of each ``--user-stage``; '' without."""
    stages = (doc.get("config") or {}).get("user_stages")
    if not isinstance(stages, list) or not stages or not all(
            isinstance(s, dict) and isinstance(s.get("start_users"), int)
            and isinstance(s.get("end_users"), int) for s in stages):
        return ""
    return "→".join(str(n) for n in [stages[0]["start_users"], *(s["end_users"] for s in stages)])


def target_rates(doc: Mapping[str, Any]) -> list[float]:
    """Every rate named in the saved schedule (config.schedule stages); [] when unknown."""
    stages = (doc.get("config") or {}).get("schedule")
    if not isinstance(stages, list):
        return []
    return [float(stage[key]) for stage in stages if isinstance(stage, dict)
            for key in ("start_rate", "end_rate")
            if isinstance(stage.get(key), (int, float))]


def _table(doc: Mapping[str, Any]) -> str:
    """Per-endpoint rows plus an "All endpoints" row, always present so users find totals
    in the same place whatever the number of endpoints."""
    endpoints = doc.get("endpoints") or []
    default_conc = (doc.get("config") or {}).get("concurrency")
    rows = [_row(e.get("endpoint", "?"), e, e.get("concurrency", default_conc))
            for e in endpoints]
    total = _row(ALL_ENDPOINTS, doc.get("summary") or {}, default_conc)
    return _layout(HEADERS, rows, total)


def success_caption(doc: Mapping[str, Any]) -> str:
    """The successes table's caption names what counted as a success.

    "(2xx)" would be false for a run with ``--expect-status 201`` or ``200-399``: the
    table then holds 201s only, or 3xx too.  The document saves each endpoint's set
    (``config.expect_status``, canonical text); files older than it meant 2xx.
    """
    saved = (doc.get("config") or {}).get("expect_status")
    sets = saved if isinstance(saved, dict) else {}
    texts = {str(text) for text in sets.values()}
    if not texts or texts == {DEFAULT_SUCCESS_TEXT}:
        return SUCCESS_CAPTION
    if len(texts) == 1:
        return f"Latency of successful requests only (expected statuses: {texts.pop()}):"
    each = "; ".join(f"{name} {text}" for name, text in sets.items())
    return f"Latency of successful requests only (expected statuses: {each}):"


def _success_table(doc: Mapping[str, Any]) -> str:
    """Latency of the successes alone (2xx unless --expect-status), same rows as the main
    table; "-" where none."""

    def row(name: str, s: Mapping[str, Any]) -> list[str]:
        latency = s.get("success_latency_ms") or {}
        successes = s.get("successes")
        return [name, f"{successes:,}" if isinstance(successes, int) else MISSING,
                *(format_number(latency.get(key)) for _, key in LATENCY_COLUMNS)]

    rows = [row(e.get("endpoint", "?"), e) for e in doc.get("endpoints") or []]
    return _layout(SUCCESS_HEADERS, rows, row(ALL_ENDPOINTS, doc.get("summary") or {}))


def _service_table(doc: Mapping[str, Any]) -> str:
    """Uncorrected latency per endpoint, same row order and totals row as the main table."""
    headers = ("Endpoint", *(header for header, _ in SERVICE_COLUMNS))

    def row(name: str, s: Mapping[str, Any]) -> list[str]:
        service = s.get("service_time_ms") or {}
        return [name, *(format_number(service.get(key)) for _, key in SERVICE_COLUMNS)]

    rows = [row(e.get("endpoint", "?"), e) for e in doc.get("endpoints") or []]
    return _layout(headers, rows, row(ALL_ENDPOINTS, doc.get("summary") or {}))


def _phases_table(phases: Any) -> str:
    """Connect, TLS handshake and time to first byte, one row each (those the run has).

    Under the latency tables because it explains them: how much of a request
    went on the connect and the handshake (each request's, with
    ``--no-keepalive``; only the connections' first, before the clock, with
    keep-alive) and how long the server took to start answering.  Rendered from
    the document, so ``loadgen report`` shows it again; files without phases
    show nothing.
    """
    if not isinstance(phases, dict):
        return ""
    headers = ("Phase", "Count", *(header for header, _ in PHASE_COLUMNS))
    rows = []
    for key, label in PHASE_ROWS:
        figures = phases.get(key)
        if not isinstance(figures, dict):
            continue
        count = figures.get("count")
        rows.append([label, f"{count:,}" if isinstance(count, int) else MISSING,
                     *(format_number(figures.get(k)) for _, k in PHASE_COLUMNS)])
    return _layout(headers, rows) if rows else ""


def _row(name: str, s: Mapping[str, Any], concurrency: Any) -> list[str]:
    """Format one S block as table cells; absent data becomes "-" rather than 0,
    because a latency of 0 ms would be a lie when nothing succeeded."""
    latency = s.get("latency_ms") or {}
    requests = s.get("requests", 0)
    return [
        name,
        f"{requests:,}",
        f"{concurrency:,}" if isinstance(concurrency, int) else MISSING,
        format_percent(s.get("success_rate"), requests, s.get("successes", 0)),
        format_number(s.get("rps"), thousands=True),
        *(format_number(latency.get(key)) for _, key in LATENCY_COLUMNS),
    ]


def _layout(headers: tuple[str, ...], rows: list[list[str]],
            total: list[str] | None = None) -> str:
    """Fixed-width columns sized to their content: first column left, numbers right;
    ``total`` (if any) under a second rule."""
    widths = [max(len(cell) for cell in column)
              for column in zip(headers, *rows, *([total] if total else []))]
    rule = "  ".join("-" * w for w in widths)

    def line(cells: list[str] | tuple[str, ...]) -> str:
        parts = [cell.ljust(w) if i == 0 else cell.rjust(w)
                 for i, (cell, w) in enumerate(zip(cells, widths))]
        return "  ".join(parts).rstrip()

    body = [line(headers), rule, *(line(r) for r in rows)]
    if total:
        body += [rule, line(total)]
    return "\n".join(body)


def _status_codes_line(codes: dict[str, int]) -> str:
    """HTTP status codes in numeric order, so 2xx come before 5xx."""
    if not codes:
        return "Status codes: none"
    ordered = sorted(codes.items(), key=_code_order)
    return "Status codes: " + "   ".join(f"{code} × {n:,}" for code, n in ordered)


def failures_line(block: Mapping[str, Any]) -> str:
    """Requests that did not succeed, with the success rate and both causes.

    ``Failures: 1,000 of 1,000 requests (100.00%; 0.00% success) — by status:
    500 × 1,000; by kind: none``.  Both splits are always named, "none"
    included, so a reader never wonders whether a cause was left out; status
    codes in numeric order, kinds most frequent first.
    """
    requests = block.get("requests") or 0
    failures = failure_count(block)
    if not failures:
        return "Failures: none" + (f" ({share_text(requests, requests)} success)"
                                   if requests else " (no requests)")
    by_status = sorted(failures_by_status(block).items(), key=_code_order)
    by_kind = sorted(failures_by_kind(block).items(), key=lambda kv: (-kv[1], kv[0]))
    share = (f" of {requests:,} requests ({share_text(failures, requests)}; "
             f"{share_text(requests - failures, requests)} success)" if requests else "")
    return (f"Failures: {failures:,}{share} — by status: {_counts_text(by_status)}; "
            f"by kind: {_counts_text(by_kind)}")


def _counts_text(items: list[tuple[str, int]]) -> str:
    return ", ".join(f"{name} × {n:,}" for name, n in items) or "none"


def _code_order(item: tuple[str, int]) -> tuple[bool, str]:
    """Numeric status codes in numeric order, anything else after them."""
    return (not item[0].isdigit(), item[0].zfill(3))


def format_number(value: float | None, thousands: bool = False) -> str:
    """About three significant digits (0.412, 12.3, 1234), never more than 3 decimals.

    Latencies come from a microsecond-resolution histogram, so more than three
    decimals of a millisecond would be noise; large values keep all integer
    digits because truncating 1234 to 1.23e3 hides the magnitude.
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    magnitude = abs(value)
    if magnitude == 0:
        decimals = 0
    else:
        decimals = min(3, max(0, 2 - math.floor(math.log10(magnitude))))
    return f"{value:,.{decimals}f}" if thousands else f"{value:.{decimals}f}"


def format_percent(rate: float | None, requests: int, successes: int) -> str:
    """Success rate with one decimal; a partial failure never shows as "100.0" nor a
    partial success as "0.0", since those two values are the ones users act on."""
    if not requests or rate is None:
        return MISSING
    return percent_text(successes / requests, 1).removesuffix("%")


def format_seconds(seconds: float) -> str:
    """A duration the way people say it: 850 ms, 12.3 s, 2m 05s."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{format_number(seconds)} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m {secs:02d}s"
