"""Small misbehaving HTTP servers on 127.0.0.1:0, each counting what it received.

They cover framings and faults the built-in target cannot produce on demand:
close-delimited bodies, kept-alive connections closed silently, malformed
responses and servers that never answer.  Plain threads and sockets: the
test process never monkey-patches gevent.
"""

from __future__ import annotations

import socket
import threading
from typing import Callable

Handler = Callable[["RawServer", socket.socket], None]


class RawServer:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
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
        with conn:
            try:
                self.handler(self, conn)
            except OSError:
                pass

    def count(self) -> None:
        with self.lock:
            self.requests += 1

    def close(self) -> None:
        self.closing.set()
        self.sock.close()

    def __enter__(self) -> RawServer:
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

    The client only finds out when its next request on that connection gets
    EOF: it must reconnect and resend without double counting.
    """
    def handler(server: RawServer, conn: socket.socket) -> None:
        buffer = bytearray()
        for _ in range(n):
            if not read_request(conn, buffer):
                return
            server.count()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        conn.shutdown(socket.SHUT_RDWR)
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
                threading.Event().wait(service_ms / 1000.0)  # the simulated work
            server.count()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    return handler
