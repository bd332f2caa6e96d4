"""Price the live view (``loadgen.output.liveview``) against the same run without it.

Usage::

    python bench/liveview.py [--repeat 5] [--duration 5] [--concurrency 50] [--endpoints 4]
                             [--json FILE]

The issue's goal: the live view costs under 2% of throughput.  Two variants of
the same ``loadgen run --workers 1 --save`` against a private nginx (the
built-in target when nginx is absent), both with stderr on a pseudo-terminal,
are interleaved (A B A B ...) and compared on medians:

* A  ``--quiet``: no live view (nothing drawn);
* B  the live view: rich redraws the table in place every second, as a user
  watching the run sees it.

The loadgen tree (coordinator and worker) is pinned to CPU 0 and the server to
CPU 1, so whatever the coordinator spends drawing is taken from the core the
worker needs: the throughput it costs, at its worst.  ``--endpoints`` paths
(nginx answers every path) give the table that many rows.  The target, pinning
and CPU accounting come from ``cost.py``.  Standard library only; the tests do
not use it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cost  # bench/ is not a package: cost.py is found as a sibling

GOAL_PCT = 2.0
#: the live view's header, drawn once per redraw (``liveview.render``)
VIEW_MARK = b"loadgen  "


@dataclass
class Run:
    round_no: int
    rps: float
    requests: int
    tree_us: float         # CPU of the whole loadgen tree per request
    redraws: int           # live view frames seen on the terminal


@dataclass
class Variant:
    key: str
    label: str
    quiet: bool
    runs: list[Run] = field(default_factory=list)
    command: str = ""


VARIANTS = [Variant("A", "--quiet: no live view (stderr on a pty)", quiet=True),
            Variant("B", "live view on a pty (rich, redrawn every second)", quiet=False)]


def drain(fd: int, sink: bytearray) -> None:
    """Read the pty until every writer closed it, so loadgen never blocks on stderr."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:   # EIO: the slave end is closed
            return
        if not chunk:
            return
        sink += chunk


def command(url: str, args: argparse.Namespace, scratch: Path, quiet: bool,
            pin: bool) -> list[str]:
    paths = [cost.PATH[0]] + [f"/bench-{i}" for i in range(1, args.endpoints)]
    argv = [sys.executable, "-m", "loadgen", "run", "--url", url,
            *[a for p in paths for a in ("--endpoint", p)],
            "--duration", f"{args.duration}s", "--concurrency", str(args.concurrency),
            "--workers", "1", "--save", str(scratch / "loadgen.json")]
    if quiet:
        argv.append("--quiet")
    return cost.pinned(argv, cost.CLIENT_CPU, pin)


