"""A private nginx for the tests that compare loadgen with a server it did not write.

Each test module keeps its own configuration (a template with ``{dir}`` for the
folder nginx writes to and ``{port}``); this module runs it: a free port, no
daemon, readiness by connecting (nginx cannot announce it), a graceful stop by
pid that flushes the access log.  Without nginx installed the test is skipped.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import poll_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nginx_binary() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


@contextmanager
def private_nginx(work: Path, conf_template: str) -> Iterator[tuple[str, Path]]:
    """Run nginx with ``conf_template`` in ``work``; yields (base URL, access log path)."""
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed")
    work.mkdir(exist_ok=True)
    port = free_port()
    conf = work / "nginx.conf"
    conf.write_text(conf_template.format(dir=work, port=port))
    proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(work), "-e",
                             str(work / "error.log")], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_listening(port, proc)
        yield f"http://127.0.0.1:{port}", work / "access.log"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)   # graceful: flushes the access log
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Connect until nginx accepts (or has exited): bounded, on the event itself."""
    def check() -> bool:
        if proc.poll() is not None:
            stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"nginx exited: {stderr}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    if not poll_until(check, 15.0, every_s=0.01):
        raise RuntimeError("nginx did not listen within 15 s")
