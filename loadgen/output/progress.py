"""Live progress on stderr, once a second as the merged intervals arrive.

On a terminal it is one line rewritten in place; into a file or pipe (CI
logs) it is a plain line every few seconds, so logs stay readable.  Stdout
is left alone: it carries the report.

  [15s/60s] 71,702 requests | 6,177 req/s | 99.2% success | p99 10.2 ms (last second) | 573 failures

A journey run (its intervals count ``iterations``) also says how many iterations
completed, out of ``--iterations`` when given: ``| 1,204/5,000 iterations``.

Success and failures are counted since the start, with the same meaning as
the report's (a failure is any request without a 2xx response), so the line
never says "0 errors" while every response is a 500.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from loadgen.output.table import format_number, format_percent
from loadgen.schema import Interval
from loadgen.stats.failures import interval_counts

PLAIN_EVERY_S = 5.0


def seconds_text(seconds: float) -> str:
    """A length in seconds in plain notation: ``60``, ``1.5``, ``1,000,000`` (``:g`` would
    print ``1e+06``)."""
    return f"{seconds:,.3f}".rstrip("0").rstrip(".")


class Progress:
    def __init__(self, quiet: bool, requests: int | None, duration_s: float | None,
                 stream: TextIO | None = None, iterations: int | None = None) -> None:
        self.quiet = quiet
        self.requests = requests
        self.iterations = iterations   # --iterations N of a journey run
        self.iterations_done: int | None = None
        self.duration_s = duration_s
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last_plain = time.monotonic()
        self.done = 0
        self.successes = 0
        self.failures = 0
        self.shown = False

    def update(self, intervals: Sequence[Interval]) -> None:
        if self.quiet or not intervals:
            return
        self.done = sum(i["requests"] for i in intervals)
        counts = [interval_counts(i) for i in intervals]
        self.successes = sum(ok for ok, _ in counts)
        self.failures = sum(failed for _, failed in counts)
        if any("iterations" in i for i in intervals):
            self.iterations_done = sum(i.get("iterations", 0) for i in intervals)
        line = self._line(intervals[-1])
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
            self.shown = True
        elif time.monotonic() - self.last_plain >= PLAIN_EVERY_S:
            self.stream.write(line + "\n")
            self.last_plain = time.monotonic()
        self.stream.flush()

    def _line(self, last: Mapping[str, Any]) -> str:
        elapsed = (f"{last['t']:,.0f}s"
                   + (f"/{seconds_text(self.duration_s)}s" if self.duration_s else ""))
        done = f"{self.done:,}" + (f"/{self.requests:,}" if self.requests else "")
        p99 = last["latency_ms"]["p99"]
        p99_text = f"{format_number(p99, thousands=True)} ms" if p99 is not None else "-"
        # Over the requests counted so far, so it agrees with the failures count beside it.
        success = (format_percent(self.successes / self.done, self.done, self.successes) + "%"
                   if self.done else "-")
        failures = f"{self.failures:,} failure" + ("" if self.failures == 1 else "s")
        iterations = ("" if self.iterations_done is None else
                      f" | {self.iterations_done:,}"
                      + (f"/{self.iterations:,}" if self.iterations else "") + " iterations")
        return (f"[{elapsed}] {done} requests{iterations} | "
                f"{format_number(last['rps'], thousands=True)} "
                f"req/s | {success} success | p99 {p99_text} (last second) | {failures}")

    def erase(self) -> None:
        """Take the live line off the terminal, so the next line printed replaces it."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
