"""Fault injection: real loadgen processes against servers that misbehave on purpose.

Each target fault must be counted under its error kind, the run must end on
time (``--duration`` + ``--timeout`` + about a second) and the results must be
saved.  Process faults (a worker killed or stopped, the coordinator killed,
Ctrl-C twice) must lose nothing that was already merged and leave no process
behind.  Every run is 127.0.0.1 only and a few seconds long; waits are on
events (the results file saying "running", a pidfd), each with a bound.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import start_target_server, stop_target_server
from helpers import (
    REPO,
    Run,
    alive,
    children,
    finish,
    loadgen,
    start_loadgen,
    stop,
    wait_for_status,
    wait_gone,
)
from rawservers import (
    RawServer,
    closes_every,
    endless_head,
    huge_body,
    malformed,
    resets,
    resets_every,
    silent,
    trickle,
    truncated,
)

#: Timing-sensitive: a run that must end within its duration plus the timeout, or per-second
#: counts, run alone after the parallel tests.  The others here (a killed worker, Ctrl-C, a
#: trickle within its timeout, a 1 GiB body) hold on a busy machine and run in parallel.
timed = pytest.mark.serial

DURATION_S, TIMEOUT_S = 1.5, 0.5
TIMED = ("--duration", f"{DURATION_S}s", "--timeout", f"{TIMEOUT_S * 1000:.0f}ms",
         "--concurrency", "4")
TWO_WORKERS = ("--workers", "2")


def timed_run(url: str, save: Path, *extra: str, during: object = None,
              workers: tuple[str, ...] = TWO_WORKERS) -> tuple[Run, float]:
    """A ``--duration`` run; returns it and the seconds from its first "running" save to its exit.

    The first save comes one second into the run, so "ends within duration + timeout
    + ~1 s of the start" is: at most duration + timeout after that save.
    ``during()``, if given, is called right after that first save.  Two worker processes
    unless ``workers`` says otherwise (the coordinator waits for both to end on time).
    """
    proc = start_loadgen("run", "--url", url, *TIMED, *workers, *extra, "--save", str(save))
    try:
        wait_for_status(save, "running")
        running_at = time.monotonic()
        if during is not None:
            during()
        run = finish(proc, save, timeout=30)
        return run, time.monotonic() - running_at
    finally:
        stop(proc)


def assert_on_time(run: Run, after_running: float) -> None:
    assert after_running <= DURATION_S + TIMEOUT_S, after_running
    assert run.doc["summary"]["duration_s"] <= DURATION_S + TIMEOUT_S + 0.25, run.doc["summary"]


def assert_counts_add_up(doc: dict) -> None:
    summary = doc["summary"]
    assert summary["requests"] == (sum(summary["status_codes"].values())
                                   + sum(summary["failures_by_kind"].values()))
    assert summary["requests"] == sum(w["requests"] for w in doc["workers"])


# --- the target misbehaves --------------------------------------------------------------------


@timed
@pytest.mark.parametrize("handler,kind", [
    (resets, "read"),             # RST after reading the request
    (malformed, "protocol"),      # Content-Length: nope
    (truncated, "read"),          # promises 100 bytes, sends 10, closes
    (silent, "timeout"),          # reads, never answers
    (trickle(0.1), "timeout"),    # one byte every 100 ms: 4.5 s for a response
    (endless_head, "protocol"),   # header lines forever: cut at 1 MiB
], ids=["reset", "malformed", "truncated", "silent", "trickle", "endless-head"])
def test_target_fault_is_counted_by_kind_and_the_run_ends_on_time(tmp_path: Path, handler,
                                                                  kind: str) -> None:
    # one worker: each fault is counted in the worker that met it, and ending on time with
    # two workers is checked by the tests below
    with RawServer(handler) as server:
        run, after_running = timed_run(server.url, tmp_path / "r.json",
                                       workers=("--workers", "1"))
    assert run.status == 0, run.stderr
    doc = run.doc
    assert doc["status"] == "complete"
    assert set(doc["summary"]["failures_by_kind"]) == {kind}, doc["summary"]
    assert doc["summary"]["successes"] == 0 and doc["summary"]["requests"] > 0
    assert_counts_add_up(doc)
    assert kind in run.stdout
    assert_on_time(run, after_running)


@timed
@pytest.mark.parametrize("handler,model", [(closes_every(3), ()),
                                           (resets_every(3), ("--rate", "40"))],
                         ids=["closes-every-3", "resets-every-3"])
def test_kept_alive_connections_dropped_every_n_requests(tmp_path: Path, handler,
                                                         model: tuple[str, ...]) -> None:
    """The server drops (FIN or RST) each connection after 3 answers, while it is idle:
    the close is found before the next request is written, the connection is replaced
    (``reconnects``, not a failure) and the counts on both sides agree exactly.

    The FIN rides with the 3rd answer (see ``closes_every``), so the closed loop sees it
    in time; an RST cannot, so that run is open-model at 40/s (~100 ms between requests
    on a connection).  Nothing is resent: a request the server read and dropped is a
    ``read`` failure (tests/test_framing.py)."""
    with RawServer(handler) as server:
        run, after_running = timed_run(server.url, tmp_path / "r.json", *model)
        served = server.requests
    assert run.status == 0, run.stderr
    summary = run.doc["summary"]
    assert summary["failures_by_kind"] == {} and summary["requests"] == summary["successes"] == served
    assert sum(w["reconnects"] for w in run.doc["workers"]) >= served // 3 - 8
    assert_on_time(run, after_running)


def test_trickled_response_within_the_timeout_succeeds(tmp_path: Path) -> None:
    with RawServer(trickle(0.01)) as server:   # 45 bytes: ~0.45 s a response
        run = loadgen("run", "--url", server.url, "--requests", "4", "--concurrency", "2",
                      "--timeout", "5s", "--workers", "1", save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    summary = run.doc["summary"]
    assert summary["status_codes"] == {"200": 4}
    assert summary["latency_ms"]["min"] >= 400


@timed
def test_killed_target_becomes_connect_errors(tmp_path: Path) -> None:
    target = start_target_server(tmp_path / "target.log")
    try:
        def kill() -> None:
            target.proc.kill()
            target.proc.wait(5)

        run, after_running = timed_run(target.url, tmp_path / "r.json", during=kill)
    finally:
        stop_target_server(target)
    assert run.status == 0, run.stderr
    summary = run.doc["summary"]
    assert summary["successes"] > 0                # before the kill
    assert summary["failures_by_kind"].get("connect", 0) > 0  # refused afterwards
    assert set(summary["failures_by_kind"]) <= {"connect", "read", "write"}, summary["failures_by_kind"]
    assert_counts_add_up(run.doc)
    assert_on_time(run, after_running)


@timed
@pytest.mark.parametrize("model", [(), ("--rate", "300")], ids=["closed", "open"])
def test_stalled_target_times_out_and_the_run_still_ends_on_time(tmp_path: Path,
                                                                 model: tuple[str, ...]) -> None:
    """SIGSTOP the server for the rest of the run.  In the open model the requests that
    queued behind the stall time out from their intended send time, so none is left
    to keep the run going."""
    target = start_target_server(tmp_path / "target.log")
    try:
        run, after_running = timed_run(
            target.url, tmp_path / "r.json", *model,
            during=lambda: os.kill(target.proc.pid, signal.SIGSTOP))
    finally:
        os.kill(target.proc.pid, signal.SIGCONT)
        stop_target_server(target)
    assert run.status == 0, run.stderr
    summary = run.doc["summary"]
    assert summary["successes"] > 0 and summary["failures_by_kind"].get("timeout", 0) > 0, summary
    assert_counts_add_up(run.doc)
    assert_on_time(run, after_running)


def test_one_gigabyte_body_is_drained_in_bounded_memory(tmp_path: Path) -> None:
    """Peak RSS of the whole loadgen process tree (coordinator and workers), measured by a
    wrapper process whose only children they are: RUSAGE_CHILDREN's ru_maxrss is the
    largest of them."""
    size = 1 << 30
    wrapper = ("import resource, subprocess, sys\n"
               "code = subprocess.run(sys.argv[1:]).returncode\n"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
               "sys.exit(code)\n")
    with RawServer(huge_body(size)) as server:
        save = tmp_path / "r.json"
        proc = subprocess.run(
            [sys.executable, "-c", wrapper, sys.executable, "-m", "loadgen", "run", "--url",
             server.url, "--requests", "1", "--workers", "1", "--concurrency", "1",
             "--timeout", "60s", "--quiet", "--save", str(save)],
            check=False, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    peak_kib = int(proc.stdout.strip().splitlines()[-1])
    assert peak_kib < 200 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"
    import orjson

    summary = orjson.loads(save.read_bytes())["summary"]
    assert summary["status_codes"] == {"200": 1}
    assert summary["bytes_in"] > size


# --- a worker dies or hangs -----------------------------------------------------------------


def _worker_pids(proc: subprocess.Popen[str]) -> list[int]:
    """The coordinator's worker processes (not multiprocessing's resource tracker)."""
    pids = []
    for pid in children(proc.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            pids.append(pid)
    return pids


def test_killed_worker_is_named_and_the_others_data_kept(target_server, tmp_path: Path) -> None:
    save = tmp_path / "r.json"
    proc = start_loadgen("run", "--url", target_server.url, "--rate", "200", "--duration", "3s",
                         "--workers", "2", "--concurrency", "4", "--save", str(save))
    try:
        wait_for_status(save, "running")
        victim = _worker_pids(proc)[-1]
        os.kill(victim, signal.SIGKILL)
        # The coordinator notices at once (its pipe ends); the next per-second save shows it.
        noticed = wait_for_status(save, "running", limit_s=2.0,
                                  accept=lambda d: any(w["lost"] for w in d["workers"]))
        run = finish(proc, save)
    finally:
        stop(proc)
    assert [w["lost"] for w in noticed["workers"] if w["lost"]] == ["killed by SIGKILL"]
    assert run.status == 3, run.stderr
    doc = run.doc
    assert doc["status"] == "failed"
    lost = [w for w in doc["workers"] if w["lost"]]
    assert len(lost) == 1 and lost[0]["lost"] == "killed by SIGKILL"
    problem = f"worker {lost[0]['index']} (pid {victim}) lost: killed by SIGKILL"
    assert doc["problems"] == [problem]
    assert problem in run.stderr
    # the dead worker's delivered second is kept, the survivor ran the whole 3 s (300 requests)
    assert lost[0]["requests"] >= 90
    survivor = next(w for w in doc["workers"] if not w["lost"])
    assert survivor["requests"] == 300
    assert doc["summary"]["requests"] == lost[0]["requests"] + 300
    assert doc["summary"]["failures_by_kind"] == {}
    assert_counts_add_up(doc)


@timed
def test_silent_worker_is_killed_after_five_seconds(target_server, tmp_path: Path) -> None:
    save = tmp_path / "r.json"
    proc = start_loadgen("run", "--url", target_server.url, "--rate", "100", "--duration", "2s",
                         "--workers", "2", "--concurrency", "2", "--save", str(save))
    victim = 0
    try:
        wait_for_status(save, "running")
        victim = _worker_pids(proc)[-1]
        os.kill(victim, signal.SIGSTOP)
        stopped_at = time.monotonic()
        run = finish(proc, save, timeout=30)
        ended_after = time.monotonic() - stopped_at
    finally:
        if victim and alive(victim):
            os.kill(victim, signal.SIGKILL)
        stop(proc)
    assert run.status == 3, run.stderr
    assert 4.5 <= ended_after <= 7.5, ended_after
    assert not alive(victim)
    doc = run.doc
    assert doc["status"] == "failed"
    assert re.fullmatch(rf"worker \d \(pid {victim}\) lost: silent for more than 5s; killed",
                        doc["problems"][0]), doc["problems"]
    assert [w["lost"] for w in doc["workers"] if w["lost"]] == ["silent for more than 5s; killed"]
    assert_counts_add_up(doc)


# --- the coordinator dies or is interrupted ---------------------------------------------------


@timed
def test_killed_coordinator_leaves_no_process_and_a_complete_document(target_server,
                                                                      tmp_path: Path) -> None:
    save = tmp_path / "r.json"
    proc = start_loadgen("run", "--url", target_server.url, "--rate", "200", "--duration", "30s",
                         "--workers", "2", "--save", str(save))
    try:
        wait_for_status(save, "running", accept=lambda d: len(d["intervals"]) >= 2)
        spawned = children(proc.pid)   # the workers and multiprocessing's resource tracker
        assert len(_worker_pids(proc)) == 2
        proc.kill()
        proc.wait(5)
        survivors = wait_gone(spawned, limit_s=2.0)
    finally:
        stop(proc)
        for pid in children(proc.pid):
            os.kill(pid, signal.SIGKILL)
    assert survivors == [], survivors
    import orjson

    doc = orjson.loads(save.read_bytes())
    assert doc["status"] == "running"
    seconds = doc["intervals"]
    assert len(seconds) >= 2 and all(s["requests"] == 200 for s in seconds), seconds
    assert doc["summary"]["requests"] == sum(s["requests"] for s in seconds)


def test_second_ctrl_c_stops_at_once_and_still_saves(tmp_path: Path) -> None:
    """Against a server that never answers, the first Ctrl-C would wait out the 30 s
    timeout of the requests in flight; the second stops now, keeping what was merged."""
    save = tmp_path / "r.json"
    with RawServer(silent) as server:
        proc = start_loadgen("run", "--url", server.url, "--duration", "60s", "--timeout", "30s",
                             "--workers", "2", "--concurrency", "2", "--save", str(save))
        try:
            first = wait_for_status(save, "running")
            proc.send_signal(signal.SIGINT)
            # the coordinator has run its handler once the next second is merged
            wait_for_status(save, "running",
                            accept=lambda d: len(d["intervals"]) > len(first["intervals"]))
            proc.send_signal(signal.SIGINT)
            interrupted_at = time.monotonic()
            run = finish(proc, save, timeout=20)
            stopped_after = time.monotonic() - interrupted_at
        finally:
            stop(proc)
    assert run.status == 130, run.stderr
    assert stopped_after < 5, stopped_after
    doc = run.doc
    assert doc["status"] == "interrupted"
    assert len(doc["problems"]) == 1 and "second Ctrl-C" in doc["problems"][0]
    assert doc["problems"][0] in run.stderr
    assert "Traceback" not in run.stderr
    assert "All endpoints" in run.stdout     # the report still prints
    assert doc["summary"]["requests"] == 0   # nothing was answered, nothing invented


def test_first_ctrl_c_lets_requests_in_flight_time_out(tmp_path: Path) -> None:
    save = tmp_path / "r.json"
    with RawServer(silent) as server:
        proc = start_loadgen("run", "--url", server.url, "--duration", "60s", "--timeout", "1s",
                             "--workers", "1", "--concurrency", "3", "--save", str(save))
        try:
            wait_for_status(save, "running")
            proc.send_signal(signal.SIGINT)
            run = finish(proc, save, timeout=20)
        finally:
            stop(proc)
    assert run.status == 130, run.stderr
    doc = run.doc
    assert doc["status"] == "interrupted" and doc["problems"] == []
    # the three requests in flight when Ctrl-C came were waited for and counted
    assert doc["summary"]["failures_by_kind"].get("timeout", 0) >= 3
    assert_counts_add_up(doc)
