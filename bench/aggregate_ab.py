"""The coordinator's cost of merging one second, this checkout against an older revision.

Usage::

    python bench/aggregate_ab.py [--rev bf7482c] [--endpoints 1,5,20] [--workers 4]
                                 [--seconds 30] [--repeat 7]

Every second the coordinator merges each worker's delta (``stats.aggregate.Aggregate.add``)
and reduces the second to an interval.  Since intervals are split by endpoint it keeps
one tally per endpoint and second; this prices that against ``--rev``'s aggregate
(loaded from ``git show REV:loadgen/stats/aggregate.py``) on the same synthetic messages
(``tests/synthetic.py``: 200 successes and 2 failures per endpoint, worker and second).
The two are interleaved (A B A B ...) and the medians printed: milliseconds of coordinator
CPU per second of run.  No processes, no network; not used by the tests.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from synthetic import message, tally

import loadgen.stats.aggregate as current


def older(rev: str, folder: Path) -> ModuleType:
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:loadgen/stats/aggregate.py"],
                            check=True, capture_output=True, text=True).stdout
    path = folder / "aggregate_old.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("aggregate_old", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["aggregate_old"] = module
    spec.loader.exec_module(module)
    return module


def per_second_ms(module: Any, messages: list[list[dict[str, Any]]], endpoints: int,
                  workers: int) -> float:
    agg = module.Aggregate([f"GET /{e}" for e in range(endpoints)],
                           [module.WorkerState(i) for i in range(workers)])
    agg.wall_start = 1.7e9
    start = time.process_time()
    for second in messages:
        for sent in second:
            agg.add(sent)
    agg.finish()
    return (time.process_time() - start) / len(messages) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rev", default="bf7482c")
    parser.add_argument("--endpoints", default="1,5,20")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        old = older(args.rev, Path(folder))
        for endpoints in (int(n) for n in args.endpoints.split(",")):
            messages = [[message(w, k + 0.0004, [tally(ok=200, status_500=2, ok_us=1000 + 37 * e)
                                                 for e in range(endpoints)])
                         for w in range(args.workers)] for k in range(1, args.seconds + 1)]
            a: list[float] = []
            b: list[float] = []
            for _ in range(args.repeat):
                a.append(per_second_ms(old, messages, endpoints, args.workers))
                b.append(per_second_ms(current, messages, endpoints, args.workers))
            print(f"{endpoints:3d} endpoints, {args.workers} workers: coordinator ms per second "
                  f"of run: {args.rev} {statistics.median(a):7.2f}   this checkout "
                  f"{statistics.median(b):7.2f}")


if __name__ == "__main__":
    main()
