"""The summary chart of a finished run, drawn from its results document.

The only module that uses matplotlib, and it imports it lazily inside
``draw_summary``: matplotlib is slow to import and must never be loaded by
worker processes, which import from this package.

It uses the object-oriented ``Figure`` API rather than pyplot: such a figure
is never registered in pyplot's global figure list, so it cannot leak when
called many times, needs no GUI backend (saving a PNG renders with Agg), and
does not change the backend of a process that embeds loadgen.
"""

from __future__ import annotations

from typing import Any

from loadgen.report import format_percent

FIGSIZE = (11.0, 5.0)
DPI = 100
LONG_LABEL = 20  # characters; longer endpoint names get rotated tick labels
MAX_LABEL = 30  # characters; longer names are cut in the middle
MIN_SLOTS = 3  # a lone endpoint is drawn as narrow as one of three, not full width
HEADROOM = 1.3  # room above the tallest bar for its label and the legend
AVG_COLOR = "#4C72B0"
P95_COLOR = "#DD8452"
SUCCESS_COLOR = "#55A868"


def draw_summary(doc: dict[str, Any], path: str) -> str:
    """Write a PNG with latency (avg, P95) and success rate per endpoint; return ``path``."""
    from matplotlib.figure import Figure

    endpoints = doc.get("endpoints") or []
    names = [e.get("endpoint", "?") for e in endpoints]
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    latency_ax, success_ax = fig.subplots(1, 2)
    _draw_latency(latency_ax, endpoints)
    _draw_success(success_ax, endpoints)
    for ax in (latency_ax, success_ax):
        _label_endpoints(ax, names)
    fig.suptitle(_title(doc))
    fig.savefig(path, format="png", dpi=DPI)
    fig.clear()  # drop artists now instead of waiting for the garbage collector
    return path


def _title(doc: dict[str, Any]) -> str:
    """Name the target so a PNG found later says what it measured; flag unfinished runs."""
    url = (doc.get("config") or {}).get("url", "?")
    status = doc.get("status", "complete")
    suffix = "" if status == "complete" else f" ({status})"
    return f"loadgen: {url}{suffix}"


def _latency(entry: dict[str, Any], key: str) -> float | None:
    """A latency in ms, or None when the endpoint had no samples (null in the document)."""
    value = (entry.get("latency_ms") or {}).get(key)
    return float(value) if value is not None else None


def _draw_latency(ax: Any, endpoints: list[dict[str, Any]]) -> None:
    """Grouped bars of average and P95 latency; endpoints without samples say "no data"
    instead of showing a misleading zero-height bar."""
    width = 0.38
    positions = range(len(endpoints))
    for offset, key, label, color in ((-width / 2, "mean", "Average", AVG_COLOR),
                                      (width / 2, "p95", "P95", P95_COLOR)):
        values = [_latency(e, key) for e in endpoints]
        bars = ax.bar([p + offset for p in positions], [v or 0.0 for v in values],
                      width, label=label, color=color)
        ax.bar_label(bars, labels=[_short(v) for v in values], fontsize=8, padding=2)
    for pos, entry in zip(positions, endpoints):
        if _latency(entry, "mean") is None:
            ax.annotate("no data", (pos, 0), xytext=(0, 14), textcoords="offset points",
                        ha="center", fontsize=8, color="gray")
    tallest = max((_latency(e, "p95") or 0.0 for e in endpoints), default=0.0)
    ax.set_title("Latency per endpoint")
    ax.set_ylabel("Latency (ms)")
    ax.set_ylim(0, tallest * HEADROOM if tallest > 0 else 1.0)
    ax.legend(loc="upper left", ncols=2, fontsize=8, frameon=False)


def _draw_success(ax: Any, endpoints: list[dict[str, Any]]) -> None:
    """Success rate in percent on a fixed 0-100 scale, so runs can be compared by eye."""
    rates = [100.0 * (e.get("success_rate") or 0.0) if e.get("requests") else None
             for e in endpoints]
    bars = ax.bar(range(len(endpoints)), [r or 0.0 for r in rates], 0.6, color=SUCCESS_COLOR)
    ax.bar_label(bars, labels=[_rate_label(e) for e in endpoints], fontsize=8, padding=2)
    ax.set_title("Success rate per endpoint")
    ax.set_ylabel("Success rate (%)")
    ax.set_ylim(0, 110)
    ax.set_yticks(range(0, 101, 20))


def _rate_label(entry: dict[str, Any]) -> str:
    """Same wording as the table, so a 99.99% run never reads "100.0%" on the chart."""
    requests = entry.get("requests", 0)
    if not requests:
        return "no requests"
    return format_percent(entry.get("success_rate"), requests, entry.get("successes", 0)) + "%"


def _label_endpoints(ax: Any, names: list[str]) -> None:
    """Endpoint names under the bars, rotated when long or many so they don't overlap."""
    names = [_shorten(n) for n in names]
    ax.set_xticks(range(len(names)))
    pad = max(0.0, (MIN_SLOTS - len(names)) / 2)
    ax.set_xlim(-0.5 - pad, len(names) - 0.5 + pad)
    crowded = len(names) > 3 or any(len(n) > LONG_LABEL for n in names)
    if crowded:
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    else:
        ax.set_xticklabels(names, fontsize=9)
    if not names:
        ax.text(0.5, 0.5, "no endpoints", ha="center", va="center", transform=ax.transAxes)


def _shorten(name: str) -> str:
    """Cut long names in the middle: the method and the last path segments tell endpoints apart."""
    if len(name) <= MAX_LABEL:
        return name
    head = MAX_LABEL // 3
    return name[:head] + "…" + name[-(MAX_LABEL - head - 1):]


def _short(value: float | None) -> str:
    """Bar labels with about three significant digits; empty for missing data."""
    if value is None:
        return ""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if value >= 1 else f"{value:.3f}"
