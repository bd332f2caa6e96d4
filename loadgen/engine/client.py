"""The hot path: one kept-alive connection, prebuilt request bytes, C-parsed responses.

urllib3's ``urlopen`` costs ~200 µs a request (http.client and email header
parsing), so it is used only for what it does well: connecting (DNS, TLS,
socket options such as TCP_NODELAY) and owning the pool.  Each request here is
one ``sendall`` of bytes built once, and the response is framed by httptools
(llhttp).  Bodies are drained and counted, never kept.

Only imported inside worker processes, after gevent has monkey-patched.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from typing import Any

import gevent
import httptools
import urllib3
from gevent.monkey import get_original
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import HTTPError as Urllib3Error

from loadgen.config.model import Proxy, Target, TlsFiles
from loadgen.engine.tls import build_context
from loadgen.engine.wire import build_request  # noqa: F401  (re-exported: worker, tests)
from loadgen.stats.phases import PhaseRecorder

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
# The real poll(2), not gevent's cooperative one: a zero-timeout check must not yield.
_poll = get_original("select", "poll")


class RequestError(Exception):
    """A request that got no complete HTTP response; ``kind`` is one of ERROR_KINDS."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail


class _Framer:
    """httptools callbacks that only track where the final response ends.

    llhttp parses back-to-back messages in one buffer (pipelining), and reports
    each 1xx interim response (100 Continue, 102, 103 Early Hints) as a whole
    message: those are skipped until the final response (RFC 9110 §15.2).  Bytes
    that start yet another message after the final one (``extra``) mean the
    connection is out of step with its requests, so it is not reused.

    ``on_header`` watches for Content-Length / Transfer-Encoding because
    httptools does not expose llhttp_finish(): at EOF we must tell a
    close-delimited body (complete) from a framed one cut short (an error).
    """

    __slots__ = ("done", "extra", "framed", "headers_done", "keep_alive", "parser", "status")

    def __init__(self) -> None:
        self.headers_done = False
        self.done = False
        self.framed = False
        self.keep_alive = False
        self.extra = False
        self.status = 0
        self.parser = httptools.HttpResponseParser(self)

    def reset(self) -> None:
        self.headers_done = self.done = self.framed = self.extra = False

    def on_message_begin(self) -> None:
        if self.done:   # a response nobody asked for: leftover or stray bytes
            self.extra = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) in (14, 17):
            lower = name.lower()
            if lower == b"content-length" or lower == b"transfer-encoding":
                self.framed = True

    def on_headers_complete(self) -> None:
        if self.done:
            return
        status = self.parser.get_status_code()
        if status < 200:   # interim: its headers say nothing about the final response
            return
        self.status = status
        self.headers_done = True
        # llhttp forgets the keep-alive verdict once the message completes.
        self.keep_alive = self.parser.should_keep_alive()

    def on_message_complete(self) -> None:
        if self.headers_done:
            self.done = True
        else:              # the end of a 1xx: the final response follows
            self.framed = False


class _HeadFramer(_Framer):
    """For a HEAD request: llhttp cannot be told that the head ends the response, so it
    takes whatever follows for the body Content-Length announces; any such byte is extra."""

    __slots__ = ()

    def on_body(self, body: bytes) -> None:
        self.extra = True


class Keeper(_Framer):
    """A framer that also keeps the response's headers and body, for an endpoint with
    checks (``config.checks.ResponseRules``): made fresh for each such request, so every
    other request keeps the plain ``_Framer`` and the zero-copy drain.

    ``headers`` as httptools delivers them (``(name, value)`` bytes); the body up to
    ``max_body`` bytes, then no more (``over``: keep draining, ``body()`` is None and
    the checks that needed it fail, so named).  A 1xx's headers are dropped with it.
    """

    __slots__ = ("chunks", "head", "headers", "kept", "max_body", "over")

    def __init__(self, max_body: int, head: bool = False) -> None:
        super().__init__()
        self.max_body = max_body
        self.head = head
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.kept = 0
        self.over = False

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        if not self.done:
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if not self.headers_done:   # an interim response's headers: not the final one's
            self.headers.clear()

    def on_body(self, body: bytes) -> None:
        if self.done:
            return
        if self.head:   # as _HeadFramer: nothing may follow a HEAD response's head
            self.extra = True
            return
        if self.over:
            return
        self.kept += len(body)
        if self.kept > self.max_body:
            self.over = True
            self.chunks.clear()
        else:
            self.chunks.append(body)

    def body(self) -> bytes | None:
        """The body kept, or None when it was longer than ``max_body``."""
        return None if self.over else b"".join(self.chunks)


