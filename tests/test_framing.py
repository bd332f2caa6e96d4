"""HTTP/1.1 framing against servers that close, interleave 1xx answers or say too much.

Every server here is written in the test with raw sockets on 127.0.0.1 and keeps its own
count of the requests it *read*; loadgen's counts must equal it exactly:

- a request the server read and then dropped (nginx ``return 444``) is a ``read`` failure,
  never resent;
- a kept-alive connection the server closed while it was idle is replaced before the
  request is written: no failure, a ``reconnect``;
- 1xx interim responses (100 Continue, 102, 103 Early Hints) are skipped until the final
  one; ``101`` to a request that asked for no upgrade is a ``protocol`` failure;
- an answer sent before the server read the whole upload (418, then close) is counted;
- bytes after a complete response never pass for the next response.

The last test runs a private nginx, if one is installed, and compares with its access log.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import loadgen
from nginx import private_nginx
from rawservers import OK, RawServer, read_body, read_head, read_request, reset

Handler = Callable[[RawServer, socket.socket], None]


def summary_of(run) -> dict:
    assert run.status == 0, run.stderr
    assert "Traceback" not in run.stderr
    return run.doc["summary"]


def reconnects(run) -> int:
    return sum(w["reconnects"] for w in run.doc["workers"])


# --- the server drops a request it read ---------------------------------------------------


class Dropper:
    """Like nginx ``if ($connection_requests = 3) { return 444; }``: the 3rd request on
    each connection is read, then the connection is closed without an answer."""

    def __init__(self) -> None:
        self.dropped = 0

    def __call__(self, server: RawServer, conn: socket.socket) -> None:
        buffer = bytearray()
        for n in range(1, 4):
            head = read_head(conn, buffer)
            if head is None:
                return
            read_body(conn, buffer, head)
            server.count()
            if n == 3:
                with server.lock:
                    self.dropped += 1
                return   # RawServer closes it: a FIN, the request fully read
            conn.sendall(OK)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_request_read_then_dropped_is_a_read_failure_never_resent(tmp_path: Path,
                                                                  method: str) -> None:
    dropper = Dropper()
    with RawServer(dropper) as server:
        run = loadgen("run", "--url", server.url, "--requests", "90", "--concurrency", "3",
                      "--workers", "1", "--method", method, "--data", "x" * 100,
                      save=tmp_path / "r.json")
        read, dropped = server.requests, dropper.dropped
    summary = summary_of(run)
    assert summary["requests"] == read == 90
    assert dropped >= 30 - 3   # every 3rd on each of 3 connections
    assert summary["failures_by_kind"] == {"read": dropped}
    assert summary["status_codes"] == {"200": read - dropped}


# --- the server closes idle kept-alive connections -----------------------------------------


def idle_closer(idle_s: float, end: Callable[[socket.socket], None]) -> Handler:
    """Answers every request and ``end``s a connection idle for ``idle_s`` after a response
    (nginx's keepalive_timeout; a new connection waits for its first request, as nginx's
    client_header_timeout of 60 s lets it, so the pre-flight check sees no refusal)."""
    def handler(server: RawServer, conn: socket.socket) -> None:
        buffer = bytearray()
        while True:
            try:
                if not read_request(conn, buffer):
                    return
            except TimeoutError:
                end(conn)
                return
            server.count()
            conn.sendall(OK)
            conn.settimeout(idle_s)
    return handler


def fin(conn: socket.socket) -> None:
    conn.shutdown(socket.SHUT_RDWR)


@pytest.mark.serial   # a reconnect slowed by a busy machine lets a connection take two in a row
@pytest.mark.parametrize("end", [fin, reset], ids=["fin", "rst"])
def test_idle_connection_closed_by_the_server_is_replaced_before_the_write(tmp_path: Path,
                                                                          end) -> None:
    """The open model at 25 requests/s over 2 connections leaves each connection ~80 ms idle
    between requests; the server closes it after 10 ms, so every request finds it closed
    (one second of it is enough: each request is its own case)."""
    with RawServer(idle_closer(0.01, end)) as server:
        run = loadgen("run", "--url", server.url, "--rate", "25", "--duration", "1s",
                      "--concurrency", "2", "--workers", "1", save=tmp_path / "r.json")
        served = server.requests
    summary = summary_of(run)
    assert summary["failures_by_kind"] == {}
    assert summary["requests"] == summary["successes"] == served == 25
    # each request normally finds its connection closed; one sent within the 10 ms (a slow
    # reconnect let the other connection take two in a row) finds it open: fine too
    assert served // 2 <= reconnects(run) <= served


# --- the same over TLS: the check sees ciphertext, so it reads through the TLS layer ---------


@pytest.fixture(scope="module")
def tls_server_context(tmp_path_factory) -> ssl.SSLContext:
    """A self-signed certificate for 127.0.0.1 (the runs use --insecure)."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-keyout", str(key),
                    "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def close_notify(conn: socket.socket) -> None:
    """A TLS close: the close_notify alert (ciphertext the client must read), then FIN."""
    conn.unwrap().close()


