"""Measure loadgen's own client cost per request, side by side with wrk, hey and locust.

Usage::

    python bench/cost.py [--duration 5] [--repeat 3] [--target nginx|builtin|URL]

Every installed tool loads the same local target (127.0.0.1 only) with the
same number of connections for the same time, from one process (or thread)
pinned to CPU 0, while the server is pinned to CPU 1.  The figure of interest
is the client's CPU time per request: CPU seconds of the client's whole
process tree (``getrusage(RUSAGE_CHILDREN)`` deltas around the subprocess)
divided by the requests it completed.  Runs are interleaved (A B C D A B C D
...) and medians are reported, so slow drift of the machine hits every tool
alike.

Whole-tree figures include each tool's start-up (interpreter imports for
loadgen and locust), so each tool is also run for a short time in the same
round and the *marginal* cost, (CPU_long - CPU_short) / (N_long - N_short),
is reported as the steady-state figure.  See bench/README.md.

Standard library only; the tools run as subprocesses.  Not used by the tests.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import json
import math
import os
import platform
import re
import resource
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CLIENT_CPU, SERVER_CPU = 0, 1
READY_PREFIX = "loadgen target listening on "
#: Extra seconds a tool may take beyond its --duration before it is killed
#: (start-up, connection teardown, writing reports).
GRACE_S = 60.0
SERVER_START_TIMEOUT_S = 15.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

LOCUSTFILE = '''\
from locust import FastHttpUser, constant, task


class Bench(FastHttpUser):
    wait_time = constant(0)

    @task
    def root(self):
        self.client.get({path!r})
'''

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    default_type application/json;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 '{{"status":"ok"}}'; }}
    }}
}}
"""


# -- data ---------------------------------------------------------------------


@dataclasses.dataclass
class Sample:
    """One run of one tool: what it reported and what it cost."""

    requests: int
    rps: float
    wall_s: float
    tree_cpu_s: float
    server_cpu_s: float
    worker_cpu_s: float | None = None  # loadgen only: the worker process's own CPU
    errors: int = 0
    core_busy: dict[int, float] = dataclasses.field(default_factory=dict)  # CPU -> busy fraction

    @property
    def tree_us(self) -> float:
        return 1e6 * self.tree_cpu_s / self.requests if self.requests else float("nan")

    @property
    def worker_us(self) -> float | None:
        if self.worker_cpu_s is None or not self.requests:
            return None
        return 1e6 * self.worker_cpu_s / self.requests


@dataclasses.dataclass
class Tool:
    """A client under test: how to build its command and how to read its output."""

    name: str
    build: Callable[[str, int, int, Path], list[str]]  # (url, conns, seconds, scratch) -> argv
    parse: Callable[[subprocess.CompletedProcess[str], Path], Sample]
    note: str = ""
    long: list[Sample] = dataclasses.field(default_factory=list)
    short: list[Sample] = dataclasses.field(default_factory=list)
    marginal_us: list[float] = dataclasses.field(default_factory=list)
    commands: list[str] = dataclasses.field(default_factory=list)


# -- machine & pinning --------------------------------------------------------


def pinning_available() -> bool:
    """Pin only when taskset exists and both CPUs are ours: otherwise pinning lies."""
    if shutil.which("taskset") is None:
        return False
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return False
    return {CLIENT_CPU, SERVER_CPU} <= allowed


def pinned(argv: list[str], cpu: int, pin: bool) -> list[str]:
    """Prefix argv with taskset so client and server never share a core."""
    return ["taskset", "-c", str(cpu), *argv] if pin else argv


