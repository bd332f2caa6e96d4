"""Repeats of one configuration merged into one results document (``combine_runs``).

Why a module of its own, in ``stats``: merging is numbers (HDR histograms
merged losslessly, counts summed), and its users are the benchmark scripts
that repeat configurations (``bench/compare-configs``, ``bench/aa.py``) and the
tests; ``loadgen compare`` reads what it makes (``combined_runs``).  The
document it makes has the shape of ``loadgen.schema``, plus ``combined_from``
and ``combined_runs``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from loadgen import __version__
from loadgen.config.model import parse_status_set
from loadgen.schema import SCHEMA, Journey
from loadgen.stats.journeys import iteration_figures, journey_block
from loadgen.stats.metrics import (
    DEFAULT_SUCCESS,
    Totals,
    decode_histogram,
    encode_histogram,
    summarize,
)
from loadgen.stats.phases import PhaseTotals

#: Order of precedence when repeats of a configuration ended differently: the worst one wins.
_STATUS_SEVERITY = ("failed", "interrupted", "running")


def combine_runs(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge repeated runs of one configuration into one results document (schema loadgen/1).

    Why: a benchmark repeats each configuration (interleaved with the others,
    so machine drift hits all alike) and wants one figure per configuration,
    not an average of per-run percentiles, which is not a percentile of
    anything.  The HDR histograms are merged losslessly, so the combined
    percentiles are exactly those of all the repeats' requests together; counts,
    status codes, failure kinds and bytes are summed; ``duration_s`` is the summed
    time under load, so ``rps`` is total requests / total time under load.

    ``histograms`` (every request) give ``latency_ms``; ``success_histograms``
    (successes only) give ``success_latency_ms``.  Files written before successes had
    their own histogram have none: if any run lacks them, a merged "successes
    only" distribution would silently leave that run's successes out, so the
    combined ``success_latency_ms`` is all None (as for a run where nothing
    succeeded) and no ``success_histograms`` are written.  Failure kinds come
    from ``failures_by_kind``, or from the old key ``errors`` (same meaning).
    The phases (``phase_histograms``, ``summary.phases_ms``) are merged the same
    way when every run has them, and left out when one does not.

    ``intervals`` are concatenated in run order with ``t`` shifted by the
    earlier runs' durations, so the series continues (charts, and compare's
    per-second method when a side has fewer than three runs).  Each interval
    keeps its own ``start`` (the wall clock of that run's second: the runs were
    not back to back), ``length_s`` and ``partial`` (a run's partial last second
    stays partial, so per-second statistics still leave it out).
    ``status`` is "complete" only if every run was (else the worst status);
    ``generator_limited`` is true if any run was; ``config`` is the first
    run's.  The per-run lateness histograms are not saved, so ``generator``
    holds the worst run's figures (``_worst_generator``).  ``combined_from`` says
    how many runs went in and ``combined_runs`` what each one was, with its own
    ``rps`` and ``latency_ms``: each run is one observation for ``loadgen
    compare``, which judges repeats by the variance between runs, not between
    seconds.

    A journey run's ``journeys`` are merged the same way: the successful iterations'
    ``journey_histograms`` losslessly, the counts (``failed_at`` by step, ``cut``) summed,
    ``per_second`` over the summed time under load.

    Raises ValueError for no documents, or documents whose endpoint names
    (or journey kinds) differ (they are not repeats of one configuration).
    """
    if not docs:
        raise ValueError("combine_runs needs at least one results document")
    names = [e["endpoint"] for e in docs[0]["endpoints"]]
    for i, doc in enumerate(docs[1:], start=2):
        other = [e["endpoint"] for e in doc["endpoints"]]
        if other != names:
            raise ValueError(f"run {i} has endpoints {other}, run 1 has {names}: "
                             "not repeats of one configuration")
    open_model = any("service_histograms" in d for d in docs)
    # only when every run has them: else the merged "successes only" would miss a run's
    with_success = all(isinstance(d.get("success_histograms"), dict) for d in docs)
    # what counted as a success in these runs (files older than --expect-status: 2xx)
    expect_text = (docs[0].get("config") or {}).get("expect_status") or {}
    expects = [parse_status_set(expect_text[name]) if name in expect_text else DEFAULT_SUCCESS
               for name in names]
    totals = [Totals(service=decode_histogram("") if open_model else None, expect=ok)
              for ok in expects]
    intervals: list[dict[str, Any]] = []
    workers: list[dict[str, Any]] = []
    problems: list[str] = []
    runs: list[dict[str, Any]] = []
    offset = 0.0
    for run, doc in enumerate(docs, start=1):
        histograms = doc.get("histograms") or {}
        service = doc.get("service_histograms") or {}
        success = doc.get("success_histograms") or {}
        for name, entry, merged in zip(names, doc["endpoints"], totals):
            kinds = entry.get("failures_by_kind")
            one = Totals(hist=decode_histogram(histograms.get(name, "")),
                         success=decode_histogram(success.get(name, "") if with_success else ""),
                         service=decode_histogram(service.get(name, "")) if open_model else None,
                         codes=Counter(entry.get("status_codes") or {}),
                         errors=Counter((kinds if kinds is not None else entry.get("errors"))
                                        or {}),
                         expect=merged.expect,
                         bytes_in=entry.get("bytes_in", 0), bytes_out=entry.get("bytes_out", 0),
                         overflow=entry.get("latency_overflow", 0),
                         checked=entry.get("checked", 0),
                         checks_failed=Counter(entry.get("checks_failed") or {}))
            merged.merge(one)
        duration = float(doc["summary"].get("duration_s") or 0.0)
        series = sorted(doc.get("intervals") or [], key=lambda i: i["t"])
        # only t moves: start (wall clock), length_s and partial stay the run's own
        intervals += [{**i, "t": round(i["t"] + offset, 3)} for i in series]
        # never step back, even if a run's last interval ended after its recorded duration
        offset += max(duration, series[-1]["t"] if series else 0.0)
        workers += [{**w, "run": run} for w in doc.get("workers") or []]
        problems += [f"run {run}: {p}" for p in doc.get("problems") or []]
        runs.append({"run": run, "started_at": doc.get("started_at"), "status": doc["status"],
                     "duration_s": duration, "requests": doc["summary"].get("requests"),
                     # each run's own figures: loadgen compare's between-run variance
                     "rps": doc["summary"].get("rps"),
                     "latency_ms": doc["summary"].get("latency_ms"),
                     "generator_limited": bool(doc.get("generator_limited")),
                     "thresholds": doc.get("thresholds")})
    total_duration = sum(r["duration_s"] for r in runs)
    everything = Totals(service=decode_histogram("") if open_model else None)
    for merged in totals:
        everything.merge(merged)
    concurrency = [e.get("concurrency") for e in docs[0]["endpoints"]]
    endpoints = [{"endpoint": name, **summarize(t, total_duration), "concurrency": c}
                 for name, t, c in zip(names, totals, concurrency)]
    statuses = [d["status"] for d in docs]
    unfinished = [s for s in statuses if s != "complete"]
    status = next((s for s in _STATUS_SEVERITY if s in unfinished),
                  unfinished[0] if unfinished else "complete")
    combined: dict[str, Any] = {
        "schema": SCHEMA,
        "tool": docs[0].get("tool", f"loadgen {__version__}"),
        "status": status,
        "problems": problems,
        "started_at": docs[0].get("started_at"),
        "config": docs[0].get("config"),
        "summary": summarize(everything, total_duration),
        "endpoints": endpoints,
        "model": docs[0].get("model", "closed"),
        "generator_limited": any(d.get("generator_limited") for d in docs),
        "generator": _worst_generator([d.get("generator") or {} for d in docs]),
        "histograms": {name: encode_histogram(t.hist) for name, t in zip(names, totals)},
        "histogram_unit": "us",
        "workers": workers,
        "intervals": intervals,
        "combined_from": len(docs),
        "combined_runs": runs,
    }
    journeys = _combined_journeys(docs, total_duration)
    if journeys is not None:
        combined["journeys"], combined["journey_histograms"] = journeys
    if with_success:
        combined["success_histograms"] = {name: encode_histogram(t.success)
                                          for name, t in zip(names, totals)}
    phases = _combined_phases(docs)
    if phases is not None:
        combined["summary"]["phases_ms"] = phases.summary()
        combined["phase_histograms"] = phases.encode()
    if open_model:
        combined["service_histograms"] = {
            name: encode_histogram(t.service) if t.service is not None else ""
            for name, t in zip(names, totals)}
    return combined


