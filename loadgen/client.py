"""The hot path: one kept-alive connection, prebuilt request bytes, C-parsed responses.

urllib3's ``urlopen`` costs ~200 µs a request (http.client and email header
parsing), so it is used only for what it does well: connecting (DNS, TLS,
socket options such as TCP_NODELAY) and owning the pool.  Each request here is
one ``sendall`` of bytes built once, and the response is framed by httptools
(llhttp).  Bodies are drained and counted, never kept.

Only imported inside worker processes, after gevent has monkey-patched.
"""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any

import gevent
import httptools
import urllib3
from urllib3.connection import HTTPSConnection
from urllib3.exceptions import HTTPError as Urllib3Error

from loadgen.config import TlsFiles
from loadgen.tls import build_context

# Error kinds, in the order the report lists them.
CONNECT, TIMEOUT, WRITE, READ, PROTOCOL = "connect", "timeout", "write", "read", "protocol"
ERROR_KINDS = (CONNECT, TIMEOUT, WRITE, READ, PROTOCOL)

_RECV_SIZE = 65536
_YIELD_EVERY = 1 << 20
_MAX_HEAD = 1 << 20   # a response head (status line + headers) longer than this is an error

# One receive buffer for every connection of the process: greenlets never switch between
# recv_into() filling it and feed_data() consuming it, and 64 KiB per connection would be
# 640 MB at --concurrency 10000.
_VIEW = memoryview(bytearray(_RECV_SIZE))
_clock = time.perf_counter


class RequestError(Exception):
    """A request that got no complete HTTP response; ``kind`` is one of ERROR_KINDS."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail


class _Framer:
    """httptools callbacks that only track where one response ends.

    ``on_header`` watches for Content-Length / Transfer-Encoding because
    httptools does not expose llhttp_finish(): at EOF we must tell a
    close-delimited body (complete) from a framed one cut short (an error).
    """

    __slots__ = ("headers_done", "done", "framed", "keep_alive", "parser")

    def __init__(self) -> None:
        self.headers_done = False
        self.done = False
        self.framed = False
        self.keep_alive = False
        self.parser = httptools.HttpResponseParser(self)

    def reset(self) -> None:
        self.headers_done = self.done = self.framed = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) in (14, 17):
            lower = name.lower()
            if lower == b"content-length" or lower == b"transfer-encoding":
                self.framed = True

    def on_headers_complete(self) -> None:
        # llhttp forgets the keep-alive verdict once the message completes.
        self.headers_done = True
        self.keep_alive = self.parser.should_keep_alive()

    def on_message_complete(self) -> None:
        self.done = True


def build_request(method: str, host_header: str, path: str,
                  headers: list[tuple[str, str]], body: bytes) -> bytes:
    """The full request, built once per endpoint and written as-is for every send.

    A user header replaces loadgen's default of the same name, case-insensitively:
    ``Host`` (a virtual host reached by IP, as curl ``-H 'Host: ...'``), ``User-Agent``,
    ``Accept``.  Content-Length is always loadgen's own, written once (config checked
    that a user's agrees with the body).  A ``#fragment`` never goes on the wire.
    """
    given = {name.lower(): value for name, value in headers}
    if "transfer-encoding" in given:   # config refuses it; never send two framings
        raise ValueError("Transfer-Encoding cannot be combined with loadgen's Content-Length")
    target = path.partition("#")[0]
    lines = [f"{method} {target} HTTP/1.1", f"Host: {given.get('host', host_header)}"]
    if "user-agent" not in given:
        lines.append("User-Agent: loadgen")
    if "accept" not in given:
        lines.append("Accept: */*")
    lines.extend(f"{name}: {value}" for name, value in headers
                 if name.lower() not in ("host", "content-length"))
    if body or method in ("POST", "PUT", "PATCH") or "content-length" in given:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def make_pool(scheme: str, host: str, port: int, size: int, timeout: float,
              insecure: bool, tls: TlsFiles | None = None) -> urllib3.HTTPConnectionPool:
    """A urllib3 pool that hands out connections; it owns DNS, TLS and socket options.

    For https it gets the process's one SSLContext: without it urllib3 builds a
    context and re-reads the CA bundle on every connect (25-37 ms of a blocked
    worker each time), and no TLS session could be resumed.
    """
    t = urllib3.Timeout(connect=timeout, read=timeout)
    if scheme == "https":
        pool = urllib3.HTTPSConnectionPool(host, port, maxsize=size, block=False, timeout=t,
                                           ssl_context=worker_context(tls or TlsFiles(), insecure))
        pool.ConnectionCls = _ResumingHTTPSConnection
        return pool
    return urllib3.HTTPConnectionPool(host, port, maxsize=size, block=False, timeout=t)


class _ResumingContext(ssl.SSLContext):
    """An SSLContext that offers the last session it saw for a host to the next handshake.

    urllib3 calls ``wrap_socket(sock, server_hostname=...)`` and has no way to
    pass ``session=``; this is where it can be added.  Python keeps no client
    session cache of its own, so without this every new connection is a full
    handshake (a certificate chain to verify, an ECDHE key exchange more).
    ``ssl`` here is gevent's patched module: this class exists only in workers.
    """

    sessions: dict[str | None, ssl.SSLSession]

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("session") is None:
            kwargs["session"] = self.sessions.get(kwargs.get("server_hostname"))
        return super().wrap_socket(sock, *args, **kwargs)

    def remember(self, sock: Any) -> None:
        """Keep ``sock``'s session for the next connection, if it can be resumed.

        Called as the connection closes, not after the handshake: a TLS 1.3
        server sends its session ticket after the handshake, so the session
        becomes resumable only once the first response has been read.
        """
        try:
            session = sock.session
            version = sock.version()
        except (AttributeError, ValueError, OSError):
            return
        if session is not None and (session.has_ticket or version not in (None, "TLSv1.3")):
            self.sessions[getattr(sock, "server_hostname", None)] = session


class _ResumingHTTPSConnection(HTTPSConnection):
    """urllib3's HTTPSConnection that hands its TLS session to the context before closing."""

    def close(self) -> None:
        sock = self.sock
        context = self.ssl_context
        if sock is not None and isinstance(context, _ResumingContext):
            context.remember(sock)
        super().close()


