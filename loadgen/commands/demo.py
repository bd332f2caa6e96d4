"""``loadgen demo``: the built-in target on a free loopback port, and a run against it.

A newcomer's first command has to work with nothing else running, so the
target runs as a child process (it monkey-patches gevent; this process must
not) and is stopped whatever happens to the run.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import click

from loadgen.commands.inputs import run_inputs
from loadgen.config.settings import Settings
from loadgen.config.stages import StageSpec
from loadgen.errors import BrokenRun
from loadgen.output.files import is_stdout

_BANNER = "loadgen target listening on "
#: The seed's endpoints: a GET, a GET with a larger body, a POST.
DEMO_ENDPOINTS = ("/api/health", "/api/dataset/summary", "/api/dataset/transform")
#: Long enough for the time series to mean something; short enough for a first command.
DEMO_DURATION_S = 9.0
#: The rate the ramp reaches: modest, so any machine keeps it (the generator verdict says so).
DEMO_RATE = 400.0


def demo_stages(duration_s: float, rate: float) -> tuple[StageSpec, ...]:
    """The demo's open-model schedule: up to ``rate`` over the first third, then a hold.

    A run of a fraction of a second draws every time series as one dot; a ramp of a
    few seconds shows the latency and throughput panels (and the live view) moving.
    """
    ramp = duration_s / 3
    return (StageSpec(ramp, rate), StageSpec(duration_s - ramp, rate))


def demo_command(run_defaults: Mapping[str, Any], requests: int | None, concurrency: int,
                 save: str, output_image: str, duration_s: float = DEMO_DURATION_S,
                 rate: float = DEMO_RATE) -> int:
    """A ``loadgen run`` (every option at its default, ``run_defaults``) of the seed's
    endpoints against the built-in target, ramping up to ``rate``; its exit status.
    ``requests``: stop after that many (None: when the stages end).  ``run_defaults``
    carries ``html``: the demo writes its HTML report too."""
    from loadgen.commands.run import run_session

    with builtin_target() as url:
        click.echo(f"Built-in target at {url}", err=is_stdout(save))   # stdout: the JSON alone
        demo = Settings(url=url, requests=requests, concurrency=concurrency,
                        stages=demo_stages(duration_s, rate),
                        endpoints=DEMO_ENDPOINTS, save=save, visualize=True,
                        output_image=output_image,
                        no_proxy=True)   # its own target on loopback: never a proxy's business
        return run_session(*run_inputs(run_defaults, demo))


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