def _combined_journeys(docs: list[dict[str, Any]],
                       duration_s: float) -> tuple[list[Journey], dict[str, str]] | None:
    """``journeys`` and ``journey_histograms`` of the combined runs (each kind's counts
    summed, its successful iterations' histograms merged); None for endpoint runs."""
    if all(d.get("journeys") is None for d in docs):
        return None
    kinds = [[j.get("name") for j in d.get("journeys") or []] for d in docs]
    for i, names in enumerate(kinds[1:], start=2):
        if names != kinds[0]:
            raise ValueError(f"run {i} has journeys {names}, run 1 has {kinds[0]}: "
                             "not repeats of one configuration")
    blocks: list[Journey] = []
    histograms: dict[str, str] = {}
    for k, first in enumerate(docs[0]["journeys"]):
        failed_at: Counter[str] = Counter()
        cut = overflow = 0
        hist = decode_histogram("")
        for doc in docs:
            figures = doc["journeys"][k]["iterations"]
            failed_at.update(figures.get("failed_at") or {})
            cut += figures.get("cut") or 0
            overflow += figures.get("latency_overflow") or 0
            encoded = (doc.get("journey_histograms") or {}).get(first["name"], "")
            if encoded:
                hist.decode_and_add(encoded)
        blocks.append(journey_block(first["name"], first["weight"], first["on_start"],
                                    first["steps"], iteration_figures(
                                        hist, dict(failed_at), cut, overflow, duration_s)))
        histograms[first["name"]] = encode_histogram(hist)
    return blocks, histograms