def machine_lines(pin: bool) -> list[str]:
    """Describe the machine, so a pasted result carries its context."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    lines = [
        f"machine: nproc={os.cpu_count()} cpu={model or platform.processor() or '?'}",
        f"kernel:  {platform.system()} {platform.release()}",
        f"python:  {platform.python_version()} ({sys.executable})",
    ]
    if pin:
        lines.append(f"pinning: server on CPU {SERVER_CPU}, each client on CPU {CLIENT_CPU} (taskset)")
    else:
        lines.append("pinning: NONE (taskset missing or fewer than 2 usable CPUs): client and "
                     "server compete for the same cores, figures are noisier")
    return lines


def tool_version(argv: list[str], pattern: str = r"\S.*") -> str:
    """First matching line of a tool's version output (any stream), for the record."""
    try:
        proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=30, cwd=REPO)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    match = re.search(pattern, proc.stdout + proc.stderr)
    return match.group(0).strip() if match else "?"


# -- target server ------------------------------------------------------------


def free_port() -> int:
    """Ask the kernel for a free loopback port (nginx cannot be told to pick one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[Any], timeout_s: float) -> None:
    """Poll-connect until the server accepts, so no tool measures a server still starting."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} during start-up")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server not listening on 127.0.0.1:{port} after {timeout_s:.0f}s")


@contextlib.contextmanager
def nginx_target(tmp: Path, pin: bool) -> Iterator[tuple[str, subprocess.Popen[Any], list[str]]]:
    """A private nginx (one worker, no access log) so the server costs little and is stable."""
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port))
    argv = pinned([shutil.which("nginx") or "nginx", "-p", str(tmp), "-c", str(conf)], SERVER_CPU, pin)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port, proc, SERVER_START_TIMEOUT_S)
        yield f"http://127.0.0.1:{port}", proc, argv
    finally:
        stop_process(proc)


@contextlib.contextmanager
def builtin_target(pin: bool) -> Iterator[tuple[str, subprocess.Popen[Any], list[str]]]:
    """loadgen's own target server; its first stdout line announces the URL once listening."""
    argv = pinned([sys.executable, "-m", "loadgen.target.server", "--host", "127.0.0.1",
                   "--port", "0"], SERVER_CPU, pin)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=REPO)
    try:
        assert proc.stdout is not None
        line = read_line_with_timeout(proc, SERVER_START_TIMEOUT_S)
        if not line.startswith(READY_PREFIX):
            raise RuntimeError(f"built-in target did not announce itself (got {line!r})")
        url = line[len(READY_PREFIX):].strip()
        wait_listening(int(url.rsplit(":", 1)[1]), proc, SERVER_START_TIMEOUT_S)
        yield url, proc, argv
    finally:
        stop_process(proc)


def read_line_with_timeout(proc: subprocess.Popen[str], timeout_s: float) -> str:
    """readline() bounded in time: a server that hangs before printing must not hang us."""
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout_s):
            raise RuntimeError(f"built-in target printed nothing in {timeout_s:.0f}s")
    return proc.stdout.readline()


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL after a bound: the target must never outlive the benchmark."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def tree_cpu_s(root: int) -> float:
    """CPU seconds used so far by a process and its live descendants (nginx forks a worker).

    Read from /proc because the server is not our waited-for child during the runs,
    so RUSAGE_CHILDREN cannot see it.
    """
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()  # the command name may contain spaces
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime
    total = 0
    for pid, tick in ticks.items():
        p = pid
        while p > 1:
            if p == root:
                total += tick
                break
            p = parents.get(p, 0)
    return total / CLK_TCK


# -- running one tool ---------------------------------------------------------


def core_ticks() -> dict[int, tuple[int, int]]:
    """(busy, total) jiffies per CPU from /proc/stat.

    Process CPU (rusage) leaves out softirq time, where much of loopback TCP is
    processed, and says nothing of idle: a core's busy share tells whether the
    client's or the server's core was the ceiling.
    """
    out: dict[int, tuple[int, int]] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/stat").read_text().splitlines():
            name, *values = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                v = [int(x) for x in values[:8]]  # user nice system idle iowait irq softirq steal
                total = sum(v)
                out[int(name[3:])] = (total - v[3] - v[4], total)
    return out


