"""Price the per-endpoint success test on the hot path: ``Tally.record`` old vs new.

Usage::

    python bench/success_lookup.py [--records 200000] [--repeat 15]

Before ``--expect-status``, ``Tally.record`` decided success with a hard-wired
``200 <= status < 300``.  Now each endpoint has its own success set (a frozenset,
``Endpoint.expect_status``) and the worker tests ``status in self.ok``.
This script times ``record`` per call for three variants on the same status
sequence (90% 200, 5% 304, 5% 503), interleaved round by round (A B C, B C A,
C A B, ...) so machine drift hits all alike, and prints each variant's median
ns per record and the difference to the old test:

* old    ``200 <= status < 300`` (the code before this change)
* set    ``status in self.ok`` on a frozenset (what loadgen does now)
* table  ``self.ok[status]`` on a 1000-byte table indexed by status (the alternative:
  measured slower than the set, and it needs every status to be below 1000)

Each round records into fresh tallies, as a worker does every second.  Only
``record`` is timed; everything it does besides the test (the HDR histogram,
the status counter, the byte counts) is the same in all three.  ``record`` is
dominated by hdrhistogram's ``record_value`` (a few µs in Python on a shared
machine), so the script also times the test alone -- the three expressions
in the same loop shape, on the same statuses, with the loop's own cost (a
loop that only reads ``self.hist``) subtracted -- which is where they differ.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from loadgen.stats.metrics import DEFAULT_SUCCESS, HIGHEST_US, Tally


def success_table(codes: frozenset[int]) -> bytes:
    """One byte per status 0..999, 1 for a success."""
    return bytes(1 if code in codes else 0 for code in range(1000))


class OldTally(Tally):
    """``Tally`` as it was: 2xx hard-wired."""

    __slots__ = ()

    def record(self, status: int, latency_us: int, bytes_in: int, bytes_out: int) -> None:
        hist = self.hist if 200 <= status < 300 else self.failed
        if not hist.record_value(latency_us):
            self.overflow += 1
            hist.record_value(HIGHEST_US)
        self.codes[status] = self.codes.get(status, 0) + 1
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out


class TableTally(Tally):
    """``Tally`` with a bytes table indexed by status instead of the set."""

    __slots__ = ()

    def record(self, status: int, latency_us: int, bytes_in: int, bytes_out: int) -> None:
        hist = self.hist if self.ok[status] else self.failed
        if not hist.record_value(latency_us):
            self.overflow += 1
            hist.record_value(HIGHEST_US)
        self.codes[status] = self.codes.get(status, 0) + 1
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out


def workload(n: int) -> list[tuple[int, int]]:
    """(status, latency_us) pairs: mostly 200, some 304 and 503, latencies 0.2-20 ms."""
    statuses = [200] * 18 + [304, 503]
    return [(statuses[i % len(statuses)], 200 + (i * 7919) % 20_000) for i in range(n)]


def time_one(make: Callable[[], Tally], pairs: list[tuple[int, int]]) -> float:
    """ns per ``record`` call, on a fresh tally."""
    record = make().record
    began = time.perf_counter_ns()
    for status, latency in pairs:
        record(status, latency, 120, 80)
    return (time.perf_counter_ns() - began) / len(pairs)


class _Probe:
    """The three tests as methods, each choosing a histogram as ``record`` does."""

    __slots__ = ("failed", "hist", "ok_set", "ok_table")

    def __init__(self) -> None:
        self.hist, self.failed = [], []
        self.ok_table = success_table(DEFAULT_SUCCESS)
        self.ok_set = DEFAULT_SUCCESS

    def loop(self, statuses: list[int]) -> None:   # the baseline: no test at all
        for status in statuses:
            hist = self.hist  # noqa: F841

    def old(self, statuses: list[int]) -> None:
        for status in statuses:
            hist = self.hist if 200 <= status < 300 else self.failed  # noqa: F841

    def table(self, statuses: list[int]) -> None:   # attribute read per call, as in record
        for status in statuses:
            hist = self.hist if self.ok_table[status] else self.failed  # noqa: F841

    def set(self, statuses: list[int]) -> None:
        for status in statuses:
            hist = self.hist if status in self.ok_set else self.failed  # noqa: F841


def test_alone(pairs: list[tuple[int, int]], repeat: int) -> dict[str, list[float]]:
    """ns per test, loop cost subtracted, for each variant over interleaved rounds."""
    statuses = [status for status, _ in pairs] * 5
    probe = _Probe()
    names = ["loop", "old", "set", "table"]
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeat):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            run = getattr(probe, name)
            began = time.perf_counter_ns()
            run(statuses)
            samples[name].append((time.perf_counter_ns() - began) / len(statuses))
    base = statistics.median(samples.pop("loop"))
    return {name: [x - base for x in values] for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    pairs = workload(args.records)
    table = success_table(DEFAULT_SUCCESS)
    variants: dict[str, Callable[[], Tally]] = {
        "old": lambda: OldTally(),
        "set": lambda: Tally(False, DEFAULT_SUCCESS),
        "table": lambda: TableTally(False, table),   # type: ignore[arg-type]
    }
    names = list(variants)
    for name in names:   # warm up: first histograms, caches
        time_one(variants[name], pairs[:20_000])
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.repeat):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            samples[name].append(time_one(variants[name], pairs))
    old = statistics.median(samples["old"])
    print(f"Tally.record, {args.records:,} records x {args.repeat} interleaved rounds "
          "(median ns per record; spread = min..max of rounds)")
    for name in names:
        med = statistics.median(samples[name])
        low = min(samples[name])
        print(f"  {name:6s} {med:7.1f} ns  {med - old:+6.1f} vs old   (fastest round {low:.1f}, "
              f"{low - min(samples['old']):+.1f} vs old; slowest {max(samples[name]):.1f})")
    alone = test_alone(pairs, args.repeat)
    old = statistics.median(alone["old"])
    print("The success test alone (median ns per status, loop cost subtracted):")
    for name, values in alone.items():
        med = statistics.median(values)
        print(f"  {name:6s} {med:7.1f} ns   {med - old:+6.1f} ns vs old")


if __name__ == "__main__":
    main()
