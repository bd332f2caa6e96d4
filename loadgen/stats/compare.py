"""``loadgen compare A.json B.json ...``: runs side by side, with a verdict that does not cry wolf.

A change of a few percent between two runs of one configuration is usually
noise, and of two kinds: second-to-second noise within a run, and drift
between runs (other jobs on a shared machine, throttling, a warming cache).
The old verdict -- a Mann-Whitney U test over per-second values -- took each
second as an independent sample: but seconds are autocorrelated (a slow
stretch spans many of them) and the drift between runs is not in any one run,
so identical runs were called "significantly" different.  Measured in
``bench/aa.py``.  Now p50, p99 and rps of each run are judged against the first
run's in one of two ways, and the result says which:

* **Single runs: a circular block bootstrap over seconds.**  Each run's
  per-second values are resampled in blocks of about sqrt(n) consecutive
  seconds (so the autocorrelation inside a block is kept), giving a 95%
  interval for the difference of the two runs' median seconds -- widened for
  the few independent blocks a short run has (an expanded percentile interval).
* **Repeats (``combine_runs`` documents with 3+ runs on both sides): the
  between-run variance.**  Each run is one observation (its own p50, p99,
  rps); a Welch t interval for the difference of the means.  This is the only
  way to measure drift rather than assume a bound for it.

Either way the difference is called significant only when the whole interval
lies beyond a **noise floor** (``FLOORS``): a share of the baseline, and for
latency a number of milliseconds too.  The floor stands for the drift a single
run cannot show, so it is wider for p99 than for p50 (a stall that touches 1%
of the requests moves the p99, not the p50; measured on a shared 2-core machine
in ``bench/aa.py``, consecutive identical runs' p99 moved by 20-30%, their p50
by a few %).  A difference inside it is never called significant ("within
noise floor").  With fewer than ``MIN_INTERVALS`` full seconds the verdict is
"too short to tell", never a guess.  The bootstrap is seeded, so the same files
always get the same verdict.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

ALPHA = 0.05
MIN_INTERVALS = 5
FULL_INTERVAL_S = 0.9
#: Per tested metric, (% of the baseline, and for latency ms) below which a difference is
#: never significant: the drift between two runs of one configuration on a shared machine,
#: which no single run can show (measured: bench/aa.py).
FLOORS: dict[str, tuple[float, float | None]] = {
    "p50": (5.0, 0.5), "p99": (20.0, 2.0), "rps": (10.0, None)}
#: Runs per side from which repeats are judged by their between-run variance.
MIN_RUNS = 3
BOOTSTRAP_RESAMPLES = 4000
#: Fewer resamples (down to 1000) for runs so long that 4000 would take seconds per metric.
BOOTSTRAP_VALUES = 20_000_000
MIN_RESAMPLES = 1000
#: Fixed, so that the same files always get the same verdict.
BOOTSTRAP_SEED = 20240611
#: Resampled values held at once (memory: 8 bytes each, twice).
CHUNK_VALUES = 2_000_000
METHOD_BOOTSTRAP = "circular block bootstrap over full seconds (difference of medians)"
METHOD_RUNS = "Welch t over per-run figures (between-run variance)"

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
#: The metrics that get a verdict (``--fail-on-regression`` takes these, or "any").
TESTED_METRICS = tuple(m[0] for m in METRICS if m[5] is not None)
#: Config keys whose difference makes a comparison suspect.
CONFIG_KEYS = ("url", "endpoints", "model", "rate", "concurrency", "keepalive")


def _latency(summary: dict[str, Any], key: str) -> float | None:
    return (summary.get("latency_ms") or {}).get(key)


def default_labels(paths: Sequence[str]) -> list[str]:
    """File names without '.json'; whole paths when two files share a name."""
    names = [os.path.basename(p).removesuffix(".json") or p for p in paths]
    return names if len(set(names)) == len(names) else list(paths)


# --- the samples -------------------------------------------------------------------------

def full_intervals(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's per-second intervals that lasted a whole second.

    New files say so (``partial``, ``length_s``); for old ones an interval is
    full when its ``t`` is at least ``FULL_INTERVAL_S`` after the previous one's.
    """
    kept, previous = [], 0.0
    for entry in sorted(doc.get("intervals") or [], key=lambda e: e.get("t", 0.0)):
        t = float(entry.get("t", 0.0))
        if "partial" in entry or "length_s" in entry:
            length = entry.get("length_s")
            full = (entry.get("partial") is not True
                    and (not _is_number(length) or length >= FULL_INTERVAL_S))
        else:
            full = t - previous >= FULL_INTERVAL_S
        if full:
            kept.append(entry)
        previous = t
    return kept