def _combined_phases(docs: list[dict[str, Any]]) -> PhaseTotals | None:
    """The runs' phases merged, or None unless every run has them: a merged figure
    that silently left out a run would describe the other runs only."""
    each = [PhaseTotals.from_document(d) for d in docs]
    if any(p is None for p in each):
        return None
    merged = PhaseTotals()
    for one in each:
        if one is not None:
            merged.merge(one)
    return merged


def _worst_generator(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """The generator block of combined runs: each figure at its worst run, waits summed.

    Lateness percentiles of separate runs cannot be merged (their histograms are
    not saved), and the question they answer -- was loadgen ever the limit? --
    is answered by the worst run.  So every figure is its maximum over the runs
    (per key for ``lateness_ms`` and ``loop_lag_ms``, over the keys every run
    has; None if no run has one), except ``waited_for_connection`` (a count:
    summed).  ``reasons`` are prefixed with their run and ``causes`` concatenated
    in the same order, so ``causes[i]`` still names ``reasons[i]``.  Old files
    lack the newer keys: they count as 0 / absent.
    """
    reasons = [f"run {i}: {r}" for i, b in enumerate(blocks, start=1)
               for r in b.get("reasons") or []]
    causes = [c for b in blocks for c in b.get("causes") or []]

    def worst(key: str) -> float:
        return max((b.get(key) or 0.0 for b in blocks), default=0.0)

    needed = [b["connections_needed"] for b in blocks if b.get("connections_needed") is not None]
    return {"reasons": reasons,
            "causes": causes,
            "lateness_ms": _worst_figures(blocks, "lateness_ms"),
            "lag_limit_ms": max((b["lag_limit_ms"] for b in blocks
                                 if b.get("lag_limit_ms") is not None), default=None),
            "loop_lag_ms": _worst_figures(blocks, "loop_lag_ms"),
            "cpu_percent_max": worst("cpu_percent_max"),
            "demand_percent_max": worst("demand_percent_max"),
            "run_queue_percent_max": worst("run_queue_percent_max"),
            "waited_for_connection": sum(b.get("waited_for_connection") or 0 for b in blocks),
            "waited_share": worst("waited_share"),
            "connections": max((b.get("connections") or 0 for b in blocks), default=0),
            "connections_needed": max(needed, default=None)}


def _worst_figures(blocks: list[dict[str, Any]], key: str) -> dict[str, float] | None:
    """Per percentile, the worst run's value, over the percentiles every run that has them has."""
    figures = [b[key] for b in blocks if isinstance(b.get(key), dict) and b[key]]
    if not figures:
        return None
    shared = [k for k in figures[0] if all(isinstance(f.get(k), (int, float)) for f in figures)]
    return {k: max(f[k] for f in figures) for k in shared}
