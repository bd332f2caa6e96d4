"""The charts of a run (or of several), drawn from results documents.

``draw_summary`` makes one PNG of up to four panels: latency and success
rate per endpoint (bars), latency over time with throughput, and the
percentile spectrum read from the saved HDR histograms.  ``draw_comparison``
overlays the time series and spectra of several runs.

The only module that uses matplotlib, and it imports it lazily inside the
drawing functions: matplotlib is slow to import and must never be loaded by
worker processes, which import from this package.

It uses the object-oriented ``Figure`` API rather than pyplot: such a figure
is never registered in pyplot's global figure list, so it cannot leak when
called many times, needs no GUI backend (saving a PNG renders with Agg), and
does not change the backend of a process that embeds loadgen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loadgen.output.server import cpu_series, format_bytes, has_server
from loadgen.output.table import format_percent, is_open_model
from loadgen.stats.failures import interval_counts

FIGSIZE = (11.0, 5.0)  # bars only: documents with neither intervals nor histograms
GRID_FIGSIZE = (13.0, 9.0)  # 2x2: bars on top, time series and spectrum below
SERVER_FIGSIZE = (13.0, 12.5)  # ... and the server's CPU beside throughput and p99 (--monitor-*)
PROCESS_CPU_COLOR = "#C44E52"
HOST_CPU_COLOR = "#DD8452"
COMPARISON_FIGSIZE = (13.0, 5.0)
DPI = 100
LONG_LABEL = 20  # characters; longer endpoint names get rotated tick labels
MAX_LABEL = 30  # characters; longer names are cut in the middle
MIN_SLOTS = 3  # a lone endpoint is drawn as narrow as one of three, not full width
HEADROOM = 1.3  # room above the tallest bar for its label and the legend
AVG_COLOR = "#4C72B0"
P95_COLOR = "#DD8452"
SUCCESS_COLOR = "#55A868"
LIMITED_COLOR = "#C44E52"
THROUGHPUT_COLOR = "#999999"
THROUGHPUT_LABEL_COLOR = "#555555"
FAILURE_COLOR = LIMITED_COLOR
ITERATION_COLOR = "#8172B2"
# Percentile lines over time, darker for the tail that matters most.
TIME_LINES = (("p50", "P50", "#8FB3DE"), ("p90", "P90", "#4C72B0"), ("p99", "P99", "#1B2F5E"))
MIN_LAST_INTERVAL_S = 0.5  # a shorter final interval is a sliver, not a second
MARKERS_UP_TO = 30  # intervals; fewer points get markers, so a 2-second run is not invisible
SPECTRUM_POINTS_PER_DECADE = 40
SPECTRUM_MAX_DECADES = 9  # 99.9999999%: beyond this a histogram has too few samples to say


def draw_summary(doc: Mapping[str, Any], path: str) -> str:
    """Write the run's PNG and return ``path``.

    Two bar charts (latency avg/P95 and success rate per endpoint) always; below
    them latency over time and the percentile spectrum when the document has
    intervals or histograms.  A document with neither (an old or empty run) keeps
    the original one-row figure rather than two empty panels.
    """
    from matplotlib.figure import Figure

    endpoints = doc.get("endpoints") or []
    names = [e.get("endpoint", "?") for e in endpoints]
    intervals = plotted_intervals(doc)
    spectra = _endpoint_spectra(doc)
    grid = bool(intervals or spectra)
    server = has_server(intervals)
    fig = Figure(figsize=SERVER_FIGSIZE if server else GRID_FIGSIZE if grid else FIGSIZE,
                 dpi=DPI, layout="constrained")
    if server:   # a third row, full width: the server's CPU under the latency over time
        panels = fig.subplot_mosaic([["latency", "success"], ["time", "spectrum"],
                                     ["server", "server"]])
        axes = [[panels["latency"], panels["success"]], [panels["time"], panels["spectrum"]]]
        _draw_server(panels["server"], intervals, doc.get("server") or {})
    else:
        axes = fig.subplots(2, 2) if grid else [fig.subplots(1, 2)]
    latency_ax, success_ax = axes[0]
    _draw_latency(latency_ax, endpoints)
    _draw_success(success_ax, endpoints)
    for ax in (latency_ax, success_ax):
        _label_endpoints(ax, names)
    if is_open_model(doc):
        latency_ax.set_title("Latency per endpoint (corrected)")
    if grid:
        time_ax, spectrum_ax = axes[1]
        _draw_over_time(time_ax, intervals, corrected=is_open_model(doc))
        _draw_spectrum(spectrum_ax, spectra)
    _suptitle(fig, doc, _title(doc))
    return _save(fig, path)


def draw_comparison(docs: Sequence[Mapping[str, Any]], labels: list[str], path: str) -> str:
    """Overlay several runs in one PNG (P99 over time, merged percentile spectra); return ``path``.

    Each run's endpoints are merged into one histogram, because comparing runs is
    about the run as a whole; a run without data is still named in the legend
    rather than silently missing from it.
    """
    from matplotlib.figure import Figure

    if len(docs) != len(labels):
        raise ValueError(f"{len(docs)} documents but {len(labels)} labels")
    if not docs:
        raise ValueError("nothing to compare: no documents")
    fig = Figure(figsize=COMPARISON_FIGSIZE, dpi=DPI, layout="constrained")
    comparison_figure(docs, labels, fig)
    return _save(fig, path)


def comparison_figure(docs: Sequence[Mapping[str, Any]], labels: list[str], fig: Any) -> None:
    """Draw ``draw_comparison``'s panels into ``fig`` (the PNG, or the HTML report's SVG)."""
    time_ax, spectrum_ax = fig.subplots(1, 2)
    colors = _colors(len(docs))
    time_ax.set_title("P99 latency over time")
    time_ax.set_xlabel("Time since start (s)")
    time_ax.set_ylabel("P99 latency (ms)")
    tallest = 0.0
    for doc, label, color in zip(docs, labels, colors):
        points = [(i["t"], _ms(i, "p99")) for i in plotted_intervals(doc)]
        values = [y for _, y in points if not math.isnan(y)]
        if values:
            xs, ys = zip(*points)
            time_ax.plot(xs, ys, color=color, label=label,
                         marker="o" if len(xs) <= MARKERS_UP_TO else None, markersize=3)
            tallest = max(tallest, *values)
        else:
            time_ax.plot([], [], color=color, label=f"{label} (no data)")
    if tallest > 0:
        time_ax.set_ylim(0, tallest * HEADROOM)
        time_ax.set_xlim(left=0)
        time_ax.legend(fontsize=8, frameon=False)
    else:
        _no_data(time_ax)
    spectra = [Spectrum(label, _merged(_histograms(doc, "histograms")), color)
               for doc, label, color in zip(docs, labels, colors)]
    _draw_spectrum(spectrum_ax, [s for s in spectra if s.hist is not None],
                   title="Latency by percentile (all endpoints)",
                   missing=[s for s in spectra if s.hist is None])
    limited = [label for doc, label in zip(docs, labels) if doc.get("generator_limited")]
    title = f"loadgen: {len(docs)} runs compared"
    if limited:
        title += " | GENERATOR LIMITED: " + ", ".join(limited)
    fig.suptitle(title, color=LIMITED_COLOR if limited else "black")


def _save(fig: Any, path: str) -> str:
    """Always PNG whatever the file name says, laid out once and drawn once.

    Rendered in memory and handed to ``loadgen.output.files``: savefig would open the
    name itself, truncating a file before the PNG is complete and writing
    through whatever the name is; the output module replaces only regular
    files (atomically) and writes FIFOs and devices directly.

    No ``fig.clear()`` afterwards: it rebuilt every axes (``Axes.clear``) only to drop it,
    a twentieth of the chart's CPU, and did not free the artists at once anyway (they
    hold reference cycles: the garbage collector still had ~10,000 objects to find).
    """
    import io

    from loadgen.output.files import write_bytes

    buffer = io.BytesIO()
    laid_out(fig, "png")
    fig.savefig(buffer, format="png", dpi=DPI)
    write_bytes(path, buffer.getvalue())
    return path


def laid_out(fig: Any, fmt: str) -> None:
    """Run ``fig``'s layout engine once, as ``savefig(format=fmt)`` would, then remove it.

    Why: ``savefig`` on a figure with a layout engine draws it twice, once with drawing
    disabled only so that ``Figure.draw`` runs the engine, then for real; the throw-away
    pass redoes every tick and text extent of the real one, a quarter of a chart's CPU.
    Here the engine runs on the canvas ``savefig`` switches to for ``fmt`` (so text is
    measured by the renderer that draws it: SVG at 72 dpi, Agg at the figure's dpi), which
    places every axes where ``savefig`` would, and the figure, left without an engine, is
    drawn once: the same bytes (``bench/charts.py --check`` compares them).  A
    ``ValueError`` leaves the axes where they are, as ``Figure.draw`` does; the rc_context
    keeps a matplotlibrc's ``figure.autolayout`` from putting an engine back.  A PNG must
    then be saved at the figure's own dpi (``DPI`` everywhere here), the one laid out at.
    """
    import matplotlib
    from matplotlib.backend_bases import get_registered_canvas_class

    get_registered_canvas_class(fmt)(fig)   # sets fig.canvas: the one savefig will use
    engine = fig.get_layout_engine()
    if engine is not None:
        try:
            engine.execute(fig)
        except ValueError:
            pass
    with matplotlib.rc_context({"figure.autolayout": False,
                                "figure.constrained_layout.use": False}):
        fig.set_layout_engine(None)


def _suptitle(fig: Any, doc: Mapping[str, Any], title: str) -> None:
    """The figure title, in red with the warning when loadgen itself was the limit, so
    a PNG passed around without its table still carries it."""
    if doc.get("generator_limited"):
        fig.suptitle(title + "\nGENERATOR LIMITED: these numbers describe loadgen's limit, "
                     "not the server's", color=LIMITED_COLOR)
    else:
        fig.suptitle(title)


def _title(doc: Mapping[str, Any]) -> str:
    """Name the target so a PNG found later says what it measured; flag unfinished runs."""
    url = (doc.get("config") or {}).get("url", "?")
    status = doc.get("status", "complete")
    suffix = "" if status == "complete" else f" ({status})"
    return f"loadgen: {url}{suffix}"


def plotted_intervals(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The per-second series to plot, in time order.

    A last interval much shorter than a second (the few milliseconds between the
    final whole second and the last response) is left out: its handful of
    requests would draw as a rate spike (1 request in 2 ms is "500 req/s") and a
    one-sample "p99".  Its requests are still in every total.  A run shorter
    than a second keeps its only interval.
    """
    series = doc.get("intervals") or []
    usable = [i for i in series if isinstance(i, dict) and isinstance(i.get("t"), (int, float))]
    usable.sort(key=lambda i: i["t"])
    if len(usable) > 1 and usable[-1]["t"] - usable[-2]["t"] < MIN_LAST_INTERVAL_S:
        usable.pop()
    return usable


def _ms(interval: Mapping[str, Any], key: str) -> float:
    """An interval's latency in ms; NaN (a gap in the line) for a second without responses."""
    value = (interval.get("latency_ms") or {}).get(key)
    return float(value) if value is not None else math.nan


def _draw_over_time(ax: Any, intervals: Sequence[Mapping[str, Any]], corrected: bool) -> None:
    """Percentile lines per second with throughput (and failures) behind them on a second axis.

    Throughput shares the x axis so that a latency spike can be matched with a
    dip (server stall) or a surge (queueing) at a glance; failures per second
    are drawn on the same scale when there were any, so a burst of 500s or
    timeouts shows as the share of the throughput it was.
    """
    title = "Latency over time" + (" (corrected)" if corrected else "")
    ax.set_title(title)
    ax.set_xlabel("Time since start (s)")
    ax.set_ylabel("Latency (ms)")
    if not intervals:
        _no_data(ax)
        return
    times = [i["t"] for i in intervals]
    marker = "o" if len(times) <= MARKERS_UP_TO else None
    rate_ax = ax.twinx()
    _draw_throughput(rate_ax, times, [float(i.get("rps") or 0.0) for i in intervals])
    # Old files counted only the requests without a response per second: say so on the line.
    old = any("failures" not in i for i in intervals)
    _draw_failures(rate_ax, times, [failure_rate(i) for i in intervals],
                   "Failures/s (no response only)" if old else "Failures/s")
    if any("iterations" in i for i in intervals):   # a journey run: on the same scale
        _draw_iterations(rate_ax, times, [iteration_rate(i) for i in intervals])
    ax.set_zorder(rate_ax.get_zorder() + 1)  # lines over the shaded throughput
    ax.patch.set_visible(False)
    tallest = 0.0
    for key, label, color in TIME_LINES:
        values = [_ms(i, key) for i in intervals]
        tallest = max([tallest, *(v for v in values if not math.isnan(v))])
        ax.plot(times, values, color=color, label=label, marker=marker, markersize=3,
                linewidth=1.5)
    ax.set_ylim(0, tallest * HEADROOM if tallest > 0 else 1.0)
    ax.set_xlim(0, max(times) * 1.02)  # a margin, so the last point's marker is not clipped
    if tallest == 0.0 and all(math.isnan(_ms(i, "p50")) for i in intervals):
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no latency data (no responses)", ha="center", va="center",
                color="gray", transform=ax.transAxes)
    handles, names = ax.get_legend_handles_labels()
    rate_handles, rate_names = rate_ax.get_legend_handles_labels()
    ax.legend(handles + rate_handles, names + rate_names, loc="upper left", ncols=4,
              fontsize=8, frameon=False)


