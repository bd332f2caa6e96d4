"""``--user-stage``: a closed-model user ramp the server can see in its connections.

One 5 s run against the built-in target (0 -> 6 users over 2 s, 6 for 2 s, down to 0
over 1 s, two workers) checks the per-second ``users`` series against the schedule, the
server's peak of concurrent connections, and exact counts; bad input is one line.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TargetServer
from helpers import loadgen, one_line_error, poll_until

from loadgen.engine.population import build_user_schedule

STAGES = ("2s:6", "2s:6", "1s:0")


def expected_users(second: int) -> float:
    """The schedule's mean users over second ``second`` (0-based), integrated finely."""
    schedule = build_user_schedule(0, [(2.0, 6), (2.0, 6), (1.0, 0)])
    steps = 1000
    return sum(schedule.users_at(second + (j + 0.5) / steps) for j in range(steps)) / steps


@pytest.mark.serial
def test_ramp_up_hold_down(target_server: TargetServer, tmp_path: Path) -> None:
    # Connections of earlier tests may still be closing on the server's side: the peak
    # restarts from the connections open at the reset (this query's own one among them).
    assert poll_until(lambda: target_server.stats()["connections"]["open"] == 1, 10)
    target_server.reset()
    save = tmp_path / "ramp.json"
    args = [a for stage in STAGES for a in ("--user-stage", stage)]
    run = loadgen("run", "--url", target_server.url, "--workers", "2", "--quiet", *args,
                  save=save, timeout=60)
    assert run.status == 0, run.stderr
    doc = run.doc
    assert doc is not None
    config = doc["config"]
    assert config["user_stages"] == [
        {"duration_s": 2.0, "start_users": 0, "end_users": 6},
        {"duration_s": 2.0, "start_users": 6, "end_users": 6},
        {"duration_s": 1.0, "start_users": 6, "end_users": 0}]
    assert (config["concurrency"], config["duration_s"], config["model"]) == (6, 5.0, "closed")
    header = next(line for line in run.stdout.splitlines() if line.startswith("Run "))
    assert header.endswith("| users 0→6→6→0"), header

    # the shape, not the timing: each whole second within one user of the schedule's mean
    whole = [i for i in doc["intervals"] if not i["partial"]]
    users = [i["users"] for i in whole]
    assert len(users) >= 5, doc["intervals"]
    for second, actual in enumerate(users[:5]):
        assert abs(actual - expected_users(second)) <= 1.0, (second, users)
    assert users[0] < users[1] < users[2] and users[3] > users[4], users

    # every user had its own connection, opened when it started and closed when it left:
    # the server saw at most 6 at once (the pre-flight check's connection had closed
    # long before the first user started), and accepted one per user besides the
    # pre-flight check's and this query's
    server = target_server.stats()
    reconnects = sum(w["reconnects"] for w in doc["workers"])
    assert server["connections"]["peak"] == 6, server["connections"]
    assert server["connections"]["accepted"] == 6 + reconnects + 2, server["connections"]
    assert [w["connections"] for w in doc["workers"]] == [3, 3]

    summary = doc["summary"]
    assert summary["requests"] == summary["successes"] + summary["failures"]
    assert summary["requests"] == server["requests"] > 0
    assert sum(i["requests"] for i in doc["intervals"]) == summary["requests"]


def test_requests_bound_a_ramp(target_server: TargetServer, tmp_path: Path) -> None:
    """--requests ends a ramp early, with exactly that many requests."""
    target_server.reset()
    run = loadgen("run", "--url", target_server.url, "--workers", "2", "--quiet",
                  "--concurrency", "2", "--user-stage", "20s:4", "--requests", "300",
                  save=tmp_path / "bounded.json", timeout=60)
    assert run.status == 0, run.stderr
    assert run.doc is not None
    assert run.doc["summary"]["requests"] == 300 == target_server.stats()["requests"]
    assert run.doc["config"]["user_stages"][0]["start_users"] == 2   # from --concurrency
    assert run.doc["summary"]["duration_s"] < 20


@pytest.mark.parametrize("args, words", [
    (("--user-stage", "10s:-1"), "whole number"),
    (("--user-stage", "10s:5", "--rate", "100"), "cannot be combined with --rate"),
    (("--user-stage", "10s:5", "--stage", "10s:100"), "cannot be combined with --rate"),
    (("--user-stage", "5"), "DURATION:USERS"),
    (("--user-stage", "10s:0"), "nothing would be sent"),
])
def test_bad_user_stages(target_server: TargetServer, args: tuple[str, ...],
                         words: str) -> None:
    """One line, exit 2, nothing sent."""
    target_server.reset()
    line = one_line_error(loadgen("run", "--url", target_server.url, *args))
    assert words in line and "--user-stage" in line, line
    assert target_server.stats()["requests"] == 0
