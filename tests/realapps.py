"""The applications the real servers run in tests/test_real_servers.py: one WSGI app for
gunicorn, one ASGI app for uvicorn, with the same routes.

Each request is written to the *record* (a file named by ``REALAPP_RECORD``, one JSON
line per request, appended with one ``write`` on an ``O_APPEND`` descriptor, so lines
from threads and processes never interleave) *before* the app answers: when loadgen has
its response, the line is there, and a test may compare at once, without waiting for an
access log the server writes after the response.  The record is the app's own account
of what the server handed it: the path (no ``#fragment`` can reach it), the Host header
(every one of them, for ASGI), the ``Expect`` header and how many body bytes were read.

Paths are ``/<tag>/<route>/<arg>``: ``tag`` is the test's own label, so that tests
sharing one server count only their own requests.  Routes:

- ``get`` (and anything unknown): 200 and a small JSON body;
- ``status/N``: status N, no body;
- ``stream/N``: N lines with no Content-Length, so the server frames them (chunked);
- ``upload``: reads the whole body, 200;
- ``early``: 418 without reading the body (the answer a server gives before the upload
  is over);
- ``drop`` (WSGI only): every 3rd request on a connection is read in full, then the
  socket is shut without an answer (like nginx ``return 444``).

``/__ready`` answers 200 and is not recorded: the tests' readiness probe.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

_record_fd: int | None = None
_lock = threading.Lock()
_per_connection: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def record(**fields: Any) -> None:
    """One line in the record file; written before the answer (see the module docstring)."""
    global _record_fd
    if _record_fd is None:
        _record_fd = os.open(os.environ["REALAPP_RECORD"],
                             os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(_record_fd, json.dumps(fields).encode() + b"\n")


def _route(path: str) -> tuple[str, str]:
    parts = path.split("/")   # "", tag, route, arg...
    return (parts[2] if len(parts) > 2 else ""), (parts[3] if len(parts) > 3 else "")


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


# --- WSGI (gunicorn) ------------------------------------------------------------------------


def wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/__ready":
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    route, arg = _route(path)
    method = environ["REQUEST_METHOD"]
    seen = {"server": "gunicorn", "method": method, "path": path,
            "query": environ.get("QUERY_STRING", ""), "hosts": [environ.get("HTTP_HOST")],
            "expect": environ.get("HTTP_EXPECT")}
    if route == "early":
        record(**seen, body=None, status=418)
        start_response("418 I'm a teapot", [("Content-Length", "6")])
        return [b"teapot"]
    body = environ["wsgi.input"].read()
    seen["body"] = len(body)
    if route == "drop" and _nth_on_connection(environ["gunicorn.socket"]) % 3 == 0:
        record(**seen, status=None)
        sock = environ["gunicorn.socket"]
        sock.shutdown(socket.SHUT_RDWR)   # read in full, never answered
        start_response("200 OK", [("Content-Length", "0")])   # gunicorn's write then fails
        return []
    if route == "status":
        status = int(arg)
        record(**seen, status=status)
        headers = [] if status in (204, 304) else [("Content-Length", "0")]
        start_response(f"{status} {_reason(status)}", headers)
        return []
    if route == "stream":
        record(**seen, status=200)
        start_response("200 OK", [("Content-Type", "application/x-ndjson")])
        return _lines(int(arg))
    payload = json.dumps({"path": path, "host": environ.get("HTTP_HOST")}).encode()
    record(**seen, status=200)
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(payload)))])
    return [] if method == "HEAD" else [payload]   # HEAD: the same head, no body


def _nth_on_connection(sock: Any) -> int:
    """How many requests this connection has carried, this one included (gthread: threads)."""
    with _lock:
        n = _per_connection.get(sock, 0) + 1
        _per_connection[sock] = n
    return n


def _lines(n: int) -> Iterator[bytes]:
    for i in range(n):
        yield json.dumps({"id": i, "line": "x" * 40}).encode() + b"\n"


# --- ASGI (uvicorn) -------------------------------------------------------------------------


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":   # uvicorn runs with --lifespan off
        return
    path = scope["path"]
    if path == "/__ready":
        await _answer(send, 200, b"ok")
        return
    route, _ = _route(path)
    headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
    expect = [v for k, v in headers if k == "expect"]
    seen = {"server": "uvicorn", "method": scope["method"], "path": path,
            "query": scope["query_string"].decode("latin-1"),
            "hosts": [v for k, v in headers if k == "host"],
            "expect": expect[0] if expect else None, "scheme": scope["scheme"]}
    if route == "early":
        record(**seen, body=None, status=418)
        await _answer(send, 418, b"teapot")
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    record(**seen, body=size, status=200)
    await _answer(send, 200, json.dumps({"path": path, "body": size}).encode())


async def _answer(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