def _draw_throughput(ax: Any, times: list[float], rates: list[float]) -> None:
    """Requests per second as a light step area: each interval's ``t`` is the end of
    its second, so the area for (t-1, t] is drawn from the previous point."""
    xs = [max(0.0, times[0] - 1.0), *times]
    ys = [rates[0], *rates]
    ax.fill_between(xs, ys, step="pre", color=THROUGHPUT_COLOR, alpha=0.25, linewidth=0,
                    label="Throughput")
    ax.set_ylabel("Throughput (req/s)", color=THROUGHPUT_LABEL_COLOR)
    ax.tick_params(axis="y", colors=THROUGHPUT_LABEL_COLOR)
    top = max(rates)
    ax.set_ylim(0, top * HEADROOM if top > 0 else 1.0)


def failure_rate(interval: Mapping[str, Any]) -> float:
    """Failures per second in one interval, on the throughput's scale (req/s).

    Scaled from ``rps`` rather than divided by the interval's length, so old
    files (no ``length_s``; only transport failures, as ``errors``) read too.
    """
    requests = interval.get("requests") or 0
    if not requests:
        return 0.0
    return float(interval.get("rps") or 0.0) * interval_counts(interval)[1] / requests


def _draw_failures(ax: Any, times: list[float], rates: list[float], label: str) -> None:
    """A red step line of failures per second, only when some request failed."""
    if not any(rates):
        return
    xs = [max(0.0, times[0] - 1.0), *times]
    ax.step(xs, [rates[0], *rates], where="pre", color=FAILURE_COLOR, linewidth=1.2,
            label=label)