def core_busy(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]
              ) -> dict[int, float]:
    """Busy fraction of each CPU between two core_ticks() snapshots."""
    busy: dict[int, float] = {}
    for cpu, (b1, t1) in after.items():
        b0, t0 = before.get(cpu, (b1, t1))
        if t1 > t0:
            busy[cpu] = (b1 - b0) / (t1 - t0)
    return busy


def children_cpu_s() -> float:
    """CPU of all waited-for descendants so far; deltas around one run give that run's tree."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(tool: Tool, url: str, conns: int, seconds: int, pin: bool,
             server_pid: int | None, scratch: Path) -> Sample:
    """Run a tool once, bounded in time, and attach the CPU it and the server spent."""
    argv = pinned(tool.build(url, conns, seconds, scratch), CLIENT_CPU, pin)
    command = shlex.join(argv)
    if command not in tool.commands:
        tool.commands.append(command)
    server_cpu = (lambda: tree_cpu_s(server_pid)) if server_pid else (lambda: float("nan"))
    server0, cores0 = server_cpu(), core_ticks()
    cpu0, t0 = children_cpu_s(), time.monotonic()
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=seconds + GRACE_S, cwd=REPO)
    wall, cpu = time.monotonic() - t0, children_cpu_s() - cpu0
    server, cores = server_cpu() - server0, core_busy(cores0, core_ticks())
    sample = tool.parse(proc, scratch)
    sample.wall_s, sample.tree_cpu_s, sample.server_cpu_s = wall, cpu, server
    sample.core_busy = cores
    return sample


def failed(proc: subprocess.CompletedProcess[str], what: str) -> RuntimeError:
    """One error carrying the tail of the tool's output, since that is where the reason is."""
    tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-5:]
    return RuntimeError(f"{what} (exit {proc.returncode}): " + " | ".join(tail))


# loadgen


def loadgen_build(url: str, conns: int, seconds: int, scratch: Path) -> list[str]:
    """One worker process, so loadgen gets the same single core as every peer."""
    return [sys.executable, "-m", "loadgen", "run", "--url", url, "--endpoint", PATH[0],
            "--duration", f"{seconds}s", "--concurrency", str(conns), "--workers", "1",
            "--save", str(scratch / "loadgen.json")]


def loadgen_parse(proc: subprocess.CompletedProcess[str], scratch: Path) -> Sample:
    """Read the saved results document: exact counts and the worker's own CPU seconds."""
    path = scratch / "loadgen.json"
    if not path.exists():
        raise failed(proc, "loadgen wrote no results")
    doc = json.loads(path.read_text())
    path.unlink()
    summary = doc["summary"]
    workers = doc.get("workers") or []
    return Sample(requests=int(summary["requests"]), rps=float(summary["rps"]), wall_s=0,
                  tree_cpu_s=0, server_cpu_s=0,
                  worker_cpu_s=sum(float(w["cpu_s"]) for w in workers),
                  errors=int(summary.get("failures") or 0))


# wrk

WRK_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(\w+)", re.MULTILINE)
WRK_RPS = re.compile(r"^Requests/sec:\s*([\d.]+)", re.MULTILINE)
WRK_ERRORS = re.compile(r"Non-2xx or 3xx responses:\s*(\d+)|Socket errors:.*", re.MULTILINE)


def wrk_build(url: str, conns: int, seconds: int, scratch: Path) -> list[str]:
    """One thread: wrk's event loop on one core, like the other clients."""
    return ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", url + PATH[0]]


def wrk_parse(proc: subprocess.CompletedProcess[str], scratch: Path) -> Sample:
    """wrk prints "N requests in Ts" and "Requests/sec:"; errors are socket errors and non-2xx/3xx."""
    total, rps = WRK_TOTAL.search(proc.stdout), WRK_RPS.search(proc.stdout)
    if proc.returncode or not total or not rps:
        raise failed(proc, "wrk output not understood")
    errors = sum(int(m.group(1)) for m in WRK_ERRORS.finditer(proc.stdout) if m.group(1))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)",
                                              " ".join(re.findall(r"Socket errors:.*", proc.stdout))))
    return Sample(requests=int(total.group(1)), rps=float(rps.group(1)), wall_s=0,
                  tree_cpu_s=0, server_cpu_s=0, errors=errors)


