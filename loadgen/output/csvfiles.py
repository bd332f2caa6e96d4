"""``--csv PREFIX``: the run's table and its per-second series as two CSV files.

``PREFIX_stats.csv`` has one row per endpoint plus the total (and, for a journey
run, one per user kind's iterations); ``PREFIX_intervals.csv`` one row per second
per endpoint plus the second's total, with the wall-clock start of each second.
Both are rendered from the results document alone, so ``loadgen report FILE --csv``
writes the same files the run did.

Why plain: the files are for spreadsheets and pandas as they are, so there is a
header row, one value per cell, numbers in plain positional notation (no thousands
separators, no exponent) and an empty cell where there is no value (a latency of a
second without requests).  The ``row`` column says what a row is (``total``,
``endpoint``, ``journey``) so that no endpoint name has to be reserved for the total.
A capacity search writes every step's rows, with the step's number and rate first.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from loadgen.output.files import write_bytes
from loadgen.output.results import interval_endpoints
from loadgen.output.sinks import FileSink
from loadgen.schema import INTERVAL_LATENCY_KEYS, LATENCY_KEYS

Document = Mapping[str, Any]
Row = list[object]

#: The columns of ``PREFIX_stats.csv`` after ``row`` and ``endpoint``.
STATS_COLUMNS = ("requests", "successes", "failures", "success_rate", "rps", "duration_s",
                 *(f"latency_{key}_ms" for key in LATENCY_KEYS),
                 "bytes_in", "bytes_out", "latency_overflow", "checked", "checks_failed")
#: The columns of ``PREFIX_intervals.csv`` after ``start``, ``t``, ``length_s``, ``row``
#: and ``endpoint``.
INTERVAL_COLUMNS = ("requests", "successes", "failures", "rps",
                    *(f"latency_{key}_ms" for key in INTERVAL_LATENCY_KEYS))
#: Leading columns of a capacity search's files: which step a row belongs to.
STEP_COLUMNS = ("step", "rate")


def csv_paths(prefix: str) -> tuple[str, str]:
    """The two files ``--csv PREFIX`` writes: ``PREFIX_stats.csv``, ``PREFIX_intervals.csv``."""
    return f"{prefix}_stats.csv", f"{prefix}_intervals.csv"


def write_csv(prefix: str, doc: Document) -> tuple[str, str]:
    """Write both files for a run (or a capacity search's document); their paths.

    Raises OSError (each file is replaced atomically: a reader never sees half of it).
    """
    stats_path, intervals_path = csv_paths(prefix)
    write_bytes(stats_path, render(stats_table(doc)))
    write_bytes(intervals_path, render(intervals_table(doc)))
    return stats_path, intervals_path


def render(rows: Sequence[Sequence[object]]) -> bytes:
    """Rows as CSV (the csv module's quoting, RFC 4180 line ends), UTF-8."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerows([[cell_text(value) for value in row] for row in rows])
    return out.getvalue().encode("utf-8")


def cell_text(value: object) -> str:
    """One cell: "" for no value, integers as they are, floats positional (``0.00001``,
    never ``1e-05``: a spreadsheet locale may not read the exponent)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return np.format_float_positional(value, trim="-")
    return str(value)


def _steps(doc: Document) -> Iterator[tuple[Row, Document]]:
    """A run's document as one "step" without leading columns; a capacity search's steps
    with their number and rate."""
    if "steps" in doc and "summary" not in doc:
        for n, step in enumerate(doc.get("steps") or [], start=1):
            yield [n, step.get("rate")], step.get("result") or {}
    else:
        yield [], doc


def _lead(doc: Document) -> list[str]:
    return list(STEP_COLUMNS) if "steps" in doc and "summary" not in doc else []


def stats_table(doc: Document) -> list[Row]:
    """``PREFIX_stats.csv``: the header, then per step the total, each endpoint, each
    journey kind."""
    rows: list[Row] = [[*_lead(doc), "row", "endpoint", *STATS_COLUMNS]]
    for lead, run in _steps(doc):
        rows.append([*lead, "total", "", *_block_cells(run.get("summary") or {})])
        for block in run.get("endpoints") or []:
            rows.append([*lead, "endpoint", block.get("endpoint"), *_block_cells(block)])
        for journey in run.get("journeys") or []:
            rows.append([*lead, "journey", journey.get("name"), *_journey_cells(journey, run)])
    return rows


def _block_cells(block: Mapping[str, Any]) -> Row:
    latency = block.get("latency_ms") or {}
    failed_checks = block.get("checks_failed")
    return [block.get("requests"), block.get("successes"), block.get("failures"),
            block.get("success_rate"), block.get("rps"), block.get("duration_s"),
            *(latency.get(key) for key in LATENCY_KEYS),
            block.get("bytes_in"), block.get("bytes_out"), block.get("latency_overflow"),
            block.get("checked"),
            sum(failed_checks.values()) if isinstance(failed_checks, dict) else None]


def _journey_cells(journey: Mapping[str, Any], run: Document) -> Row:
    """A user kind's iterations in the table's columns: completed ones (successes +
    failures) as its requests, per second as its rps, the successful ones' times."""
    figures = journey.get("iterations") or {}
    latency = figures.get("latency_ms") or {}
    ok, failed = figures.get("successes") or 0, figures.get("failures") or 0
    return [ok + failed, ok, failed, ok / (ok + failed) if ok + failed else 0.0,
            figures.get("per_second"), (run.get("summary") or {}).get("duration_s"),
            *(latency.get(key) for key in LATENCY_KEYS),
            None, None, figures.get("latency_overflow"), None, None]


def intervals_table(doc: Document) -> list[Row]:
    """``PREFIX_intervals.csv``: per second, the total row then one row per endpoint.

    Every endpoint has a row in every second (zeros when it was idle).  A file written
    before the document kept per-endpoint seconds has only the total rows of a run of
    several endpoints: its per-endpoint split is not known.
    """
    extra = [key for key in ("users", "iterations")
             if any(key in i for _, run in _steps(doc) for i in run.get("intervals") or [])]
    rows: list[Row] = [[*_lead(doc), "start", "t", "length_s", "row", "endpoint",
                        *INTERVAL_COLUMNS, *extra]]
    for lead, run in _steps(doc):
        names = [b.get("endpoint") for b in run.get("endpoints") or []]
        for interval in sorted(run.get("intervals") or [], key=lambda i: i.get("t", 0.0)):
            when = [*lead, interval.get("start"), interval.get("t"), interval.get("length_s")]
            rows.append([*when, "total", "", *_second_cells(interval),
                         *(interval.get(key) for key in extra)])
            for name, figures in (interval_endpoints(interval, names) or {}).items():
                rows.append([*when, "endpoint", name, *_second_cells(figures),
                             *(None for _ in extra)])
    return rows


def _second_cells(figures: Mapping[str, Any]) -> Row:
    latency = figures.get("latency_ms") or {}
    requests, successes = figures.get("requests"), figures.get("successes")
    failures = figures.get("failures")
    if failures is None and requests is not None and successes is not None:
        failures = requests - successes
    return [requests, successes, failures, figures.get("rps"),
            *(latency.get(key) for key in INTERVAL_LATENCY_KEYS)]


class CsvSink(FileSink):
    """``--csv PREFIX`` as a sink: both files from the final document."""

    what = "CSV"

    def write(self, doc: Document) -> str:
        written = write_csv(self.path or "", doc)
        return f"{written[0]} and {written[1]}"

    def failed_path(self, exc: OSError, doc: Document) -> str:
        return str(exc.filename or self.path)   # which of the two files