@pytest.mark.parametrize("end", [fin, close_notify, reset], ids=["fin", "close-notify", "rst"])
def test_idle_tls_connection_closed_by_the_server_is_replaced(tls_server_context,
                                                              tmp_path: Path, end) -> None:
    """As above, at 10/s: a TLS reconnect takes a handshake, which a loaded machine slows."""
    with RawServer(idle_closer(0.01, end), tls=tls_server_context) as server:
        run = loadgen("run", "--url", server.url, "--rate", "10", "--duration", "1s",
                      "--concurrency", "2", "--workers", "1", "--insecure",
                      save=tmp_path / "r.json")
        served = server.requests
    summary = summary_of(run)
    assert summary["failures_by_kind"] == {}
    assert summary["requests"] == summary["successes"] == served == 10
    assert served // 2 <= reconnects(run) <= served


def test_tls_request_read_then_dropped_is_a_read_failure(tls_server_context,
                                                         tmp_path: Path) -> None:
    dropper = Dropper()
    with RawServer(dropper, tls=tls_server_context) as server:
        run = loadgen("run", "--url", server.url, "--requests", "60", "--concurrency", "2",
                      "--workers", "1", "--insecure", save=tmp_path / "r.json")
        read, dropped = server.requests, dropper.dropped
    summary = summary_of(run)
    assert summary["requests"] == read == 60 and dropped >= 20 - 2
    assert summary["failures_by_kind"] == {"read": dropped}
    assert summary["status_codes"] == {"200": read - dropped}


# --- 1xx interim responses ----------------------------------------------------------------

FINAL_200 = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"


def answers(*parts: bytes) -> Handler:
    """Answers each request with ``parts``, each in its own write (segment)."""
    def handler(server: RawServer, conn: socket.socket) -> None:
        buffer = bytearray()
        while (head := read_head(conn, buffer)) is not None:
            read_body(conn, buffer, head)
            server.count()
            for part in parts:
                conn.sendall(part)
    return handler


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
PROCESSING = b"HTTP/1.1 102 Processing\r\n\r\n"
EARLY_HINTS = (b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n"
               b"Link: </app.js>; rel=preload\r\n\r\n")


INTERIM = {
    "100-apart": (CONTINUE, FINAL_200),
    "100-together": (CONTINUE + FINAL_200,),
    "103-apart": (EARLY_HINTS, FINAL_200),
    "103-together": (EARLY_HINTS + FINAL_200,),
    "102-103-100-split": (PROCESSING + EARLY_HINTS, CONTINUE + FINAL_200[:20], FINAL_200[20:]),
}


class InterimAnswers:
    """``answers`` for every ``INTERIM`` case at once: ``/<case>`` is answered with that
    case's parts, and the requests read are counted per case, so one run covers them all."""

    def __init__(self) -> None:
        self.served = dict.fromkeys(INTERIM, 0)

    def __call__(self, server: RawServer, conn: socket.socket) -> None:
        buffer = bytearray()
        while (head := read_head(conn, buffer)) is not None:
            read_body(conn, buffer, head)
            case = head.split(b" ", 2)[1].decode().lstrip("/")
            with server.lock:
                self.served[case] += 1
            server.count()
            for part in INTERIM[case]:
                conn.sendall(part)


@pytest.fixture(scope="module")
def interim_runs(tmp_path_factory) -> dict[str, tuple[Any, dict[str, int]]]:
    """Per method, one run of 60 requests to each ``INTERIM`` case (its own endpoint, so
    its own counts) and what the server read per case: one run instead of five."""
    found = {}
    for method in ("POST", "HEAD"):
        answers_all = InterimAnswers()
        with RawServer(answers_all) as server:
            run = loadgen("run", "--url", server.url,
                          *(a for case in INTERIM for a in ("--endpoint", f"/{case}")),
                          "--requests", str(60 * len(INTERIM)), "--concurrency", "3",
                          "--workers", "1", "--method", method,
                          "--header", "Expect: 100-continue",
                          *(("--data", "payload") if method == "POST" else ()),
                          save=tmp_path_factory.mktemp("interim") / "r.json")
        found[method] = (run, answers_all.served)
    return found