# hey

HEY_RPS = re.compile(r"Requests/sec:\s*([\d.]+)")
HEY_STATUS = re.compile(r"^\s*\[(\d{3})\]\s+(\d+) responses", re.MULTILINE)
HEY_ERRORS = re.compile(r"^Error distribution:(.*)", re.MULTILINE | re.DOTALL)


def hey_build(url: str, conns: int, seconds: int, scratch: Path) -> list[str]:
    """-cpus 1 sets GOMAXPROCS=1, so Go does not spread goroutines over both cores."""
    return ["hey", "-z", f"{seconds}s", "-c", str(conns), "-cpus", "1", url + PATH[0]]


def hey_parse(proc: subprocess.CompletedProcess[str], scratch: Path) -> Sample:
    """hey has no total line: the status code distribution is the only exact count."""
    rps = HEY_RPS.search(proc.stdout)
    codes = [(int(c), int(n)) for c, n in HEY_STATUS.findall(proc.stdout)]
    if proc.returncode or not rps or not codes:
        raise failed(proc, "hey output not understood")
    errors = sum(n for c, n in codes if not 200 <= c < 400)
    err_block = HEY_ERRORS.search(proc.stdout)
    if err_block:
        errors += sum(int(n) for n in re.findall(r"\[(\d+)\]", err_block.group(1)))
    return Sample(requests=sum(n for _, n in codes), rps=float(rps.group(1)), wall_s=0,
                  tree_cpu_s=0, server_cpu_s=0, errors=errors)


# locust


def locust_build(url: str, conns: int, seconds: int, scratch: Path) -> list[str]:
    """Headless, one process, FastHttpUser (locust's fastest client) with no wait time."""
    locustfile = scratch / "locustfile.py"
    if not locustfile.exists():
        locustfile.write_text(LOCUSTFILE.format(path=PATH[0]))
    return ["locust", "-f", str(locustfile), "--headless", "-u", str(conns), "-r", str(conns),
            "-t", f"{seconds}s", "--host", url, "--only-summary", "--csv",
            str(scratch / "locust"), "--loglevel", "WARNING"]


def locust_parse(proc: subprocess.CompletedProcess[str], scratch: Path) -> Sample:
    """The Aggregated row of the stats CSV holds the total and locust's own req/s."""
    path = scratch / "locust_stats.csv"
    if not path.exists():
        raise failed(proc, "locust wrote no stats CSV")
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("Name") == "Aggregated"]
    for leftover in scratch.glob("locust_*.csv"):
        leftover.unlink()
    if not rows:
        raise failed(proc, "locust stats CSV has no Aggregated row")
    row = rows[0]
    return Sample(requests=int(row["Request Count"]), rps=float(row["Requests/s"]), wall_s=0,
                  tree_cpu_s=0, server_cpu_s=0, errors=int(row["Failure Count"]))


PATH = ["/"]  # the request path, set once from the target choice


def available_tools() -> tuple[list[Tool], list[str]]:
    """Every tool that is installed, loadgen first (it is the reference for ratios)."""
    tools = [Tool("loadgen", loadgen_build, loadgen_parse,
                  note=f"loadgen {tool_version([sys.executable, '-m', 'loadgen', '--version'], r'[0-9][^ ]*$')}"
                  ", 1 worker process (+ coordinator)")]
    skipped: list[str] = []
    if shutil.which("wrk"):
        tools.append(Tool("wrk", wrk_build, wrk_parse,
                          note=tool_version(["wrk", "-v"], r"wrk \S+") + ", 1 thread"))
    else:
        skipped.append("wrk: not installed (no wrk on PATH), skipped")
    if shutil.which("hey"):
        tools.append(Tool("hey", hey_build, hey_parse, note="hey, GOMAXPROCS=1 (-cpus 1)"))
    else:
        skipped.append("hey: not installed (no hey on PATH), skipped")
    if shutil.which("locust"):
        version = tool_version(["locust", "--version"], r"locust \S+")
        tools.append(Tool("locust", locust_build, locust_parse,
                          note=f"{version}, FastHttpUser, 1 process, wait_time=constant(0)"))
    else:
        skipped.append("locust: not installed (no locust on PATH), skipped")
    return tools, skipped


