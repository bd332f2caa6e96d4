"""How often is loadgen's generator verdict right?  Scenarios with a known truth, repeated.

Usage::

    python bench/verdict.py [--rounds 5] [--budget 300] [--only pool,stall] [--json FILE]

Each scenario builds a situation whose truth is known by construction and runs
``loadgen`` on it; the verdict (``generator_limited`` and ``generator.causes``)
is right or wrong against that truth.  Rounds are interleaved (every scenario
once, then again), so drift of the shared machine hits every scenario alike, and
the whole benchmark stops starting rounds once ``--budget`` seconds are spent.

Scenarios (all load to 127.0.0.1):

* ``healthy-busy1``: 250 req/s to /api/health while one CPU burner (a Python busy
  loop, unpinned) imitates a shared machine.  Truth: not limited.
* ``healthy-busy2``: 300 req/s with two burners (every core contended).  Truth: not limited.
* ``pool``: 1000 req/s to /delay/20 with the default 10 connections (~20 needed).
  Truth: limited, cause ``pool``.
* ``high-rate``: 30,000 req/s on one worker.  Truth: limited.
* ``stall``: 500 req/s, --timeout 1s, --max-connections 2000, the target SIGSTOPped
  for 1.5 s.  Truth: not limited (the stall is the server's).
* ``two-on-one``: closed model, two workers and the coordinator on CPU 0, a fast
  selector server (tests/rawservers.ManyServer) on CPU 1.  Truth: limited.
* ``capacity``: ``loadgen capacity`` against tests/rawservers ``limited(4, 20.0)``
  (true capacity 200 req/s), default workers.  Right when the search did not stop
  on a "generator limited" verdict and found 200 within 15%.

Standard library only (plus loadgen's own test servers); not used by the tests.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
import cost  # bench/ is not a package: a sibling
from rawservers import ManyServer, RawServer, limited

RUN_TIMEOUT_S = 120.0
CAPACITY_TRUTH = 200.0       # limited(4, 20.0): 4 slots x 1000/20 ms
CAPACITY_TOLERANCE = 0.15
BURNER = "while True: pass"


@dataclasses.dataclass
class Outcome:
    right: bool
    verdict: str              # what loadgen said, short
    figures: dict[str, float | None]
    detail: str = ""          # loadgen's reasons, printed for wrong verdicts


@dataclasses.dataclass
class Scenario:
    key: str
    truth: str
    run: Callable[[Path], Outcome]
    outcomes: list[Outcome] = dataclasses.field(default_factory=list)
    broken: list[str] = dataclasses.field(default_factory=list)


# -- running loadgen ---------------------------------------------------------------------------


def loadgen_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "loadgen", *args]


def run_loadgen(argv: list[str], save: Path) -> tuple[int, dict[str, Any]]:
    """Run to completion (bounded) and read the saved document."""
    proc = subprocess.run(argv + ["--quiet", "--save", str(save)], check=False,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=cost.REPO,
                          env=env())
    if not save.exists():
        raise RuntimeError(f"no results (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
    return proc.returncode, json.loads(save.read_text())


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(cost.REPO)}


def wait_running(save: Path, limit_s: float = 30.0) -> None:
    """The results file is rewritten every second: "running" means load is under way."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(save.read_text()).get("status") == "running":
                return
        threading.Event().wait(0.02)
    raise RuntimeError(f"{save} never reached 'running'")


def judged(doc: dict[str, Any], right: bool) -> Outcome:
    gen = doc.get("generator") or {}
    lag = gen.get("lateness_ms") or {}
    loop = gen.get("loop_lag_ms") or {}
    causes = ",".join(gen.get("causes") or []) or "-"
    said = f"limited({causes})" if doc.get("generator_limited") else "not limited"
    return Outcome(right, said, {
        "send_lag_p99": lag.get("p99"), "loop_lag_p99": loop.get("p99"),
        "cpu_max": gen.get("cpu_percent_max"), "run_queue_max": gen.get("run_queue_percent_max"),
    }, "; ".join(gen.get("reasons") or []))


@contextlib.contextmanager
def burners(n: int) -> Iterator[None]:
    """``n`` CPU-bound Python processes (a shared machine), stopped by pid on exit."""
    procs = [subprocess.Popen([sys.executable, "-c", BURNER], stdin=subprocess.DEVNULL)
             for _ in range(n)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)