def iteration_rate(interval: Mapping[str, Any]) -> float:
    """A journey run's completed iterations per second in one interval (over its length)."""
    length = interval.get("length_s")
    count = interval.get("iterations") or 0
    return float(count) / length if isinstance(length, (int, float)) and length > 0 else 0.0


def _draw_iterations(ax: Any, times: list[float], rates: list[float]) -> None:
    """A step line of iterations per second: each is one or more requests, so it stays
    under the throughput it is drawn over."""
    xs = [max(0.0, times[0] - 1.0), *times]
    ax.step(xs, [rates[0], *rates], where="pre", color=ITERATION_COLOR, linewidth=1.2,
            label="Iterations/s")


def _draw_server(ax: Any, intervals: Sequence[Mapping[str, Any]],
                 summary: Mapping[str, Any]) -> None:
    """The server's CPU % per second (``--monitor-pid``: the process tree, 100 = one core;
    ``--monitor-url``: the host's busy share of all CPUs) with the run's throughput and
    p99 on a second axis, so a reader sees whether p99 rose when the CPU saturated."""
    times = [i["t"] for i in intervals]
    marker = "o" if len(times) <= MARKERS_UP_TO else None
    rate_ax = ax.twinx()
    _draw_throughput(rate_ax, times, [float(i.get("rps") or 0.0) for i in intervals])
    ax.set_zorder(rate_ax.get_zorder() + 1)
    ax.patch.set_visible(False)
    p99_ax = ax.twinx()
    p99_ax.spines["right"].set_position(("axes", 1.07))
    p99 = [_ms(i, "p99") for i in intervals]
    p99_ax.plot(times, p99, color=TIME_LINES[-1][2], linestyle="--", linewidth=1.2,
                label="P99 (ms)")
    p99_ax.set_ylabel("P99 latency (ms)")
    top = max((v for v in p99 if not math.isnan(v)), default=0.0)
    p99_ax.set_ylim(0, top * HEADROOM if top > 0 else 1.0)
    tallest = 0.0
    notes = []
    process, host = summary.get("process") or {}, summary.get("host") or {}
    for source, label, color in (("process", "Server CPU % (process tree)", PROCESS_CPU_COLOR),
                                 ("host", "Host CPU % (all cores)", HOST_CPU_COLOR)):
        values = cpu_series(intervals, source)
        if all(math.isnan(v) for v in values):
            continue
        tallest = max([tallest, *(v for v in values if not math.isnan(v))])
        ax.plot(times, values, color=color, label=label, marker=marker, markersize=3,
                linewidth=1.8)
    if process:
        notes.append(f"process: 100% = one core of {process.get('cpu_count', '?')}, "
                     f"RSS peak {format_bytes(process.get('rss_bytes_max'))}")
    if host:
        notes.append(f"host: memory peak {format_bytes(host.get('memory_used_bytes_max'))}")
    ax.set_title("Server CPU beside throughput and P99" + (f" ({'; '.join(notes)})"
                                                          if notes else ""))
    ax.set_xlabel("Time since start (s)")
    ax.set_ylabel("CPU (%)")
    ax.set_ylim(0, max(100.0, tallest * 1.1))
    ax.set_xlim(0, max(times) * 1.02)
    handles, names = [], []
    for each in (ax, rate_ax, p99_ax):
        h, n = each.get_legend_handles_labels()
        handles += h
        names += n
    ax.legend(handles, names, loc="upper left", ncols=4, fontsize=8, frameon=False)


