"""A small forward HTTP proxy on 127.0.0.1:0 that records every request it is sent.

It does what a real forward proxy (Squid, tinyproxy) does with the two forms a
client uses: an absolute-form request (``GET http://host:port/path HTTP/1.1``)
is forwarded to the origin in origin form, over one kept-alive upstream
connection per client connection, and its response is relayed; ``CONNECT
host:port`` opens a tunnel and copies bytes both ways.  Every request line is
recorded with the Proxy-Authorization it carried, so a test can check that the
proxy saw every request (request lines, not connections: keep-alive) and the
credentials.  Requests in origin form are answered 400: a client that forgot it
talks to a proxy would be caught.

Only loopback origins are reached (the tests' house rule): anything else is
answered 403.  Plain threads; every loop ends when either side closes or the
proxy is closed.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import socket
import threading
from dataclasses import dataclass, field
from typing import Self
from urllib.parse import urlsplit

from rawservers import read_body, read_head

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-connection",
              "proxy-authenticate", "te", "trailer", "transfer-encoding", "upgrade"}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class Seen:
    line: str                   # the request line as received
    authorization: str | None   # its Proxy-Authorization header, if any


@dataclass
class ForwardProxy:
    """``require``: the Proxy-Authorization every request must carry (else 407).
    ``connects_allowed``: CONNECTs granted before every further one is refused with
    ``refusal`` (None: all granted)."""

    require: str | None = None
    connects_allowed: int | None = None
    refusal: bytes = b"407 Proxy Authentication Required"
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.closing = threading.Event()
        self.connects = 0
        threading.Thread(target=self._accept, daemon=True).start()

    # -- what it saw ---------------------------------------------------------------
    def lines(self) -> list[str]:
        with self.lock:
            return [s.line for s in self.seen]

    def authorizations(self) -> set[str | None]:
        with self.lock:
            return {s.authorization for s in self.seen}

    # -- serving -------------------------------------------------------------------
    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        upstream: http.client.HTTPConnection | None = None
        buffer = bytearray()
        try:
            while (head := read_head(conn, buffer)) is not None:
                line, _, rest = head.decode("latin-1").partition("\r\n")
                headers = [tuple(part.strip() for part in h.split(":", 1))
                           for h in rest.split("\r\n") if ":" in h]
                auth = next((v for n, v in headers if n.lower() == "proxy-authorization"), None)
                with self.lock:
                    self.seen.append(Seen(line, auth))
                method, target, _ = line.split(" ", 2)
                body = read_body(conn, buffer, head)
                if self.require is not None and auth != self.require:
                    conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                                 b"Proxy-Authenticate: Basic realm=\"test\"\r\n"
                                 b"Content-Length: 0\r\n\r\n")
                    continue
                if method == "CONNECT":
                    self._tunnel(conn, target, bytes(buffer))
                    return
                parts = urlsplit(target)
                if parts.scheme != "http" or not parts.hostname:
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    continue
                if not _loopback(parts.hostname):
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                    continue
                if upstream is None:
                    upstream = http.client.HTTPConnection(parts.hostname, parts.port or 80,
                                                          timeout=30)
                path = parts.path + (f"?{parts.query}" if parts.query else "")
                forwarded = {n: v for n, v in headers if n.lower() not in HOP_BY_HOP
                             and n.lower() != "content-length"}
                upstream.request(method, path or "/", body=body or None, headers=forwarded)
                response = upstream.getresponse()
                data = b"" if method == "HEAD" else response.read()
                out = [f"HTTP/1.1 {response.status} {response.reason}"]
                out += [f"{n}: {v}" for n, v in response.getheaders()   # re-framed below
                        if n.lower() not in HOP_BY_HOP and n.lower() != "content-length"]
                if method != "HEAD":
                    out.append(f"Content-Length: {len(data)}")
                conn.sendall(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + data)
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
            if upstream is not None:
                upstream.close()

    def _tunnel(self, conn: socket.socket, authority: str, early: bytes) -> None:
        with self.lock:
            self.connects += 1
            refuse = self.connects_allowed is not None and self.connects > self.connects_allowed
        host, _, port = authority.rpartition(":")
        host = host.strip("[]")
        if refuse or not _loopback(host):
            answer = self.refusal if refuse else b"403 Forbidden"
            conn.sendall(b"HTTP/1.1 " + answer + b"\r\nContent-Length: 0\r\n\r\n")
            return
        try:
            origin = socket.create_connection((host, int(port)), timeout=30)
        except OSError:
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        with origin:
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if early:
                origin.sendall(early)
            back = threading.Thread(target=_copy, args=(origin, conn), daemon=True)
            back.start()
            _copy(conn, origin)
            back.join(30)

    def close(self) -> None:
        self.closing.set()
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _copy(source: socket.socket, sink: socket.socket) -> None:
    """Bytes from ``source`` to ``sink`` until ``source`` ends; then end ``sink``'s writes."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    try:
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
