"""Bad input: one line on stderr, exit status 2, nothing sent.

The option battery runs ``loadgen.cli.main`` in this process (``run_in_process``:
the same code as the command, without an interpreter start per case), still
against the real target, whose counters prove that nothing was sent.  The
other cases go through a real ``python -m loadgen`` subprocess, so the entry
point itself keeps its end-to-end check.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from helpers import loadgen, one_line_error, run_in_process


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("args,needle", [
    (["--bogus"], "no such option"),
    (["--requests", "0"], "--requests"),
    (["--requests", "-5"], "--requests"),
    (["--requests", "ten"], "--requests"),
    (["--concurrency", "0"], "--concurrency"),
    (["--workers", "0"], "--workers"),
    (["--duration", "0s"], "--duration"),
    (["--duration", "soon"], "--duration"),
    (["--timeout", "-1"], "--timeout"),
    (["--url", "ftp://127.0.0.1/"], "scheme"),
    (["--url", "http://127.0.0.1:99999"], "--url"),
    (["--url", "http://"], "no host"),
    (["--url", "localhost:5000"], "scheme"),
    (["--header", "no colon here"], "--header"),
    (["--header", "Bad Name: x"], "--header"),
    (["--method", "GE T"], "--method"),
    (["--data-file", "/nonexistent/body.json"], "--data-file"),
    (["--data", "x", "--data-file", "/etc/hostname"], "together"),
    (["--endpoint", ""], "--endpoint"),
])
def test_bad_option_is_one_line_exit_2(target_server, args: list[str], needle: str) -> None:
    target_server.reset()
    run = run_in_process("run", "--url", target_server.url, *args)
    line = one_line_error(run)
    assert needle.lower() in line.lower(), line
    assert target_server.stats()["requests"] == 0


def test_unreachable_target(tmp_path: Path) -> None:
    port = _closed_port()
    run = loadgen("run", "--url", f"http://127.0.0.1:{port}", save=tmp_path / "r.json")
    line = one_line_error(run)
    assert "cannot reach" in line
    assert run.doc is None


def test_unknown_host() -> None:
    line = one_line_error(loadgen("run", "--url", "http://no-such-host.invalid:5000"))
    assert "resolve" in line


def test_unknown_command() -> None:
    one_line_error(loadgen("attack"))
