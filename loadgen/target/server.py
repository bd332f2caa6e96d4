"""Listener of the built-in target server: gevent pywsgi, TCP_NODELAY, signals.

Nothing gevent-related is imported at module level. The load-generator
coordinator imports the CLI, which imports this module, and the coordinator
must stay gevent-free; gevent is monkey-patched and imported only once
:func:`serve` runs, i.e. in the process that is going to be the server.

Run standalone (tests, benchmarks) with::

    python -m loadgen.target.server --host 127.0.0.1 --port 0
"""

from __future__ import annotations

import argparse
import functools
import signal
import socket
import sys
from typing import Any

#: Seconds given to in-flight requests on SIGINT/SIGTERM before their greenlets
#: are killed. Idle keep-alive connections would otherwise hold shutdown for the
#: full grace, so it is kept short.
STOP_GRACE_S = 1.0
#: listen() backlog: load runs open hundreds of connections at once.
BACKLOG = 2048
READY_PREFIX = "loadgen target listening on "


@functools.cache
def _server_class() -> type:
    """Build the WSGIServer subclass (lazily, so gevent is imported only when serving)."""
    from gevent.pywsgi import WSGIHandler, WSGIServer

    class TargetHandler(WSGIHandler):
        """pywsgi handler that gets HEAD right and skips access logging entirely."""

        def process_result(self) -> None:
            # pywsgi writes whatever the app returns, even for HEAD, and for a
            # body without Content-Length it also writes the chunked terminator
            # "0\r\n\r\n". Send the headers (with the Content-Length or
            # Transfer-Encoding a GET would have) and nothing else.
            if self.command != "HEAD":
                super().process_result()
                return
            if self.status and not self.headers_sent:
                self.write(b"")

        def log_request(self) -> None:
            # Even with log=None pywsgi formats an access-log line (datetime,
            # string formatting) per request before discarding it.
            pass

    class TargetServer(WSGIServer):
        """WSGIServer that sets TCP_NODELAY on every accepted connection and counts them.

        pywsgi sends the response headers and the body with separate
        ``sendall`` calls. With Nagle's algorithm on, the body segment waits
        for the ACK of the header segment, which the client delays by up to
        ~40 ms, so keep-alive throughput collapses (measured: 367 req/s
        instead of ~6,700).

        ``handle`` runs for the connection's whole life (all its requests), so
        counting around it gives the connections open at once, whose peak a
        user-ramp test reads from ``/__stats``.
        """

        handler_class = TargetHandler

        def handle(self, sock: Any, address: Any) -> None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass  # peer already gone; the handler will notice
            counters = self.application.counters
            counters.connection_opened()
            try:
                super().handle(sock, address)
            finally:
                counters.connection_closed()

    return TargetServer


def _format_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(host: str, port: int, token_ttl_s: int | None = None) -> None:
    """Serve the target app on ``host:port`` until SIGINT or SIGTERM.

    ``token_ttl_s``: lifetime of the tokens ``/api/auth/login`` issues (default
    ``tokens.TOKEN_TTL_S``, an hour); short ones let tests see tokens expire.

    ``port`` 0 binds a free port; the actual one is announced on stdout as
    exactly one line, ``loadgen target listening on http://HOST:PORT``, printed
    only once the socket is listening, so a parent process can treat reading
    that line as the readiness event. Returns normally on a signal so the
    process exits with status 0.
    """
    from loadgen.engine.patch import patch_all

    patch_all()

    import gevent
    from gevent.event import Event

    from loadgen.engine.limits import raise_open_files
    from loadgen.target.app import TargetApp
    from loadgen.target.tokens import TOKEN_TTL_S

    raise_open_files()   # every kept-alive client connection is a descriptor (10k and more)

    app = TargetApp(token_ttl_s=TOKEN_TTL_S if token_ttl_s is None else token_ttl_s)
    server = _server_class()(
        (host, port),
        app,
        backlog=BACKLOG,
        log=None,  # no access log: formatting + writing a line per request is slow
        error_log="default",  # keep tracebacks of app errors on stderr
        # Preset so pywsgi does not call socket.getfqdn() (a DNS lookup) at start.
        environ={"SERVER_NAME": host},
    )
    server.start()
    bound_port = server.server_port

    stop = Event()
    handlers = [gevent.signal_handler(sig, stop.set) for sig in (signal.SIGINT, signal.SIGTERM)]
    print(READY_PREFIX + _format_url(host, bound_port), flush=True)
    try:
        stop.wait()
    finally:
        for handler in handlers:
            handler.cancel()
        server.stop(timeout=STOP_GRACE_S)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds >= 1")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadgen.target.server",
        description="Run the loadgen demo/test target server.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000, help="0 picks a free port")
    parser.add_argument("--token-ttl", type=_positive_int, default=None, metavar="SECONDS",
                        help="lifetime of login tokens [default: 3600]")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.token_ttl)
    return 0


if __name__ == "__main__":
    sys.exit(main())