@pytest.mark.parametrize("case", list(INTERIM))
@pytest.mark.parametrize("method", ["POST", "HEAD"])
def test_interim_responses_are_skipped_until_the_final_one(interim_runs, case: str,
                                                           method: str) -> None:
    run, served_by_case = interim_runs[method]
    summary_of(run)
    summary = next(e for e in run.doc["endpoints"] if e["endpoint"] == f"{method} /{case}")
    served = served_by_case[case]
    assert summary["status_codes"] == {"200": 60}
    assert summary["failures_by_kind"] == {}
    assert served == 60


def test_101_without_an_upgrade_request_is_a_protocol_failure(tmp_path: Path) -> None:
    switching = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    with RawServer(answers(switching + b"\x81\x05hello")) as server:
        run = loadgen("run", "--url", server.url, "--requests", "12", "--concurrency", "2",
                      "--workers", "1", save=tmp_path / "r.json")
        served = server.requests
    summary = summary_of(run)
    assert summary["failures_by_kind"] == {"protocol": 12} and served == 12
    assert summary["status_codes"] == {}


# --- an early answer to an upload -------------------------------------------------------------

TEAPOT = b"HTTP/1.1 418 I'm a teapot\r\nContent-Length: 6\r\nConnection: close\r\n\r\nteapot"


def early_answer(server: RawServer, conn: socket.socket) -> None:
    """Reads the head of an upload, answers 418 and closes with the body unread (an RST)."""
    if read_head(conn, bytearray()) is not None:
        server.count()
        conn.sendall(TEAPOT)


def test_early_answer_to_an_upload_is_counted(tmp_path: Path) -> None:
    body = tmp_path / "body.bin"
    body.write_bytes(b"u" * (5 << 20))
    with RawServer(early_answer) as server:
        run = loadgen("run", "--url", server.url, "--requests", "20", "--concurrency", "2",
                      "--workers", "1", "--method", "POST", "--data-file", str(body),
                      save=tmp_path / "r.json")
        served = server.requests
    summary = summary_of(run)
    assert summary["status_codes"] == {"418": 20} and served == 20, summary
    assert summary["failures_by_kind"] == {}


# --- bytes after a complete response ----------------------------------------------------------

LEFTOVER = b"HTTP/1.1 299 Leftover\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.parametrize("parts,kept", [
    ((OK + b"x",), False),            # a stray byte in the same segment
    ((OK + LEFTOVER,), False),        # a whole second response nobody asked for
    ((OK + b"HTTP/1.1 2",), False),   # the start of one
    ((OK, LEFTOVER), False),          # a second response, in a later segment
    ((OK + b"\r\n",), True),          # an empty line: llhttp skips it, the connection stays
], ids=["byte", "response", "partial", "later", "crlf"])
def test_bytes_after_a_response_never_pass_for_the_next_one(tmp_path: Path, parts,
                                                            kept: bool) -> None:
    """Open model, 2 connections at 40/s: the later segment arrives while the connection is
    idle, so the check before the next write finds it.  A connection out of step is
    replaced: one connection per request (+1: the preflight's)."""
    with RawServer(answers(*parts)) as server:
        run = loadgen("run", "--url", server.url, "--rate", "40", "--duration", "1s",
                      "--concurrency", "2", "--workers", "1", save=tmp_path / "r.json")
        served, connections = server.requests, server.connections
    summary = summary_of(run)
    assert summary["status_codes"] == {"200": 40} and served == 40, summary
    assert summary["failures_by_kind"] == {}
    assert connections == (2 + 1 if kept else 40 + 1), connections


# --- a real nginx ---------------------------------------------------------------------------

NGINX_CONF = """\
daemon off;
master_process off;   # one process, no switch to another user: it writes to tmp_path
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    log_format counts '$connection $connection_requests $request_method $status';
    access_log {dir}/access.log counts;
    keepalive_requests 1000;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            if ($connection_requests = 3) {{ return 444; }}
            return 200 "ok";
        }}
    }}
}}
"""


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with private_nginx(tmp_path / "nginx", NGINX_CONF) as found:
        yield found


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_nginx_return_444_matches_its_access_log(nginx, tmp_path: Path, method: str) -> None:
    url, log = nginx
    run = loadgen("run", "--url", url, "--endpoint", "/x", "--requests", "150",
                  "--concurrency", "3", "--workers", "1", "--method", method,
                  "--data", "payload", save=tmp_path / "r.json")
    summary = summary_of(run)
    lines = [line.split() for line in log.read_text().splitlines()]
    statuses = [status for _, _, m, status in lines if m == method]
    assert len(statuses) == len(lines)
    assert summary["requests"] == len(statuses) == 150
    assert summary["status_codes"] == {"200": statuses.count("200")}
    assert summary["failures_by_kind"] == {"read": statuses.count("444")}
    assert statuses.count("444") >= 50 - 3
    assert os.path.getsize(log) > 0
