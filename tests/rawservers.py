"""Small misbehaving HTTP servers on 127.0.0.1:0, each counting what it received.

They cover framings and faults the built-in target cannot produce on demand:
close-delimited bodies, kept-alive connections closed silently or reset,
malformed responses, endless headers, huge bodies, responses trickled a byte
at a time and servers that never answer; optionally over TLS.  Plain threads
and sockets: the test process never monkey-patches gevent.  Every loop ends
when the client goes away or the server is closed.

``ManyServer`` is the exception: one thread and a selector, for tests that
hold thousands of connections open at once.
"""

from __future__ import annotations

import selectors
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from typing import Self

Handler = Callable[["RawServer", socket.socket], None]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class RawServer:
    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.requests = 0
        self.connections = 0
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:   # the handshake fails (an OSError) on untrusting clients
                conn = self.tls.wrap_socket(conn, server_side=True)
            self.handler(self, conn)
        except OSError:
            pass
        finally:
            conn.close()

    def count(self) -> None:
        with self.lock:
            self.requests += 1

    def close(self) -> None:
        self.closing.set()
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_request(conn: socket.socket, buffer: bytearray) -> bool:
    """Read one request head (requests here have no body); False at EOF."""
    while b"\r\n\r\n" not in buffer:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        buffer += chunk
    end = buffer.index(b"\r\n\r\n") + 4
    del buffer[:end]
    return True


def close_delimited(server: RawServer, conn: socket.socket) -> None:
    """HTTP/1.0-style: no Content-Length, the body ends when the server closes."""
    if read_request(conn, bytearray()):
        server.count()
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 3000)


def closes_every(n: int) -> Handler:
    """Keep-alive with Content-Length, but silently closes after ``n`` responses.

    The FIN travels in the same segment as the last response (TCP_CORK holds the
    response until shutdown() tacks the FIN onto it), so the close is already known
    when the client reads that response: it must replace the connection before its
    next request, uncounted.  (A close that races the client's next request is a
    different case: the client cannot tell whether the server read it.)
    """
    def handler(server: RawServer, conn: socket.socket) -> None:
        buffer = bytearray()
        for i in range(n):
            if not read_request(conn, buffer):
                return
            server.count()
            if i == n - 1:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            conn.sendall(OK)
        conn.shutdown(socket.SHUT_RDWR)
    return handler


def _answers_then(n: int, end: Callable[[socket.socket], None]) -> Handler:
    """Answer ``n`` requests on a kept-alive connection, then ``end`` it."""
    def handler(server: RawServer, conn: socket.socket) -> None:
        buffer = bytearray()
        for _ in range(n):
            if not read_request(conn, buffer):
                return
            server.count()
            conn.sendall(OK)
        end(conn)
    return handler


def malformed(server: RawServer, conn: socket.socket) -> None:
    buffer = bytearray()
    while read_request(conn, buffer):
        server.count()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\nok")


def truncated(server: RawServer, conn: socket.socket) -> None:
    """Promises 100 bytes, sends 10, closes: a read error, never a success."""
    if read_request(conn, bytearray()):
        server.count()
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)


def silent(server: RawServer, conn: socket.socket) -> None:
    """Reads requests and never answers; returns when the client gives up."""
    buffer = bytearray()
    while read_request(conn, buffer):
        server.count()


def limited(slots: int, service_ms: float) -> Handler:
    """Keep-alive server with a known capacity: ``slots`` requests in service at once,
    each taking ``service_ms``, so at most slots / service_ms * 1000 requests/s.

    Requests beyond the slots queue, as in a real server whose workers are busy.
    """
    gate = threading.BoundedSemaphore(slots)

    def handler(server: RawServer, conn: socket.socket) -> None:
        buffer = bytearray()
        while read_request(conn, buffer):
            with gate:
                time.sleep(service_ms / 1000.0)  # the simulated work: a length, not a wait
            server.count()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    return handler


def reset(conn: socket.socket) -> None:
    """Abort the connection: with SO_LINGER 0, close() sends a RST instead of a FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def resets(server: RawServer, conn: socket.socket) -> None:
    """Reads the request, then resets the connection without answering."""
    if read_request(conn, bytearray()):
        server.count()
        reset(conn)


def resets_every(n: int) -> Handler:
    """Keep-alive, but resets the connection (RST) right after ``n`` responses.

    An RST cannot ride with the response: only a client that waits a while before its
    next request on that connection (the open model at a low rate) is sure to see it
    first; it must then replace the connection before writing, uncounted.
    """
    return _answers_then(n, reset)


def trickle(interval_s: float) -> Handler:
    """Answers each request one byte at a time, ``interval_s`` apart (a very slow network)."""
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nslowness"

    def handler(server: RawServer, conn: socket.socket) -> None:
        buffer = bytearray()
        while read_request(conn, buffer):
            server.count()
            for i in range(len(response)):
                if server.closing.wait(interval_s):
                    return
                conn.sendall(response[i:i + 1])
    return handler


def huge_body(size: int) -> Handler:
    """Answers with a ``size``-byte body (Content-Length), sent from one 1 MiB buffer."""
    chunk = memoryview(b"x" * (1 << 20))

    def handler(server: RawServer, conn: socket.socket) -> None:
        buffer = bytearray()
        while read_request(conn, buffer):
            server.count()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            left = size
            while left > 0 and not server.closing.is_set():
                n = min(left, len(chunk))
                conn.sendall(chunk[:n])
                left -= n
    return handler


def endless_head(server: RawServer, conn: socket.socket) -> None:
    """Starts a response and sends header lines until the client gives up."""
    if read_request(conn, bytearray()):
        server.count()
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        block = (b"X-Filler: " + b"y" * 1000 + b"\r\n") * 64
        while not server.closing.is_set():
            conn.sendall(block)


def read_body(conn: socket.socket, buffer: bytearray, head: bytes) -> bytes:
    """The body announced by ``head``'s Content-Length (requests here are small)."""
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(buffer) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        buffer += chunk
    body = bytes(buffer[:length])
    del buffer[:length]
    return body


