"""Run the real ``loadgen`` command line in a subprocess and read what it wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    status: int
    stdout: str
    stderr: str
    doc: dict[str, Any] | None


def loadgen(*args: str, save: Path | None = None, timeout: float = 120,
            env: dict[str, str] | None = None) -> Run:
    """``python -m loadgen ARGS [--save SAVE]``; returns exit status, output and the JSON."""
    cmd = [sys.executable, "-m", "loadgen", *args]
    if save is not None:
        cmd += ["--save", str(save)]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env,
                          stdin=subprocess.DEVNULL)
    doc = orjson.loads(save.read_bytes()) if save is not None and save.exists() else None
    return Run(proc.returncode, proc.stdout, proc.stderr, doc)


def one_line_error(run: Run, status: int = 2) -> str:
    """Assert the contract for bad input: exit status, a single stderr line, no traceback."""
    assert run.status == status, (run.status, run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert lines[0].startswith("loadgen: ")
    return lines[0]
