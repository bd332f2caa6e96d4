"""The results document: build it from a run, write it atomically, read it back.

Written with a temporary file and a rename so that the file on disk is
always a complete JSON document, even if loadgen is killed while saving.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from typing import Any

import orjson

from loadgen import __version__
from loadgen.aggregate import Aggregate
from loadgen.metrics import encode_histogram

SCHEMA = "loadgen/1"


class ResultsError(Exception):
    """A results file that cannot be read as loadgen results (one line for the user)."""


def build_document(config: dict[str, Any], agg: Aggregate, status: str,
                   problems: list[str], started_at: dt.datetime) -> dict[str, Any]:
    summary, endpoints = agg.summaries()
    for entry, share in zip(endpoints, _endpoint_concurrency(config, len(endpoints))):
        entry["concurrency"] = share
    verdict = agg.generator_verdict()
    doc = {
        "schema": SCHEMA,
        "tool": f"loadgen {__version__}",
        "status": status,
        "problems": problems,
        "started_at": started_at.isoformat(timespec="milliseconds"),
        "config": config,
        "summary": summary,
        "endpoints": endpoints,
        "model": config.get("model", "closed"),
        "generator_limited": verdict.pop("limited"),
        "generator": verdict,
        "histograms": {name: encode_histogram(t.hist)
                       for name, t in zip(agg.endpoint_names, agg.totals)},
        "histogram_unit": "us",
        "workers": [{"index": w.index, "requests": w.requests, "cpu_s": w.cpu_s,
                     "elapsed_s": w.elapsed_s, "cpu_percent_max": round(w.cpu_percent_max, 1),
                     "connections": w.connections, "reconnects": w.reconnects,
                     "lost": w.lost or None} for w in agg.workers],
        "intervals": sorted(agg.intervals, key=lambda i: i["t"]),
    }
    if doc["model"] == "open":
        doc["service_histograms"] = {name: encode_histogram(t.service) if t.service else ""
                                     for name, t in zip(agg.endpoint_names, agg.totals)}
    return doc


def _endpoint_concurrency(config: dict[str, Any], n: int) -> list[int]:
    """Connections are shared by all endpoints of a run: each row shows the run's total."""
    return [config.get("concurrency", 0)] * n


def write_document(path: str, doc: dict[str, Any]) -> None:
    """Atomically replace ``path`` with the document (temp file in the same folder, rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".loadgen-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
