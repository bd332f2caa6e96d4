"""Price the phase timings on the hot path: what each request pays for its time to first byte.

Usage::

    python bench/phases.py [--repeat 30] [--calls 500000] [--requests 5000] [--values 50000]
                           [--baseline REF]

Per request, the client now stamps one ``perf_counter()`` at the first byte and
appends ``first - sent`` to an ``array('d')``; the worker loop tests one list
item (``closes[e]``: does this endpoint's request say ``Connection: close``?).
Once per interval the worker turns the array into HDR counts with numpy.  In one
gevent-patched process this script measures:

* micro: those added statements in the loop shape of the hot path, next to the
  same loop without them, in ns per request; and the interval's conversion
  (``PhaseRecorder.to_wire``) of ``--values`` first-byte times, in ns per value;
* in situ: ``Connection.request`` round trips against a keep-alive server in a
  child process, this checkout's client next to the client of ``--baseline``
  (a git ref whose ``loadgen/engine/client.py`` imports against this checkout's
  package, e.g. the commit before the phases; default ``main``), in µs of this
  process's CPU per request.  A second connection of this checkout's client
  runs too: its difference from the first (an A/A pair) is the noise floor.
  Loopback round trips on a shared machine move by µs: the micro figure is
  the cost, the in-situ one its share.

Rounds run the variants in a shuffled order (seeded), and medians are reported.
127.0.0.1 only; not used by the tests.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path
from types import ModuleType

from gevent import monkey

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from precheck import SERVER


def micro(calls: int, repeat: int) -> dict[str, float]:
    """ns per request of the added statements, as the hot path runs them."""
    clock = time.perf_counter
    ttfb = array("d")
    closes = [False]

    def shipped() -> float:
        append = ttfb.append
        t = clock()
        for _ in range(calls):
            sent = 0.5
            first = clock()
            n = 1
            if n:
                append(first - sent)
            if closes[0]:
                pass
        elapsed = clock() - t
        del ttfb[:]
        return elapsed

    def without() -> float:
        t = clock()
        for _ in range(calls):
            sent = 0.5   # noqa: F841 (as in the loop above)
            n = 1        # noqa: F841
        return clock() - t

    samples: dict[str, list[float]] = {"with phases": [], "without": []}
    order = [("with phases", shipped), ("without", without)]
    for _ in range(repeat):
        order.reverse()
        for name, fn in order:
            samples[name].append(fn() / calls * 1e9)
    return {name: statistics.median(v) for name, v in samples.items()}


def conversion(values: int, repeat: int) -> float:
    """ns per first-byte time of the once-per-interval numpy conversion (to_wire)."""
    from loadgen.stats.phases import PhaseRecorder

    recorder = PhaseRecorder()
    rng = [0.0002 + (i % 977) * 1e-6 for i in range(values)]
    samples = []
    for _ in range(repeat):
        recorder.ttfb.extend(rng)
        t = time.perf_counter()
        recorder.to_wire()
        samples.append((time.perf_counter() - t) / values * 1e9)
    return statistics.median(samples)


def load_client(ref: str, folder: Path) -> ModuleType:
    """``loadgen/engine/client.py`` as of git ``ref``, importable beside this checkout's."""
    text = subprocess.run(["git", "show", f"{ref}:loadgen/engine/client.py"], cwd=REPO, check=True,
                          capture_output=True, text=True).stdout
    path = folder / "baseline_client.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("baseline_client", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def in_situ(requests: int, repeat: int, baseline: ModuleType, ref: str) -> dict[str, float]:
    import urllib3  # after patch_all(), as in a worker

    from loadgen.engine import client

    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        port = int(proc.stdout.readline())
        pool = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=2, block=False)
        data = client.build_request("GET", f"127.0.0.1:{port}", "/", [], b"")
        conns = {"this checkout": client.Connection(pool, 10.0),
                 "again (A/A)": client.Connection(pool, 10.0),
                 ref: baseline.Connection(pool, 10.0)}
        for conn in conns.values():
            conn.open()
        samples: dict[str, list[float]] = {name: [] for name in conns}
        order = list(conns.items())
        shuffle = random.Random(20261201).shuffle
        for _ in range(repeat):
            shuffle(order)
            for name, conn in order:
                t = time.process_time()
                for _ in range(requests):
                    conn.request(data, False)
                samples[name].append((time.process_time() - t) / requests * 1e6)
            for conn in conns.values():   # as the worker does every interval (not timed)
                if hasattr(conn, "phases"):
                    conn.phases.to_wire()
        return {name: statistics.median(v) for name, v in samples.items()}
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--calls", type=int, default=500_000)
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--values", type=int, default=50_000)
    parser.add_argument("--baseline", default="main", help="git ref of the client to compare")
    args = parser.parse_args()
    monkey.patch_all()   # loadgen's client only ever runs patched (loadgen/engine/process.py)
    print(f"micro: median of {args.repeat} interleaved rounds of {args.calls:,} requests")
    figures = micro(args.calls, args.repeat)
    for name, ns in figures.items():
        print(f"  {name:<16} {ns:8.1f} ns/request")
    print(f"  added            {figures['with phases'] - figures['without']:8.1f} ns/request")
    print(f"  per interval: to_wire of {args.values:,} first-byte times "
          f"{conversion(args.values, args.repeat):6.1f} ns/value")
    with tempfile.TemporaryDirectory(prefix="loadgen-phases-") as tmp:
        baseline = load_client(args.baseline, Path(tmp))
        print(f"in situ: Connection.request, median of {args.repeat} shuffled rounds of "
              f"{args.requests:,} requests per connection (loopback), CPU of this process")
        results = in_situ(args.requests, args.repeat, baseline, args.baseline)
    for name, us in results.items():
        print(f"  {name:<16} {us:8.2f} us/request")
    mine, again = results["this checkout"], results["again (A/A)"]
    print(f"  vs {args.baseline}: {(mine - results[args.baseline]) * 1000:+.0f} ns/request; "
          f"A/A: {(again - mine) * 1000:+.0f} ns/request (the noise floor)")


if __name__ == "__main__":
    main()
