"""Where a request's time goes: TCP connect, TLS handshake and time to first byte.

As hey shows them, per worker (a connection serves every endpoint, so the
phases belong to the connection, not to an endpoint):

- ``connect``: from the start of a connect to a usable TCP connection (DNS
  included; through a proxy tunnel: to the proxy plus its CONNECT), one value
  per connection opened;
- ``tls``: the TLS handshake alone (https only), one per connection opened;
- ``ttfb``: from the moment a request's bytes began to be written to the first
  byte of its response, one per request that got a byte back.

Connects are rare, so they go straight into HDR histograms.  The time to
first byte is per request, and hdrhistogram's ``record_value`` is pure Python
(1 µs and more), too dear for the hot path: each one is a float appended to an
``array('d')`` instead (tens of ns), turned into HDR counts once per interval
by ``metrics.record_values`` (numpy, exact).  Every histogram has the one
layout of ``metrics.new_histogram``, so merging stays exact.
"""

from __future__ import annotations

from array import array
from typing import Any, cast

import numpy as np
from hdrh.histogram import HdrHistogram

from loadgen.schema import PHASE_FIGURES, PhaseFigures
from loadgen.stats.metrics import (
    HIGHEST_US,
    RECORD_CHUNK,
    decode_histogram,
    encode_histogram,
    latency_ms,
    new_histogram,
    record_values,
)

#: The phases in the order the report lists them.
PHASES = ("connect", "tls", "ttfb")
#: The figures of each phase in ``summary.phases_ms``.
FIGURES = PHASE_FIGURES


class PhaseRecorder:
    """One worker's phases during one interval; ``to_wire`` hands them over and restarts.

    ``ttfb`` is never replaced, only emptied: each Connection keeps its bound
    ``append``, so the hot path does one call and no attribute chain.
    """

    __slots__ = ("connect", "tls", "ttfb")

    def __init__(self, tls: bool = False) -> None:
        self.connect = new_histogram()
        self.tls: HdrHistogram | None = new_histogram() if tls else None
        self.ttfb = array("d")   # seconds, one per response that began

    def record_connect(self, seconds: float) -> None:
        _record(self.connect, seconds)

    def record_tls(self, seconds: float) -> None:
        if self.tls is None:
            self.tls = new_histogram()
        _record(self.tls, seconds)

    def to_wire(self) -> dict[str, str]:
        """This interval's phases as encoded histograms ("" when empty); the recorder
        starts the next interval empty.  ``tls`` only for https."""
        connect, self.connect = self.connect, new_histogram()
        wire = {"connect": encode_histogram(connect)}
        if self.tls is not None:
            tls, self.tls = self.tls, new_histogram()
            wire["tls"] = encode_histogram(tls)
        # read in place, in chunks (small temporaries: see RECORD_CHUNK), then emptied; no
        # greenlet runs in between (no I/O here), so no value lands in neither interval
        ttfb = new_histogram()
        seconds = np.frombuffer(self.ttfb, dtype=np.float64)
        for start in range(0, seconds.size, RECORD_CHUNK):
            us = seconds[start:start + RECORD_CHUNK] * 1e6
            np.clip(us, 0, HIGHEST_US, out=us)   # as int(s * 1e6) clamped, once truncated
            record_values(ttfb, us.astype(np.int64))
        del seconds   # the buffer export: the array cannot be resized while it lives
        del self.ttfb[:]
        wire["ttfb"] = encode_histogram(ttfb)
        return wire


def _record(hist: HdrHistogram, seconds: float) -> None:
    hist.record_value(min(max(0, int(seconds * 1e6)), HIGHEST_US))


class PhaseTotals:
    """The phases merged across workers (coordinator), or read back from a document.

    A phase is present once any worker reported it, even with no value (a
    failed https run still says it had a TLS phase); ``summary`` is None
    when no worker reported phases at all (workers of an older loadgen on a
    cluster node), so the document then has none rather than empty ones.
    """

    def __init__(self) -> None:
        self.hists: dict[str, HdrHistogram] = {}

    def add_wire(self, wire: dict[str, Any] | None) -> None:
        for name, encoded in (wire or {}).items():
            if name in PHASES:
                hist = self.hists.setdefault(name, new_histogram())
                if encoded:
                    hist.decode_and_add(encoded)

    def merge(self, other: PhaseTotals) -> None:
        for name, hist in other.hists.items():
            mine = self.hists.setdefault(name, new_histogram())
            if hist.get_total_count():   # an empty one's minimum of 0 would be merged
                mine.add(hist)

    def summary(self) -> dict[str, PhaseFigures] | None:
        """``summary.phases_ms``: {phase: {count, mean, p50, p90, p99, max}} in ms."""
        if not self.hists:
            return None
        return {name: phase_figures(self.hists[name]) for name in PHASES if name in self.hists}

    def encode(self) -> dict[str, str]:
        """``phase_histograms``: base64 HDR in microseconds, as ``histograms``."""
        return {name: encode_histogram(self.hists[name]) for name in PHASES
                if name in self.hists}

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> PhaseTotals | None:
        """A saved run's phases; None when it has none (written before phases existed)."""
        encoded = doc.get("phase_histograms")
        if not isinstance(encoded, dict):
            return None
        totals = cls()
        for name in PHASES:
            if name in encoded:
                totals.hists[name] = decode_histogram(encoded[name])
        return totals


def phase_figures(hist: HdrHistogram) -> PhaseFigures:
    """count, mean and p50/p90/p99/max (ms) of one phase; None figures when it has no value."""
    figures = cast(dict[str, float | None], latency_ms(hist))
    return cast(PhaseFigures, {"count": hist.get_total_count(),
                               **{key: figures[key] for key in FIGURES if key != "count"}})