@dataclass(frozen=True, slots=True)
class Spectrum:
    """One line of a percentile spectrum: a label, a histogram (µs), and how to draw it."""

    label: str
    hist: Any
    color: str
    dashed: bool = False


def _histograms(doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Decode one histogram map of the document, skipping empty ("") entries."""
    from loadgen.stats.metrics import decode_histogram

    encoded = doc.get(key) or {}
    hists = {name: decode_histogram(text) for name, text in encoded.items() if text}
    return {name: h for name, h in hists.items() if h.get_total_count()}


def _merged(hists: Mapping[str, Any]) -> Any:
    """All endpoints in one histogram (exact: same layout everywhere); None when empty."""
    from loadgen.stats.metrics import new_histogram

    if not hists:
        return None
    total = new_histogram()
    for hist in hists.values():
        total.add(hist)
    return total


def _endpoint_spectra(doc: Mapping[str, Any]) -> list[Spectrum]:
    """A solid line per endpoint, plus a dashed "service time" line of the same colour
    when the run kept uncorrected histograms, so each pair reads as one endpoint."""
    main = _histograms(doc, "histograms")
    service = _histograms(doc, "service_histograms")
    names = list(dict.fromkeys([*main, *service]))
    lines = []
    for name, color in zip(names, _colors(len(names))):
        if name in main:
            lines.append(Spectrum(_shorten(name), main[name], color))
        if name in service:
            lines.append(Spectrum(f"{_shorten(name)} service time", service[name], color,
                                  dashed=True))
    return lines


def _colors(n: int) -> list[str]:
    """Distinct colours from matplotlib's default cycle (repeating past ten)."""
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
               "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    return [palette[i % len(palette)] for i in range(n)]


def spectrum_points(hist: Any) -> tuple[list[float], list[float]]:
    """(x, latency ms) along the classic HDR axis x = 1 / (1 - percentile).

    Points are spread evenly on the log axis up to the last percentile the
    sample count can resolve (x = count), and the line ends on the maximum, so
    the rightmost point is the slowest response actually seen.
    """
    count = hist.get_total_count()
    top = min(math.log10(count), SPECTRUM_MAX_DECADES) if count > 1 else 0.0
    steps = max(1, math.ceil(top * SPECTRUM_POINTS_PER_DECADE))
    xs = [10 ** (top * k / steps) for k in range(steps + 1)]
    percentiles = [100.0 * (1.0 - 1.0 / x) for x in xs]
    values = hist.get_percentile_to_value_dict(percentiles)
    ys = [values.get(p, hist.get_max_value()) / 1000.0 for p in percentiles]
    xs.append(xs[-1])
    ys.append(hist.get_max_value() / 1000.0)
    return xs, ys


def _draw_spectrum(ax: Any, spectra: list[Spectrum], title: str = "Latency by percentile",
                   missing: list[Spectrum] | None = None) -> None:
    """Latency against percentile on the log "nines" axis, where the tail gets the room:
    99% to 99.9% is as wide as 0% to 90%.  ``missing`` lines (runs without samples)
    appear in the legend only, so a comparison never drops a run without saying so."""
    ax.set_title(title)
    ax.set_xlabel("Percentile")
    ax.set_ylabel("Latency (ms)")
    if not spectra:
        _no_data(ax)
        return
    right = 1.0
    for line in spectra:
        xs, ys = spectrum_points(line.hist)
        right = max(right, xs[-1])
        ax.plot(xs, ys, color=line.color, label=line.label,
                linestyle="--" if line.dashed else "-", linewidth=1.5)
    for line in missing or []:
        ax.plot([], [], color=line.color, label=f"{line.label} (no data)")
    _percentile_axis(ax, right)
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", fontsize=7, frameon=False)


def _percentile_axis(ax: Any, right: float) -> None:
    """Log x axis labelled in percent: 0%, 50%, 90%, 99%, 99.9%, ..."""
    from matplotlib.ticker import NullFormatter

    right = max(right, 10.0)  # at least 0%..90%, so a tiny run still shows a scale
    ax.set_xscale("log")
    ax.set_xlim(1.0, right)
    ticks = [1.0, 2.0] + [10.0 ** k for k in range(1, SPECTRUM_MAX_DECADES + 1)
                          if 10.0 ** k <= right * 1.0001]
    ax.set_xticks(ticks, labels=[percentile_label(x) for x in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="major", alpha=0.3)


def percentile_label(x: float) -> str:
    """The percentile at HDR axis position x = 1/(1-p): 1 -> 0%, 2 -> 50%, 1000 -> 99.9%."""
    percent = 100.0 * (1.0 - 1.0 / x)
    decimals = max(0, round(math.log10(x)) - 2)
    return f"{percent:.{decimals}f}%"


def _no_data(ax: Any) -> None:
    """Say so in an empty panel, without ticks, instead of drawing axes that look like zero."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, "no data", ha="center", va="center", color="gray",
            transform=ax.transAxes)


def _latency(entry: Mapping[str, Any], key: str) -> float | None:
    """A latency in ms, or None when the endpoint had no samples (null in the document)."""
    value = (entry.get("latency_ms") or {}).get(key)
    return float(value) if value is not None else None


def _draw_latency(ax: Any, endpoints: Sequence[Mapping[str, Any]]) -> None:
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


def _draw_success(ax: Any, endpoints: Sequence[Mapping[str, Any]]) -> None:
    """Success rate in percent on a fixed 0-100 scale, so runs can be compared by eye."""
    rates = [100.0 * (e.get("success_rate") or 0.0) if e.get("requests") else None
             for e in endpoints]
    bars = ax.bar(range(len(endpoints)), [r or 0.0 for r in rates], 0.6, color=SUCCESS_COLOR)
    ax.bar_label(bars, labels=[_rate_label(e) for e in endpoints], fontsize=8, padding=2)
    ax.set_title("Success rate per endpoint")
    ax.set_ylabel("Success rate (%)")
    ax.set_ylim(0, 110)
    ax.set_yticks(range(0, 101, 20))


def _rate_label(entry: Mapping[str, Any]) -> str:
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


def draw_capacity(doc: Mapping[str, Any], path: str) -> str:
    """A capacity search in one PNG: each step's rate against its p99 and failure share.

    Steps are drawn in rate order (the bisection visits them out of order), held
    steps green and failed ones red, with the answer as a vertical line, so the
    knee the search found is visible and can be judged by eye.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 5), dpi=DPI, layout="constrained")
    capacity_figure(doc, fig)
    return _save(fig, path)


