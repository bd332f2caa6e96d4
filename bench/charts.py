"""Price loadgen's chart rendering: two copies of loadgen, side by side, interleaved.

Usage::

    git archive <base> loadgen | tar -x -C /tmp/base      # the "before" copy
    python bench/charts.py --before /tmp/base [--rounds 7] [--check /tmp/charts-check]
    python bench/charts.py                                # this checkout alone

The documents are made once, by this checkout: a real run (the built-in target on
127.0.0.1, ``loadgen run --save``, open model, two endpoints, ``--seconds`` long; or
``--doc FILE``), plus synthetic documents from ``tests/synthetic.py`` (a capacity
search, and the second run of a comparison).  Each copy of loadgen then renders them in
a process of its own (``python -P`` with ``PYTHONPATH`` pointing at the copy, so both
use this venv's matplotlib), warmed up once (imports, font cache), and told job by job
what to render: ``render_html``, ``draw_summary``, the capacity page and PNG
(``render_html`` of a capacity document, ``draw_capacity``) and the comparison page and
PNG (``render_comparison_html``, ``draw_comparison``).

The figure is the job's CPU time (``time.process_time`` in the worker), the median over
``--rounds`` interleaved rounds (before then after, after then before in the next
round, so neither always runs on a machine just disturbed by the other); the ratio is
the median of the per-round after / before.  "+gc" adds the ``gc.collect()`` of the
job's garbage right after it, the cost a chart's reference cycles leave behind.

``--check DIR`` makes each copy write every output of every document (real and
synthetic: closed, open, limited, journeys, many endpoints, monitored, a user ramp,
sparse, bars only, capacity, comparison) under ``DIR/before`` and ``DIR/after`` and
compares them: the HTML pages byte for byte, the PNGs byte for byte and pixel for pixel.
Standard library in the coordinator, numpy (via matplotlib) for the pixels; not used by
the tests.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RUN_GRACE_S = 60.0
WORKER_TIMEOUT_S = 600.0
#: The timed jobs, in the order of the table: (name, what it renders).
JOBS = ("render_html", "draw_summary", "capacity_html", "draw_capacity", "comparison_html",
        "draw_comparison")


# -- the documents ------------------------------------------------------------------------------


def real_document(folder: Path, seconds: float) -> Path:
    """A real open-model run of two endpoints (one all 503s) on the built-in target."""
    sys.path.insert(0, str(HERE))
    import cost  # bench/ is not a package: cost.py is found as a sibling

    save = folder / "real.json"
    with cost.builtin_target(False) as (url, _proc, _argv):
        run = subprocess.run(
            [sys.executable, "-m", "loadgen", "run", "--url", url, "--endpoint", "/api/health",
             "--endpoint", "/status/503", "--rate", "100", "--duration", f"{seconds:g}s",
             "--quiet", "--save", str(save)],
            capture_output=True, text=True, timeout=seconds + RUN_GRACE_S, cwd=REPO,
            stdin=subprocess.DEVNULL, check=False)
    if run.returncode not in (0, 1) or not save.exists():
        raise SystemExit(f"charts.py: the real run failed ({run.returncode}): {run.stderr}")
    return save


def synthetic_documents() -> dict[str, Any]:
    """The tests' synthetic documents (built by this checkout), one per kind of page."""
    sys.path.insert(0, str(REPO / "tests"))
    from synthetic import (  # type: ignore[import-not-found]  # tests/, put on sys.path above
        endpoints_run,
        journey_run,
        monitored,
        synthetic_run,
    )

    from loadgen.schema import CAPACITY_SCHEMA

    docs: dict[str, Any] = {
        "closed": synthetic_run(), "open": synthetic_run(open_model=True),
        "limited": synthetic_run(causes_cpu=True), "journeys": journey_run(),
        "endpoints": endpoints_run([f"GET /e{i}" for i in range(11)]),
        "monitored": monitored(synthetic_run(open_model=True)),
        "sparse": {"config": {"url": "http://old"}, "summary": {"requests": 3},
                   "endpoints": [{"endpoint": "GET /x", "requests": 3}]},
    }
    ramp = synthetic_run()
    for n, interval in enumerate(ramp["intervals"]):
        interval["users"] = 2.0 * n
    ramp["config"]["user_stages"] = [{"duration_s": 2.5, "start_users": 0, "end_users": 6}]
    docs["users"] = ramp
    bars = synthetic_run()
    for key in ("intervals", "histograms", "service_histograms"):
        bars.pop(key, None)
    docs["bars"] = bars
    step = synthetic_run(open_model=True)
    docs["capacity"] = {
        "schema": CAPACITY_SCHEMA, "tool": "loadgen", "status": "complete",
        "started_at": step["started_at"], "config": {"url": "http://127.0.0.1:1"},
        "slos": ["p99<100ms"], "capacity_rps": 60.0, "verdict": "the SLOs held up to 60",
        "generator_limited": False,
        "steps": [{"rate": r, "passed": r <= 60, "achieved_rps": r * 0.98, "p99_ms": p99,
                   "failure_share": share, "slo_failures": [], "generator_limited": False,
                   "note": None, "result": step}
                  for r, p99, share in ((30.0, 1.5, 0.0), (60.0, 2.0, 0.0),
                                        (90.0, 40.0, 0.01), (120.0, 300.0, 0.1))]}
    return docs