def run_once(v: Variant, round_no: int, url: str, args: argparse.Namespace, pin: bool,
             scratch: Path) -> Run:
    """One bounded run on a pty of 120 x 40; a run that did not complete raises."""
    argv = command(url, args, scratch, v.quiet, pin)
    v.command = shlex.join(argv) + "  # stderr on a pseudo-terminal"
    master, slave = os.openpty()
    screen = bytearray()
    env = {**os.environ, "COLUMNS": "120", "LINES": "40"}
    cpu0 = cost.children_cpu_s()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=slave, cwd=cost.REPO, env=env)
        os.close(slave)
        slave = -1
        drainer = threading.Thread(target=drain, args=(master, screen), daemon=True)
        drainer.start()
        try:
            proc.communicate(timeout=args.duration + cost.GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        cpu = cost.children_cpu_s() - cpu0
        drainer.join(5.0)
    finally:
        for fd in (slave, master):
            if fd >= 0:
                os.close(fd)
    saved = scratch / "loadgen.json"
    doc = json.loads(saved.read_text()) if saved.exists() else {}
    saved.unlink(missing_ok=True)
    summary = doc.get("summary") or {}
    if doc.get("status") != "complete" or not summary.get("requests"):
        raise RuntimeError(f"loadgen run {doc.get('status', 'unsaved')} (exit {proc.returncode})")
    requests = summary["requests"]
    return Run(round_no, summary["rps"], requests, 1e6 * cpu / requests,
               bytes(screen).count(VIEW_MARK))


def benchmark(url: str, args: argparse.Namespace, pin: bool, scratch: Path) -> None:
    """Warm-up, then A B, A B, ...; a round counts only when both runs completed."""
    for n in range(args.warmup):
        try:
            r = run_once(VARIANTS[0], 0, url, args, pin, scratch)
            print(f"  warm-up {n + 1}: {r.rps:,.0f} req/s (not counted)", file=sys.stderr)
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
            print(f"  warm-up {n + 1}: FAILED: {exc}", file=sys.stderr)
    kept = 0
    for round_no in range(1, 2 * args.repeat + 1):
        if kept == args.repeat:
            break
        runs = []
        for v in VARIANTS:
            try:
                r = run_once(v, round_no, url, args, pin, scratch)
            except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
                print(f"  round {round_no} {v.key}: FAILED: {exc}; round dropped",
                      file=sys.stderr)
                break
            runs.append((v, r))
            print(f"  round {round_no} {v.key}: {r.rps:>9,.0f} req/s {r.tree_us:7.2f} us/req "
                  f"tree, {r.redraws} redraws", file=sys.stderr, flush=True)
        if len(runs) == len(VARIANTS):
            kept += 1
            for v, r in runs:
                v.runs.append(r)


def frame_cost(endpoints: int, frames: int = 200) -> float:
    """Median CPU ms to build and draw one frame (``frame_of`` on an aggregate of 2 workers
    with ``endpoints`` endpoints, then ``LiveView.show`` into an in-memory terminal): the
    coordinator's CPU per second of the run, without the noise of a loaded machine."""
    import io
    import random

    from rich.console import Console

    from loadgen.output.liveview import LivePlan, LiveView, frame_of
    from loadgen.stats.aggregate import Aggregate, WorkerState
    from loadgen.stats.metrics import Tally

    names = [f"GET /bench-{i}" for i in range(endpoints)]
    agg = Aggregate(names, [WorkerState(0), WorkerState(1)])
    rng = random.Random(1)
    for k in range(1, 4):
        for w in (0, 1):
            tallies = []
            for _ in names:
                t = Tally()
                for _ in range(2000):
                    t.record(200 if rng.random() > 0.01 else 503,
                             int(rng.lognormvariate(7, 1)), 100, 50)
                tallies.append(t.to_wire())
            agg.add({"type": "interval", "worker": w, "elapsed_s": k + 0.001, "cpu_s": 0.0,
                     "reconnects": 0, "connections": 25, "waited": 0, "lateness": "",
                     "loop_lag": "", "endpoints": tallies})
    console = Console(file=io.StringIO(), force_terminal=True, width=120, height=40,
                      markup=False, emoji=False, highlight=False)   # as LiveView makes it
    view = LiveView(LivePlan(total_s=60.0, users=50), io.StringIO(), console=console)
    times = []
    for _ in range(frames):
        started = time.process_time()   # CPU, not wall: a busy machine must not inflate it
        frame = frame_of(agg, view.plan)
        assert frame is not None
        view.show(frame)
        times.append(time.process_time() - started)
    view.close()
    return 1000 * (cost.median(list(times)) or 0.0)


def pct(value: float | None, reference: float | None) -> float | None:
    return None if value is None or not reference else 100 * (value - reference) / reference


def report(load: str) -> tuple[list[str], bool, dict[str, Any]]:
    a, b = VARIANTS
    rows = {v.key: {"label": v.label, "runs": len(v.runs),
                    "rps": cost.median([r.rps for r in v.runs]),
                    "tree_us_per_req": cost.median([r.tree_us for r in v.runs]),
                    "redraws": cost.median([float(r.redraws) for r in v.runs]),
                    "command": v.command,
                    "samples": [vars(r) for r in v.runs]} for v in VARIANTS}
    lines = ["| variant | runs |   req/s | us/req tree | redraws |",
             "|---------|------|---------|-------------|---------|"]
    for key, row in rows.items():
        lines.append(f"| {key:<7} | {row['runs']:>4} | {cost.fmt(row['rps'], ',.0f'):>7} | "
                     f"{cost.fmt(row['tree_us_per_req'], '.2f'):>11} | "
                     f"{cost.fmt(row['redraws'], '.0f'):>7} |")
    lines += ["", *(f"{v.key}: {v.label}" for v in VARIANTS), ""]
    by_round = {r.round_no: r.rps for r in a.runs}
    paired = [100 * (r.rps - by_round[r.round_no]) / by_round[r.round_no]
              for r in b.runs if by_round.get(r.round_no)]
    rps_change = pct(rows["B"]["rps"], rows["A"]["rps"])
    cpu_change = pct(rows["B"]["tree_us_per_req"], rows["A"]["tree_us_per_req"])
    ratio = rows["B"]["rps"] / rows["A"]["rps"] if rows["A"]["rps"] else None
    lines.append(f"B/A req/s ratio {cost.fmt(ratio, '.4f')} ({cost.fmt(rps_change, '+.2f')}%); "
                 f"same-round changes median {cost.fmt(cost.median(list(paired)), '+.2f')}%"
                 + (f", range {min(paired):+.2f}% .. {max(paired):+.2f}%" if paired else "")
                 + f"; us/req tree {cost.fmt(cpu_change, '+.2f')}%")
    ok = (rps_change is not None and rps_change >= -GOAL_PCT
          and (rows["B"]["redraws"] or 0) > 0 and not rows["A"]["redraws"])
    rates = [r.rps for r in a.runs]
    noise = (100 * (max(rates) - min(rates)) / rows["A"]["rps"]
             if len(rates) > 1 and rows["A"]["rps"] else None)
    rows["A"]["rps_spread_pct"] = noise
    lines.append(f"{'PASS' if ok else 'FAIL'}: goal: the live view costs under {GOAL_PCT:g}% "
                 f"of throughput (median req/s, B vs A); B drew the view, A did not")
    lines.append(f"noise: A's rounds spread {cost.fmt(noise, '.1f')}% in req/s; {load}"
                 + ("; a 2% verdict is below this noise: read the frame cost below, or rerun "
                    "on a quiet machine with more --repeat" if noise is None or noise > GOAL_PCT
                    else ""))
    return lines, ok, rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds [5]")
    parser.add_argument("--duration", type=int, default=5, help="seconds per run [5]")
    parser.add_argument("--concurrency", type=int, default=50, help="connections [50]")
    parser.add_argument("--endpoints", type=int, default=4, help="rows of the table [4]")
    parser.add_argument("--warmup", type=int, default=1, help="unrecorded warm-up runs [1]")
    parser.add_argument("--json", default=None, help="also save the figures to this file")
    args = parser.parse_args(argv)
    if min(args.repeat, args.duration, args.concurrency, args.endpoints) < 1 \
            or not 0 <= args.warmup <= 10 or args.duration > 60:
        parser.error("--repeat, --concurrency, --endpoints >= 1; --duration 1..60; "
                     "--warmup 0..10")
    args.target = "nginx" if shutil.which("nginx") else "builtin"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cost.PATH[0] = "/" if args.target == "nginx" else "/api/health"
    if args.target == "builtin":
        args.endpoints = 1   # the built-in target answers 404 to other paths
    pin = cost.pinning_available()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="loadgen-liveview-") as tmp_name:
        tmp = Path(tmp_name)
        scratch = tmp / "scratch"
        scratch.mkdir()
        with cost.target(args, tmp, pin) as (url, _pid, described):
            print(f"target {url}, {args.endpoints} endpoints, {args.concurrency} connections, "
                  f"{args.duration}s runs, {args.repeat} interleaved rounds (A B ...)",
                  file=sys.stderr, flush=True)
            started = time.monotonic()
            benchmark(url, args, pin, scratch)
    load = (f"1-min load average {load0:.2f} before, {os.getloadavg()[0]:.2f} after "
            f"(on {os.cpu_count()} CPUs), {time.monotonic() - started:.0f} s of rounds")
    out = ["## loadgen live view", "", *cost.machine_lines(pin), f"target:  {described}", ""]
    lines, ok, rows = report(load)
    out += lines
    per_frame = frame_cost(args.endpoints)
    rows["frame_ms"] = per_frame
    out.append(f"one frame ({args.endpoints} endpoints): median {per_frame:.2f} ms to build and "
               f"draw, once a second: {per_frame / 10:.2f}% of one core")
    print("\n".join(out))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