# -- scenarios ---------------------------------------------------------------------------------


class Bench:
    def __init__(self, url: str, stall_target: subprocess.Popen[Any], stall_url: str,
                 pin: bool) -> None:
        self.url, self.stall_target, self.stall_url, self.pin = url, stall_target, stall_url, pin

    def healthy(self, rate: int, n_burners: int) -> Callable[[Path], Outcome]:
        def run(save: Path) -> Outcome:
            with burners(n_burners):
                _, doc = run_loadgen(loadgen_argv(
                    "run", "--url", self.url, "--endpoint", "/api/health", "--rate", str(rate),
                    "--duration", "3s"), save)
            return judged(doc, not doc["generator_limited"])
        return run

    def pool(self, save: Path) -> Outcome:
        _, doc = run_loadgen(loadgen_argv("run", "--url", self.url, "--endpoint", "/delay/20",
                                          "--rate", "1000", "--duration", "2s"), save)
        causes = (doc.get("generator") or {}).get("causes") or []
        return judged(doc, bool(doc["generator_limited"]) and "pool" in causes)

    def high_rate(self, save: Path) -> Outcome:
        _, doc = run_loadgen(loadgen_argv("run", "--url", self.url, "--endpoint", "/api/health",
                                          "--rate", "30000", "--workers", "1",
                                          "--duration", "2s"), save)
        return judged(doc, bool(doc["generator_limited"]))

    def stall(self, save: Path) -> Outcome:
        argv = loadgen_argv("run", "--url", self.stall_url, "--endpoint", "/api/health",
                            "--rate", "500", "--duration", "4s", "--timeout", "1s",
                            "--max-connections", "2000", "--quiet", "--save", str(save))
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, cwd=cost.REPO, env=env())
        pid = self.stall_target.pid
        try:
            wait_running(save)
            os.kill(pid, signal.SIGSTOP)
            threading.Event().wait(1.5)
        finally:
            os.kill(pid, signal.SIGCONT)
        try:
            proc.communicate(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        doc = json.loads(save.read_text())
        if not (doc["summary"].get("failures_by_kind") or {}).get("timeout"):
            raise RuntimeError("the stall produced no timeouts: not the scenario intended")
        return judged(doc, not doc["generator_limited"])

    def two_on_one(self, save: Path) -> Outcome:
        with ManyServer() as server:
            os.sched_setaffinity(server.thread.native_id, {cost.SERVER_CPU})
            _, doc = run_loadgen(cost.pinned(loadgen_argv(
                "run", "--url", server.url, "--workers", "2", "--concurrency", "20",
                "--duration", "3s"), cost.CLIENT_CPU, True), save)
        return judged(doc, bool(doc["generator_limited"]))

    def capacity(self, save: Path) -> Outcome:
        t0 = time.monotonic()
        with RawServer(limited(4, 20.0)) as server:
            status, doc = run_loadgen(loadgen_argv(
                "capacity", "--url", server.url, "--endpoint", "/", "--slo", "p99<100ms",
                "--slo", "errors<1%", "--start-rate", "100", "--step-duration", "1500ms",
                "--precision", "0.1", "--concurrency", "8", "--max-connections", "16"), save)
        found = doc.get("capacity_rps")
        stopped = bool(doc.get("generator_limited"))
        close = found is not None and abs(found - CAPACITY_TRUTH) <= CAPACITY_TOLERANCE * CAPACITY_TRUTH
        said = ("stopped: generator limited" if stopped
                else f"{found:g} req/s" if found is not None else "no answer")
        limited_steps = sum(1 for s in doc.get("steps") or [] if s.get("generator_limited"))
        return Outcome(status == 0 and not stopped and close, said,
                       {"capacity": found, "steps": len(doc.get("steps") or []),
                        "limited_steps": limited_steps, "search_s": time.monotonic() - t0},
                       str(doc.get("verdict", "")))


# -- report ------------------------------------------------------------------------------------


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def table(scenarios: list[Scenario]) -> list[str]:
    head = (f"{'scenario':<14} {'truth':<22} {'runs':>4} {'right':>5} {'wrong':>5}  "
            f"{'send lag p99':>12} {'loop lag p99':>12} {'cpu %':>6} {'runq %':>6}  verdicts seen")
    lines = [head, "-" * len(head)]
    for s in scenarios:
        right = sum(o.right for o in s.outcomes)
        seen: dict[str, int] = {}
        for o in s.outcomes:
            seen[o.verdict] = seen.get(o.verdict, 0) + 1
        said = ", ".join(f"{k} x{v}" for k, v in sorted(seen.items(), key=lambda kv: -kv[1]))
        if s.broken:
            said += f"; {len(s.broken)} broken"

        def med(key: str, outcomes: list[Outcome] = s.outcomes) -> float | None:
            return median([o.figures.get(key) for o in outcomes])
        if s.key == "capacity":
            figs = (f"{'answer ' + fmt(med('capacity'), '.0f'):>12} "
                    f"{'steps ' + fmt(med('steps'), '.0f'):>12} {'':>6} {'':>6}")
        else:
            figs = (f"{fmt(med('send_lag_p99')):>12} {fmt(med('loop_lag_p99')):>12} "
                    f"{fmt(med('cpu_max')):>6} {fmt(med('run_queue_max')):>6}")
        lines.append(f"{s.key:<14} {s.truth:<22} {len(s.outcomes):>4} {right:>5} "
                     f"{len(s.outcomes) - right:>5}  {figs}  {said}")
    lines.append("(figures: medians over the runs; lag in ms; cpu and runq: the worst worker's "
                 "worst second, % of a core)")
    return lines


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="at most this many rounds [5]")
    p.add_argument("--budget", type=float, default=300.0,
                   help="start no round that would end past this many seconds [300]")
    p.add_argument("--only", default="", help="comma-separated scenario keys")
    p.add_argument("--json", type=Path, help="also write the outcomes here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pin = cost.pinning_available()
    with cost.builtin_target(False) as (url, _, _), \
            cost.builtin_target(False) as (stall_url, stall_proc, _), \
            tempfile.TemporaryDirectory(prefix="loadgen-verdict-") as tmp:
        bench = Bench(url, stall_proc, stall_url, pin)
        scenarios = [
            Scenario("healthy-busy1", "not limited", bench.healthy(250, 1)),
            Scenario("healthy-busy2", "not limited", bench.healthy(300, 2)),
            Scenario("pool", "limited (pool)", bench.pool),
            Scenario("high-rate", "limited", bench.high_rate),
            Scenario("stall", "not limited", bench.stall),
            Scenario("capacity", "200 req/s +-15%", bench.capacity),
        ]
        if pin:
            scenarios.insert(5, Scenario("two-on-one", "limited", bench.two_on_one))
        else:
            print("two-on-one skipped: taskset or CPUs 0 and 1 not available")
        if args.only:
            keep = set(args.only.split(","))
            scenarios = [s for s in scenarios if s.key in keep]
        start = time.monotonic()
        round_s = 0.0
        for round_no in range(1, args.rounds + 1):
            elapsed = time.monotonic() - start
            if round_no > 1 and elapsed + round_s > args.budget:
                print(f"budget: stopped after {round_no - 1} rounds ({elapsed:.0f} s)")
                break
            t0 = time.monotonic()
            for s in scenarios:
                save = Path(tmp) / f"{s.key}-{round_no}.json"
                try:
                    outcome = s.run(save)
                except (RuntimeError, subprocess.TimeoutExpired, KeyError, ValueError) as exc:
                    s.broken.append(f"round {round_no}: {exc}")
                    said = f"broken: {exc}"
                else:
                    s.outcomes.append(outcome)
                    said = f"{outcome.verdict} ({'right' if outcome.right else 'WRONG'})"
                print(f"round {round_no} {s.key:<14} {said}", file=sys.stderr)
            round_s = max(round_s, time.monotonic() - t0)
    print()
    print("\n".join(table(scenarios)))
    for s in scenarios:
        for o in s.outcomes:
            if not o.right:
                print(f"wrong {s.key}: {o.verdict}: {o.detail[:400]}")
        for why in s.broken:
            print(f"broken {s.key}: {why}")
    if args.json:
        args.json.write_text(json.dumps(
            {s.key: {"truth": s.truth, "broken": s.broken,
                     "outcomes": [dataclasses.asdict(o) for o in s.outcomes]}
             for s in scenarios}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