# -- the benchmark ------------------------------------------------------------


def benchmark(tools: list[Tool], url: str, server_pid: int | None, args: argparse.Namespace,
              pin: bool, scratch: Path) -> None:
    """Interleave the tools round by round; each round does the long run then the short one."""
    for round_no in range(1, args.repeat + 1):
        for tool in tools:
            try:
                long = run_once(tool, url, args.concurrency, args.duration, pin, server_pid, scratch)
                tool.long.append(long)
                line = (f"  round {round_no}/{args.repeat} {tool.name:<8} {args.duration}s: "
                        f"{long.requests:>9,} req {long.rps:>10,.0f} req/s "
                        f"{long.tree_us:>8.1f} us/req (tree)")
                if args.short:
                    short = run_once(tool, url, args.concurrency, args.short, pin, server_pid, scratch)
                    tool.short.append(short)
                    if long.requests > short.requests:
                        tool.marginal_us.append(1e6 * (long.tree_cpu_s - short.tree_cpu_s)
                                                / (long.requests - short.requests))
                        line += f" {tool.marginal_us[-1]:>7.1f} us/req (marginal)"
            except (RuntimeError, subprocess.TimeoutExpired, OSError, KeyError, ValueError) as exc:
                line = f"  round {round_no}/{args.repeat} {tool.name:<8} FAILED: {exc}"
            print(line, file=sys.stderr, flush=True)