_contexts: dict[tuple[TlsFiles, bool], _ResumingContext] = {}


def worker_context(tls: TlsFiles, insecure: bool) -> _ResumingContext:
    """The process's SSLContext for these settings, built on first use and then reused."""
    key = (tls, insecure)
    context = _contexts.get(key)
    if context is None:
        context = build_context(tls, insecure, _ResumingContext)
        assert isinstance(context, _ResumingContext)
        context.sessions = {}
        _contexts[key] = context
    return context


class Connection:
    """One kept-alive connection and its response parser.

    ``request`` sends prebuilt bytes and returns ``(status, bytes_in)`` or
    raises RequestError.  A kept-alive connection the server closed before
    answering (zero bytes back) is reopened and the request written once
    more: the server never saw it, so counts stay exact.

    Sockets are in blocking mode (no socket timeout): gevent would create a
    Timeout object for every wait, ~20% of the hot path.  Instead ``deadline``
    is published per request and the worker's watchdog calls ``expire`` on
    connections past it, which shuts the socket down and so ends the wait.
    """

    def __init__(self, pool: urllib3.HTTPConnectionPool, timeout: float) -> None:
        self.pool = pool
        self.timeout = timeout
        self.conn = pool._get_conn()
        self.sock: Any = None
        self.framer = _Framer()
        self.fresh = True          # no response read on this socket yet
        self.deadline = 0.0        # monotonic time the request in flight must end by; 0 = idle
        self.expired = False
        self.reconnects = 0
        self.sent_at = 0.0         # perf_counter when the last request's bytes began to be written
        self.connect_s = 0.0       # how long the last (re)connect took ...
        self.connected_at = 0.0    # ... and when it ended (perf_counter)

    def open(self) -> None:
        """Connect (or reconnect); failures raise RequestError(CONNECT).

        The watchdog cannot interrupt a connect (there is no socket to shut yet), so the
        connect timeout is what is left of the request's deadline.
        """
        self.close()
        if self.deadline:
            self.conn.timeout = max(0.001, self.deadline - time.monotonic())
        began = _clock()
        try:
            self.conn.connect()   # urllib3 bounds the connect with its own timeout
        except (OSError, Urllib3Error) as exc:
            self.conn.close()
            raise RequestError(CONNECT, _describe(exc)) from None
        self.connected_at = _clock()
        self.connect_s = self.connected_at - began
        self.sock = self.conn.sock
        self.sock.settimeout(None)
        self.framer = _Framer()
        self.fresh = True

    def close(self) -> None:
        if self.sock is not None:
            self.conn.close()
            self.sock = None

    def expire(self) -> None:
        """Called by the watchdog: end the request in flight as a timeout."""
        self.expired = True
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def release(self) -> None:
        """Hand the connection back to urllib3's pool (which closes it on pool.close())."""
        self.close()
        self.pool._put_conn(self.conn)

    def request(self, data: bytes, head: bool, deadline: float = 0.0) -> tuple[int, int]:
        """``deadline`` (monotonic) overrides the default of now + timeout."""
        if self.expired:   # the watchdog fired as the last response completed: socket is shut
            self.expired = False
            self.close()
        self.deadline = deadline or time.monotonic() + self.timeout
        try:
            if self.sock is None:
                self.open()
            try:
                return self._exchange(data, head)
            except _StaleConnection:
                self.reconnects += 1
                self.open()
                return self._exchange(data, head)
        finally:
            self.deadline = 0.0

    def _exchange(self, data: bytes, head: bool) -> tuple[int, int]:
        sock = self.sock
        framer = self.framer
        framer.reset()
        parser = framer.parser
        self.sent_at = _clock()
        try:
            sock.sendall(data)
        except OSError as exc:
            self._failed()
            if not self.fresh:
                raise _StaleConnection() from None
            self.close()
            raise RequestError(WRITE, _describe(exc)) from None
        received = 0
        yield_at = _YIELD_EVERY
        recv_into = sock.recv_into
        view = _VIEW
        try:
            while True:
                n = recv_into(view)
                if n == 0:
                    return self._at_eof(framer, parser, received)
                received += n
                parser.feed_data(view[:n])
                if framer.done or (head and framer.headers_done):
                    break
                if received > yield_at:   # a huge body always has data ready: let others run
                    if not framer.headers_done and received > _MAX_HEAD:
                        self.close()
                        raise RequestError(PROTOCOL, "response head larger than 1 MiB")
                    yield_at += _YIELD_EVERY
                    gevent.sleep(0)
        except httptools.HttpParserError as exc:
            self.close()
            raise RequestError(PROTOCOL, _describe(exc)) from None
        except OSError as exc:
            self._failed()
            if received == 0 and not self.fresh:
                raise _StaleConnection() from None
            self.close()
            raise RequestError(READ, _describe(exc)) from None
        self.fresh = False
        status = parser.get_status_code()
        if not framer.keep_alive:
            self.close()
        elif head:  # llhttp still expects the body a HEAD answer announces
            self.framer = _Framer()
        return status, received

    def _failed(self) -> None:
        """A socket error after the watchdog fired is the timeout, whatever errno says."""
        if self.expired:
            self.expired = False
            self.close()
            raise RequestError(TIMEOUT, f"no complete response in {self.timeout:g}s")

    def _at_eof(self, framer: _Framer, parser: httptools.HttpResponseParser,
                received: int) -> tuple[int, int]:
        """The server closed: a close-delimited body ends here; anything else is an error."""
        self._failed()
        if received == 0 and not self.fresh:
            raise _StaleConnection()
        self.close()
        if framer.headers_done and not framer.framed:
            return parser.get_status_code(), received
        raise RequestError(READ, "connection closed before the response was complete")


class _StaleConnection(Exception):
    """A reused connection was closed by the server before it answered."""


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
