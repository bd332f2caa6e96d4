"""Price a change to the worker's hot loop: two copies of loadgen, paired and interleaved.

Usage::

    git archive <base> loadgen | tar -x -C /tmp/base      # the "before" copy
    python bench/loop_ab.py --before /tmp/base [--rate 8000] [--repeat 5] [--duration 5]

Each round runs, pinned as ``cost.py`` pins them, the closed model before and
after, then the open model (``--rate``) before and after, each a long and a
short run (the marginal cost cancels start-up).  A per-request indirection
costs tens of nanoseconds, less than the drift of a shared machine over a few
minutes, so the figure that decides is the *paired* ratio: after / before
within each round, whose median is printed beside the medians of each side.

The "before" copy runs with ``python -P`` and ``PYTHONPATH`` pointing at it
(spawned workers inherit ``sys.path``), so both copies use this venv's
libraries.  Standard library only; not used by the tests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cost  # bench/ is not a package: cost.py is found as a sibling


def build(copy: str | None, rate: float | None) -> Callable[[str, int, int, Path], list[str]]:
    """A cost.Tool build function for one copy of loadgen and one model."""
    def argv(url: str, conns: int, seconds: int, scratch: Path) -> list[str]:
        base = cost.loadgen_build(url, conns, seconds, scratch)
        if copy:
            base = ["env", f"PYTHONPATH={copy}", base[0], "-P", *base[1:]]
        return base + (["--rate", f"{rate:g}"] if rate else [])
    return argv


def paired(after: list[float], before: list[float]) -> float | None:
    """Median of the per-round ratios after/before (drift between rounds cancels)."""
    ratios = [a / b for a, b in zip(after, before) if a and b]
    return statistics.median(ratios) if ratios else None


# -- micro: the loop shapes alone, with a request that does nothing ------------------------


class _Shapes:
    """The closed model's per-request statements before (inline ticket) and after (a ticket
    generator feeding the serve loop), around a no-op request, so only the loop differs."""

    def __init__(self, n: int) -> None:
        self.stopping, self.next_ticket, self.last_ticket, self.end_at = False, 0, n, float("inf")
        self.timeout, self.got = 10.0, 0

    def request(self, data: bytes, head: bool, deadline: float = 0.0) -> tuple[int, int]:
        deadline = deadline or time.monotonic() + self.timeout   # as Connection.request does
        return 200, len(data)

    def before(self) -> None:
        clock, end_at, timeout, request = time.perf_counter, self.end_at, self.timeout, self.request
        cycle, requests, heads = (0,), [b"GET / HTTP/1.1\r\n\r\n"], [False]
        while not self.stopping:
            t0 = clock()
            i = self.next_ticket
            if i == self.last_ticket or t0 >= end_at:
                break
            self.next_ticket = i + 1
            e = cycle[i % 1]
            data = requests[e]
            status, received = request(data, heads[e])
            elapsed = clock() - t0
            if elapsed > timeout:
                self.got -= 1
            else:
                self.got += status + received

    def tickets(self) -> Iterator[tuple[int, float]]:
        clock, end_at = time.perf_counter, self.end_at
        while not self.stopping:
            t0 = clock()
            i = self.next_ticket
            if i == self.last_ticket or t0 >= end_at:
                return
            self.next_ticket = i + 1
            yield i, t0

    def after(self) -> None:
        clock, monotonic, timeout, request = time.perf_counter, time.monotonic, self.timeout, \
            self.request
        cycle, requests, heads, open_model = (0,), [b"GET / HTTP/1.1\r\n\r\n"], [False], False
        for k, intended in self.tickets():
            e = cycle[k % 1]
            data = requests[e]
            t0 = clock() if open_model else intended
            left = intended + timeout - t0
            if left <= 0:
                continue
            status, received = request(data, heads[e], monotonic() + left)
            t1 = clock()
            if t1 - intended > timeout:
                self.got -= 1
            else:
                self.got += status + received


def micro(repeat: int, calls: int) -> None:
    """ns per request of each shape, interleaved rounds, medians and the paired difference."""
    times: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(repeat):
        for name, samples in times.items():
            shapes = _Shapes(calls)
            t = time.process_time()
            getattr(shapes, name)()
            samples.append((time.process_time() - t) / calls * 1e9)
    diffs = [a - b for a, b in zip(times["after"], times["before"])]
    print(f"micro, closed model, {repeat} interleaved rounds of {calls:,} requests: before "
          f"{statistics.median(times['before']):.0f} ns, after {statistics.median(times['after']):.0f}"
          f" ns per request; paired difference median {statistics.median(diffs):+.0f} ns")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--micro", action="store_true",
                        help="only time the closed loop's shapes (no network, no --before)")
    parser.add_argument("--before", default=None, help="directory holding the base loadgen/")
    parser.add_argument("--after", default=None,
                        help="directory holding the changed loadgen/ [this checkout]")
    parser.add_argument("--rate", type=float, default=8000.0, help="open-model req/s [8000]")
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--short", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--target", default=None, help="nginx or builtin [nginx if installed]")
    parser.add_argument("--path", default=None)
    args = parser.parse_args()
    if args.micro:
        micro(args.repeat * 4, 300_000)
        return 0
    if not args.before:
        parser.error("--before is required (unless --micro)")
    args.target = args.target or ("nginx" if cost.shutil.which("nginx") else "builtin")
    cost.PATH[0] = args.path or ("/api/health" if args.target == "builtin" else "/")
    pin = cost.pinning_available()
    tools = [cost.Tool(name, build(copy, rate), cost.loadgen_parse)
             for rate in (None, args.rate)
             for name, copy in ((("closed" if rate is None else "open") + "-before", args.before),
                                (("closed" if rate is None else "open") + "-after", args.after))]
    with tempfile.TemporaryDirectory(prefix="loadgen-ab-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "scratch").mkdir()
        with cost.target(args, tmp, pin) as (url, server_pid, described):
            print(f"target {described}", file=sys.stderr)
            cost.benchmark(tools, url, server_pid, args, pin, tmp / "scratch")
    print(f"{args.repeat} interleaved rounds, {args.duration}s runs (+{args.short}s), "
          f"{args.concurrency} connections, open model at {args.rate:g} req/s, pinned={pin}")
    print("| run | req/s | us/req steady | us/req worker | errors |")
    print("|---|---:|---:|---:|---:|")
    for t in tools:
        f = cost.figures(t)
        print(f"| {t.name} | {cost.fmt(f['rps'], ',.0f')} | "
              f"{cost.fmt(f['marginal_us_per_req'], '.2f')} | "
              f"{cost.fmt(f['worker_us_per_req'], '.2f')} | {f['errors']} |")
    for before, after in (tools[0:2], tools[2:4]):
        steady = paired(after.marginal_us, before.marginal_us)
        worker = paired([s.worker_us or 0.0 for s in after.long],
                        [s.worker_us or 0.0 for s in before.long])
        rps = paired([s.rps for s in after.long], [s.rps for s in before.long])
        print(f"{after.name} / {before.name}, median of paired ratios: steady "
              f"{cost.fmt(steady, '.3f')}, worker {cost.fmt(worker, '.3f')}, "
              f"req/s {cost.fmt(rps, '.3f')}")
        print("  per round (worker us/req): " + ", ".join(
            f"{a.worker_us or 0:.2f}/{b.worker_us or 0:.2f}"
            for a, b in zip(after.long, before.long)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