def plain(sample: Sample) -> dict[str, Any]:
    """A sample as a dict for --json, NaN (server not observed) as null so the file stays strict JSON."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in dataclasses.asdict(sample).items()}


def median(values: list[float | None]) -> float | None:
    """Median ignoring missing (None/NaN) values, None when nothing is left."""
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(clean) if clean else None


def figures(tool: Tool) -> dict[str, Any]:
    """Median of every figure over the rounds (medians shrug off one disturbed round)."""
    runs = tool.long
    startup = [(s.tree_cpu_s - m * s.requests / 1e6) for s, m in zip(runs, tool.marginal_us)]
    return {
        "tool": tool.name,
        "note": tool.note,
        "runs": len(runs),
        "requests": median([float(s.requests) for s in runs]),
        "rps": median([s.rps for s in runs]),
        "tree_us_per_req": median([s.tree_us for s in runs]),
        "marginal_us_per_req": median(tool.marginal_us),
        "startup_cpu_s": median(startup),
        "worker_us_per_req": median([s.worker_us for s in runs if s.worker_us is not None]),
        "client_cpu_pct": median([100 * s.tree_cpu_s / s.wall_s for s in runs if s.wall_s]),
        "server_cpu_pct": median([100 * s.server_cpu_s / s.wall_s for s in runs if s.wall_s]),
        "server_us_per_req": median([1e6 * s.server_cpu_s / s.requests for s in runs if s.requests]),
        "client_core_busy_pct": median([100 * s.core_busy[CLIENT_CPU] for s in runs
                                        if CLIENT_CPU in s.core_busy]),
        "server_core_busy_pct": median([100 * s.core_busy[SERVER_CPU] for s in runs
                                        if SERVER_CPU in s.core_busy]),
        "errors": int(sum(s.errors for s in runs)),
        "commands": tool.commands,
        "samples": [plain(s) for s in runs],
        "short_samples": [plain(s) for s in tool.short],
    }


def fmt(value: float | None, spec: str) -> str:
    """Format a figure, or "-" when the figure could not be measured."""
    return "-" if value is None else format(value, spec)


def ratio(value: float | None, reference: float | None) -> float | None:
    """value / reference, or None when either side is missing or zero."""
    return value / reference if value and reference else None


def report(rows: list[dict[str, Any]]) -> list[str]:
    """The table and the ratio sentences, plain text that pastes cleanly into a note."""
    ref = next((r for r in rows if r["tool"] == "loadgen" and r["runs"]), None)
    head = ("| tool     |   req/s | us/req steady | us/req tree | us/req worker | start-up CPU s "
            "| client CPU% | server CPU% | core0/core1 busy% | cost vs loadgen | req/s vs loadgen "
            "| errors |")
    widths = [len(c) - 2 for c in head.split("|")[1:-1]]
    lines = [head, "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for r in rows:
        steady = r["marginal_us_per_req"]
        base = ref and (ref["marginal_us_per_req"] if steady is not None else ref["tree_us_per_req"])
        cost = ratio(steady if steady is not None else r["tree_us_per_req"], base)
        speed = ratio(r["rps"], ref and ref["rps"])
        cores = f"{fmt(r['client_core_busy_pct'], '.0f')}/{fmt(r['server_core_busy_pct'], '.0f')}"
        cells = [r["tool"], fmt(r["rps"], ",.0f"), fmt(steady, ".1f"), fmt(r["tree_us_per_req"], ".1f"),
                 fmt(r["worker_us_per_req"], ".1f"), fmt(r["startup_cpu_s"], ".2f"),
                 fmt(r["client_cpu_pct"], ".0f"), fmt(r["server_cpu_pct"], ".0f"), cores,
                 fmt(cost, ".2f") + "x" if cost else "-",
                 fmt(speed, ".2f") + "x" if speed else "-",
                 str(r["errors"])]
        lines.append("| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                       for i, (c, w) in enumerate(zip(cells, widths))) + " |")
    if ref:
        lines.append("")
        for r in rows:
            if r is ref or not r["runs"]:
                continue
            steady = ratio(r["marginal_us_per_req"], ref["marginal_us_per_req"])
            tree = ratio(r["tree_us_per_req"], ref["tree_us_per_req"])
            speed = ratio(r["rps"], ref["rps"])
            inverse = f" (loadgen costs {1 / steady:.1f}x {r['tool']})" if steady and steady < 1 else ""
            lines.append(f"{r['tool']} costs {fmt(steady, '.2f')}x loadgen per request steady-state"
                         f"{inverse}, {fmt(tree, '.2f')}x over the whole run incl. start-up; "
                         f"req/s {fmt(speed, '.2f')}x loadgen's")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Options; refuses non-loopback URLs, since load goes to 127.0.0.1 only."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=5, help="seconds per run [5]")
    parser.add_argument("--short", type=int, default=1,
                        help="seconds of the short run used to subtract start-up cost; 0 skips it [1]")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds [3]")
    parser.add_argument("--concurrency", type=int, default=50, help="connections per tool [50]")
    parser.add_argument("--target", default=None,
                        help="nginx, builtin, or an http://127.0.0.1:PORT URL "
                             "[nginx if installed, else builtin]")
    parser.add_argument("--path", default=None,
                        help="request path [/ ; /api/health for the built-in target]")
    parser.add_argument("--tools", default=None, help="comma-separated subset, e.g. loadgen,wrk")
    parser.add_argument("--json", default=None, help="also save the figures to this file")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.repeat < 1 or args.concurrency < 1:
        parser.error("--duration, --repeat and --concurrency must be >= 1")
    if args.short < 0 or (args.short and args.short >= args.duration):
        parser.error("--short must be 0 or shorter than --duration")
    if args.target is None:
        args.target = "nginx" if shutil.which("nginx") else "builtin"
    if args.target not in ("nginx", "builtin"):
        host = re.match(r"^https?://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?/?$", args.target)
        if not host:
            parser.error("--target URL must be a loopback base URL such as http://127.0.0.1:8080")
        args.target = args.target.rstrip("/")
    return args


@contextlib.contextmanager
def target(args: argparse.Namespace, tmp: Path, pin: bool
           ) -> Iterator[tuple[str, int | None, str]]:
    """Yield (url, server pid or None, description) for the chosen target, stopped on exit."""
    if args.target == "nginx":
        if not shutil.which("nginx"):
            raise SystemExit("cost.py: --target nginx but nginx is not installed")
        version = tool_version(["nginx", "-v"], r"nginx/\S+")
        with nginx_target(tmp, pin) as (url, proc, argv):
            yield url, proc.pid, f"private nginx ({version}): {shlex.join(argv)}"
    elif args.target == "builtin":
        with builtin_target(pin) as (url, proc, argv):
            yield url, proc.pid, f"loadgen built-in target: {shlex.join(argv)}"
    else:
        yield args.target, None, f"external {args.target} (not started or pinned by this script)"


def main(argv: list[str] | None = None) -> int:
    """Start the target, run the rounds, print the note; exit 1 if a tool never ran."""
    args = parse_args(argv)
    PATH[0] = args.path or ("/api/health" if args.target == "builtin" else "/")
    pin = pinning_available()
    tools, skipped = available_tools()
    if args.tools:
        wanted = {t.strip() for t in args.tools.split(",")}
        tools = [t for t in tools if t.name in wanted]
    with tempfile.TemporaryDirectory(prefix="loadgen-cost-") as tmp_name:
        tmp = Path(tmp_name)
        scratch = tmp / "scratch"
        scratch.mkdir()
        with target(args, tmp, pin) as (url, server_pid, described):
            print(f"target {url}{PATH[0]}, {args.concurrency} connections, {args.duration}s runs "
                  f"(+{args.short}s short runs), {args.repeat} interleaved rounds", file=sys.stderr)
            benchmark(tools, url, server_pid, args, pin, scratch)
    rows = [figures(t) for t in tools]
    out = ["## loadgen client cost", ""]
    out += machine_lines(pin)
    if server_pid is None and pin:
        out[-1] = (f"pinning: each client on CPU {CLIENT_CPU} (taskset); the external server is "
                   "not pinned by this script")
    out.append(f"target:  {described}")
    out.append(f"load:    {args.concurrency} connections, {args.duration}s per run, GET {PATH[0]}, "
               f"{args.repeat} interleaved rounds, medians shown")
    out += [f"skipped: {s}" for s in skipped]
    out.append("")
    out += report(rows)
    out += ["", "us/req tree   = CPU of the client's whole process tree / requests (includes start-up)",
            (f"us/req steady = (CPU_{args.duration}s - CPU_{args.short}s) / (N_{args.duration}s - "
             f"N_{args.short}s): marginal cost, start-up cancelled" if args.short else
             "us/req steady = not measured (--short 0); ratios use us/req tree"),
            ("us/req worker = loadgen only: the worker process's own CPU during the run "
            "(results document) / requests"),
            "start-up CPU s = tree CPU minus steady cost x requests (imports, spawning, teardown)",
            "client/server CPU% = process CPU (user+sys) / wall time of the run",
            ("core0/core1 busy% = whole-core busy share from /proc/stat, incl. softirq "
            "(loopback TCP) that process CPU leaves out"),
            "cost vs loadgen = us/req steady / loadgen's; req/s vs loadgen likewise",
            "", "tools:"]
    out += [f"  {t.name:<8} {t.note}" for t in tools]
    out += ["", "commands:"]
    for t in tools:
        out += [f"  {c}" for c in t.commands]
    print("\n".join(out))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": machine_lines(pin), "target": described, "url": url, "path": PATH[0],
            "duration_s": args.duration, "short_s": args.short, "repeat": args.repeat,
            "concurrency": args.concurrency, "pinned": pin, "skipped": skipped, "tools": rows,
        }, indent=2))
    return 0 if all(t.long for t in tools) else 1


if __name__ == "__main__":
    sys.exit(main())
