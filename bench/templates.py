"""Price templated requests: CPU per request next to prebuilt static bytes, and feeder memory.

Usage::

    python bench/templates.py [--rows 1000000] [--repeat 15] [--calls 100000] [--seed 1]

Issue 12's goals: a templated endpoint costs at most 3 us more per request than a
static one on one core, and a 1,000,000-row CSV feeder costs each worker at most
about twice the file's size.  Nothing is sent: this measures what the worker does
to produce a request's bytes, which is all that templates add to its loop.

CPU (this process, pinned to CPU 0 when it can be), per request, in rounds that
run the variants in a shuffled (seeded) order; medians over the rounds:

* ``static``: what a static endpoint does today, the prebuilt bytes, taken the way
  the wired worker will (one list lookup and a type test);
* ``templated``: ``POST /items/{{ id }}`` with ``Authorization: Bearer {{ token }}``
  and a JSON body with ``{{ seq }}`` (POST), the row picked from the sequential
  1,000,000-row feeder, then the compiled renderer (``engine.render``);
* ``render-only``: the compiled renderer alone, on one row (so ``templated`` minus
  it is the row fetch);
* ``templated-format``: the same request through ``str.format`` (the renderer's
  reference), to show what compiling buys.

The difference ``templated - static`` is computed per round (paired) and its
median is the cost of templating.

Memory: the feeder file is generated in a temp dir, read as the coordinator reads
it (``config.feeder.load``: tracemalloc peak), pickled as it travels in the
worker plan, and unpickled in a fresh process as a worker would: the RSS it adds
there (``/proc/self/status`` VmRSS before receiving the plan's bytes and after
unpickling them and dropping them) and tracemalloc's count of what stays.
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import statistics
import subprocess
import sys
import tempfile
import time

from loadgen.config.feeder import load
from loadgen.config.template import parse, static
from loadgen.engine.render import RequestRenderer, compile_request

_LOAD_PEAK = """
import sys, tracemalloc
from loadgen.config.feeder import load
tracemalloc.start()
f = load(sys.argv[1])
print(tracemalloc.get_traced_memory()[1])
"""

_WORKER_SIDE = r"""
import gc, pickle, sys, tracemalloc
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
import loadgen.config.feeder   # imports first: they are not the feeder's cost
path, trace = sys.argv[1], sys.argv[2] == "1"
if trace:
    tracemalloc.start()
gc.collect()
before = rss()
with open(path, "rb") as f:
    data = f.read()            # the plan's bytes as the pipe delivers them
feeder = pickle.loads(data)
del data
gc.collect()
after = rss()
if trace:
    current, peak = tracemalloc.get_traced_memory()
    print(current, peak, feeder.row(len(feeder) - 1))
else:
    print(after - before, feeder.row(len(feeder) - 1))
