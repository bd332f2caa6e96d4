"""The test helpers' waits (``helpers.poll_until``, ``helpers.wait_for_status``), on files
written by a thread here and on a process that exits: every end-to-end test that
waits for a run to be under way relies on them returning the right document, on
time, and failing loudly instead of hanging."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest
from helpers import poll_until, wait_for_status


def test_poll_until_returns_the_first_truthy_value() -> None:
    calls = iter([None, 0, "", "found", "later"])
    assert poll_until(lambda: next(calls), 5.0, every_s=0.001) == "found"


def test_poll_until_gives_up_after_its_limit() -> None:
    began = time.monotonic()
    assert poll_until(lambda: None, 0.05, every_s=0.01) is None
    assert time.monotonic() - began >= 0.05


def test_wait_for_status_sees_the_document_once_it_is_written(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    written = threading.Event()

    def write() -> None:
        path.write_bytes(b'{"status": "run')                   # half-written: not JSON yet
        path.write_bytes(orjson.dumps({"status": "starting", "intervals": []}))
        path.write_bytes(orjson.dumps({"status": "running", "intervals": []}))
        path.write_bytes(orjson.dumps({"status": "running", "intervals": [{"t": 1.0}]}))
        written.set()

    writer = threading.Thread(target=write)
    writer.start()
    doc = wait_for_status(path, "running", limit_s=10.0, accept=lambda d: bool(d["intervals"]))
    writer.join()
    assert written.is_set()
    assert doc == {"status": "running", "intervals": [{"t": 1.0}]}


def test_wait_for_status_fails_when_the_status_never_comes(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(orjson.dumps({"status": "complete"}))
    with pytest.raises(AssertionError, match="never reached status 'running'"):
        wait_for_status(path, "running", limit_s=0.05)


def test_wait_for_status_stops_waiting_when_the_run_has_exited(tmp_path: Path) -> None:
    """A run that exited writes no more: say so at once, not after the whole limit."""
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait(timeout=30)
    began = time.monotonic()
    with pytest.raises(AssertionError, match="exited with 3"):
        wait_for_status(tmp_path / "never.json", "running", limit_s=30.0, proc=proc)
    assert time.monotonic() - began < 10.0


def test_wait_for_status_returns_the_last_document_of_a_run_that_exited(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(orjson.dumps({"status": "running", "intervals": [{"t": 1.0}]}))
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    assert wait_for_status(path, "running", limit_s=5.0, proc=proc)["intervals"]