def interval_values(intervals: list[dict[str, Any]], key: str) -> list[float]:
    """One figure per interval; seconds without a value (no response: no latency) are skipped."""
    raw = (i.get("rps") if key == "rps" else (i.get("latency_ms") or {}).get(key)
           for i in intervals)
    return [float(v) for v in raw if v is not None]


def run_values(doc: dict[str, Any], key: str) -> list[float] | None:
    """Each repeat's own figure, from a ``combine_runs`` document; None for a single run.

    Documents combined before the per-run figures were recorded give None too,
    and are then judged by their seconds.
    """
    runs = doc.get("combined_runs")
    if not isinstance(runs, list) or not runs or not all(isinstance(r, dict) for r in runs):
        return None
    latency = [r.get("latency_ms") for r in runs]
    values = [r.get("rps") if key == "rps" else (block.get(key) if isinstance(block, dict)
                                                else None)
              for r, block in zip(runs, latency)]
    if not all(_is_number(v) for v in values):
        return None
    return [float(v) for v in values if v is not None]


def _is_number(value: Any) -> bool:
    """A JSON number (not a bool, not NaN): anything else in a hand-edited file is ignored."""
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


# --- the verdict -------------------------------------------------------------------------

def floor_pct(base: float, floor: float, floor_abs: float | None = None) -> float:
    """The noise floor in % of the baseline: ``floor`` %, and at least ``floor_abs`` units."""
    if floor_abs and base > 0:
        return max(floor, floor_abs / base * 100.0)
    return floor


def block_length(n: int) -> int:
    """About sqrt(n) seconds: long enough to keep a slow stretch together, short enough
    to leave many different resamples (the usual n^(1/3)..n^(1/2) rule, on the safe side)."""
    return max(1, round(math.sqrt(n)))