# -- the worker: one copy of loadgen, rendering on request --------------------------------------


def worker(folder: Path) -> int:
    """Render what each stdin line names; answer one line per job: CPU s, CPU s with gc."""
    import loadgen
    from loadgen.output import charts, html

    docs = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
    real, other, capacity = docs["real"], docs["open"], docs["capacity"]
    out = Path(tempfile.mkdtemp(prefix="loadgen-charts-"))
    jobs: dict[str, Callable[[], object]] = {
        "render_html": lambda: html.render_html(real),
        "draw_summary": lambda: charts.draw_summary(real, str(out / "summary.png")),
        "capacity_html": lambda: html.render_html(capacity),
        "draw_capacity": lambda: charts.draw_capacity(capacity, str(out / "capacity.png")),
        "comparison_html": lambda: html.render_comparison_html([real, other], ["a", "b"]),
        "draw_comparison": lambda: charts.draw_comparison([real, other], ["a", "b"],
                                                          str(out / "comparison.png")),
    }
    for job in jobs.values():   # warm-up: imports, font cache, first-use caches
        job()
    print(f"ready {Path(loadgen.__file__).parent.parent}", flush=True)
    for line in sys.stdin:
        command = line.split()
        if command[0] == "check":
            write_outputs(docs, Path(command[1]))
            print("done", flush=True)
            continue
        gc.collect()
        start = time.process_time()
        jobs[command[0]]()
        middle = time.process_time()
        gc.collect()
        end = time.process_time()
        print(f"{middle - start:.6f} {end - start:.6f}", flush=True)
    return 0


def write_outputs(docs: dict[str, Any], folder: Path) -> None:
    """Every page and PNG of every document, named after the document."""
    from loadgen.output import charts, html

    folder.mkdir(parents=True, exist_ok=True)
    for name, doc in sorted(docs.items()):
        (folder / f"{name}.html").write_text(html.render_html(doc))
        if name == "capacity":
            charts.draw_capacity(doc, str(folder / f"{name}.png"))
        else:
            charts.draw_summary(doc, str(folder / f"{name}.png"))
    pair = [docs["real"], docs["open"]]
    (folder / "comparison.html").write_text(html.render_comparison_html(pair, ["a", "b"]))
    charts.draw_comparison(pair, ["a", "b"], str(folder / "comparison.png"))


