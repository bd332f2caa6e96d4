#!/usr/bin/env python3
"""Does ``loadgen compare`` cry wolf?  A/A false positives and 10 ms vs 13 ms detection.

Usage::

    python bench/aa.py [--pairs 10] [--duration 6] [--rate 200] [--keep DIR]
    python bench/aa.py --reanalyze DIR        # the verdicts again, on runs kept earlier

Why: a significance test is only worth its false-positive rate on the machine
it runs on.  One loadgen run's seconds are autocorrelated, and two runs of one
configuration differ by machine drift that no single run can show, so a test
that treats seconds as independent samples calls identical runs different.
This script measures both halves of the contract on this machine:

* **A/A**: ``--pairs`` pairs of identical runs (``/api/health``); every pair
  that ``compare`` calls significant on any metric is a false positive.
  Goal: none (at most 5% in the long run).
* **10 vs 13 ms**: ``--pairs`` pairs of ``/delay/10`` against ``/delay/13``
  (a 30% latency change); goal: called significant (higher, worse) in at
  least 9 of 10.

The runs are interleaved (A A' D10 D13, then A A' D13 D10, ...), so drift lands
on every kind alike.  Every run is ``python -m loadgen run --url URL --endpoint
E --duration Ns --rate R --quiet --save X.json`` against the built-in target
(started here on 127.0.0.1, port 0), and every pair is judged twice: by
``loadgen.stats.compare`` (imported, so the figures are the command's own) and by the
old method -- a Mann-Whitney U test over the per-second values -- for contrast.
Each kind's run is also compared with the same kind's run of the next round
(about four runs later: more drift, and both endpoints), a harsher A/A.  With
three or more pairs the runs are also grouped in threes and combined
(``stats.combine.combine_runs``), to show the between-run method used for repeats.
One discarded warm-up run comes first.

All load goes to 127.0.0.1; each run is bounded by its duration plus a grace.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # runnable from a checkout without installing loadgen
    sys.path.insert(0, str(REPO))

from loadgen.output.results import read_document
from loadgen.stats import compare
from loadgen.stats.combine import combine_runs

TESTED = ("p50", "p99", "rps")
KINDS = {"a": "/api/health", "b": "/api/health", "d10": "/delay/10", "d13": "/delay/13"}
RUN_GRACE_S = 60.0
START_TIMEOUT_S = 20.0
OLD_ALPHA = 0.05


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="aa.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=10, help="pairs of each kind (default 10)")
    parser.add_argument("--duration", type=int, default=6, help="seconds per run (default 6)")
    parser.add_argument("--rate", type=int, default=200, help="requests/s per run (default 200)")
    parser.add_argument("--keep", metavar="DIR", help="keep the runs' JSON files in DIR")
    parser.add_argument("--reanalyze", metavar="DIR",
                        help="run nothing; judge the runs kept in DIR by an earlier --keep")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.duration < 1 or args.rate < 1:
        parser.error("--pairs, --duration and --rate must be positive")
    return args


# --- the runs ----------------------------------------------------------------------------

def start_target() -> tuple[subprocess.Popen[str], str]:
    """The built-in target on 127.0.0.1, a free port; its URL read from its first line."""
    proc = subprocess.Popen([sys.executable, "-m", "loadgen.target.server", "--host",
                             "127.0.0.1", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
                            env=_env())
    deadline = time.monotonic() + START_TIMEOUT_S
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the server prints this line once it listens
    if "listening on " not in line or time.monotonic() > deadline:
        proc.kill()
        raise SystemExit(f"aa.py: the target did not start: {line!r}")
    return proc, line.split("listening on ", 1)[1].strip()


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}


def run_once(url: str, endpoint: str, duration: int, rate: int, save: Path) -> None:
    cmd = [sys.executable, "-m", "loadgen", "run", "--url", url, "--endpoint", endpoint,
           "--duration", f"{duration}s", "--rate", str(rate), "--quiet", "--save", str(save)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(),
                          stdin=subprocess.DEVNULL, timeout=duration + RUN_GRACE_S,
                          check=False)
    if proc.returncode not in (0, 1) or not save.exists():
        raise SystemExit(f"aa.py: {save.name} failed ({proc.returncode}): {proc.stderr[-500:]}")


def order(i: int) -> list[str]:
    """A A' D10 D13, then A' A D13 D10: neither side of a pair always goes first."""
    return ["a", "b", "d10", "d13"] if i % 2 == 0 else ["b", "a", "d13", "d10"]


def make_runs(folder: Path, pairs: int, duration: int, rate: int) -> None:
    target, url = start_target()
    try:
        # Discarded: the first run against a fresh target (and a cold page cache) would
        # otherwise be the odd one out, and always on the same side.
        print("warm-up run (discarded)", file=sys.stderr, flush=True)
        run_once(url, KINDS["a"], min(duration, 3), rate, folder / "warmup.json")
        total = pairs * len(KINDS)
        done = 0
        for i in range(pairs):
            for kind in order(i):
                done += 1
                print(f"[{done}/{total}] pair {i + 1} {kind} ({KINDS[kind]})", file=sys.stderr,
                      flush=True)
                run_once(url, KINDS[kind], duration, rate, folder / f"{kind}-{i + 1:02d}.json")
    finally:
        target.terminate()
        try:
            target.wait(timeout=10)
        except subprocess.TimeoutExpired:
            target.kill()


# --- the verdicts ------------------------------------------------------------------------

def old_verdicts(base: dict[str, Any], other: dict[str, Any]) -> dict[str, bool]:
    """The method ``compare`` used before: Mann-Whitney U over seconds taken as independent."""
    from scipy.stats import mannwhitneyu

    out = {}
    xs, ys = compare.full_intervals(base), compare.full_intervals(other)
    for key in TESTED:
        x, y = compare.interval_values(xs, key), compare.interval_values(ys, key)
        if min(len(x), len(y)) < compare.MIN_INTERVALS or len(set(x) | set(y)) == 1:
            out[key] = False
            continue
        out[key] = bool(mannwhitneyu(y, x, alternative="two-sided").pvalue < OLD_ALPHA)
    return out


def new_verdicts(base: dict[str, Any], other: dict[str, Any]) -> dict[str, dict[str, Any]]:
    comparison = compare.compare_documents([base, other], ["base", "other"])
    return {m["metric"]: m["tests"][1] for m in comparison["metrics"] if m["metric"] in TESTED}


def tally(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    new = {k: 0 for k in (*TESTED, "any")}
    old = {k: 0 for k in (*TESTED, "any")}
    worse = {k: 0 for k in TESTED}
    for base, other in pairs:
        n, o = new_verdicts(base, other), old_verdicts(base, other)
        for key in TESTED:
            new[key] += n[key]["significant"]
            worse[key] += n[key]["significant"] and n[key]["assessment"] == "worse"
            old[key] += o[key]
        new["any"] += any(n[k]["significant"] for k in TESTED)
        old["any"] += any(o.values())
    return {"new": new, "old": old, "worse": worse, "n": len(pairs)}


def show(title: str, result: dict[str, Any]) -> None:
    n = result["n"]
    print(f"{title} ({n} pairs): pairs called significant")
    print(f"  {'metric':<8}{'new method':>14}{'old (U test)':>16}")
    for key in (*TESTED, "any"):
        print(f"  {key:<8}{result['new'][key]:>9} / {n:<3}{result['old'][key]:>11} / {n:<3}")


def groups_of_three(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [combine_runs(docs[i:i + 3]) for i in range(0, len(docs) - 2, 3)]


def analyze(folder: Path) -> int:
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    for kind in KINDS:
        for path in sorted(folder.glob(f"{kind}-*.json")):
            runs[kind].append(read_document(str(path)))
    pairs = min(len(v) for v in runs.values())
    if pairs == 0:
        print(f"aa.py: no runs in {folder}", file=sys.stderr)
        return 2
    aa = tally(list(zip(runs["a"][:pairs], runs["b"][:pairs])))
    ab = tally(list(zip(runs["d10"][:pairs], runs["d13"][:pairs])))
    one = runs["a"][0]
    print(f"{pairs} pairs of each kind, {one['config'].get('duration_s')} s runs at "
          f"{(one['config'].get('schedule') or [{}])[0].get('end_rate')} req/s against the "
          f"built-in target; new method: {compare.compare_documents([one, one], ['a', 'b'])['method']}")
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    show("A/A (/api/health vs /api/health)", aa)
    print(f"  false-positive rate: new {aa['new']['any'] / pairs:.0%}, "
          f"old {aa['old']['any'] / pairs:.0%} (goal: at most 5%)")
    print()
    show("10 ms vs 13 ms (/delay/10 vs /delay/13)", ab)
    print(f"  detection (p50 significantly higher, worse): new {ab['worse']['p50']}/{pairs}, "
          f"p99 {ab['worse']['p99']}/{pairs}; old p50 {ab['old']['p50']}/{pairs} "
          "(goal: at least 9 of 10)")
    if pairs >= 2:
        print()
        later = [(runs[k][i], runs[k][i + 1]) for k in KINDS for i in range(pairs - 1)]
        drift = tally(later)
        show("A/A across rounds: each kind's run against its next round's (~4 runs apart, "
             "more drift)", drift)
        print(f"  false-positive rate: new {drift['new']['any'] / drift['n']:.0%}, "
              f"old {drift['old']['any'] / drift['n']:.0%}")
    if pairs >= 3:
        print()
        aa3 = tally(list(zip(groups_of_three(runs["a"][:pairs]),
                             groups_of_three(runs["b"][:pairs]))))
        ab3 = tally(list(zip(groups_of_three(runs["d10"][:pairs]),
                             groups_of_three(runs["d13"][:pairs]))))
        method = new_verdicts(*groups_of_three(runs["a"][:3]) * 2)["p50"].get("method")
        print(f"Repeats: runs combined in threes (combine_runs), method {method!r}")
        show("A/A, 3 runs vs 3 runs", aa3)
        show("10 ms vs 13 ms, 3 runs vs 3 runs", ab3)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.reanalyze:
        return analyze(Path(args.reanalyze))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="loadgen-aa-") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            make_runs(folder, args.pairs, args.duration, args.rate)
        except KeyboardInterrupt:
            print("aa.py: interrupted", file=sys.stderr)
            return 130
        print(f"{len(KINDS) * args.pairs} runs in {time.monotonic() - started:.0f} s",
              file=sys.stderr)
        return analyze(folder)


if __name__ == "__main__":
    sys.exit(main())