def proxy_form(target: Target, proxy: Proxy | None) -> tuple[str, list[tuple[str, str]]]:
    """What a request through ``proxy`` adds: (the origin before its path, headers for the proxy).

    An http request to a proxy names its origin (absolute form, RFC 9112 §3.2.2:
    ``GET http://host:port/path``) and carries the proxy's credentials.  An https
    request travels inside a CONNECT tunnel, which carries the credentials, so it
    is the same bytes as without a proxy: ("", []).  A user's own
    Proxy-Authorization header replaces this one (``merge_headers``).
    """
    if proxy is None or target.scheme != "http":
        return "", []
    return target.origin, ([("Proxy-Authorization", proxy.authorization)]
                           if proxy.authorization else [])


def make_pool(scheme: str, host: str, port: int, size: int, timeout: float,
              insecure: bool, tls: TlsFiles | None = None,
              proxy: Proxy | None = None) -> urllib3.HTTPConnectionPool:
    """A urllib3 pool that hands out connections; it owns DNS, TLS and socket options.

    For https it gets the process's one SSLContext: without it urllib3 builds a
    context and re-reads the CA bundle on every connect (25-37 ms of a blocked
    worker each time), and no TLS session could be resumed.
    """
    t = urllib3.Timeout(connect=timeout, read=timeout)
    if proxy is not None:
        return _proxy_pool(proxy, scheme, host, port, size, t, insecure, tls)
    if scheme == "https":
        pool = urllib3.HTTPSConnectionPool(host, port, maxsize=size, block=False, timeout=t,
                                           ssl_context=worker_context(tls or TlsFiles(), insecure))
        pool.ConnectionCls = _ResumingHTTPSConnection
        return pool
    plain = urllib3.HTTPConnectionPool(host, port, maxsize=size, block=False, timeout=t)
    plain.ConnectionCls = _TimedHTTPConnection
    return plain


class _StampsTcp:
    """Notes when the TCP connection is up (``tcp_at``, perf_counter), before any TLS.

    urllib3's ``connect`` runs ``_new_conn`` (DNS and TCP), then ``_tunnel``
    through a proxy (CONNECT), then for https the handshake: the last stamp
    splits a connect into its ``connect`` and ``tls`` phases (loadgen.stats.phases).
    """

    tcp_at = 0.0

    def _new_conn(self) -> Any:
        sock = super()._new_conn()   # type: ignore[misc]
        self.tcp_at = _clock()
        return sock

    def _tunnel(self) -> None:
        super()._tunnel()   # type: ignore[misc]
        self.tcp_at = _clock()


class _TimedHTTPConnection(_StampsTcp, HTTPConnection):
    """urllib3's HTTPConnection, stamping when its TCP connection is up."""


def _proxy_pool(proxy: Proxy, scheme: str, host: str, port: int, size: int,
                timeout: urllib3.Timeout, insecure: bool,
                tls: TlsFiles | None) -> urllib3.HTTPConnectionPool:
    """urllib3's pool for ``scheme://host:port`` behind ``proxy``.

    http: a pool of connections to the proxy itself; the request bytes name
    the origin (absolute form) and carry Proxy-Authorization (engine.worker).
    https: connections to the proxy that urllib3 turns into a CONNECT tunnel
    (``Connection.open`` sets it up on every connect, with the credentials in
    the CONNECT's headers), then TLS with the target inside it, through the
    process's one SSLContext, so the request bytes stay as without a proxy.
    """
    headers = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else None
    # urllib3 turns Nagle back on for proxy connections; a request's last segment would
    # then wait for the ACK of the one before it (40 ms with delayed ACKs): keep TCP_NODELAY
    kwargs: dict[str, Any] = {"maxsize": size, "block": False, "timeout": timeout,
                              "socket_options": HTTPConnection.default_socket_options}
    if scheme == "https":
        kwargs["ssl_context"] = worker_context(tls or TlsFiles(), insecure)
    manager = urllib3.ProxyManager(proxy.url, proxy_headers=headers, **kwargs)
    pool = manager.connection_from_host(host, port, scheme)
    # the classes that stamp the end of TCP (and of the CONNECT): the phases of a connect
    pool.ConnectionCls = _ResumingHTTPSConnection if scheme == "https" else _TimedHTTPConnection
    return pool


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


class _ResumingHTTPSConnection(_StampsTcp, HTTPSConnection):
    """urllib3's HTTPSConnection that hands its TLS session to the context before closing
    (and stamps when its TCP connection is up, before the handshake)."""

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
        built = build_context(tls, insecure, _ResumingContext)
        assert isinstance(built, _ResumingContext)
        context = built
        context.sessions = {}
        _contexts[key] = context
    return context


def checkout(pool: urllib3.HTTPConnectionPool) -> Any:
    """A connection from urllib3's pool without sending anything through it.

    urllib3 has no public call for this (``urlopen`` would send a request), so
    its private ``_get_conn``/``_put_conn`` are used here and only here; setup.cfg
    bounds urllib3 to the major version they were checked against.
    """
    return pool._get_conn()