def read_head(conn: socket.socket, buffer: bytearray) -> bytes | None:
    """One request head (without the blank line); None at EOF."""
    while b"\r\n\r\n" not in buffer:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buffer += chunk
    end = buffer.index(b"\r\n\r\n")
    head = bytes(buffer[:end])
    del buffer[:end + 4]
    return head


def token_api(password: str, token: str) -> Handler:
    """A login that hands out the fixed ``token`` for ``password``; other paths answer 200
    only with ``Authorization: Bearer <token>`` (counted in ``server.requests``), else 403.

    A known token lets a test search every output of a run for it.
    """
    def handler(server: RawServer, conn: socket.socket) -> None:
        buffer = bytearray()
        while (head := read_head(conn, buffer)) is not None:
            body = read_body(conn, buffer, head)
            if head.startswith(b"POST /api/auth/login "):
                if f'"password": "{password}"'.encode() in body:
                    payload = b'{"access_token": "%s"}' % token.encode()
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(payload), payload))
                else:
                    conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
            elif f"\r\nAuthorization: Bearer {token}".encode() in head:
                server.count()
                conn.sendall(OK)
            else:
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    return handler


class ManyServer:
    """Keep-alive "200 ok" for thousands of connections: one thread, one selector.

    ``peak`` is the most connections that were open at once.
    """

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=4096)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests = self.open = self.peak = 0
        self.closing = threading.Event()
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.sock, selectors.EVENT_READ)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        buffers: dict[socket.socket, bytearray] = {}
        while not self.closing.is_set():
            for key, _ in self.selector.select(timeout=0.1):
                sock = key.fileobj
                if sock is self.sock:
                    self._accept(buffers)
                    continue
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self.selector.unregister(sock)
                    sock.close()
                    del buffers[sock]
                    self.open -= 1
                    continue
                buffer = buffers[sock]
                buffer += data
                answers = buffer.count(b"\r\n\r\n")
                if answers:
                    del buffer[:buffer.rindex(b"\r\n\r\n") + 4]
                    self.requests += answers
                    try:
                        sock.sendall(OK * answers)   # small: fits the socket buffer
                    except OSError:
                        pass
        for sock in buffers:
            sock.close()
        self.selector.close()

    def _accept(self, buffers: dict[socket.socket, bytearray]) -> None:
        for _ in range(1024):
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buffers[conn] = bytearray()
            self.selector.register(conn, selectors.EVENT_READ)
            self.open += 1
            self.peak = max(self.peak, self.open)

    def close(self) -> None:
        self.closing.set()
        self.thread.join(5)
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RotatingTokens:
    """A login that issues a new token each time, for ``--auth`` renewal tests.

    Token ``n`` is a JWT (HS256, a key loadgen never sees) whose ``exp`` is ``ttl_s``
    from its issue, or that has no ``exp`` at all (``ttl_s`` None): then the server
    stops accepting it ``revoke_after_s`` after its issue, which only a 401 can tell
    loadgen.  ``logins_left`` logins succeed, the later ones answer 500.  Every token
    issued is kept (``issued``), so a test can search every output for each of them.
    Other paths answer 200 to a live token, else 401 (``refused``).
    """

    def __init__(self, password: str, *, ttl_s: float | None = None,
                 revoke_after_s: float | None = None, logins_left: int = 1_000) -> None:
        self.password = password
        self.ttl_s = ttl_s
        self.revoke_after_s = revoke_after_s
        self.logins_left = logins_left
        self.issued: list[str] = []
        self.until: dict[str, float] = {}
        self.refused = 0
        self.failed_logins = 0
        self.lock = threading.Lock()

    def issue(self) -> str:
        import jwt  # the test process only: rawservers' other servers need no PyJWT

        now = time.time()
        claims: dict[str, object] = {"sub": "admin", "n": len(self.issued)}
        if self.ttl_s is not None:
            claims["exp"] = int(now + self.ttl_s)   # whole seconds, as most servers write it
        token = jwt.encode(claims, "k" * 32, algorithm="HS256")
        self.issued.append(token)
        if self.ttl_s is not None:
            self.until[token] = float(claims["exp"])   # type: ignore[arg-type]
        else:
            self.until[token] = now + (self.revoke_after_s or 1e9)
        return token

    def handler(self, server: RawServer, conn: socket.socket) -> None:
        buffer = bytearray()
        while (head := read_head(conn, buffer)) is not None:
            body = read_body(conn, buffer, head)
            if head.startswith(b"POST /api/auth/login "):
                with self.lock:
                    ok = f'"password": "{self.password}"'.encode() in body \
                        and self.logins_left > 0
                    if ok:
                        self.logins_left -= 1
                        payload = b'{"access_token": "%s"}' % self.issue().encode()
                    else:
                        self.failed_logins += 1
                if ok:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(payload), payload))
                else:
                    conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\n"
                                 b"Content-Length: 0\r\n\r\n")
                continue
            token = ""
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"authorization: bearer "):
                    token = line[len(b"authorization: bearer "):].decode()
            with self.lock:
                live = time.time() < self.until.get(token, 0.0)
                if not live:
                    self.refused += 1
            if live:
                server.count()
                conn.sendall(OK)
            else:
                conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
