"""The results document: build it from a run, write it atomically, read it back.

Written with a temporary file and a rename (``loadgen.output.files``) so that the
file on disk is always a complete JSON document, even if loadgen is killed
while saving.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import click
import orjson

from loadgen import __version__
from loadgen.errors import InputError, error_line
from loadgen.output.files import STDOUT, is_stdout, write_bytes
from loadgen.schema import (
    SCHEMA,
    AuthSummary,
    Generator,
    Interval,
    Node,
    ResultsDocument,
    ServerSample,
    ServerSummary,
    ThresholdResult,
)
from loadgen.stats.aggregate import Aggregate
from loadgen.stats.metrics import encode_histogram
from loadgen.stats.thresholds import Threshold, evaluate
from loadgen.stats.thresholds import ThresholdResult as ThresholdVerdict


class ResultsError(InputError):
    """A results file that cannot be read as loadgen results (one line for the user)."""


def build_document(config: dict[str, Any], agg: Aggregate, status: str,
                   problems: list[str], started_at: dt.datetime, *,
                   nodes: list[Node] | None = None,
                   thresholds: Sequence[Threshold] = (),
                   auth: AuthSummary | None = None,
                   server: tuple[Mapping[int, ServerSample], ServerSummary] | None = None,
                   ) -> ResultsDocument:
    """The whole results document, complete as it is built: nothing is added afterwards.

    Called at the end of a run and for every per-second save of a run in
    progress (``status`` "running"), so both have the same keys.  ``thresholds``
    are evaluated on the numbers of this very document: in a "running" save they
    say how the run stands so far (provisional, as the status says), at the end
    they are the verdict.  ``nodes``: what each node of a ``--cluster`` run did;
    ``auth``: the ``--auth`` logins (``engine.renewal``; a capacity step's counts are
    the search's so far, since one login serves the whole search); ``server``: the
    ``--monitor-*`` samples by second (``engine.monitor``) and their summary.
    """
    summary, endpoints = agg.summaries()
    for entry, share in zip(endpoints, _endpoint_concurrency(config, len(endpoints))):
        entry["concurrency"] = share
    verdict = agg.generator_verdict(config.get("model") == "open",
                                    config.get("max_connections"), _peak_rate(config))
    limited = bool(verdict.pop("limited"))
    phases = agg.phases.summary()
    if phases is not None:
        summary["phases_ms"] = phases   # per worker, not per endpoint: the summary alone
    doc: ResultsDocument = {
        "schema": SCHEMA,
        "tool": f"loadgen {__version__}",
        "status": status,
        "problems": problems,
        "started_at": started_at.isoformat(timespec="milliseconds"),
        "config": config,
        "summary": summary,
        "endpoints": endpoints,
        "model": config.get("model", "closed"),
        "generator_limited": limited,
        "generator": cast(Generator, verdict),
        # every request (what the table shows) and the successes alone
        "histograms": {name: encode_histogram(t.hist)
                       for name, t in zip(agg.endpoint_names, agg.totals)},
        "success_histograms": {name: encode_histogram(t.success)
                               for name, t in zip(agg.endpoint_names, agg.totals)},
        "histogram_unit": "us",
        "workers": [{"index": w.index, "requests": w.requests, "cpu_s": w.cpu_s,
                     "elapsed_s": w.elapsed_s, "cpu_percent_max": round(w.cpu_percent_max, 1),
                     "connections": w.connections, "reconnects": w.reconnects,
                     "lost": w.lost or None} for w in agg.workers],
        "intervals": sorted(agg.intervals, key=lambda i: i["t"]),
    }
    journeys = agg.journey_summaries()
    if journeys is not None:   # a journey run: its kinds' iterations, right after the rows
        doc = cast(ResultsDocument, _insert_after(doc, "endpoints", "journeys", journeys))
        doc["journey_histograms"] = agg.journey_histograms()
    if phases is not None:   # connect, tls (https) and ttfb: what summary.phases_ms is read from
        doc["phase_histograms"] = agg.phases.encode()
    if doc["model"] == "open":
        doc["service_histograms"] = {name: encode_histogram(t.service) if t.service else ""
                                     for name, t in zip(agg.endpoint_names, agg.totals)}
    if nodes is not None:
        doc["nodes"] = nodes
    if auth is not None:
        doc["auth"] = auth
    if server is not None:   # --monitor-*: each second's sample in its interval, the peaks apart
        samples, server_summary = server
        doc["intervals"] = with_server(doc["intervals"], samples)
        doc["server"] = server_summary
    if thresholds:
        doc["thresholds"] = threshold_results(evaluate(thresholds, doc))
    return doc


def with_server(intervals: Sequence[Interval],
                samples: Mapping[int, ServerSample]) -> list[Interval]:
    """The intervals, each with its second's ``server`` sample (new dicts: the aggregate's
    own intervals stay as they are, a later save adds the samples again).

    An interval starts ``k - 1`` seconds after the run's start (``t - length_s``, a last
    sliver folded in included) and sample ``k`` covers that second; a second without a
    sample (missed, or after the monitor stopped) gets none.
    """
    out: list[Interval] = []
    for interval in intervals:
        start = interval["t"] - interval.get("length_s", 1.0)
        sample = samples.get(round(start) + 1)
        out.append(cast(Interval, {**interval, "server": sample}) if sample is not None
                   else interval)
    return out


def _insert_after(doc: Mapping[str, Any], key: str, new: str, value: Any) -> dict[str, Any]:
    """``doc`` with ``new`` placed right after ``key``: a reader of the JSON finds the
    journeys next to the rows their steps are."""
    out: dict[str, Any] = {}
    for name, item in doc.items():
        out[name] = item
        if name == key:
            out[new] = value
    return out


def threshold_results(verdicts: Sequence[ThresholdVerdict]) -> list[ThresholdResult]:
    """The document's ``thresholds``: each as the user wrote it, its actual value, passed."""
    return [{"threshold": v.threshold.text, "actual": v.actual, "passed": v.passed}
            for v in verdicts]