def checkin(pool: urllib3.HTTPConnectionPool, conn: Any) -> None:
    """Hand a connection back to the pool, which closes it on ``pool.close()``."""
    pool._put_conn(conn)


class Connection:
    """One kept-alive connection and its response parser.

    ``request`` sends prebuilt bytes and returns ``(status, bytes_in)`` or
    raises RequestError.  A request is written once and never resent: a server
    may have read (and acted on) a request it then dropped without answering,
    so only a connection found closed *before* writing is replaced, uncounted
    (``reconnects``); a close after the write is a ``read`` failure.

    Sockets are in blocking mode (no socket timeout): gevent would create a
    Timeout object for every wait, ~20% of the hot path.  Instead ``deadline``
    is published per request and the worker's watchdog calls ``expire`` on
    connections past it, which shuts the socket down and so ends the wait.

    Phases (loadgen.stats.phases) go to ``phases``, the worker's one recorder: each
    connect's TCP and TLS times, and each response's time to first byte.
    """

    def __init__(self, pool: urllib3.HTTPConnectionPool, timeout: float,
                 phases: PhaseRecorder | None = None) -> None:
        self.pool = pool
        self.timeout = timeout
        self.phases = phases if phases is not None else PhaseRecorder()
        self.ttfb_append = self.phases.ttfb.append
        self.conn: Any = checkout(pool)   # urllib3 connection, with our _StampsTcp
        # https through a proxy: (host, port, headers) of the CONNECT every connect starts with
        self.tunnel: tuple[str, int | None, Any] | None = (
            (pool.host, pool.port, pool.proxy_headers)
            if pool.proxy is not None and pool.scheme == "https" else None)
        self.sock: Any = None
        self.poller: Any = None   # poll(2) on sock alone: is anything waiting to be read?
        self.framer = _Framer()
        self.deadline = 0.0        # monotonic time the request in flight must end by; 0 = idle
        self.expired = False
        self.reconnects = 0
        self.read_wait: Any = None   # plain TCP: gevent's wait on the socket's read watcher
        self.read_event: Any = None
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
        conn = self.conn
        conn.tcp_at = 0.0
        began = _clock()
        try:
            if self.tunnel is not None:   # close() forgot it: urllib3 sets it on each connect too
                host, port, headers = self.tunnel
                conn.set_tunnel(host, port, headers, scheme="http")
            conn.connect()   # urllib3 bounds the connect with its own timeout
        except (OSError, Urllib3Error) as exc:
            if conn.tcp_at:   # TCP was up; the TLS handshake (or the tunnel) failed
                self.phases.record_connect(conn.tcp_at - began)
            conn.close()
            where = "through the proxy: " if self.tunnel is not None else ""
            raise RequestError(CONNECT, where + _describe(exc)) from None
        self.connected_at = _clock()
        self.connect_s = self.connected_at - began
        self._record_phases(began)
        self.sock = self.conn.sock
        self.sock.settimeout(None)
        self._watch_reads(self.sock)
        self.poller = _poll()
        self.poller.register(self.sock.fileno(), select.POLLIN)
        self.framer = _Framer()

    def _record_phases(self, began: float) -> None:
        """A connect's TCP and TLS phases, split where the connection class stamped
        ``tcp_at``; a class that does not stamp leaves an https connect unsplit, unrecorded."""
        tcp_at = getattr(self.conn, "tcp_at", 0.0)
        tls = isinstance(self.conn, HTTPSConnection)
        if tcp_at:
            self.phases.record_connect(tcp_at - began)
            if tls:
                self.phases.record_tls(self.connected_at - tcp_at)
        elif not tls:
            self.phases.record_connect(self.connect_s)

    def _watch_reads(self, sock: Any) -> None:
        """Wait for readability before the first read of a response, on plain TCP.

        Right after the send the answer is never there yet, so gevent's recv
        would make a syscall that fails with EAGAIN, raise and catch it, then
        wait on the socket's read watcher.  Waiting on that watcher first (what
        gevent's recv does after the EAGAIN) skips both: about a quarter of the
        hot path on a VM where syscalls are dear (bench/README.md, precheck).
        TLS sockets keep the usual path: a response may sit decrypted in the
        TLS layer already.  A gevent without these internals keeps it too.
        """
        wait, event = getattr(sock, "_wait", None), getattr(sock, "_read_event", None)
        plain = not hasattr(sock, "pending")
        self.read_wait, self.read_event = (wait, event) if plain and wait and event else (None, None)

    def close(self) -> None:
        if self.sock is not None:
            self.conn.close()
            self.sock = None
            self.poller = None

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
        checkin(self.pool, self.conn)

    def request(self, data: bytes, head: bool, deadline: float = 0.0,
                keeper: Keeper | None = None) -> tuple[int, int]:
        """``deadline`` (monotonic) overrides the default of now + timeout.

        ``keeper`` (an endpoint with checks): a fresh ``Keeper`` that frames this response
        and keeps its headers and body for them; without it the body is only drained.

        An idle kept-alive connection has nothing to read: if poll(2) finds something
        (the server's FIN or RST, or bytes nobody asked for) the connection is replaced
        before the request is written.  poll with a zero timeout is one syscall, no
        exception and no allocation (0.7 µs in a tight loop, a few µs in situ where
        syscalls are dear; see bench/precheck.py).
        """
        if self.expired:   # the watchdog fired as the last response completed: socket is shut
            self.expired = False
            self.close()
        self.deadline = deadline or time.monotonic() + self.timeout
        try:
            if self.sock is None:
                self.open()
            elif self.poller.poll(0) and self._unusable():
                self.reconnects += 1
                self.open()
            return self._exchange(data, head, keeper)
        finally:
            self.deadline = 0.0

    def _unusable(self) -> bool:
        """poll(2) said the idle socket is readable: closed (EOF, reset, TLS close_notify)
        or out of step (bytes no request asked for)?  Either way a new connection is due;
        a spurious wake-up, or TLS records meant for the TLS layer (session tickets), are not.

        Rare, so it may use the socket's own (gevent) methods with a zero timeout.
        """
        sock = self.sock
        tls = hasattr(sock, "pending")   # an SSLSocket: peeking would see ciphertext
        sock.settimeout(0.0)
        try:
            sock.recv(1) if tls else sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, ssl.SSLWantReadError):
            return False
        except OSError:
            pass
        finally:
            sock.settimeout(None)
        self.close()
        return True

    def _exchange(self, data: bytes, head: bool, keeper: Keeper | None) -> tuple[int, int]:
        sock = self.sock
        if keeper is not None:   # fresh, like the head's: its own parser
            framer: _Framer = keeper
        elif head:   # its own parser: llhttp expects the body the head announces
            framer = _HeadFramer()
        else:
            framer = self.framer
            framer.reset()
        parser = framer.parser
        sent = self.sent_at = _clock()
        write_error: OSError | None = None
        try:
            sock.sendall(data)
        except OSError as exc:
            # The server may have answered early and closed without reading the rest
            # (418 to a 5 MB upload): its answer is in our receive queue, read it.
            self._failed()
            write_error = exc
        received = 0
        yield_at = _YIELD_EVERY
        recv_into = sock.recv_into
        view = _VIEW
        try:
            # the first byte's time: on plain TCP when the socket turns readable (the answer
            # is never there yet), on TLS when the first read returns (it may be decrypted
            # already); one float appended per response (loadgen.stats.phases)
            if self.read_event is not None:
                self.read_wait(self.read_event)
                first = _clock()
                n = recv_into(view)
            else:
                n = recv_into(view)
                first = _clock()
            if n:
                self.ttfb_append(first - sent)
            while True:
                if n == 0:
                    return self._at_eof(framer, received, write_error)
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
                n = recv_into(view)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self.close()
            if framer.done or (head and framer.headers_done):
                return framer.status, received   # complete; what followed it was garbage
            if parser.get_status_code() == 101:
                raise RequestError(PROTOCOL, "101 Switching Protocols to a request that "
                                             "asked for no upgrade") from None
            raise RequestError(PROTOCOL, _describe(exc)) from None
        except OSError as exc:
            self._failed()
            self.close()
            if received == 0:
                if write_error is not None:
                    raise RequestError(WRITE, _describe(write_error)) from None
                raise RequestError(READ, f"closed without a response ({_describe(exc)})") from None
            raise RequestError(READ, _describe(exc)) from None
        if framer.extra or not framer.keep_alive or write_error is not None:
            self.close()
        return framer.status, received

    def _failed(self) -> None:
        """A socket error after the watchdog fired is the timeout, whatever errno says."""
        if self.expired:
            self.expired = False
            self.close()
            raise RequestError(TIMEOUT, f"no complete response in {self.timeout:g}s")

    def _at_eof(self, framer: _Framer, received: int,
                write_error: OSError | None) -> tuple[int, int]:
        """The server closed: a close-delimited body ends here; anything else is an error.

        No byte of a response: after a failed write that is the write's failure; after a
        complete write the server had the request, so it is a ``read`` failure, not resent.
        """
        self._failed()
        self.close()
        if framer.headers_done and not framer.framed:
            return framer.status, received
        if received == 0:
            if write_error is not None:
                raise RequestError(WRITE, _describe(write_error))
            raise RequestError(READ, "closed without a response")
        raise RequestError(READ, "connection closed before the response was complete")


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
