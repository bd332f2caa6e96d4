"""Price a run's fixed cost: the CPU and wall time of a tiny run, two copies side by side.

Usage::

    git archive <base> loadgen | tar -x -C /tmp/base      # the "before" copy
    python bench/startup.py --before /tmp/base [--rounds 7] [--workers 2]

Every run pays for its processes before it sends anything: the coordinator's
imports, then each worker process's interpreter, imports and gevent patching.
A 5-request run is almost nothing else, so its CPU is that fixed cost.  Each
round runs ``loadgen run --requests 5`` once with each copy (order alternating)
against the built-in target, and takes from ``wait4`` the CPU of the
coordinator and of its workers together.  Printed: the medians of each side and
the median of the per-round ratios after/before (drift between rounds cancels).

The "before" copy runs with ``python -P`` and ``PYTHONPATH`` pointing at it
(spawned workers inherit ``sys.path``), so both copies use this venv's
libraries.  Standard library only; not used by the tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE / "bench"))
import cost  # bench/ is not a package: cost.py is found as a sibling


def one_run(copy: str | None, url: str, workers: int) -> tuple[float, float]:
    """(CPU seconds of the run's processes, wall seconds) of one 5-request run."""
    argv = [sys.executable, "-m", "loadgen", "run", "--url", url, "--requests", "5",
            "--workers", str(workers), "--quiet"]
    env = dict(os.environ)
    if copy:
        argv.insert(1, "-P")
        env["PYTHONPATH"] = copy
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, env=env,
                            cwd=copy or HERE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"startup: a run exited with {proc.returncode}")
    # wait4 counts the process and the children it waited for: the workers are joined
    # by the coordinator, so their CPU is in ru_*time of the coordinator's own children
    return usage.ru_utime + usage.ru_stime, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", help="directory holding another copy's loadgen/")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    sides: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    with cost.builtin_target(pin=False) as (url, _, _):
        for k in range(args.rounds):
            order = ["before", "after"] if k % 2 == 0 or not args.before else ["after", "before"]
            for side in order:
                if side == "before" and not args.before:
                    continue
                sides[side].append(one_run(args.before if side == "before" else None, url,
                                           args.workers))
    print(f"loadgen run --requests 5 --workers {args.workers}: {args.rounds} rounds, "
          f"medians (CPU of the coordinator and its workers, wall)")
    for side, runs in sides.items():
        if runs:
            print(f"  {side:6s}  cpu {statistics.median(c for c, _ in runs):6.3f} s   "
                  f"wall {statistics.median(w for _, w in runs):6.3f} s")
    if sides["before"]:
        for name, i in (("cpu", 0), ("wall", 1)):
            ratios = [a[i] / b[i] for a, b in zip(sides["after"], sides["before"])]
            print(f"  paired ratio after/before, {name}: {statistics.median(ratios):.3f} "
                  f"(per round: {', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