def _peak_rate(config: dict[str, Any]) -> float | None:
    """The highest rate the open model's schedule asks for; None in the closed model."""
    rates = [stage.get(key) for stage in config.get("schedule") or []
             for key in ("start_rate", "end_rate")]
    return max((float(r) for r in rates if isinstance(r, (int, float))), default=None)


def _endpoint_concurrency(config: dict[str, Any], n: int) -> list[int]:
    """Connections are shared by all endpoints of a run: each row shows the run's total."""
    return [config.get("concurrency", 0)] * n


def write_document(path: str, doc: Mapping[str, Any]) -> None:
    """Write the document to ``path`` (``-``: stdout) without ever half-writing a file.

    A regular file is replaced atomically; symlinks are followed, FIFOs and
    devices are written directly (``loadgen.output.files``).
    """
    write_bytes(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2))


def save_final(path: str, doc: Mapping[str, Any], announce: Callable[[str], None]) -> bool:
    """The end-of-run save that ``run`` and ``capacity`` share: True when it worked.

    On failure one line goes to stderr (the caller exits 3: the run happened, its
    record did not); "Results saved to ..." is announced only for a real file, never
    when the document went to stdout.
    """
    to_stdout = is_stdout(path)
    try:
        write_document(STDOUT if to_stdout else path, doc)
    except OSError as exc:
        click.echo(error_line(f"cannot save results to {path}: {exc.strerror or exc}"), err=True)
        return False
    if not to_stdout:
        announce(f"Results saved to {path}")
    return True


def read_document(path: str) -> dict[str, Any]:
    """Load and check a results file; every failure is a ResultsError with one line."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ResultsError(f"cannot read {path}: {exc.strerror}") from None
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ResultsError(f"{path} is not JSON (truncated or not a loadgen results file)") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else None
        raise ResultsError(f"{path} is not a {SCHEMA} results file"
                           + (f" (schema {found!r})" if found else ""))
    for key in ("status", "summary", "endpoints", "histograms"):
        if key not in doc:
            raise ResultsError(f"{path} lacks {key!r}: not a complete loadgen results file")
    return doc
