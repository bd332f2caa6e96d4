"""Price loadgen's per-second interval machinery against a run that skips it.

Usage::

    python bench/intervals.py [--repeat 5] [--duration 5] [--concurrency 50] [--json FILE]

Every second each worker swaps its HDR histograms, encodes them and sends them
up its pipe; the coordinator merges them, prints live progress and, with
``--save``, rewrites the whole results document atomically.  The issue's goal
is that all of this costs at most 5% of throughput.  Three variants of the same
``loadgen run --workers 1 --save`` against a private nginx are interleaved
(A B C A B C ...) and compared on medians:

* A  ``LOADGEN_INTERVAL_S=3600 --quiet``: the worker sends only its final delta,
  so nothing is encoded, merged, printed or rewritten during the run;
* B  default 1 s interval, ``--quiet``: deltas plus the per-second JSON rewrite;
* C  default 1 s interval, progress on (stderr is a pseudo-terminal, so the
  per-second in-place progress line is drawn as a user would see it).

The whole loadgen tree (coordinator and worker) is pinned to CPU 0 and nginx to
CPU 1, so whatever the coordinator spends each second is taken from the core
the worker needs: that is the throughput the machinery costs.  The target,
pinning, CPU accounting and results parsing are reused from ``cost.py``.
Standard library only; not used by the tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cost  # bench/ is not a package: cost.py is found as a sibling

GOAL_PCT = 5.0
#: Interval for variant A: far beyond any run, so the worker only sends its final delta.
NO_INTERVAL_S = 3600
#: The coordinator kills a worker silent for SILENCE_LIMIT_S + 1 s (loadgen.engine.collector);
#: in variant A the worker is silent for the whole run, so runs must stay shorter than that.
MAX_DURATION_S = 5
PTY_DRAIN_JOIN_S = 5.0
ERASE_LINE = b"\x1b[K"  # loadgen.output.progress ends every in-place (tty) update with this


@dataclasses.dataclass
class Variant:
    """One way of running loadgen, and the runs collected for it."""

    key: str
    label: str
    interval_s: float | None  # None: loadgen's default (1 s)
    quiet: bool
    tty: bool = False  # stderr on a pseudo-terminal, so progress is redrawn every second
    runs: list[Run] = dataclasses.field(default_factory=list)
    failures: int = 0
    commands: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Run:
    """One run: cost.py's Sample plus what shows the machinery really ran (or did not)."""

    round_no: int
    sample: cost.Sample
    intervals: int         # merged seconds in the saved document (1 when only the final delta came)
    progress_updates: int  # in-place progress redraws seen on the pseudo-terminal


VARIANTS = [
    Variant("A", f"LOADGEN_INTERVAL_S={NO_INTERVAL_S}, --quiet --save (final delta only)",
            NO_INTERVAL_S, quiet=True),
    Variant("B", "1 s interval, --quiet --save (deltas + JSON rewrite/s)", None, quiet=True),
    Variant("C", "1 s interval, progress on a tty, --save", None, quiet=False, tty=True),
]


#: Warm-up runs use B's command and are discarded.
WARMUP = Variant("warm-up", "B, not counted", None, quiet=True)


# -- running ------------------------------------------------------------------


