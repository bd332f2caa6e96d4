"""Capacity search against a server whose true capacity is known."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from helpers import loadgen, one_line_error, run_in_process
from rawservers import RawServer, limited


@pytest.mark.serial
def test_finds_known_capacity_within_15_percent(tmp_path: Path) -> None:
    slots, service_ms = 4, 20.0
    truth = slots / service_ms * 1000  # 200 req/s
    save, image = tmp_path / "cap.json", tmp_path / "cap.png"
    with RawServer(limited(slots, service_ms)) as server:
        run = loadgen("capacity", "--url", server.url, "--endpoint", "/", "--slo", "p99<100ms",
                      "--slo", "errors<1%", "--start-rate", "125", "--step-duration", "1500ms",
                      "--precision", "0.1", "--quiet", "--output-image", str(image),
                      # few connections: overload queues in loadgen, not in hundreds of
                      # server threads that would starve the generator on a 2-core box
                      "--concurrency", "8", "--max-connections", "16",
                      # one worker process per step (the split is not what this checks), and
                      # a start rate that reaches the bracket in five steps instead of seven
                      "--workers", "1", save=save, timeout=240)
    assert run.status == 0, run.stdout + run.stderr
    doc = orjson.loads(save.read_bytes())
    assert doc["schema"] == "loadgen-capacity/1" and doc["status"] == "complete"
    assert abs(doc["capacity_rps"] - truth) <= 0.15 * truth, doc["verdict"]
    assert any(not step["passed"] for step in doc["steps"])
    assert all(step["result"]["model"] == "open" for step in doc["steps"])
    assert "capacity" in run.stdout and "step  1" in run.stdout
    assert image.read_bytes()[:4] == b"\x89PNG"


def test_slo_failing_at_start_rate_exits_1(tmp_path: Path) -> None:
    with RawServer(limited(1, 50.0)) as server:
        run = loadgen("capacity", "--url", server.url, "--endpoint", "/", "--slo", "p99<10ms",
                      "--start-rate", "5", "--step-duration", "1s", "--quiet",
                      "--workers", "1")
    assert run.status == 1, run.stdout + run.stderr
    assert "failed already at --start-rate" in run.stdout


def test_capacity_bad_input(target_server) -> None:
    """In-process (``run_in_process``: the same cli.main); the target's counters prove
    that nothing was sent."""
    target_server.reset()
    assert "--slo" in one_line_error(run_in_process("capacity", "--url", target_server.url))
    one_line_error(run_in_process("capacity", "--url", target_server.url, "--slo", "p98<1ms"))
    one_line_error(run_in_process("capacity", "--url", target_server.url, "--slo", "p99<1ms",
                                  "--start-rate", "500", "--max-rate", "100"))
    one_line_error(run_in_process("capacity", "--url", target_server.url, "--slo", "p99<1ms",
                                  "--step-duration", "0s"))
    assert target_server.stats()["requests"] == 0