"""


def make_csv(path: str, rows: int) -> None:
    """id,token,name: an integer, a 40-character token, a short name (typical data)."""
    rng = random.Random(7)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("id,token,name\n")
        f.writelines(f"{i},{rng.getrandbits(160):040x},user{i % 5000}\n" for i in range(rows))


def per_request_us(fn, calls: int) -> float:
    t0 = time.process_time()
    fn(calls)
    return (time.process_time() - t0) / calls * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    try:
        os.sched_setaffinity(0, {0})
        pinned = "pinned to CPU 0"
    except (AttributeError, OSError):
        pinned = "not pinned"

    with tempfile.TemporaryDirectory(prefix="loadgen-bench-") as tmp:
        csv_path = os.path.join(tmp, "feeder.csv")
        make_csv(csv_path, args.rows)
        size = os.path.getsize(csv_path)
        memory = measure_memory(csv_path, tmp)
        feeder = load(csv_path)
        timing = measure_cpu(feeder, args)

    print(f"bench/templates.py: {args.rows:,} rows, {args.repeat} rounds x {args.calls:,} "
          f"calls, {pinned}, Python {sys.version.split()[0]}")
    print()
    print(f"{'variant':<18} {'us/request (median)':>20} {'min':>8} {'max':>8}")
    for name, values in timing.items():
        print(f"{name:<18} {statistics.median(values):>20.3f} {min(values):>8.3f} "
              f"{max(values):>8.3f}")
    diffs = [t - s for t, s in zip(timing["templated"], timing["static"])]
    print(f"{'templated - static':<18} {statistics.median(diffs):>20.3f} {min(diffs):>8.3f} "
          f"{max(diffs):>8.3f}   (paired per round; goal: <= 3 us)")
    print()
    mib = 1 << 20
    print(f"feeder file: {size / mib:,.1f} MiB ({args.rows:,} rows)")
    print(f"  held by a worker (RSS delta after unpickling): {memory['rss'] / mib:,.1f} MiB "
          f"= {memory['rss'] / size:.2f}x the file   (goal: <= ~2x)")
    print(f"  held by a worker (tracemalloc, current):        {memory['held'] / mib:,.1f} MiB "
          f"= {memory['held'] / size:.2f}x;  peak while unpickling "
          f"{memory['unpickle_peak'] / mib:,.1f} MiB = {memory['unpickle_peak'] / size:.2f}x")
    print(f"  in the plan (pickled):                          {memory['pickled'] / mib:,.1f} MiB "
          f"= {memory['pickled'] / size:.2f}x")
    print(f"  coordinator's load() peak (tracemalloc):        {memory['load_peak'] / mib:,.1f} "
          f"MiB = {memory['load_peak'] / size:.2f}x (once, before any load)")


def measure_memory(csv_path: str, tmp: str) -> dict[str, int]:
    """What the feeder costs: at load, in the plan, and held by a worker process."""
    load_peak = subprocess.run(
        [sys.executable, "-c", _LOAD_PEAK, csv_path],
        check=True, capture_output=True, text=True, timeout=600).stdout
    pkl = os.path.join(tmp, "feeder.pickle")
    with open(pkl, "wb") as f:
        pickle.dump(load(csv_path), f, protocol=pickle.HIGHEST_PROTOCOL)

    def worker(trace: str) -> list[str]:
        return subprocess.run([sys.executable, "-c", _WORKER_SIDE, pkl, trace], check=True,
                              capture_output=True, text=True, timeout=600).stdout.split()

    rss = worker("0")
    traced = worker("1")
    return {"load_peak": int(load_peak), "pickled": os.path.getsize(pkl), "rss": int(rss[0]),
            "held": int(traced[0]), "unpickle_peak": int(traced[1])}


def measure_cpu(feeder, args) -> dict[str, list[float]]:
    cols = feeder.columns
    path = parse("/items/{{ id }}", "bench", cols)
    headers = [("Authorization", parse("Bearer {{ token }}", "bench", cols)),
               ("Content-Type", static("application/json"))]
    body = parse('{"seq": {{ seq }}, "kind": "bench"}', "bench", cols)
    renderer = compile_request("POST", "127.0.0.1:8080", path, headers, body, cols)
    assert isinstance(renderer, RequestRenderer)
    fixed = [("Authorization", static("Bearer " + "0" * 40)), headers[1]]
    prebuilt = compile_request("POST", "127.0.0.1:8080", static("/items/1"), fixed,
                               static('{"seq": 1, "kind": "bench"}'), cols)
    assert isinstance(prebuilt, bytes)
    pick = feeder.picker()
    requests = [prebuilt, renderer]

    def run_static(n: int) -> None:
        for k in range(n):
            r = requests[0]
            if r.__class__ is bytes:
                data = r
            else:
                data = r.render(k, 0, pick(k, 0))
        del data

    def run_templated(n: int) -> None:
        for k in range(n):
            r = requests[1]
            if r.__class__ is bytes:
                data = r
            else:
                data = r.render(k, 0, pick(k, 0))
        del data

    def run_render(n: int) -> None:
        render, row = renderer.render, pick(0, 0)
        for k in range(n):
            data = render(k, 0, row)
        del data

    def run_format(n: int) -> None:
        render = renderer.render_format
        for k in range(n):
            data = render(k, 0, pick(k, 0))
        del data

    variants = {"static": run_static, "templated": run_templated,
                "render-only": run_render, "templated-format": run_format}
    for fn in variants.values():   # warm up
        fn(1000)
    rng = random.Random(args.seed)
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeat):
        order = list(variants)
        rng.shuffle(order)
        for name in order:
            results[name].append(per_request_us(variants[name], args.calls))
    return results


if __name__ == "__main__":
    main()