def drain(fd: int, sink: bytearray) -> None:
    """Read a pty master until every writer has closed it, so loadgen never blocks on stderr."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the last slave end is closed
            return
        if not chunk:
            return
        sink += chunk


def run_variant(v: Variant, round_no: int, url: str, args: argparse.Namespace, pin: bool,
                server_pid: int | None, scratch: Path) -> Run:
    """Run loadgen once as variant v, bounded in time; CPU as in cost.run_once.

    A run that did not complete raises, so a broken run never enters a median.

    cost.run_once cannot be used as is: it captures stderr into a pipe (so no tty
    progress) and cannot set the environment; the measurements are its helpers.
    """
    argv = cost.loadgen_build(url, args.concurrency, args.duration, scratch)
    if v.quiet:
        argv.append("--quiet")
    argv = cost.pinned(argv, cost.CLIENT_CPU, pin)
    env = {k: val for k, val in os.environ.items() if k != "LOADGEN_INTERVAL_S"}
    if v.interval_s is not None:
        env["LOADGEN_INTERVAL_S"] = f"{v.interval_s:g}"
    command = shlex.join(argv)
    if v.interval_s is not None:
        command = f"LOADGEN_INTERVAL_S={v.interval_s:g} {command}"
    if v.tty:
        command += "  # stderr on a pseudo-terminal"
    if command not in v.commands:
        v.commands.append(command)

    master = slave = -1
    tty_out = bytearray()
    drainer: threading.Thread | None = None
    if v.tty:
        master, slave = os.openpty()
    server_cpu = (lambda: cost.tree_cpu_s(server_pid)) if server_pid else (lambda: float("nan"))
    server0, cores0 = server_cpu(), cost.core_ticks()
    cpu0, t0 = cost.children_cpu_s(), time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=slave if v.tty else subprocess.PIPE, text=True,
                                cwd=cost.REPO, env=env)
        if v.tty:
            os.close(slave)
            slave = -1
            drainer = threading.Thread(target=drain, args=(master, tty_out), daemon=True)
            drainer.start()
        try:
            out, err = proc.communicate(timeout=args.duration + cost.GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        wall, cpu = time.monotonic() - t0, cost.children_cpu_s() - cpu0
        server, cores = server_cpu() - server0, cost.core_busy(cores0, cost.core_ticks())
        if drainer is not None:
            drainer.join(PTY_DRAIN_JOIN_S)
    finally:
        for fd in (slave, master):
            if fd >= 0:
                os.close(fd)
    tty_text = tty_out.decode(errors="replace")
    done = subprocess.CompletedProcess(argv, proc.returncode, out, err if not v.tty else tty_text)
    saved = scratch / "loadgen.json"
    doc = json.loads(saved.read_text()) if saved.exists() else {}
    sample = cost.loadgen_parse(done, scratch)  # reads and removes the saved document
    if doc.get("status") != "complete" or not sample.requests:
        # e.g. A's worker killed by the coordinator's silence limit: not a figure to average
        why = "; ".join(doc.get("problems") or []) or f"{sample.requests} requests"
        raise RuntimeError(f"loadgen run {doc.get('status', 'unsaved')} "
                           f"(exit {proc.returncode}): {why}")
    sample.wall_s, sample.tree_cpu_s, sample.server_cpu_s = wall, cpu, server
    sample.core_busy = cores
    return Run(round_no, sample, len(doc.get("intervals") or []), tty_out.count(ERASE_LINE))


def benchmark(url: str, server_pid: int | None, args: argparse.Namespace, pin: bool,
              scratch: Path) -> list[str]:
    """A B C, A B C, ...: drift of the machine lands on every variant alike.

    Unrecorded warm-up runs go first, because A always opens a round and would
    otherwise alone pay for a cold nginx, cold page cache and CPU frequency ramp.

    A round counts only if all three runs completed.  A's worker is silent for
    the whole run, and the coordinator kills a worker silent for 6 s, so on a
    busy machine A is the run that fails; keeping B and C from such a round, or
    retrying A alone, would compare A's quiet moments with B's and C's busy ones.
    Such a round is dropped whole and replaced, at most --repeat extra rounds.
    Returns one line per dropped round.
    """
    for n in range(1, args.warmup + 1):
        try:
            s = run_variant(WARMUP, 0, url, args, pin, server_pid, scratch).sample
            line = f"  warm-up {n}/{args.warmup}: {s.rps:>9,.0f} req/s (not counted)"
        except (RuntimeError, subprocess.TimeoutExpired, OSError, KeyError, ValueError) as exc:
            line = f"  warm-up {n}/{args.warmup}: FAILED: {exc}"
        print(line, file=sys.stderr, flush=True)
    dropped: list[str] = []
    kept = 0
    for round_no in range(1, 2 * args.repeat + 1):
        if kept == args.repeat:
            break
        runs: list[tuple[Variant, Run]] = []
        failures: list[str] = []
        for v in VARIANTS:
            try:
                run = run_variant(v, round_no, url, args, pin, server_pid, scratch)
                runs.append((v, run))
                s = run.sample
                line = (f"  round {round_no} {v.key}: {s.requests:>9,} req "
                        f"{s.rps:>9,.0f} req/s {fmt(s.worker_us, '.1f'):>6} us/req worker "
                        f"{s.tree_us:>6.1f} us/req tree, {run.intervals} intervals, "
                        f"{run.progress_updates} progress updates")
            except (RuntimeError, subprocess.TimeoutExpired, OSError, KeyError, ValueError) as exc:
                v.failures += 1
                failures.append(f"{v.key}: {exc}")
                line = f"  round {round_no} {v.key}: FAILED: {exc}"
            print(line, file=sys.stderr, flush=True)
        if failures:
            dropped.append(f"round {round_no} dropped whole: " + "; ".join(failures))
            print(f"  round {round_no} dropped (a run failed); an extra round follows",
                  file=sys.stderr, flush=True)
            continue
        kept += 1
        for v, run in runs:
            v.runs.append(run)
    return dropped


# -- figures ------------------------------------------------------------------


fmt = cost.fmt
median = cost.median


def figures(v: Variant) -> dict[str, Any]:
    """Medians over the rounds for one variant."""
    samples = [r.sample for r in v.runs]
    return {
        "variant": v.key,
        "label": v.label,
        "runs": len(samples),
        "rps": median([s.rps for s in samples]),
        "rps_spread_pct": spread([s.rps for s in samples]),
        "tree_us_spread_pct": spread([s.tree_us for s in samples]),
        "worker_us_per_req": median([s.worker_us for s in samples]),
        "tree_us_per_req": median([s.tree_us for s in samples]),
        "intervals": median([float(r.intervals) for r in v.runs]),
        "progress_updates": median([float(r.progress_updates) for r in v.runs]),
        "client_core_busy_pct": median([100 * s.core_busy[cost.CLIENT_CPU] for s in samples
                                        if cost.CLIENT_CPU in s.core_busy]),
        "server_core_busy_pct": median([100 * s.core_busy[cost.SERVER_CPU] for s in samples
                                        if cost.SERVER_CPU in s.core_busy]),
        "errors": sum(s.errors for s in samples),
        "failed_runs": v.failures,
        "commands": v.commands,
        "samples": [{"round": r.round_no, **cost.plain(r.sample), "intervals": r.intervals,
                     "progress_updates": r.progress_updates} for r in v.runs],
    }


def pct(value: float | None, reference: float | None) -> float | None:
    """Relative change of value against reference, in %; None if either is missing."""
    if value is None or not reference:
        return None
    return 100 * (value - reference) / reference


def signed(value: float | None) -> str:
    """A percentage with its sign, or "-"."""
    return "-" if value is None else f"{value:+.1f}%"


def paired(v: Variant, ref: Variant) -> str:
    """Median and range of the same-round req/s changes: how far single rounds disagree."""
    by_round = {a.round_no: a.sample.rps for a in ref.runs}
    deltas = [pct(r.sample.rps, by_round.get(r.round_no)) for r in v.runs]
    clean = [d for d in deltas if d is not None]
    if not clean:
        return "-"
    return f"median {signed(median(list(clean)))}, range {min(clean):+.1f}% .. {max(clean):+.1f}%"


def spread(values: list[float]) -> float | None:
    """(max - min) / median in %: the round-to-round noise a difference must beat."""
    mid = median(list(values))
    return 100 * (max(values) - min(values)) / mid if len(values) > 1 and mid else None


def report(rows: list[dict[str, Any]], load: str, missing: int) -> tuple[list[str], bool]:
    """Table, overheads against A and the verdict; True when the goal is met.

    ``missing`` rounds that never completed make the verdict FAIL: too few
    rounds, too little evidence.

    The verdict needs both medians within the goal: req/s (the goal as the issue
    states it) and CPU per request of the whole loadgen tree.  The tree runs on
    one pinned core, so its CPU per request is the throughput it can reach when
    client-bound; req/s alone would pass vacuously whenever nginx, or another
    job on the machine, is the limit.
    """
    head = ("| variant |   req/s | req/s spread | us/req worker | us/req tree | tree spread "
            "| intervals | progress updates | core0/core1 busy% | errors | failed runs |")
    widths = [len(c) - 2 for c in head.split("|")[1:-1]]
    lines = [head, "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for r in rows:
        cores = f"{fmt(r['client_core_busy_pct'], '.0f')}/{fmt(r['server_core_busy_pct'], '.0f')}"
        cells = [r["variant"], fmt(r["rps"], ",.0f"), fmt(r["rps_spread_pct"], ".1f") + "%",
                 fmt(r["worker_us_per_req"], ".2f"), fmt(r["tree_us_per_req"], ".2f"),
                 fmt(r["tree_us_spread_pct"], ".1f") + "%",
                 fmt(r["intervals"], ".0f"), fmt(r["progress_updates"], ".0f"), cores,
                 str(r["errors"]), str(r["failed_runs"])]
        lines.append("| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                       for i, (c, w) in enumerate(zip(cells, widths))) + " |")
    lines.append("")
    lines += [f"{r['variant']}: {r['label']}" for r in rows]
    lines.append("")
    ref = rows[0]
    ok = len(rows) > 1 and not missing
    rps_text: list[str] = []
    cpu_text: list[str] = []
    for r, v in zip(rows[1:], VARIANTS[1:]):
        rps_change = pct(r["rps"], ref["rps"])
        cpu_change = pct(r["tree_us_per_req"], ref["tree_us_per_req"])
        lines.append(f"{r['variant']} vs A: req/s {signed(rps_change)} (same-round "
                     f"{paired(v, VARIANTS[0])}), us/req worker "
                     f"{signed(pct(r['worker_us_per_req'], ref['worker_us_per_req']))}, "
                     f"us/req tree {signed(cpu_change)}")
        ok = ok and rps_change is not None and rps_change >= -GOAL_PCT
        ok = ok and cpu_change is not None and cpu_change <= GOAL_PCT
        rps_text.append(f"{r['variant']} {signed(rps_change)}")
        cpu_text.append(f"{r['variant']} {signed(cpu_change)}")
    lines.append("")
    lines.append(f"{'PASS' if ok else 'FAIL'}: goal: the per-second machinery costs <= "
                 f"{GOAL_PCT:g}% (medians vs A): req/s {', '.join(rps_text)} (limit "
                 f"-{GOAL_PCT:g}%); us/req tree {', '.join(cpu_text)} (limit +{GOAL_PCT:g}%)"
                 + (f"; {missing} of the rounds asked for never completed" if missing else ""))
    noise = max((x for x in (ref["rps_spread_pct"], ref["tree_us_spread_pct"]) if x is not None),
                default=None)
    lines.append(f"noise: A's rounds spread {fmt(ref['rps_spread_pct'], '.1f')}% in req/s and "
                 f"{fmt(ref['tree_us_spread_pct'], '.1f')}% in us/req tree; {load}"
                 + ("; a 5% verdict is below this run's noise, rerun on a quiet machine or with "
                    "more --repeat" if noise is not None and noise > GOAL_PCT else ""))
    return lines, ok


# -- command line -------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Options; the run length is capped because variant A's worker is silent all run long."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds [5]")
    parser.add_argument("--duration", type=int, default=5,
                        help=f"seconds per run, 1..{MAX_DURATION_S} [5]")
    parser.add_argument("--concurrency", type=int, default=50, help="connections [50]")
    parser.add_argument("--warmup", type=int, default=1, help="unrecorded warm-up runs [1]")
    parser.add_argument("--json", default=None, help="also save the figures to this file")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.concurrency < 1 or not 0 <= args.warmup <= 10:
        parser.error("--repeat and --concurrency must be >= 1, --warmup 0..10")
    if not 1 <= args.duration <= MAX_DURATION_S:
        parser.error(f"--duration must be 1..{MAX_DURATION_S}: with LOADGEN_INTERVAL_S="
                     f"{NO_INTERVAL_S} the worker is silent all run, and the coordinator "
                     "kills a worker silent for more than 6 s")
    args.target = "nginx"  # what cost.target() looks at
    return args


def main(argv: list[str] | None = None) -> int:
    """Start nginx, run the rounds, print the note; exit 1 on FAIL (incl. too few rounds)."""
    args = parse_args(argv)
    pin = cost.pinning_available()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="loadgen-intervals-") as tmp_name:
        tmp = Path(tmp_name)
        scratch = tmp / "scratch"
        scratch.mkdir()
        with cost.target(args, tmp, pin) as (url, server_pid, described):
            print(f"target {url}{cost.PATH[0]}, {args.concurrency} connections, "
                  f"{args.duration}s runs, {args.repeat} interleaved rounds (A B C ...)",
                  file=sys.stderr, flush=True)
            dropped = benchmark(url, server_pid, args, pin, scratch)
    load = (f"1-min load average {load0:.2f} before, {os.getloadavg()[0]:.2f} after "
            f"(on {os.cpu_count()} CPUs; other jobs add noise)")
    rows = [figures(v) for v in VARIANTS]
    out = ["## loadgen per-second interval machinery", ""]
    out += cost.machine_lines(pin)
    out.append(f"target:  {described}")
    out.append(f"load:    loadgen run --workers 1, {args.concurrency} connections, "
               f"{args.duration}s per run, GET {cost.PATH[0]}, {args.repeat} interleaved "
               "rounds, medians shown")
    out.append(f"rounds:  {len(VARIANTS[0].runs)} kept, {len(dropped)} dropped")
    out += [f"         {d}" for d in dropped]
    out.append("")
    missing = args.repeat - len(VARIANTS[0].runs)
    lines, ok = (report(rows, load, missing) if VARIANTS[0].runs
                 else (["FAIL: no round completed"], False))
    out += lines
    out += ["",
            "req/s            = summary.rps of the saved results document",
            "req/s spread     = (max - min) / median of the rounds' req/s; tree spread likewise",
            "us/req worker    = workers[0].cpu_s / workers[0].requests (the worker process alone)",
            ("us/req tree      = RUSAGE_CHILDREN user+sys of coordinator + worker / requests "
             "(includes start-up, the same for every variant)"),
            "intervals        = merged seconds in the saved document (A: the final delta only)",
            "progress updates = in-place progress redraws read from C's pseudo-terminal",
            "core0/core1 busy% = /proc/stat busy share of the client's and the server's core",
            "failed runs      = runs that did not complete; their whole round is left out",
            "", "commands:"]
    for v in VARIANTS:
        out += [f"  {v.key}: {c}" for c in v.commands]
    print("\n".join(out), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": cost.machine_lines(pin), "target": described, "url": url,
            "duration_s": args.duration, "repeat": args.repeat,
            "concurrency": args.concurrency, "pinned": pin, "goal_pct": GOAL_PCT,
            "pass": ok, "load": load, "dropped_rounds": dropped, "variants": rows,
        }, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
