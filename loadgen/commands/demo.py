"""``loadgen demo``: the built-in target on a free loopback port, and a run against it.

A newcomer's first command has to work with nothing else running, so the
target runs as a child process (it monkey-patches gevent; this process must
not) and is stopped whatever happens to the run.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

from loadgen.errors import BrokenRun

_BANNER = "loadgen target listening on "


@contextlib.contextmanager
def builtin_target(host: str = "127.0.0.1") -> Iterator[str]:
    """Start ``python -m loadgen.target.server`` on port 0 and yield its base URL."""
    proc = subprocess.Popen([sys.executable, "-m", "loadgen.target.server", "--host", host,
                             "--port", "0"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith(_BANNER):
            raise BrokenRun(f"the built-in target did not start: {line.strip()!r}")
        yield line[len(_BANNER):].strip()
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
