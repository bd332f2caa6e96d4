"""The open model (--rate, --stage): schedule accuracy, coordinated omission, live results."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from helpers import REPO, loadgen, one_line_error, run_in_process, wait_for_status

from loadgen.engine.schedule import Schedule, Stage, build_schedule
from loadgen.output import progress


def test_constant_rate_schedule_is_absolute() -> None:
    schedule = build_schedule(200.0, [], 2.0)
    assert schedule.time_of(0) == 0.0
    assert schedule.time_of(199) == pytest.approx(0.995)
    assert schedule.time_of(399) == pytest.approx(1.995)
    assert schedule.time_of(400) is None


def test_stages_ramp_linearly_and_count_exactly() -> None:
    schedule = build_schedule(None, [(10.0, 100.0), (10.0, 100.0), (5.0, 0.0)], None)
    # 0->100 over 10 s allows 500, then 1000 flat, then 250 ramping down
    assert schedule.time_of(499) < 10.0 <= schedule.time_of(500)
    assert schedule.time_of(1500) == pytest.approx(20.0)
    assert schedule.time_of(1749) < 25.0
    assert schedule.time_of(1750) is None
    # in the ramp up, the rate at time t is 10*t: 125 requests are due at t = 5 s
    assert schedule.time_of(125) == pytest.approx(5.0)
    times = [schedule.time_of(k) for k in range(1750)]
    assert times == sorted(times)


def test_open_ended_rate() -> None:
    schedule = Schedule((Stage(1.0, 10.0, 10.0),), open_ended_rate=50.0)
    assert schedule.time_of(10) == pytest.approx(1.0)
    assert schedule.time_of(60) == pytest.approx(2.0)


def test_describe_is_what_the_document_records() -> None:
    """The report reads a schedule only through describe(): stages, then the open-ended rate."""
    schedule = Schedule((Stage(1.0, 0.0, 10.0),), open_ended_rate=50.0)
    assert schedule.describe() == [
        {"duration_s": 1.0, "start_rate": 0.0, "end_rate": 10.0},
        {"duration_s": None, "start_rate": 50.0, "end_rate": 50.0}]
    assert build_schedule(100.0, [], 2.0).describe() == [
        {"duration_s": 2.0, "start_rate": 100.0, "end_rate": 100.0}]


@pytest.mark.parametrize("args,needle", [
    (["--rate", "0", "--duration", "1s"], "--rate"),
    (["--rate", "-3", "--duration", "1s"], "--rate"),
    (["--rate", "100"], "--duration or --requests"),
    (["--stage", "10s"], "DURATION:RATE"),
    (["--stage", "abc:100"], "--stage"),
    (["--stage", "10s:fast"], "rate"),
    (["--stage", "0s:100"], "--stage"),
    (["--stage", "10s:-1"], "--stage"),
    (["--stage", "5s:0"], "nothing would be sent"),
    (["--rate", "10", "--duration", "0s"], "--duration"),
    (["--max-connections", "5"], "--rate"),
])
def test_bad_open_model_input(target_server, args: list[str], needle: str) -> None:
    target_server.reset()
    line = one_line_error(run_in_process("run", "--url", target_server.url, *args))
    assert needle in line
    assert target_server.stats()["requests"] == 0


@pytest.mark.serial
def test_achieved_rate_within_one_percent(target_server, tmp_path: Path) -> None:
    target_server.reset()
    run = loadgen("run", "--url", target_server.url, "--rate", "400", "--duration", "3s",
                  "--concurrency", "8", save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    doc = run.doc
    assert doc["model"] == "open" and not doc["generator_limited"], doc["generator"]
    assert doc["summary"]["requests"] == 1200 == target_server.stats()["requests"]
    per_second = [i["requests"] for i in doc["intervals"]]
    # three whole seconds; a response landing just after the 3 s mark makes a tiny 4th
    assert all(abs(n - 400) <= 4 for n in per_second[:3]), per_second
    assert sum(per_second[3:]) <= 4, per_second
    lag = doc["generator"]["lateness_ms"]   # measured at the send (its size is bench's business)
    assert 0 <= lag["p50"] <= lag["p99"] <= lag["max"]
    assert doc["summary"]["service_time_ms"]["p50"] <= doc["summary"]["latency_ms"]["p50"]
    assert set(doc["service_histograms"]) == {"GET /api/health"}


def test_requests_bound_an_open_run_exactly(target_server, tmp_path: Path) -> None:
    target_server.reset()
    run = loadgen("run", "--url", target_server.url, "--rate", "1000", "--requests", "333",
                  "--workers", "2", "--endpoint", "/api/health", "--endpoint", "/bytes/3",
                  save=tmp_path / "r.json")
    assert run.doc["summary"]["requests"] == 333 == target_server.stats()["requests"]
    assert [e["requests"] for e in run.doc["endpoints"]] == [167, 166]


@pytest.mark.serial
def test_stages_shape_the_rate(target_server, tmp_path: Path) -> None:
    run = loadgen("run", "--url", target_server.url, "--stage", "1s:200", "--stage", "1s:200",
                  "--stage", "1s:0", save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    assert run.doc["summary"]["requests"] == 100 + 200 + 100
    per_second = [i["requests"] for i in run.doc["intervals"]]
    assert per_second == [100, 200, 100], run.doc["intervals"]


@pytest.mark.serial
def test_connections_grow_up_to_max_when_all_are_busy(target_server, tmp_path: Path) -> None:
    run = loadgen("run", "--url", target_server.url, "--endpoint", "/delay/50", "--rate", "100",
                  "--duration", "1s", "--concurrency", "1", "--max-connections", "20",
                  "--workers", "1", save=tmp_path / "r.json")
    doc = run.doc
    assert 4 <= doc["generator"]["connections"] <= 20
    assert doc["summary"]["latency_ms"]["p99"] < 200  # no long queue once connections grew


@pytest.mark.serial
def test_stall_shows_in_corrected_latency_not_in_service_time(target_server, tmp_path: Path) -> None:
    """A 1 s server pause during a 1000 req/s run: users would have waited ~1 s."""
    stalled = subprocess.Popen([sys.executable, "-m", "loadgen.target.server", "--host",
                                "127.0.0.1", "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        url = stalled.stdout.readline().split()[-1]
        save = tmp_path / "r.json"
        cmd = [sys.executable, "-m", "loadgen", "run", "--url", url, "--rate", "1000",
               "--duration", "4s", "--concurrency", "20", "--max-connections", "20",
               "--save", str(save)]
        runner = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONPATH": str(REPO)})
        wait_for_status(save, "running")   # the run is under way: pause the server for 1 s
        os.kill(stalled.pid, signal.SIGSTOP)
        time.sleep(1.0)   # the stall's length: the fault itself, not a wait for anything
        os.kill(stalled.pid, signal.SIGCONT)
        _out, err = runner.communicate(timeout=60)
        assert runner.returncode == 0, err
    finally:
        os.kill(stalled.pid, signal.SIGCONT)
        stalled.terminate()
        stalled.wait(5)
        stalled.stdout.close()
    doc = orjson.loads(save.read_bytes())
    corrected, service = doc["summary"]["latency_ms"], doc["summary"]["service_time_ms"]
    # ~1000 requests were due during the stall: the worst waited ~1 s, the median of
    # those ~0.5 s; with ~4000 requests in all, p99 lands deep inside the stall.
    assert 700 <= corrected["p99"] <= 1300, corrected
    assert 900 <= corrected["max"] <= 1500, corrected
    # each request's own send-to-response time: only the ~20 in flight saw the stall
    assert service["p99"] < 100, service
    assert doc["summary"]["requests"] == 4000
    assert not doc["generator_limited"], doc["generator"]


def test_killed_coordinator_leaves_a_complete_document(target_server, tmp_path: Path) -> None:
    save = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "-m", "loadgen", "run", "--url", target_server.url,
                             "--rate", "200", "--duration", "30s", "--workers", "1",
                             "--save", str(save)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        first = wait_for_status(save, "running")
        proc.kill()
        proc.wait(10)
    finally:
        proc.kill()
    doc = orjson.loads(save.read_bytes())
    assert doc["status"] == "running"
    assert doc["summary"]["requests"] >= first["summary"]["requests"] > 0
    assert abs(doc["intervals"][0]["requests"] - 200) <= 2  # a response may cross the boundary


def test_ctrl_c_stops_gracefully(target_server, tmp_path: Path) -> None:
    save = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "-m", "loadgen", "run", "--url", target_server.url,
                             "--rate", "200", "--duration", "30s", "--workers", "1",
                             "--save", str(save)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    wait_for_status(save, "running")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    doc = orjson.loads(save.read_bytes())
    assert doc["status"] == "interrupted"
    assert 0 < doc["summary"]["requests"] < 6000
    assert doc["summary"]["failures_by_kind"] == {}
    assert "All endpoints" in out


def test_progress_goes_to_stderr_unless_quiet(target_server, monkeypatch) -> None:
    # stderr is not a terminal here, so the plain line comes every PLAIN_EVERY_S (5 s; its
    # cadence is test_progress_unit's business): every second instead, as the CLI runs in
    # this process, so a 2 s run shows it instead of a 6 s one
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 1.0)
    noisy = loadgen("run", "--url", target_server.url, "--rate", "100", "--duration", "2s",
                    "--workers", "1")
    assert "req/s" in noisy.stderr and "p99" in noisy.stderr
    quiet = loadgen("run", "--url", target_server.url, "--rate", "100", "--duration", "1s",
                    "--workers", "1", "--quiet")
    assert quiet.stderr == ""
