"""The terminal report of a finished run, rendered from its results document.

Pure and standard-library only: it takes the parsed results document (the
same dict that is written to disk) and returns text, so a saved run can be
re-rendered later exactly as it was shown live, and the tests need no network.
No ANSI colours, so the output can be piped, logged or pasted as-is.
"""

from __future__ import annotations

import math
from typing import Any

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


def render_table(doc: dict[str, Any]) -> str:
    """The whole report: header line, table, then status codes and errors.

    The summary lines sit under the table because that is where the eye
    lands after scanning the rows.
    """
    summary = doc.get("summary") or {}
    lines = [_header_line(doc)]
    lines += [f"Problem: {p}" for p in doc.get("problems") or []]
    lines += ["", _table(doc), ""]
    lines.append(_status_codes_line(summary.get("status_codes") or {}))
    lines.append(_errors_line(summary.get("errors") or {}))
    return "\n".join(lines) + "\n"


def _header_line(doc: dict[str, Any]) -> str:
    """One line answering 'did it finish, against what, how long, how fast'."""
    summary = doc.get("summary") or {}
    url = (doc.get("config") or {}).get("url", "?")
    status = doc.get("status", "unknown")
    requests = summary.get("requests", 0)
    duration = summary.get("duration_s") or 0.0
    rps = summary.get("rps") or 0.0
    return (f"Run {status}: {url} | {requests:,} requests in {format_seconds(duration)}"
            f" | {format_number(rps, thousands=True)} req/s")


def _table(doc: dict[str, Any]) -> str:
    """Per-endpoint rows plus an "All endpoints" row, always present so users find totals
    in the same place whatever the number of endpoints."""
    endpoints = doc.get("endpoints") or []
    default_conc = (doc.get("config") or {}).get("concurrency")
    rows = [_row(e.get("endpoint", "?"), e, e.get("concurrency", default_conc))
            for e in endpoints]
    total = _row(ALL_ENDPOINTS, doc.get("summary") or {}, default_conc)
    return _layout(HEADERS, rows, total)


def _row(name: str, s: dict[str, Any], concurrency: Any) -> list[str]:
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


def _layout(headers: tuple[str, ...], rows: list[list[str]], total: list[str]) -> str:
    """Fixed-width columns sized to their content: first column left, numbers right."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, total)]
    rule = "  ".join("-" * w for w in widths)

    def line(cells: list[str] | tuple[str, ...]) -> str:
        parts = [cell.ljust(w) if i == 0 else cell.rjust(w)
                 for i, (cell, w) in enumerate(zip(cells, widths))]
        return "  ".join(parts).rstrip()

    body = [line(headers), rule, *(line(r) for r in rows), rule, line(total)]
    return "\n".join(body)


def _status_codes_line(codes: dict[str, int]) -> str:
    """HTTP status codes in numeric order, so 2xx come before 5xx."""
    if not codes:
        return "Status codes: none"
    ordered = sorted(codes.items(), key=lambda kv: (not kv[0].isdigit(), kv[0].zfill(3)))
    return "Status codes: " + "   ".join(f"{code} × {n:,}" for code, n in ordered)


def _errors_line(errors: dict[str, int]) -> str:
    """Transport errors, most frequent first; "none" says explicitly that there were none."""
    present = {kind: n for kind, n in errors.items() if n}
    if not present:
        return "Errors: none"
    ordered = sorted(present.items(), key=lambda kv: (-kv[1], kv[0]))
    return "Errors: " + ", ".join(f"{kind} × {n:,}" for kind, n in ordered)


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
    text = f"{rate * 100:.1f}"
    if text == "100.0" and successes < requests:
        return ">99.9"
    if text == "0.0" and successes > 0:
        return "<0.1"
    return text


def format_seconds(seconds: float) -> str:
    """A duration the way people say it: 850 ms, 12.3 s, 2m 05s."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{format_number(seconds)} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m {secs:02d}s"
