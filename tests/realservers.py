"""Start and stop real HTTP servers from the test extra (gunicorn, uvicorn) on 127.0.0.1.

The test binds the listening socket itself, on port 0, and hands it over (gunicorn
``--bind fd://N``, uvicorn ``--fd N``): the port is known before the server runs and
nothing can take it meanwhile.  Readiness is then one request to ``/__ready``: the
kernel queues the connection in the socket's backlog until the server accepts it, so
the probe simply waits for the server -- no polling, no sleep.  The test closes its own
copy of the socket first, so a server that dies on start closes the last one and the
probe fails at once instead of waiting out its timeout.

The servers run tests/realapps.py, which writes its record of every request to a file;
their access logs go to files too.  Stopping is by the server's pid: SIGTERM, then
SIGKILL if it has not exited within a few seconds.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import poll_until

TESTS = Path(__file__).resolve().parent
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


@dataclass
class Served:
    """A running server: its process, address and the files it writes."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    scheme: str
    record_path: Path     # realapps' record: one JSON line per request, written before the answer
    access_log: Path      # the server's own access log
    error_log: Path
    probe_context: ssl.SSLContext | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def records(self, tag: str) -> list[dict[str, Any]]:
        """What the app saw of the requests under ``/<tag>/``."""
        try:
            lines = self.record_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        found = [json.loads(line) for line in lines]
        return [r for r in found if r["path"].startswith(f"/{tag}/")]

    def access_lines(self, tag: str, at_least: int, limit_s: float = 10.0) -> list[str]:
        """The access-log lines of requests under ``/<tag>/``, once there are ``at_least``.

        A server may write its access-log line after the response has gone out (gunicorn
        does), so the last lines can lag loadgen's exit by a moment: the file is read again
        until the count is reached (the lines are the event) or ``limit_s`` passes, and
        whatever is there then is returned for the test to compare.
        """
        def check() -> list[str] | None:
            lines = [line for line in _read_lines(self.access_log) if f" /{tag}/" in line]
            return lines if len(lines) >= at_least else None

        found = poll_until(check, limit_s)
        return found if found is not None else [
            line for line in _read_lines(self.access_log) if f" /{tag}/" in line]

    def stop(self) -> None:
        stop_process(self.proc)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM by pid, then SIGKILL after a bounded wait."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)


def _listener() -> socket.socket:
    """127.0.0.1, port 0, with TCP_NODELAY, which Linux copies to every accepted connection.

    gunicorn sets it on its listeners the same way.  uvicorn's ``--fd`` takes the socket
    for an AF_UNIX one, so asyncio does not set TCP_NODELAY on the connections it
    accepts: without the listener's, each response written in two parts (head, then
    body) waits out the client's delayed ACK, 40 ms a request -- not how uvicorn
    serves when it binds the port itself.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _launch(name: str, argv: list[str], sock: socket.socket, folder: Path, *,
            stdout: Path, stderr: Path, record_path: Path, access_log: Path, scheme: str,
            probe_context: ssl.SSLContext | None) -> Served:
    env = {**os.environ, "REALAPP_RECORD": str(record_path), "PYTHONUNBUFFERED": "1"}
    port = sock.getsockname()[1]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                cwd=folder, env=env, pass_fds=(sock.fileno(),))
    sock.close()   # the server holds the only copy now: if it dies, connections are refused
    served = Served(name, proc, port, scheme, record_path, access_log, stderr, probe_context)
    try:
        _probe(served)
    except BaseException:
        stop_process(proc)
        raise
    return served


def _probe(served: Served) -> None:
    """One GET /__ready, which waits in the backlog until the server accepts it."""
    if served.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", served.port, timeout=START_TIMEOUT_S, context=served.probe_context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=START_TIMEOUT_S)
    try:
        conn.request("GET", "/__ready")
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{served.name}: /__ready answered {response.status}")
    except (OSError, http.client.HTTPException) as exc:
        raise RuntimeError(f"{served.name} did not start ({exc!r}); exit status "
                           f"{served.proc.poll()}; its log: "
                           f"{served.error_log.read_text(errors='replace')[-2000:]}") from None
    finally:
        conn.close()


def start_gunicorn(folder: Path, worker: str = "gthread", threads: int = 4) -> Served:
    """gunicorn running realapps.wsgi with one worker process.

    ``sync`` answers one request per connection and closes it; ``gthread`` keeps
    connections alive.  The access log records method, path, query, status, response
    bytes and Host (``%({host}i)s``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    sock = _listener()
    access = folder / "access.log"
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"fd://{sock.fileno()}",
            "--workers", "1", "--worker-class", worker, "--threads", str(threads),
            "--keep-alive", "30", "--timeout", "60", "--graceful-timeout", "2",
            "--pythonpath", str(TESTS), "--no-control-socket",
            "--access-logfile", str(access),
            "--access-logformat", "%(m)s %(U)s %(q)s %(s)s %(B)s %({host}i)s",
            "--error-logfile", str(folder / "error.log"), "--log-level", "warning",
            "realapps:wsgi"]
    return _launch(f"gunicorn ({worker})", argv, sock, folder, stdout=folder / "stdout.log",
                   stderr=folder / "stderr.log", record_path=folder / "record.jsonl",
                   access_log=access, scheme="http", probe_context=None)


def start_uvicorn(folder: Path, http: str = "httptools", tls: dict[str, str] | None = None,
                  probe_context: ssl.SSLContext | None = None) -> Served:
    """uvicorn running realapps.asgi, its access log (stdout) in ``access.log``.

    ``tls`` maps uvicorn's own option names (``ssl-certfile``, ``ssl-keyfile``,
    ``ssl-ca-certs``, ``ssl-cert-reqs``) to values; ``probe_context`` is what the
    readiness probe trusts and shows.
    """
    folder.mkdir(parents=True, exist_ok=True)
    sock = _listener()
    tls_args = [arg for name, value in (tls or {}).items() for arg in (f"--{name}", value)]
    argv = [sys.executable, "-m", "uvicorn", "--fd", str(sock.fileno()), "--http", http,
            "--app-dir", str(TESTS), "--no-use-colors", "--log-level", "info",
            "--lifespan", "off", "--timeout-keep-alive", "30", *tls_args, "realapps:asgi"]
    return _launch(f"uvicorn ({http})", argv, sock, folder, stdout=folder / "access.log",
                   stderr=folder / "stderr.log", record_path=folder / "record.jsonl",
                   access_log=folder / "access.log", scheme="https" if tls else "http",
                   probe_context=probe_context)
