"""Live progress on stderr, once a second as the merged intervals arrive.

On a terminal it is one line rewritten in place; into a file or pipe (CI
logs) it is a plain line every few seconds, so logs stay readable.  Stdout
is left alone: it carries the report.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

PLAIN_EVERY_S = 5.0


class Progress:
    def __init__(self, quiet: bool, requests: int | None, duration_s: float | None,
                 stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.requests = requests
        self.duration_s = duration_s
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last_plain = time.monotonic()
        self.done = 0
        self.errors = 0
        self.shown = False

    def update(self, intervals: list[dict[str, Any]]) -> None:
        if self.quiet or not intervals:
            return
        self.done = sum(i["requests"] for i in intervals)
        self.errors = sum(i["errors"] for i in intervals)
        line = self._line(intervals[-1])
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
            self.shown = True
        elif time.monotonic() - self.last_plain >= PLAIN_EVERY_S:
            self.stream.write(line + "\n")
            self.last_plain = time.monotonic()
        self.stream.flush()

    def _line(self, last: dict[str, Any]) -> str:
        elapsed = f"{last['t']:.0f}s" + (f"/{self.duration_s:g}s" if self.duration_s else "")
        done = f"{self.done:,}" + (f"/{self.requests:,}" if self.requests else "")
        p99 = last["latency_ms"]["p99"]
        p99_text = f"{p99:.3g} ms" if p99 is not None else "-"
        return (f"[{elapsed}] {done} requests | {last['rps']:,.0f} req/s | "
                f"p99 {p99_text} (last second) | {self.errors:,} errors")

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
