"""Open-file limits: raised as far as allowed, and a run that cannot fit refused before load."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import loadgen, one_line_error
from rawservers import ManyServer

from loadgen.engine.limits import FD_OVERHEAD, raise_open_files


def _with_nofile(soft: int, hard: int):
    """A preexec_fn that starts loadgen under these RLIMIT_NOFILE limits (as prlimit would)."""
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return apply


def _hard_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def test_raise_open_files_goes_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if hard != resource.RLIM_INFINITY and hard > 64:
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        now = raise_open_files()
        assert now == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert now >= min(hard, 1 << 20) if hard != resource.RLIM_INFINITY else now > 64
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_connections_beyond_the_hard_limit_are_refused_before_any_load(target_server) -> None:
    if _hard_limit() < 256:
        pytest.skip("hard open-file limit already below the test's")
    target_server.reset()
    run = subprocess.run(
        [sys.executable, "-m", "loadgen", "run", "--url", target_server.url,
         "--concurrency", "1000", "--workers", "1", "--requests", "1000"],
        check=False, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        preexec_fn=_with_nofile(256, 256), env=_env())
    from helpers import Run

    line = one_line_error(Run(run.returncode, run.stdout, run.stderr, None))
    assert "open-file limit" in line and "1,000 connections" in line and "256" in line
    assert target_server.stats()["requests"] == 0


def test_low_soft_limit_is_raised_to_the_hard_one(target_server) -> None:
    """Soft 256, hard as the test has: 1500 connections in one worker need the raise."""
    if _hard_limit() < 1500 + FD_OVERHEAD:
        pytest.skip("hard open-file limit too low for 1500 connections")
    target_server.reset()
    run = subprocess.run(
        [sys.executable, "-m", "loadgen", "run", "--url", target_server.url, "--quiet",
         "--concurrency", "1500", "--workers", "1", "--requests", "3000"],
        check=False, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        preexec_fn=_with_nofile(256, _hard_limit()), env=_env())
    assert run.returncode == 0, run.stderr
    assert "Status codes: 200 × 3,000" in run.stdout
    assert target_server.stats()["requests"] == 3000


@pytest.mark.serial
def test_ten_thousand_connections(tmp_path: Path) -> None:
    """--concurrency 10000 over two workers against a server that holds them all at once."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 10_000 + 1024:   # the server's ends live in this process
        pytest.skip(f"hard open-file limit {hard} is too low for 10k connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        with ManyServer() as server:
            run = loadgen("run", "--url", server.url, "--concurrency", "10000", "--workers", "2",
                          "--requests", "20000", "--timeout", "20s", "--quiet",
                          save=tmp_path / "r.json")
            peak, served = server.peak, server.requests
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert run.status == 0, run.stderr
    summary = run.doc["summary"]
    assert summary["status_codes"] == {"200": 20000}, summary
    assert served == 20000
    assert peak >= 10000
    assert run.doc["generator"]["connections"] == 10000


def _env() -> dict[str, str]:
    import os

    from helpers import REPO

    return {**os.environ, "PYTHONPATH": str(REPO)}
