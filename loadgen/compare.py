"""``loadgen compare A.json B.json ...``: runs side by side, with a significance verdict.

A change of a few percent between two runs is usually noise.  To say whether
it is not, each run's per-second intervals are treated as samples: their p50,
p99 and rps values are compared with the first run's by a two-sided
Mann-Whitney U test (alpha 0.05).  It needs no normality (per-second
percentiles are skewed) and only ranks, so one outlier second cannot decide.

Only full intervals count (the last second of a run is usually partial, and
its rps would read low); with fewer than ``MIN_INTERVALS`` the verdict is "too
short to tell", never a guess.  The test is scipy's ``mannwhitneyu``.

Per-second samples are not fully independent (a slow minute spans 60 of
them), so a "significant" verdict on a long run says the runs differ, not by
how much; the change column says how much.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any


from loadgen.config import ConfigError
from loadgen.results import read_document

ALPHA = 0.05
MIN_INTERVALS = 5
FULL_INTERVAL_S = 0.9

#: (key, label, unit, better, read from an S block, per-interval key tested or None)
METRICS: tuple[tuple[str, str, str, str, Any, str | None], ...] = (
    ("requests", "requests", "", "higher", lambda s: s.get("requests"), None),
    ("rps", "rps", "req/s", "higher", lambda s: s.get("rps"), "rps"),
    ("success_rate", "success rate", "%", "higher", lambda s: s.get("success_rate"), None),
    ("p50", "latency p50", "ms", "lower", lambda s: _latency(s, "p50"), "p50"),
    ("p90", "latency p90", "ms", "lower", lambda s: _latency(s, "p90"), None),
    ("p99", "latency p99", "ms", "lower", lambda s: _latency(s, "p99"), "p99"),
    ("p999", "latency p99.9", "ms", "lower", lambda s: _latency(s, "p999"), None),
    ("max", "latency max", "ms", "lower", lambda s: _latency(s, "max"), None),
)
#: Config keys whose difference makes a comparison suspect.
CONFIG_KEYS = ("url", "endpoints", "model", "rate", "concurrency")


def _latency(summary: dict[str, Any], key: str) -> float | None:
    return (summary.get("latency_ms") or {}).get(key)


def load_for_compare(paths: Sequence[str]) -> list[dict[str, Any]]:
    """Read every results file (ResultsError on the first bad one); at least two are needed."""
    if len(paths) < 2:
        raise ConfigError(f"compare needs at least two results files, got {len(paths)}")
    return [read_document(p) for p in paths]


def default_labels(paths: Sequence[str]) -> list[str]:
    """File names without '.json'; whole paths when two files share a name."""
    names = [os.path.basename(p).removesuffix(".json") or p for p in paths]
    return names if len(set(names)) == len(names) else list(paths)


# --- the Mann-Whitney U test -------------------------------------------------------------

def mann_whitney_u(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test (scipy): (U of ``y`` over ``x``, p-value).

    U counts the pairs in which the ``y`` value is larger (ties count half), so
    U above ``len(x) * len(y) / 2`` means ``y`` tends to be higher.  scipy picks
    the exact distribution for small tie-free samples, the normal approximation
    with tie and continuity corrections otherwise.
    """
    from scipy.stats import mannwhitneyu

    if len(set(x) | set(y)) == 1:
        return len(x) * len(y) / 2.0, 1.0   # every value identical: nothing to tell apart
    result = mannwhitneyu(y, x, alternative="two-sided")
    return float(result.statistic), float(result.pvalue)


# --- the comparison ----------------------------------------------------------------------

