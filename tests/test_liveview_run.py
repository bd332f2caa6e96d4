"""The live view in a real run: loadgen's stderr on a pseudo-terminal, against the built-in
target on 127.0.0.1; the view appears, is taken away, and the report follows on stdout."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from helpers import REPO


def read_until_exit(proc: subprocess.Popen[bytes], master: int, limit_s: float) -> bytes:
    """Everything written to the terminal until the process ends (bounded by ``limit_s``)."""
    seen = b""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:   # EIO: every writer of the terminal is gone
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    return seen


@pytest.mark.serial   # counts the frames drawn in a 4 s run: alone, not beside other loads
def test_a_run_on_a_terminal_shows_the_live_table_then_the_report(
        target_server: object, tmp_path: Path) -> None:
    url = target_server.url   # type: ignore[attr-defined]
    save = tmp_path / "live.json"
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "run", "--url", url, "--endpoint", "/api/health",
         "--endpoint", "/status/503", "--stage", "1s:40", "--stage", "3s:40", "--workers", "1",
         "--save", str(save)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"}, start_new_session=True)
    os.close(slave)
    try:
        screen = read_until_exit(proc, master, 60).decode(errors="replace")
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert proc.returncode == 0, screen
    # the live table: its bar, its header, each endpoint, the failures by status
    assert "━" in screen and "req/s" in screen and "p99 ms" in screen
    assert "GET /api/health" in screen and "GET /status/503" in screen
    assert "All endpoints" in screen and "503: " in screen
    assert "target 40.0 req/s | achieved " in screen and "generator: " in screen
    # redrawn in place each second (a busy machine may merge a second late: at least two
    # of the three whole seconds), then taken away: the cursor is back, the lines erased
    assert len(set(re.findall(r"loadgen  ([123])s / 4s", screen))) >= 2
    tail = screen[screen.rindex("\x1b[?25h"):]
    assert "\x1b[2K" in tail and "All endpoints" not in tail
    assert "Run complete" not in screen   # the report is on stdout, after the view
    report = out.decode()
    assert "Run complete" in report and "All endpoints" in report
    doc = orjson.loads(save.read_bytes())
    assert doc["status"] == "complete" and doc["summary"]["requests"] > 0