def capacity_figure(doc: Mapping[str, Any], fig: Any) -> None:
    """Draw ``draw_capacity``'s panels into ``fig`` (the PNG, or the HTML report's SVG)."""
    steps = sorted(doc.get("steps") or [], key=lambda s: s["rate"])
    p99_ax, err_ax = fig.subplots(1, 2)
    rates = [s["rate"] for s in steps]
    colors = ["#55a868" if s["passed"] else LIMITED_COLOR for s in steps]
    p99 = [s["p99_ms"] if s["p99_ms"] is not None else math.nan for s in steps]
    p99_ax.plot(rates, p99, color="#4c72b0", zorder=1)
    p99_ax.scatter(rates, p99, c=colors, zorder=2)
    p99_ax.set(title="P99 latency (corrected) by rate", xlabel="Target rate (req/s)",
               ylabel="P99 latency (ms)")
    shares = [100 * failure_share(s) for s in steps]
    err_ax.plot(rates, shares, color="#4c72b0", zorder=1)
    err_ax.scatter(rates, shares, c=colors, zorder=2)
    err_ax.set(title="Failures by rate (requests without 2xx)", xlabel="Target rate (req/s)",
               ylabel="Failures (% of requests)")
    err_ax.set_ylim(0, max([1.0, *(1.2 * share for share in shares)]))
    answer = doc.get("capacity_rps")
    for ax in (p99_ax, err_ax):
        if answer:
            ax.axvline(answer, color="gray", linestyle="--", label=f"capacity ≈ {answer:g} req/s")
            ax.legend(fontsize=8, frameon=False)
        if rates and max(rates) / min(rates) > 20:
            ax.set_xscale("log")
    url = (doc.get("config") or {}).get("url", "?")
    fig.suptitle(f"loadgen capacity: {url} | SLOs {', '.join(doc.get('slos') or [])}",
                 color=LIMITED_COLOR if doc.get("generator_limited") else "black")


def failure_share(step: Mapping[str, Any]) -> float:
    """A capacity step's share of failed requests; files before the rename say ``error_share``."""
    share = step.get("failure_share")
    return float(share if share is not None else step.get("error_share") or 0.0)