class Copy:
    """A worker process rendering with one copy of loadgen."""

    def __init__(self, name: str, tree: Path, folder: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        self.name = name
        self.proc = subprocess.Popen([sys.executable, "-P", str(Path(__file__).resolve()),
                                      "--worker", str(folder)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env, cwd=tree)
        self.tree = self.ask_raw(None).split(maxsplit=1)[1]
        self.cpu: dict[str, list[float]] = {job: [] for job in JOBS}
        self.with_gc: dict[str, list[float]] = {job: [] for job in JOBS}

    def ask_raw(self, line: str | None) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if line is not None:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise SystemExit(f"charts.py: the {self.name} worker died")
        return answer.strip()

    def time(self, job: str) -> None:
        cpu, with_gc = (float(x) for x in self.ask_raw(job).split())
        self.cpu[job].append(cpu)
        self.with_gc[job].append(with_gc)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=WORKER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- comparing the outputs ----------------------------------------------------------------------


def compare_outputs(before: Path, after: Path) -> bool:
    """Print, per file, whether the two copies wrote the same thing; True when all did."""
    import numpy
    from matplotlib.image import imread

    same = True
    for old in sorted(before.iterdir()):
        new = after / old.name
        if old.read_bytes() == new.read_bytes():
            print(f"  {old.name}: same bytes")
            continue
        same = False
        if old.suffix == ".png":
            a, b = imread(old), imread(new)
            if a.shape != b.shape:
                print(f"  {old.name}: DIFFERENT size {a.shape} -> {b.shape}")
                continue
            differ = numpy.any(a != b, axis=-1)
            print(f"  {old.name}: different bytes; {int(differ.sum())} of {differ.size} pixels "
                  f"differ, max channel difference {float(numpy.abs(a - b).max()):.4f}")
        else:
            print(f"  {old.name}: DIFFERENT bytes ({old.stat().st_size} -> {new.stat().st_size})")
    return same


# -- the coordinator ----------------------------------------------------------------------------


def paired(after: list[float], before: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(after, before))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="directory holding the base loadgen/")
    parser.add_argument("--after", type=Path, default=REPO,
                        help="directory holding the changed loadgen/ [this checkout]")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (0: --check only)")
    parser.add_argument("--seconds", type=float, default=3.0, help="the real run's length [3]")
    parser.add_argument("--doc", type=Path, help="a saved run to use instead of a real run")
    parser.add_argument("--check", type=Path, help="write and compare every output here")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker)
    if args.check and not args.before:
        parser.error("--check compares two copies: it needs --before")
    with tempfile.TemporaryDirectory(prefix="loadgen-charts-") as tmp_name:
        folder = Path(tmp_name)
        if args.doc:
            (folder / "real.json").write_bytes(args.doc.read_bytes())
        else:
            real_document(folder, args.seconds)
        for name, doc in synthetic_documents().items():
            (folder / f"{name}.json").write_text(json.dumps(doc))
        real = json.loads((folder / "real.json").read_text())
        print(f"real document: {real['summary']['requests']} requests, "
              f"{len(real['endpoints'])} endpoints, {len(real.get('intervals') or [])} "
              f"intervals, model {real['config'].get('model')}")
        copies = [Copy("after", args.after.resolve(), folder)]
        if args.before:
            copies.insert(0, Copy("before", args.before.resolve(), folder))
        for c in copies:
            print(f"{c.name}: loadgen from {c.tree}")
        same = True
        if args.check:
            for c in copies:
                c.ask_raw(f"check {args.check / c.name}")
            print(f"outputs in {args.check}:")
            same = compare_outputs(args.check / "before", args.check / "after")
        for r in range(args.rounds):
            for job in JOBS:
                for c in copies if r % 2 == 0 else copies[::-1]:
                    c.time(job)
        for c in copies:
            c.close()
    if args.rounds < 1:
        return 0 if same else 1
    print(f"\nCPU seconds per call, median of {args.rounds} interleaved rounds "
          "(+gc: with the gc.collect() of its garbage)")
    header = "| job | " + " | ".join(f"{c.name} | {c.name} +gc" for c in copies)
    if len(copies) == 2:
        header += " | after/before | after/before +gc"
    print(header + " |")
    print("|---" * (header.count("|")) + "|")
    for job in JOBS:
        cells = [f"{statistics.median(c.cpu[job]):.3f} | {statistics.median(c.with_gc[job]):.3f}"
                 for c in copies]
        if len(copies) == 2:
            before, after = copies
            cells.append(f"{paired(after.cpu[job], before.cpu[job]):.3f} | "
                         f"{paired(after.with_gc[job], before.with_gc[job]):.3f}")
        print(f"| {job} | " + " | ".join(cells) + " |")
    if len(copies) == 2:
        before, after = copies
        for job in JOBS:
            print(f"  {job} per round (after/before): " + ", ".join(
                f"{a:.3f}/{b:.3f}" for a, b in zip(after.cpu[job], before.cpu[job])))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
