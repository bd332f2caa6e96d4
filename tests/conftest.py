"""Shared fixtures."""

from __future__ import annotations

import http.client
import json
import os
import selectors
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from tlscerts import Missing, Pki, make_pki

REPO_ROOT = Path(__file__).resolve().parent.parent

# loadgen honours HTTP_PROXY / HTTPS_PROXY / NO_PROXY as curl does.  A machine that sets them
# (a CI runner behind a proxy) would send every test's load to that proxy, so they are
# dropped for the whole session, here at import, before any test or subprocess starts;
# subprocesses inherit the clean environment.  Proxy tests set them explicitly (env=).
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
for _name in [name for name in os.environ if name.lower() in PROXY_VARIABLES]:
    del os.environ[_name]
# No deadline on hypothesis examples: a deadline is a timing assertion, and the suite runs
# its tests in parallel (pytest-xdist) on a 2-core machine, where an example may wait for CPU.
settings.register_profile("loadgen", deadline=None)
settings.load_profile("loadgen")


def pytest_configure(config: pytest.Config) -> None:
    """Compile loadgen's modules once, before any test starts a process that imports them.

    The tests run loadgen from this checkout, and every run spawns worker processes (and
    some a coordinator) that import it afresh.  Where PYTHONDONTWRITEBYTECODE is set, as
    on some CI images, no process would write its bytecode, so each one compiled the
    modules from source again: 0.2-0.3 s of CPU per run.  compileall writes the gitignored
    ``__pycache__`` regardless.  In the controller only (xdist workers have ``workerinput``).
    """
    if not hasattr(config, "workerinput"):
        import compileall

        compileall.compile_dir(str(REPO_ROOT / "loadgen"), quiet=1)

TARGET_READY_PREFIX = "loadgen target listening on "
TARGET_START_TIMEOUT_S = 15.0


@dataclass
class TargetServer:
    """A running ``python -m loadgen.target.server`` subprocess."""

    proc: subprocess.Popen[bytes]
    host: str
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _call(self, method: str, path: str) -> dict[str, Any]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request(method, path)
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200, (response.status, body)
            return json.loads(body)
        finally:
            conn.close()

    def stats(self) -> dict[str, Any]:
        """The server's exact counters (``/__stats``): ``{"requests", "paths", "methods"}``,
        plus ``logins``, ``unauthorized``, ``shop``, ``orders``, ``ids_seen``, ``ids_untracked``
        and ``connections`` (see README, ``loadgen serve``)."""
        return self._call("GET", "/__stats")

    def reset(self) -> None:
        """Zero the server's counters (``POST /__reset``, itself not counted)."""
        self._call("POST", "/__reset")


def start_target_server(log_path: Path, host: str = "127.0.0.1", args: Sequence[str] = (),
                        module: str = "loadgen.target.server") -> TargetServer:
    """Start the target on a free port; return once it has announced its port.

    ``args`` go before ``--host`` (e.g. ``("--token-ttl", "1")``); ``module`` "loadgen" with
    ``args`` ``("serve", ...)`` starts it through the CLI instead.

    Readiness is the announcement line itself (printed after bind/listen), so
    there is no polling or sleeping; the selector only bounds the wait in case
    the server hangs before printing.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args, "--host", host, "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=REPO_ROOT,
            env=env,
        )
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout=TARGET_START_TIMEOUT_S)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith(TARGET_READY_PREFIX):
        proc.kill()
        proc.wait()
        raise RuntimeError(
            f"target server did not start: stdout={line!r} stderr={log_path.read_text()!r}"
        )
    port = int(line.strip().rsplit(":", 1)[1])
    return TargetServer(proc=proc, host=host, port=port, log_path=log_path)


def stop_target_server(server: TargetServer) -> None:
    """Terminate (then, if needed, kill) the server process."""
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()
    if server.proc.stdout is not None:
        server.proc.stdout.close()


@pytest.fixture(scope="session")
def target_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TargetServer]:
    """One built-in target server for the whole session, on 127.0.0.1 and a free port.

    Yields an object with ``.url``, ``.port``, ``.stats()`` and ``.reset()``.
    Tests that check exact counts should call ``.reset()`` first.
    """
    server = start_target_server(tmp_path_factory.mktemp("target") / "server.log")
    try:
        yield server
    finally:
        stop_target_server(server)


@pytest.fixture(scope="module")
def short_ttl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TargetServer]:
    """A built-in target whose login tokens live 1 s (``--token-ttl 1``), for one module."""
    server = start_target_server(tmp_path_factory.mktemp("ttl") / "server.log",
                                 args=("--token-ttl", "1"))
    try:
        yield server
    finally:
        stop_target_server(server)


@pytest.fixture(scope="session")
def good_results(target_server: TargetServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real results document (open model, two endpoints, 2 s), written once per session."""
    path = tmp_path_factory.mktemp("results") / "good.json"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([sys.executable, "-m", "loadgen", "run", "--url", target_server.url,
                    "--endpoint", "/api/health", "--endpoint", "/status/503", "--rate", "100",
                    "--duration", "2s", "--quiet", "--save", str(path)],
                   check=True, capture_output=True, timeout=60, env=env,
                   stdin=subprocess.DEVNULL)
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A private CA with a server certificate for 127.0.0.1 and a client certificate, made
    once per module (``cryptography`` from the test extra, else the openssl command)."""
    try:
        return make_pki(tmp_path_factory.mktemp("pki"))
    except Missing as exc:
        pytest.skip(str(exc))
