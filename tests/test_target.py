"""The built-in target server, exercised over real sockets from a non-gevent process.

The server runs as a subprocess (``target_server`` fixture in conftest.py);
this process only uses ``http.client`` and raw sockets, and never imports or
monkey-patches gevent.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from conftest import REPO_ROOT, TargetServer, start_target_server, stop_target_server

HOST = "127.0.0.1"


def request(
    server: TargetServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def get_json(server: TargetServer, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    status, _, body = request(server, method, path, **kwargs)
    return status, json.loads(body)


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes and read until the server closes (the caller ends with Connection: close)."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def login(server: TargetServer, username: str, password: str) -> str:
    status, doc = get_json(
        server,
        "POST",
        "/api/auth/login",
        body=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status == 200, doc
    return doc["access_token"]


# -- API routes -------------------------------------------------------------


def test_health(target_server: TargetServer) -> None:
    status, headers, body = request(target_server, "GET", "/api/health")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"status": "ok"}


def test_health_rejects_other_methods(target_server: TargetServer) -> None:
    status, headers, _ = request(target_server, "DELETE", "/api/health")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"


def test_dataset_summary(target_server: TargetServer) -> None:
    status, headers, body = request(target_server, "GET", "/api/dataset/summary")
    assert status == 200
    assert int(headers["Content-Length"]) == len(body)
    doc = json.loads(body)
    assert doc["dataset"] and doc["rows"] > 0 and isinstance(doc["columns"], list)


@pytest.mark.parametrize(("username", "password", "role"), [("user", "user123", "user"),
                                                             ("admin", "admin123", "admin")])
def test_login_issues_a_jwt(target_server: TargetServer, username: str, password: str,
                            role: str) -> None:
    status, doc = get_json(
        target_server, "POST", "/api/auth/login",
        body=json.dumps({"username": username, "password": password}).encode(),
    )
    assert status == 200
    assert doc["token_type"] == "bearer"
    header = jwt.get_unverified_header(doc["access_token"])
    claims = jwt.decode(doc["access_token"], options={"verify_signature": False})
    assert header["alg"] == "HS256"
    assert claims["sub"] == username and claims["role"] == role
    assert 3500 < claims["exp"] - time.time() <= 3601


@pytest.mark.parametrize(("body", "status"), [
    (b'{"username": "admin", "password": "wrong"}', 401),
    (b'{"username": "nobody", "password": "admin123"}', 401),
    (b'{"username": "user", "password": "admin123"}', 401),
    (b'{"username": "admin", "password": "p\xc3\xa4ss"}', 401),
    (b'{"username": "admin"', 400),
    (b"not json", 400),
    (b"", 400),
    (b"[1, 2]", 400),
    (b'{"username": "admin"}', 400),
    (b'{"username": "admin", "password": 123}', 400),
])
def test_login_failures(target_server: TargetServer, body: bytes, status: int) -> None:
    got, doc = get_json(target_server, "POST", "/api/auth/login", body=body)
    assert got == status
    assert "detail" in doc


def test_login_is_post_only(target_server: TargetServer) -> None:
    status, headers, _ = request(target_server, "GET", "/api/auth/login")
    assert status == 405 and headers["Allow"] == "POST"


def test_transcript_needs_a_token(target_server: TargetServer) -> None:
    path = "/api/analysis/transcript"
    assert request(target_server, "GET", path)[0] == 401
    for auth in ("Bearer", "Bearer ", "Basic abc", "Bearer not.a.jwt", "Bearer garbage"):
        status, headers, _ = request(target_server, "GET", path, headers={"Authorization": auth})
        assert status == 401, auth
        assert headers["WWW-Authenticate"] == "Bearer"


def test_transcript_rejects_foreign_and_expired_tokens(target_server: TargetServer) -> None:
    path = "/api/analysis/transcript"
    other_key = "a-different-secret-that-is-long-enough-for-hs256!"
    forged = jwt.encode({"sub": "admin", "role": "admin", "exp": int(time.time()) + 60},
                        other_key, algorithm="HS256")
    status, _, _ = request(target_server, "GET", path, headers={"Authorization": f"Bearer {forged}"})
    assert status == 401
    # A real token's signature with tampered claims is also rejected.
    token = login(target_server, "user", "user123")
    header_b64, _, signature = token.split(".")
    tampered_claims = jwt.utils.base64url_encode(
        json.dumps({"sub": "user", "role": "admin", "exp": int(time.time()) + 60}).encode()
    ).decode()
    tampered = f"{header_b64}.{tampered_claims}.{signature}"
    status, _, _ = request(target_server, "GET", path,
                           headers={"Authorization": f"Bearer {tampered}"})
    assert status == 401


def test_transcript_is_admin_only(target_server: TargetServer) -> None:
    path = "/api/analysis/transcript"
    user_token = login(target_server, "user", "user123")
    status, doc = get_json(target_server, "GET", path,
                           headers={"Authorization": f"Bearer {user_token}"})
    assert status == 403 and "detail" in doc

    admin_token = login(target_server, "admin", "admin123")
    conn = http.client.HTTPConnection(HOST, target_server.port, timeout=10)
    try:
        # Repeated use of one token (served from the server's token cache).
        for _ in range(50):
            conn.request("GET", path, headers={"Authorization": f"bearer {admin_token}"})
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200
        assert json.loads(body)["transcript_id"]
        # A cached admin token does not leak into other requests.
        conn.request("GET", path, headers={"Authorization": f"Bearer {user_token}"})
        response = conn.getresponse()
        response.read()
        assert response.status == 403
    finally:
        conn.close()


def test_transform_post_json(target_server: TargetServer) -> None:
    body = json.dumps({"text": "hello big world"}).encode()
    status, doc = get_json(target_server, "POST", "/api/dataset/transform", body=body)
    assert status == 200
    assert doc == {"method": "POST", "received_bytes": len(body),
                   "transformed": "HELLO BIG WORLD", "word_count": 3}


def test_transform_post_arbitrary_and_large_bodies(target_server: TargetServer) -> None:
    for body in (b"\x00\xffnot json", b"z" * 3_000_000):
        status, doc = get_json(target_server, "POST", "/api/dataset/transform", body=body)
        assert status == 200
        assert doc["received_bytes"] == len(body) and doc["transformed"] is None


def test_transform_get(target_server: TargetServer) -> None:
    status, doc = get_json(target_server, "GET", "/api/dataset/transform?text=abc%20def")
    assert status == 200
    assert doc == {"method": "GET", "received_bytes": 0, "transformed": "ABC DEF",
                   "word_count": 2}
    assert request(target_server, "PUT", "/api/dataset/transform", body=b"x")[0] == 405


def test_unknown_path_is_json_404(target_server: TargetServer) -> None:
    for path in ("/", "/nope", "/api", "/delay", "/delayed/5", "/api/health/"):
        status, headers, body = request(target_server, "GET", path)
        assert status == 404, path
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body) == {"detail": "Not Found"}


# -- utility routes ---------------------------------------------------------


def test_delay(target_server: TargetServer) -> None:
    started = time.perf_counter()
    status, doc = get_json(target_server, "GET", "/delay/150")
    elapsed = time.perf_counter() - started
    assert status == 200 and doc == {"delay_ms": 150}
    assert 0.145 <= elapsed < 2.0
    for bad in ("/delay/abc", "/delay/-5", "/delay/", "/delay/60001", "/delay/1.5"):
        assert request(target_server, "GET", bad)[0] == 400, bad


def test_delays_run_concurrently(target_server: TargetServer) -> None:
    """Ten 300 ms delays on ten connections finish together: the server does not block."""
    conns = [http.client.HTTPConnection(HOST, target_server.port, timeout=10) for _ in range(10)]
    try:
        started = time.perf_counter()
        for conn in conns:
            conn.request("GET", "/delay/300")
        statuses = []
        for conn in conns:
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        elapsed = time.perf_counter() - started
    finally:
        for conn in conns:
            conn.close()
    assert statuses == [200] * 10
    assert elapsed < 1.5


@pytest.mark.parametrize("code", [200, 201, 202, 301, 400, 404, 418, 429, 500, 503, 599])
def test_status_with_body(target_server: TargetServer, code: int) -> None:
    status, headers, body = request(target_server, "GET", f"/status/{code}")
    assert status == code
    assert int(headers["Content-Length"]) == len(body)
    assert json.loads(body) == {"status": code}


@pytest.mark.parametrize("code", [204, 304])
def test_status_without_body_keeps_the_connection(target_server: TargetServer, code: int) -> None:
    reply = raw_exchange(
        target_server.port,
        f"GET /status/{code} HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
    )
    first, _, rest = reply.partition(b"\r\n\r\n")
    assert first.startswith(f"HTTP/1.1 {code} ".encode())
    assert b"content-length" not in first.lower() and b"transfer-encoding" not in first.lower()
    # The next response follows immediately: no body bytes in between.
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
    assert rest.endswith(b'{"status":"ok"}')


def test_status_out_of_range(target_server: TargetServer) -> None:
    for bad in ("/status/99", "/status/600", "/status/abc", "/status/"):
        assert request(target_server, "GET", bad)[0] == 400, bad


@pytest.mark.parametrize("n", [0, 1, 1000, 65536, 65537, 1_000_000])
def test_bytes(target_server: TargetServer, n: int) -> None:
    status, headers, body = request(target_server, "GET", f"/bytes/{n}")
    assert status == 200
    assert headers["Content-Length"] == str(n)
    assert "Transfer-Encoding" not in headers
    assert len(body) == n


def test_bytes_cap(target_server: TargetServer) -> None:
    assert request(target_server, "GET", f"/bytes/{64 * 1024 * 1024 + 1}")[0] == 400
    status, headers, body = request(target_server, "HEAD", f"/bytes/{64 * 1024 * 1024}")
    assert status == 200 and headers["Content-Length"] == str(64 * 1024 * 1024) and body == b""


def parse_chunked(body: bytes) -> list[bytes]:
    """Split a raw chunked body into its chunks; asserts it is well-formed and terminated."""
    chunks = []
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert body == b"\r\n"
            return chunks
        chunks.append(body[:size])
        assert body[size:size + 2] == b"\r\n"
        body = body[size + 2:]


@pytest.mark.parametrize("n", [0, 10, 1000, 300_000])
def test_chunked_is_chunked(target_server: TargetServer, n: int) -> None:
    reply = raw_exchange(
        target_server.port,
        f"GET /chunked/{n} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
    )
    head, _, body = reply.partition(b"\r\n\r\n")
    lowered = head.lower()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\ntransfer-encoding: chunked" in lowered
    assert b"content-length" not in lowered
    chunks = parse_chunked(body)
    assert sum(len(c) for c in chunks) == n
    if n >= 10:
        assert len(chunks) >= 3


def test_chunked_via_http_client(target_server: TargetServer) -> None:
    conn = http.client.HTTPConnection(HOST, target_server.port, timeout=10)
    try:
        conn.request("GET", "/chunked/5000")
        response = conn.getresponse()
        assert response.chunked
        assert len(response.read()) == 5000
        # The connection is still usable afterwards (keep-alive across a chunked body).
        conn.request("GET", "/api/health")
        assert conn.getresponse().read() == b'{"status":"ok"}'
    finally:
        conn.close()


def test_close_closes_the_connection(target_server: TargetServer) -> None:
    with socket.create_connection((HOST, target_server.port), timeout=10) as sock:
        # A second, pipelined request must not be answered: the server closes first.
        sock.sendall(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:  # EOF: the server closed the connection
                break
            chunks.append(chunk)
    reply = b"".join(chunks)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nconnection: close" in head.lower()
    assert json.loads(body)["connection"] == "close"
    assert reply.count(b"HTTP/1.1") == 1


# -- HEAD -------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/api/health",
    "/api/dataset/summary",
    "/api/dataset/transform",
    "/api/analysis/transcript",
    "/api/auth/login",
    "/delay/0",
    "/status/200",
    "/status/418",
    "/status/204",
    "/bytes/0",
    "/bytes/1000",
    "/bytes/200000",
    "/chunked/1000",
    "/nope",
    "/__stats",
])
def test_head_sends_headers_only(target_server: TargetServer, path: str) -> None:
    """HEAD gets GET's status and framing headers and not one body byte.

    HEAD and a GET are pipelined on one connection: any body bytes after the
    HEAD response would show up before the GET's status line.
    """
    status, get_headers, get_body = request(target_server, "GET", path)
    reply = raw_exchange(
        target_server.port,
        f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
    )
    head, _, rest = reply.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), head
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n"), rest[:200]
    assert rest.endswith(b'{"status":"ok"}')
    fields = dict(
        line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:]
    )
    fields = {k.lower(): v for k, v in fields.items()}
    if get_headers["Transfer-Encoding"] == "chunked":
        assert fields.get("transfer-encoding") == "chunked"
        assert "content-length" not in fields
    elif status in (204, 304):
        assert "content-length" not in fields
    else:
        assert fields["content-length"] == str(len(get_body))


def test_head_via_http_client(target_server: TargetServer) -> None:
    status, headers, body = request(target_server, "HEAD", "/api/dataset/summary")
    assert status == 200 and body == b""
    assert int(headers["Content-Length"]) == len(request(target_server, "GET",
                                                          "/api/dataset/summary")[2])


# -- keep-alive and TCP_NODELAY ---------------------------------------------


def test_keep_alive_loop_is_fast(target_server: TargetServer) -> None:
    """200 sequential requests on one connection take far less than 200 x 40 ms.

    pywsgi writes headers and body with two sends; without TCP_NODELAY on the
    accepted socket, Nagle holds the body until the client's delayed ACK
    (~40 ms), i.e. ~8 s for this loop.
    """
    conn = http.client.HTTPConnection(HOST, target_server.port, timeout=10)
    try:
        conn.connect()
        local = conn.sock.getsockname()
        started = time.perf_counter()
        for i in range(200):
            if i % 2:
                conn.request("GET", "/api/health")
            else:
                conn.request("POST", "/api/dataset/transform", body=b'{"text": "x"}')
            response = conn.getresponse()
            response.read()
            assert response.status == 200
        elapsed = time.perf_counter() - started
        assert conn.sock.getsockname() == local, "connection was not kept alive"
    finally:
        conn.close()
    assert elapsed < 2.0, f"200 keep-alive requests took {elapsed:.2f}s (TCP_NODELAY missing?)"


def test_http_1_0_gets_a_closed_connection(target_server: TargetServer) -> None:
    reply = raw_exchange(target_server.port, b"GET /chunked/100 HTTP/1.0\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"chunked" not in head.lower()
    assert body == b"x" * 100


# -- counters ---------------------------------------------------------------


def counts(stats: dict[str, Any]) -> dict[str, Any]:
    """The three original ``/__stats`` keys (the shop's are tested in test_target_shop.py)."""
    return {key: stats[key] for key in ("requests", "paths", "methods")}


def test_counts_are_exact(target_server: TargetServer) -> None:
    target_server.reset()
    assert counts(target_server.stats()) == {"requests": 0, "paths": {}, "methods": {}}
    conn = http.client.HTTPConnection(HOST, target_server.port, timeout=10)
    try:
        plan = [("GET", "/api/health")] * 20 + [("HEAD", "/api/dataset/summary")] * 10 \
            + [("POST", "/api/dataset/transform")] * 5 + [("GET", "/status/503")] * 2
        for method, path in plan:
            conn.request(method, path, body=b"{}" if method == "POST" else None)
            conn.getresponse().read()
    finally:
        conn.close()
    expected = {
        "requests": 37,
        "paths": {"/api/health": 20, "/api/dataset/summary": 10,
                  "/api/dataset/transform": 5, "/status/503": 2},
        "methods": {"GET": 22, "HEAD": 10, "POST": 5},
    }
    assert counts(target_server.stats()) == expected
    # Neither /__stats nor a rejected /__reset is counted.
    assert request(target_server, "GET", "/__reset")[0] == 405
    assert counts(target_server.stats()) == expected
    target_server.reset()
    assert counts(target_server.stats()) == {"requests": 0, "paths": {}, "methods": {}}


def test_counts_include_errors_and_unknown_paths(target_server: TargetServer) -> None:
    target_server.reset()
    request(target_server, "GET", "/nope")
    request(target_server, "POST", "/api/auth/login", body=b"bad")
    request(target_server, "DELETE", "/api/health")
    stats = target_server.stats()
    assert stats["requests"] == 3
    assert stats["paths"] == {"/nope": 1, "/api/auth/login": 1, "/api/health": 1}
    assert stats["methods"] == {"GET": 1, "POST": 1, "DELETE": 1}


# -- process behaviour ------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    server = start_target_server(tmp_path / "server.log")
    idle = http.client.HTTPConnection(HOST, server.port, timeout=10)
    try:
        idle.request("GET", "/api/health")  # leave an idle keep-alive connection open
        assert idle.getresponse().read() == b'{"status":"ok"}'
        server.proc.send_signal(sig)
        status = server.proc.wait(timeout=10)
    finally:
        idle.close()
        stop_target_server(server)
    assert status == 0
    assert "Traceback" not in server.log_path.read_text()


def test_modules_do_not_import_gevent() -> None:
    """The coordinator imports the CLI and thus these modules; it must stay gevent-free."""
    code = (
        "import sys, loadgen.target, loadgen.target.server, loadgen.target.app\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'gevent')\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO_ROOT, timeout=60)


def test_server_logged_no_errors(target_server: TargetServer) -> None:
    """Runs last in this module: nothing above made the app raise."""
    assert "Traceback" not in target_server.log_path.read_text()