def full_intervals(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's per-second intervals that lasted (about) a whole second."""
    kept, previous = [], 0.0
    for entry in sorted(doc.get("intervals") or [], key=lambda e: e.get("t", 0.0)):
        t = float(entry.get("t", 0.0))
        if t - previous >= FULL_INTERVAL_S:
            kept.append(entry)
        previous = t
    return kept


def interval_values(intervals: list[dict[str, Any]], key: str) -> list[float]:
    """One figure per interval; seconds without a value (no response: no latency) are skipped."""
    raw = (i.get("rps") if key == "rps" else (i.get("latency_ms") or {}).get(key)
           for i in intervals)
    return [float(v) for v in raw if v is not None]


def significance(base: list[float], other: list[float], better: str) -> dict[str, Any]:
    """Verdict on ``other`` against ``base``: too short, not significant, or higher/lower."""
    n = min(len(base), len(other))
    result: dict[str, Any] = {"intervals": [len(base), len(other)], "p": None,
                              "significant": False, "direction": None, "assessment": None}
    if n < MIN_INTERVALS:
        result["verdict"] = f"too short to tell ({n} intervals; need ≥ {MIN_INTERVALS})"
        return result
    u, p = mann_whitney_u(base, other)
    result["p"] = p
    if p >= ALPHA:
        result["verdict"] = "not significant"
        return result
    direction = "higher" if u > len(base) * len(other) / 2.0 else "lower"
    assessment = "better" if direction == better else "worse"
    result.update(significant=True, direction=direction, assessment=assessment,
                  verdict=f"significantly {direction} ({format_p(p)}), {assessment}")
    return result


def format_p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def change_pct(base: float | None, value: float | None) -> float | None:
    if base is None or value is None:
        return None
    if base == 0:
        return 0.0 if value == 0 else None
    return (value - base) / base * 100.0


def compare_documents(docs: list[dict[str, Any]], labels: list[str]) -> dict[str, Any]:
    """Every metric of every run beside the first run's, with changes, verdicts and warnings."""
    if len(docs) < 2 or len(labels) != len(docs):
        raise ValueError("compare_documents needs two or more documents and one label each")
    intervals = [full_intervals(d) for d in docs]
    metrics = []
    for key, label, unit, better, read, tested in METRICS:
        values = [read(d["summary"]) for d in docs]
        tests: list[dict[str, Any] | None] = [None]
        for run in intervals[1:]:
            tests.append(None if tested is None else significance(
                interval_values(intervals[0], tested), interval_values(run, tested), better))
        metrics.append({"metric": key, "label": label, "unit": unit, "better": better,
                        "values": values,
                        "change_pct": [None] + [change_pct(values[0], v) for v in values[1:]],
                        "tests": tests})
    return {"labels": list(labels), "baseline": labels[0], "alpha": ALPHA,
            "test": "two-sided Mann-Whitney U over full per-second intervals",
            "full_intervals": [len(i) for i in intervals],
            "metrics": metrics, "warnings": warnings(docs, labels)}


def warnings(docs: list[dict[str, Any]], labels: list[str]) -> list[str]:
    """Why the numbers may not be comparable: other config, a generator limit, an unfinished run."""
    found = []
    base = run_settings(docs[0])
    for doc, label in zip(docs[1:], labels[1:]):
        other = run_settings(doc)
        diffs = [f"{k} {_show(base[k])} vs {_show(other[k])}"
                 for k in CONFIG_KEYS if base[k] != other[k]]
        if diffs:
            found.append(f"{label!r} ran with another config than {labels[0]!r}: "
                         + "; ".join(diffs))
    for doc, label in zip(docs, labels):
        if doc.get("generator_limited"):
            found.append(f"{label!r} was generator-limited: its numbers describe loadgen's "
                         "limit, not the server's")
        if doc.get("status") != "complete":
            found.append(f"{label!r} did not complete (status {doc.get('status')!r})")
    return found


def run_settings(doc: dict[str, Any]) -> dict[str, Any]:
    """The config values that must match for two runs to be comparable."""
    config = doc.get("config") or {}
    return {"url": config.get("url"), "endpoints": config.get("endpoints"),
            "model": doc.get("model") or config.get("model", "closed"),
            "rate": _describe_rate(config.get("schedule")),
            "concurrency": config.get("concurrency")}


def _describe_rate(schedule: list[dict[str, Any]] | None) -> str | None:
    """'500/s' or '0→100/s over 30s, 100/s' for the open model's schedule; None when closed."""
    if not schedule:
        return None
    parts = []
    for s in schedule:
        start, end, duration = s.get("start_rate"), s.get("end_rate"), s.get("duration_s")
        rate = f"{end:g}/s" if start == end else f"{start:g}→{end:g}/s"
        parts.append(rate if duration is None else f"{rate} over {duration:g}s")
    return ", ".join(parts)


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


# --- rendering ---------------------------------------------------------------------------

def render_comparison(comparison: dict[str, Any]) -> str:
    """A terminal table: one row per metric; per run its value, its change and the verdict."""
    labels = comparison["labels"]
    header = ["metric", labels[0]]
    for label in labels[1:]:
        header += [label, "change", "verdict"]
    rows = [header]
    for metric in comparison["metrics"]:
        row = [metric["label"] + (f" ({metric['unit']})" if metric["unit"] not in ("", "%")
                                  else ""), _value(metric, 0)]
        for i in range(1, len(labels)):
            test = metric["tests"][i]
            row += [_value(metric, i), _change(metric["change_pct"][i]),
                    test["verdict"] if test else ""]
        rows.append(row)
    lines = _align(rows, numeric={i for i, h in enumerate(header) if h not in ("metric",
                                                                              "verdict")})
    notes = [f"Changes against {labels[0]!r}; verdicts (p50, p99, rps): {comparison['test']}, "
             f"alpha {comparison['alpha']:g}.",
             "Full intervals: " + ", ".join(f"{label} {n}" for label, n in
                                            zip(labels, comparison["full_intervals"]))]
    notes += [f"WARNING: {w}" for w in comparison["warnings"]]
    return "\n".join(lines + [""] + notes)


def _value(metric: dict[str, Any], i: int) -> str:
    value = metric["values"][i]
    if value is None:
        return "-"
    if metric["metric"] == "requests":
        return f"{value:,.0f}"
    if metric["metric"] == "success_rate":
        return f"{value * 100:.2f}%"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 10_000 else f"{value:.0f}"


def _change(pct: float | None) -> str:
    return "n/a" if pct is None else f"{pct:+.1f}%"


def _align(rows: list[list[str]], numeric: set[int]) -> list[str]:
    """Pad columns: numbers right-aligned, text left-aligned; no trailing blanks."""
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    return ["  ".join(cell.rjust(w) if c in numeric else cell.ljust(w)
                      for c, (cell, w) in enumerate(zip(row, widths))).rstrip()
            for row in rows]