def circular_block_medians(values: np.ndarray, rng: np.random.Generator,
                           resamples: int) -> np.ndarray:
    """Medians of ``resamples`` circular block bootstrap resamples of one series.

    Each resample is ceil(n / L) blocks of L consecutive seconds starting
    anywhere (wrapping round the end, so every second is drawn equally often),
    cut to n.  scipy.stats.bootstrap resamples single values, which would throw
    the autocorrelation away and make the interval too narrow.  Resamples are
    drawn in chunks, so a day-long run does not need gigabytes of indices.
    """
    n = len(values)
    length = block_length(n)
    blocks = -(-n // length)
    chunk = max(1, min(resamples, CHUNK_VALUES // (blocks * length)))
    medians = []
    for done in range(0, resamples, chunk):
        size = min(chunk, resamples - done)
        starts = rng.integers(0, n, size=(size, blocks))
        index = (starts[:, :, None] + np.arange(length)) % n
        medians.append(np.median(values[index.reshape(size, -1)[:, :n]], axis=1))
    return np.concatenate(medians)


def bootstrap_interval(base: Sequence[float], other: Sequence[float],
                       alpha: float = ALPHA) -> tuple[float, float, float]:
    """(difference of the medians, and its 1 - alpha interval) of ``other`` minus ``base``.

    The interval is Hesterberg's *expanded* percentile interval: the plain
    bootstrap percentile interval is too narrow for small samples (it knows no
    t distribution), and here the sample is small -- what counts is not the
    seconds but the independent blocks, about sqrt(n) of them.  So the
    percentiles are taken at alpha' / 2 = Phi(-sqrt(k / (k - 1)) * t(1 - alpha / 2, k - 1)),
    k being the fewer blocks of the two runs: for a 6 s run (3 blocks) that is
    the whole bootstrap range, for an hour-long one nearly the plain 2.5%.
    """
    from scipy.stats import norm, t

    rng = np.random.default_rng(BOOTSTRAP_SEED)
    x, y = np.asarray(base, dtype=float), np.asarray(other, dtype=float)
    resamples = max(MIN_RESAMPLES, min(BOOTSTRAP_RESAMPLES,
                                       BOOTSTRAP_VALUES // max(len(x), len(y))))
    diffs = circular_block_medians(y, rng, resamples) - circular_block_medians(x, rng, resamples)
    k = max(2, min(-(-len(v) // block_length(len(v))) for v in (x, y)))
    tail = float(norm.cdf(-math.sqrt(k / (k - 1)) * t.ppf(1 - alpha / 2, k - 1)))
    low, high = np.quantile(diffs, [tail, 1 - tail])
    return float(np.median(y) - np.median(x)), float(low), float(high)


def welch_interval(base: Sequence[float], other: Sequence[float],
                   alpha: float = ALPHA) -> tuple[float, float, float, float]:
    """(difference of the means, its Welch t interval, p) of ``other`` minus ``base``."""
    from scipy.stats import ttest_ind

    x, y = np.asarray(base, dtype=float), np.asarray(other, dtype=float)
    diff = float(y.mean() - x.mean())
    if np.ptp(x) == 0 and np.ptp(y) == 0:   # no spread at all: the t statistic is undefined
        return diff, diff, diff, 1.0 if diff == 0 else 0.0
    result = ttest_ind(y, x, equal_var=False)
    ci = result.confidence_interval(1 - alpha)
    return diff, float(ci.low), float(ci.high), float(result.pvalue)


def significance(base: list[float], other: list[float], better: str, *,
                 floor: float, floor_abs: float | None = None,
                 base_runs: list[float] | None = None,
                 other_runs: list[float] | None = None) -> dict[str, Any]:
    """Verdict on ``other`` against ``base``: too short, not significant, within the noise
    floor, or significantly higher/lower -- only when the whole interval clears the floor.

    ``base``/``other`` are per-second values; ``*_runs`` per-run figures of repeats, used
    instead when both sides have ``MIN_RUNS`` or more.
    """
    result: dict[str, Any] = {"intervals": [len(base), len(other)], "runs": None,
                              "method": None, "p": None, "difference": None, "ci": None,
                              "ci_pct": None, "floor_pct": None, "significant": False,
                              "direction": None, "assessment": None}
    if base_runs and other_runs and min(len(base_runs), len(other_runs)) >= MIN_RUNS:
        diff, low, high, p = welch_interval(base_runs, other_runs)
        reference = float(np.mean(base_runs))
        result.update(method=METHOD_RUNS, runs=[len(base_runs), len(other_runs)], p=p)
    else:
        n = min(len(base), len(other))
        if n < MIN_INTERVALS:
            result["verdict"] = f"too short to tell ({n} intervals; need ≥ {MIN_INTERVALS})"
            return result
        diff, low, high = bootstrap_interval(base, other)
        reference = float(np.median(base))
        result["method"] = METHOD_BOOTSTRAP
    band = floor_pct(reference, floor, floor_abs)
    result.update(difference=diff, ci=[low, high], floor_pct=band)
    if reference > 0:
        result["ci_pct"] = [low / reference * 100.0, high / reference * 100.0]
    if low <= 0 <= high:
        result["verdict"] = "not significant"
        return result
    margin = band / 100.0 * abs(reference)
    if min(abs(low), abs(high)) <= margin:   # one side of 0, but not wholly beyond the floor
        result["verdict"] = f"within noise floor (±{band:.0f}%)"
        return result
    direction = "higher" if low > 0 else "lower"
    assessment = "better" if direction == better else "worse"
    result.update(significant=True, direction=direction, assessment=assessment,
                  verdict=f"significantly {direction} ({_describe_ci(result)}), {assessment}")
    return result


def _describe_ci(test: dict[str, Any]) -> str:
    """'95% CI +25% to +33%' (in % of the baseline when it has one)."""
    level = f"{(1 - ALPHA) * 100:.0f}% CI"
    if test["ci_pct"] is not None:
        low, high = test["ci_pct"]
        return f"{level} {low:+.0f}% to {high:+.0f}%"
    low, high = test["ci"]
    return f"{level} {low:+.3g} to {high:+.3g}"


def change_pct(base: float | None, value: float | None) -> float | None:
    if base is None or value is None:
        return None
    if base == 0:
        return 0.0 if value == 0 else None
    return (value - base) / base * 100.0


def compare_documents(docs: list[dict[str, Any]], labels: list[str],
                      floor: float | None = None) -> dict[str, Any]:
    """Every metric of every run beside the first run's, with changes, verdicts and warnings.

    ``floor``, when given, is the noise floor in % of the baseline for every tested
    metric instead of ``FLOORS``' (the milliseconds of the latency floors stay).
    """
    floors = {k: (v[0] if floor is None else floor, v[1]) for k, v in FLOORS.items()}
    if len(docs) < 2 or len(labels) != len(docs):
        raise ValueError("compare_documents needs two or more documents and one label each")
    intervals = [full_intervals(d) for d in docs]
    metrics = []
    methods: set[str] = set()
    for key, label, unit, better, read, tested in METRICS:
        values = [read(d["summary"]) for d in docs]
        tests: list[dict[str, Any] | None] = [None]
        for doc, run in zip(docs[1:], intervals[1:]):
            if tested is None:
                tests.append(None)
                continue
            test = significance(interval_values(intervals[0], tested),
                                interval_values(run, tested), better,
                                floor=floors[tested][0], floor_abs=floors[tested][1],
                                base_runs=run_values(docs[0], tested),
                                other_runs=run_values(doc, tested))
            if test["method"]:
                methods.add(test["method"])
            tests.append(test)
        metrics.append({"metric": key, "label": label, "unit": unit, "better": better,
                        "values": values,
                        "change_pct": [None] + [change_pct(values[0], v) for v in values[1:]],
                        "tests": tests})
    return {"labels": list(labels), "baseline": labels[0], "alpha": ALPHA,
            "method": "; ".join(sorted(methods)) or METHOD_BOOTSTRAP,
            "floor": {k: {"pct": pct, "abs": abs_, "unit": "ms" if abs_ else None}
                      for k, (pct, abs_) in floors.items()},
            "full_intervals": [len(i) for i in intervals],
            "runs": [d.get("combined_from") or 1 for d in docs],
            "metrics": metrics, "warnings": warnings(docs, labels)}


def regressions(comparison: dict[str, Any], metrics: Sequence[str]) -> list[str]:
    """'label: latency p99 significantly higher (...), worse' for every later run that is
    significantly worse on one of ``metrics`` (keys of TESTED_METRICS, or "any")."""
    wanted = set(TESTED_METRICS) if "any" in metrics else set(metrics)
    found = []
    for metric in comparison["metrics"]:
        if metric["metric"] not in wanted:
            continue
        for label, test in zip(comparison["labels"][1:], metric["tests"][1:]):
            if test and test["significant"] and test["assessment"] == "worse":
                found.append(f"{label}: {metric['label']} {test['verdict']}")
    return found


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
            "concurrency": config.get("concurrency"),
            # a new connection per request measures something else; old files: kept alive
            "keepalive": "off" if config.get("keepalive") is False else "on"}


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
    floors = ", ".join(f"{k} ±{f['pct']:g}%" + (f" (≥ {f['abs']:g} {f['unit']})" if f["abs"]
                                                  else "")
                       for k, f in comparison["floor"].items())
    notes = [(f"Changes against {labels[0]!r}; verdicts (p50, p99, rps): "
              f"{comparison['method']}, {(1 - comparison['alpha']) * 100:g}% intervals."),
             f"Never significant within the noise floor: {floors}.",
             "Full intervals: " + ", ".join(f"{label} {n}" for label, n in
                                            zip(labels, comparison["full_intervals"]))]
    if any(n > 1 for n in comparison["runs"]):
        notes.append("Runs combined: " + ", ".join(f"{label} {n}" for label, n in
                                                    zip(labels, comparison["runs"])))
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
