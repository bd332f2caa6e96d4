"""Run the real ``loadgen`` command line in a subprocess and read what it wrote."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import orjson

REPO = Path(__file__).resolve().parent.parent
#: The worker-loop harness: a monkey-patched interpreter of its own (tests/workerharness.py).
HARNESS = Path(__file__).resolve().parent / "workerharness.py"


@dataclass
class Run:
    status: int
    stdout: str
    stderr: str
    doc: dict[str, Any] | None


def loadgen(*args: str, save: Path | None = None, timeout: float = 120,
            env: dict[str, str] | None = None, subprocess_: bool = False) -> Run:
    """``loadgen ARGS [--save SAVE]``: exit status, output and the JSON it saved.

    It runs ``loadgen.cli.main`` in this process (``run_in_process``): the coordinator
    is the same code either way, its worker processes are spawned as in real use, and
    an interpreter start plus the CLI's imports (~0.35 s of CPU) are saved per run.  A
    cluster run, or ``subprocess_=True``, runs ``python -m loadgen`` instead (the
    entry point itself is covered by the tests that start it in the background).
    ``timeout`` bounds the run either way.
    """
    full = [*args, *(["--save", str(save)] if save is not None else [])]
    if subprocess_ or "--cluster" in args:
        cmd = [sys.executable, "-m", "loadgen", *full]
        full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout,
                              env=full_env, stdin=subprocess.DEVNULL)
        run = Run(proc.returncode, proc.stdout, proc.stderr, None)
    else:
        run = run_in_process(*full, env=env, timeout=timeout)
    run.doc = orjson.loads(save.read_bytes()) if save is not None and save.exists() else None
    return run


def one_line_error(run: Run, status: int = 2) -> str:
    """Assert the contract for bad input: exit status, a single stderr line, no traceback."""
    assert run.status == status, (run.status, run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert lines[0].startswith("loadgen: ")
    return lines[0]


# --- runs in the background, for faults injected while they are under way -----------------


def start_loadgen(*args: str, env: dict[str, str] | None = None, **popen: Any
                  ) -> subprocess.Popen[str]:
    """``python -m loadgen ARGS`` in the background, stdout and stderr piped (text)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    popen.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen([sys.executable, "-m", "loadgen", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full_env, **popen)


def finish(proc: subprocess.Popen[str], save: Path | None, timeout: float = 60) -> Run:
    """Wait for a background run and read what it wrote."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"loadgen still running after {timeout}s: {err}") from None
    doc = orjson.loads(save.read_bytes()) if save is not None and save.exists() else None
    return Run(proc.returncode, out, err, doc)


def poll_until(check: Callable[[], Any], limit_s: float, every_s: float = 0.02) -> Any:
    """``check()``'s first truthy value, checked every ``every_s`` until ``limit_s`` passes
    (then None).

    For conditions nothing notifies about (a file another process rewrites, a process
    that is not our child, a log line): the condition itself is the event, so it is
    checked again and again; ``time.sleep`` between checks is the polling interval,
    never a guess at how long something takes.
    """
    deadline = time.monotonic() + limit_s
    while True:
        found = check()
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(every_s)


def wait_for_status(path: Path, status: str, limit_s: float = 30.0, accept: Any = None,
                    proc: subprocess.Popen[Any] | None = None) -> dict[str, Any]:
    """The results file a run rewrites every second, once its status is ``status`` (the
    file is the event).

    ``accept(doc)``, if given, must also hold.  With ``proc``, stop waiting as soon as that
    run has exited (it will not write again).
    """
    def check() -> dict[str, Any] | None:
        try:
            doc = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        if doc["status"] == status and (accept is None or accept(doc)):
            return doc
        return None

    def check_or_exited() -> dict[str, Any] | bool | None:
        return check() or (proc is not None and proc.poll() is not None)

    found = poll_until(check_or_exited, limit_s)
    if isinstance(found, dict):
        return found
    found = check()   # the run may have written its last document just before exiting
    if found is not None:
        return found
    raise AssertionError(f"{path} never reached status {status!r} in {limit_s}s"
                         + (f" (the run exited with {proc.returncode})"
                            if proc is not None and proc.poll() is not None else ""))


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()   # after "pid (comm) "
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    """Running or stopped; False once it exited (a zombie no longer runs anything)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def wait_gone(pids: list[int], limit_s: float) -> list[int]:
    """Wait (on pidfds where the kernel has them) until every pid has exited; the survivors."""
    deadline = time.monotonic() + limit_s
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except (OSError, AttributeError):   # gone already, or no pidfd: poll below
            fd = None
        if fd is not None:
            with os.fdopen(fd, "rb", buffering=0) as handle:
                select.select([handle], [], [], max(0.0, deadline - time.monotonic()))
    poll_until(lambda: not any(alive(p) for p in pids), max(0.0, deadline - time.monotonic()))
    return [p for p in pids if alive(p)]


def stop(proc: subprocess.Popen[str]) -> None:
    """Kill a background run if it is still going, and close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=10)


def run_in_process(*args: str, stdin: str = "", env: dict[str, str] | None = None,
                   timeout: float = 120) -> Run:
    """``loadgen ARGS`` through ``loadgen.cli.main`` in this process (no interpreter start).

    stdin, stdout, stderr, argv and the environment (plus ``env``) are this call's own and
    restored after it.  A run still going after ``timeout`` seconds is interrupted (SIGALRM
    raises in the coordinator, whose cleanup kills its workers) and fails the test.  An
    exception other than SystemExit escapes to the test, as a traceback would fail it.
    """
    import contextlib
    import io
    import signal
    from unittest import mock

    from loadgen.cli import main

    def overran(signum: int, frame: Any) -> None:
        raise AssertionError(f"loadgen {' '.join(args)} still running after {timeout}s")

    out, err = io.StringIO(), io.StringIO()
    status: Any = None
    previous = signal.signal(signal.SIGALRM, overran)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with mock.patch.object(sys, "argv", ["loadgen", *args]), \
                mock.patch.object(sys, "stdin", io.StringIO(stdin)), \
                mock.patch.dict(os.environ, env or {}), \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as exc:
                status = 0 if exc.code is None else exc.code
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return Run(status, out.getvalue(), err.getvalue(), None)


class RefusingPort:
    """A port on 127.0.0.1 that refuses connections for as long as this is open: bound
    (so nothing else can take it) but not listening.  Valid input aimed at it ends in
    "cannot reach", exit 2, before any load."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_harness(scenarios: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every scenario through ``tests/workerharness.py``, in one interpreter (each with its
    own scripted server, workers and pipes); the results by scenario name."""
    proc = subprocess.run([sys.executable, str(HARNESS)], input=orjson.dumps(scenarios).decode(),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    result: dict[str, dict[str, Any]] = orjson.loads(lines[0])
    return result
