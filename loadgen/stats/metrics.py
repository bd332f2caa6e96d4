"""HDR histograms and counters: recorded in workers, merged in the coordinator.

Every histogram in loadgen has one layout (1 µs .. 60 s, 3 significant
digits) so that merging takes hdrhistogram's fast C path and stays exact.
Latencies longer than the layout are recorded at the top and counted as
``overflow`` so they are never silently lost.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from hdrh.histogram import HdrHistogram

from loadgen.schema import LATENCY_KEYS, PERCENTILES, Block, LatencyMs

LOWEST_US = 1
HIGHEST_US = 60_000_000
SIGNIFICANT_DIGITS = 3


#: Statuses that count as a success unless the endpoint says otherwise (loadgen.config.model's).
DEFAULT_SUCCESS = frozenset(range(200, 300))


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def decode_histogram(encoded: str | bytes) -> HdrHistogram:
    """Decode a histogram sent by a worker or saved in a results file."""
    hist = new_histogram()
    if encoded:
        hist.decode_and_add(encoded)
    return hist


def encode_histogram(hist: HdrHistogram) -> str:
    """Base64 HDR payload; "" for an empty histogram (most intervals of idle endpoints)."""
    return hist.encode().decode("ascii") if hist.get_total_count() else ""


class Tally:
    """What one worker records for one endpoint during one interval.

    Swapped for a fresh one every interval (a new histogram is ~10x cheaper
    than ``reset``), so the wire carries deltas and nothing is counted twice.

    Every request lands in exactly one latency histogram: ``hist`` for a
    success (a status in the endpoint's success set, 2xx unless
    ``--expect-status`` says otherwise), ``failed`` for anything else (another
    status, or no response at all, at the time it failed).  A failure left out
    of the distribution would make a stall longer than the timeout look
    *better*; split this way
    the worker still records one value per request, and the coordinator
    merges the two into "every request" and keeps "successes only" beside it.
    """

    __slots__ = ("bytes_in", "bytes_out", "checked", "checks", "codes", "errors", "failed", "hist",
                 "ok", "overflow", "service")

    def __init__(self, open_model: bool = False, ok: frozenset[int] = DEFAULT_SUCCESS) -> None:
        # the endpoint's success set: ``status in ok`` costs no more than the old
        # ``200 <= status < 300`` did (bench/success_lookup.py)
        self.ok = ok
        self.hist = new_histogram()
        self.failed = new_histogram()
        # open model: ``hist``/``failed`` run from the intended send time, ``service`` from
        # the moment the request's bytes were written (every request that was written)
        self.service = new_histogram() if open_model else None
        self.codes: dict[int, int] = {}
        self.errors: dict[str, int] = {}
        self.bytes_in = 0
        self.bytes_out = 0
        self.overflow = 0
        # endpoints with ``expect`` checks only: responses checked, failures by check name
        self.checked = 0
        self.checks: dict[str, int] = {}

    def record(self, status: int, latency_us: int, bytes_in: int, bytes_out: int) -> None:
        hist = self.hist if status in self.ok else self.failed
        if not hist.record_value(latency_us):
            self.overflow += 1
            hist.record_value(HIGHEST_US)
        self.codes[status] = self.codes.get(status, 0) + 1
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out

    def record_service(self, service_us: int) -> None:
        # only the open model calls this, and it has ``service`` (no check on the hot path)
        if not self.service.record_value(service_us):   # type: ignore[union-attr]
            self.service.record_value(HIGHEST_US)   # type: ignore[union-attr]

    def error(self, kind: str, bytes_out: int, latency_us: int) -> None:
        """A request with no HTTP response, in the distribution at the time it failed."""
        if not self.failed.record_value(latency_us):
            self.overflow += 1
            self.failed.record_value(HIGHEST_US)
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.bytes_out += bytes_out

    def check_failed(self, name: str, bytes_in: int, bytes_out: int, latency_us: int,
                     kind: str = "check") -> None:
        """A response that failed the check ``name``: a failure of kind ``check`` (or
        ``extract``: a journey step's extraction found nothing usable, ``name`` says why),
        not in ``codes``: a request is counted once, and it did not succeed."""
        self.error(kind, bytes_out, latency_us)
        self.bytes_in += bytes_in
        self.checks[name] = self.checks.get(name, 0) + 1

    @property
    def requests(self) -> int:
        return sum(self.codes.values()) + sum(self.errors.values())

    def to_wire(self) -> dict[str, Any]:
        return {
            "hist": encode_histogram(self.hist),
            "failed": encode_histogram(self.failed),
            "service": encode_histogram(self.service) if self.service else None,
            "codes": {str(k): v for k, v in self.codes.items()},
            "errors": self.errors,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "overflow": self.overflow,
            "checked": self.checked,
            "checks_failed": self.checks,
        }


class IterationTally:
    """What one worker records for one user kind's iterations during one interval.

    An iteration (issue 12 section 2) is one pass through a kind's steps.  It is a
    success when every step succeeded, its time running from the first step's send
    (the arrival's intended time in the open model) to the last step's response, think
    time left out; a failure at the first step that failed (keyed by that step's
    endpoint index: the report names the step), at the time it failed; or *cut* when
    the run ended, or the user was told to leave, in the middle of it: neither, counted
    apart, so a run's end never shows as failed iterations.  Swapped every interval
    like ``Tally``; the wire carries deltas.
    """

    __slots__ = ("cut", "failed", "failed_at", "hist", "overflow")

    def __init__(self) -> None:
        self.hist = new_histogram()      # successful iterations
        self.failed = new_histogram()    # failed ones, at the time they failed
        self.failed_at: dict[int, int] = {}   # endpoint index of the failing step -> count
        self.cut = 0
        self.overflow = 0

    def success(self, duration_us: int) -> None:
        if not self.hist.record_value(duration_us):
            self.overflow += 1
            self.hist.record_value(HIGHEST_US)

    def failure(self, step: int, duration_us: int) -> None:
        if not self.failed.record_value(duration_us):
            self.overflow += 1
            self.failed.record_value(HIGHEST_US)
        self.failed_at[step] = self.failed_at.get(step, 0) + 1

    def cut_short(self) -> None:
        self.cut += 1

    def to_wire(self) -> dict[str, Any]:
        return {
            "hist": encode_histogram(self.hist),
            "failed": encode_histogram(self.failed),
            "failed_at": {str(k): v for k, v in self.failed_at.items()},
            "cut": self.cut,
            "overflow": self.overflow,
        }


@dataclass
class Totals:
    """Merged counts for one endpoint (or all of them) in the coordinator.

    ``hist`` holds every request (the distribution the table, thresholds,
    compare and capacity use); ``success`` only the successes.  Empty
    histograms are never added: hdrhistogram's ``add`` would take their
    minimum of 0 as the merged minimum.

    ``expect`` is the endpoint's success set: statuses outside it are counted
    in ``failed_codes`` as they arrive, so totals that merge endpoints with
    different success sets (the run's summary, each second) stay right.
    """

    hist: HdrHistogram = field(default_factory=new_histogram)
    success: HdrHistogram = field(default_factory=new_histogram)
    service: HdrHistogram | None = None
    codes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    bytes_in: int = 0
    bytes_out: int = 0
    overflow: int = 0
    expect: frozenset[int] = DEFAULT_SUCCESS
    checked: int = 0                                  # responses whose body was checked
    checks_failed: Counter[str] = field(default_factory=Counter)   # by check name
    failed_codes: Counter[str] = field(init=False)   # failures_by_status

    def __post_init__(self) -> None:
        self.failed_codes = Counter({code: n for code, n in self.codes.items()
                                     if not _is_success(code, self.expect)})

    def add_wire(self, wire: dict[str, Any], expect: frozenset[int] | None = None) -> None:
        """Merge one worker delta; ``expect``: its endpoint's success set (default: ours)."""
        if wire["hist"]:
            ok = decode_histogram(wire["hist"])
            self.hist.add(ok)
            self.success.add(ok)
        if wire.get("failed"):
            self.hist.decode_and_add(wire["failed"])
        if wire.get("service") is not None:
            if self.service is None:
                self.service = new_histogram()
            if wire["service"]:
                self.service.decode_and_add(wire["service"])
        expect = self.expect if expect is None else expect
        self.failed_codes.update({code: n for code, n in wire["codes"].items()
                                  if not _is_success(code, expect)})
        self._add_counts(wire["codes"], wire["errors"], wire["bytes_in"],
                         wire["bytes_out"], wire["overflow"])
        self.checked += wire.get("checked", 0)
        self.checks_failed.update(wire.get("checks_failed") or {})

    def merge(self, other: Totals) -> None:
        _add(self.hist, other.hist)
        _add(self.success, other.success)
        if other.service is not None:
            if self.service is None:
                self.service = new_histogram()
            _add(self.service, other.service)
        self.failed_codes.update(other.failed_codes)
        self._add_counts(other.codes, other.errors, other.bytes_in, other.bytes_out,
                         other.overflow)
        self.checked += other.checked
        self.checks_failed.update(other.checks_failed)

    def _add_counts(self, codes: dict[str, int], errors: dict[str, int], bytes_in: int,
                    bytes_out: int, overflow: int) -> None:
        self.codes.update(codes)
        self.errors.update(errors)
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        self.overflow += overflow

    @property
    def requests(self) -> int:
        return sum(self.codes.values()) + sum(self.errors.values())

    @property
    def successes(self) -> int:
        return sum(self.codes.values()) - sum(self.failed_codes.values())


def _is_success(code: str | int, expect: frozenset[int] = DEFAULT_SUCCESS) -> bool:
    text = str(code)
    return text.isascii() and text.isdigit() and int(text) in expect


def _add(into: HdrHistogram, other: HdrHistogram) -> None:
    """``into.add(other)`` unless ``other`` is empty (whose minimum of 0 would be merged)."""
    if other.get_total_count():
        into.add(other)


@functools.cache
def _layout_values() -> tuple[np.ndarray, np.ndarray]:
    """Per counts-index: the highest and the median equivalent value of that bucket.

    hdrhistogram's percentile and mean walks are pure Python (~40 ms each on
    this layout); the coordinator summarizes several histograms every second,
    so it uses these tables with numpy and gets hdrhistogram's exact answers.
    """
    h = new_histogram()
    lowest = [h.get_value_from_index(i) for i in range(h.counts_len)]
    highest = np.array([h.get_highest_equivalent_value(v) for v in lowest], dtype=np.float64)
    median = np.array([h._hdr_median_equiv_value(v) for v in lowest], dtype=np.float64)
    return highest, median


#: Values converted at a time by ``record_values``: the temporaries (8 bytes a value) stay
#: under glibc's mmap threshold, so they are recycled instead of page-faulted afresh (4x
#: faster on a VM: 50,000 values at once spent most of their time in page faults).
RECORD_CHUNK = 8192


@functools.cache
def _index_layout() -> tuple[np.ndarray, int, int, int, int, int]:
    """The constants of hdrhistogram's value -> counts-index mapping for loadgen's layout."""
    h = new_histogram()
    powers = np.left_shift(np.int64(1), np.arange(63, dtype=np.int64))   # 1, 2, 4 .. 2**62
    return (powers, h.sub_bucket_mask, h.unit_magnitude, h.sub_bucket_half_count_magnitude,
            h.sub_bucket_half_count, h.counts_len)


def counts_indices(values: np.ndarray) -> np.ndarray:
    """hdrhistogram's ``_counts_index_for`` of each (non-negative int64) value, vectorised.

    The same integer steps: the bucket from the bit length of ``value | sub_bucket_mask``,
    the sub-bucket by a shift.  The bit length is read from the exponent bits of the
    value as a float64 while every value is below 2**53 (a float holds it exactly:
    latencies always are), else found by a search over the powers of two.  In place
    where it can be: two temporaries in all.  ``record_values`` relies on it being exact.
    """
    powers, mask, unit, half_magnitude, half_count, _ = _index_layout()
    shift = values | mask   # >= mask > 0: no zero, whose exponent would say nothing
    if shift.size and int(shift.max()) < 1 << 53:
        # IEEE 754: 2**k <= x < 2**(k+1) has the biased exponent 1023 + k; bit length k + 1
        bucket = shift.astype(np.float64).view(np.int64)
        bucket >>= 52
        bucket -= 1022   # int.bit_length()
    else:
        bucket = np.searchsorted(powers, shift, side="right").astype(np.int64)
    bucket -= unit + half_magnitude + 1
    np.add(bucket, unit, out=shift)
    np.right_shift(values, shift, out=shift)   # the sub-bucket index
    bucket += 1
    bucket <<= half_magnitude
    bucket += shift
    bucket -= half_count
    return bucket


def record_values(hist: HdrHistogram, values: np.ndarray) -> int:
    """``hist.record_value(v)`` for every v of an int64 array, at numpy speed; the number
    of values it refused (negative, or beyond the layout), which are left out as
    ``record_value`` leaves them out.

    Why: ``record_value`` is pure Python (1 µs and more a call).  A per-request figure
    can then be kept as one float appended to an array on the hot path, and turned
    into HDR counts once per interval.  tests/test_phases.py checks that the
    resulting histogram (counts, total, min, max) equals one built with
    ``record_value``.
    """
    values = np.asarray(values, dtype=np.int64)
    counts = np.ctypeslib.as_array(hist.counts)
    counts_len = counts.size
    recorded = 0
    for start in range(0, values.size, RECORD_CHUNK):
        chunk = values[start:start + RECORD_CHUNK]
        if chunk.min() < 0:
            chunk = chunk[chunk >= 0]
        indices = counts_indices(chunk)
        if chunk.size and indices.max() >= counts_len:
            keep = indices < counts_len
            chunk, indices = chunk[keep], indices[keep]
        if not chunk.size:
            continue
        found = np.bincount(indices)   # as long as the highest index: no 17,408-long temporary
        counts[:found.size] += found.astype(counts.dtype)
        recorded += int(chunk.size)
        hist.min_value = min(hist.min_value, int(chunk.min()))
        hist.max_value = max(hist.max_value, int(chunk.max()))
    hist.total_count += recorded
    return int(values.size - recorded)


def percentiles_us(hist: HdrHistogram, percentiles: list[float]) -> list[int]:
    """Same values as ``hist.get_value_at_percentile(p)`` for each p > 0, in one pass."""
    highest, _ = _layout_values()
    cumulative = np.cumsum(np.ctypeslib.as_array(hist.counts))
    total = int(cumulative[-1])
    targets = [max(int(min(p, 100.0) * total / 100 + 0.5), 1) for p in percentiles]
    return [int(highest[i]) for i in np.searchsorted(cumulative, targets, side="left")]


def latency_ms(hist: HdrHistogram) -> LatencyMs:
    """min/mean/percentiles/max in milliseconds; None throughout when nothing was recorded."""
    total = hist.get_total_count()
    if total == 0:
        return cast(LatencyMs, dict.fromkeys(LATENCY_KEYS))
    _, median = _layout_values()
    mean = float(np.dot(np.ctypeslib.as_array(hist.counts).astype(np.float64), median)) / total
    out: dict[str, float | None] = {"min": hist.get_min_value() / 1000.0,
                                    "mean": round(mean / 1000.0, 4)}
    values = percentiles_us(hist, [p for _, p in PERCENTILES])
    for (name, _), value in zip(PERCENTILES, values):
        out[name] = value / 1000.0
    out["max"] = hist.get_max_value() / 1000.0
    return cast(LatencyMs, out)   # the keys of LATENCY_KEYS, in that order


def summarize(totals: Totals, duration_s: float) -> Block:
    """The summary block (S) of the results document.

    One vocabulary: a *failure* is a request that did not succeed (no status
    in its endpoint's success set, 2xx by default), split into
    ``failures_by_status`` (it got a response with another status) and
    ``failures_by_kind`` (it got no response: connect, timeout, write, read,
    protocol).  ``latency_ms`` covers every request; ``success_latency_ms``
    only the successes.
    """
    requests = totals.requests
    successes = totals.successes
    summary: Block = {
        "requests": requests,
        "successes": successes,
        "failures": requests - successes,
        "success_rate": successes / requests if requests else 0.0,
        "rps": requests / duration_s if duration_s > 0 else 0.0,
        "duration_s": round(duration_s, 6),
        "latency_ms": latency_ms(totals.hist),
        "success_latency_ms": latency_ms(totals.success),
        "status_codes": dict(sorted(totals.codes.items())),
        "failures_by_status": {code: n for code, n in sorted(totals.failed_codes.items()) if n},
        "failures_by_kind": {k: v for k, v in sorted(totals.errors.items()) if v},
        "bytes_in": totals.bytes_in,
        "bytes_out": totals.bytes_out,
        "latency_overflow": totals.overflow,
    }
    if totals.service is not None:
        summary["service_time_ms"] = latency_ms(totals.service)
    if totals.checked:   # only where an endpoint has ``expect`` checks
        summary["checked"] = totals.checked
        summary["checks_failed"] = {k: v for k, v in sorted(totals.checks_failed.items()) if v}
    return summary
