"""Checks and the JWT login that happen in the coordinator before any load is sent.

Reachability is checked first so that a typo in ``--url`` is bad input
(exit 2, nothing sent) instead of a run full of connect errors.  The login
happens here first (a failure is exit 3 before any load), then again whenever
``engine.renewal`` renews the token; the token goes to the workers as a
header and is never written to results, logs or the terminal.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
import warnings
from typing import Any

from loadgen.config.model import (
    ConfigError,
    Proxy,
    RunConfig,
    Target,
    TlsFiles,
    worker_connections,
)
from loadgen.config.proxy import avoid_hint
from loadgen.engine.limits import open_files_problem
from loadgen.engine.tls import build_context
from loadgen.errors import LoadgenError

INSECURE_WARNING = ("loadgen: warning: --insecure: TLS certificates are not verified; "
                    "anyone on the path can impersonate the server")


class PreflightError(LoadgenError):
    """A problem found before any load: bad input (2) or a failed login (3)."""


def check_before_load(config: RunConfig) -> None:
    """Everything that must hold before the first request: open-file limit, then the target.

    The open-file check uses the plans' own connection split; the plans themselves are
    made once, after the login (``commands.run.execute``), since they carry its token.
    """
    if not getattr(config, "cluster", None):   # a cluster's nodes have limits of their own
        problem = open_files_problem(worker_connections(config))
        if problem:
            raise PreflightError(problem, 2)
    check_reachable(config.target, config.timeout_s, config.insecure, config.tls,
                    config.proxy)


def client_context(insecure: bool, tls: TlsFiles) -> ssl.SSLContext:
    """The context the preflight and the login use: the workers' settings, so the same verdict."""
    try:
        return build_context(tls, insecure)
    except ConfigError as exc:   # checked when the options were read; a file may have changed
        raise PreflightError(str(exc), 2) from None


def check_reachable(target: Target, timeout: float, insecure: bool = False,
                    tls: TlsFiles | None = None, proxy: Proxy | None = None) -> None:
    """Resolve the host and open (then close) one TCP connection to it.

    For https the TLS handshake is made too, verifying the certificate unless
    ``insecure``: a self-signed or expired certificate is one line before any
    load, not a run in which every request is a ``connect`` error.

    Through a ``proxy`` the connection goes to the proxy, as the load's will;
    for https the proxy is asked for a CONNECT tunnel first (a 407 for missing
    credentials, or a 403, is then one line before any load) and the handshake
    is made with the target through it.
    """
    host, port = (proxy.host, proxy.port) if proxy else (target.host, target.port)
    what = f"proxy {proxy.describe()}" if proxy else target.origin
    kind, hint = (f"proxy host {host!r} (from {proxy.source})", avoid_hint(proxy.source)) \
        if proxy else (f"host {host!r}", "")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise PreflightError(f"cannot resolve {kind}: {exc.strerror}{hint}", 2) from None
    except UnicodeError:   # IDNA: a label over 63 characters, undecodable bytes, ...
        raise PreflightError(f"cannot resolve {kind}: not a valid host name{hint}", 2) from None
    last: OSError | None = None
    for family, socktype, proto, _, address in infos:
        sock = socket.socket(family, socktype, proto)
        with sock:
            sock.settimeout(min(timeout, 5.0))
            try:
                sock.connect(address)
            except OSError as exc:
                last = exc
                continue
            if target.scheme == "https":
                tls = tls or TlsFiles()
                if proxy:
                    _tunnel(sock, target, proxy)
                _handshake(sock, target, client_context(insecure, tls), bool(tls.cert))
            return
    reason = last.strerror if last and last.strerror else str(last or "no address")
    raise PreflightError(f"cannot reach {what}: {reason}{hint}", 2)


_MAX_PROXY_HEAD = 65536


def _tunnel(sock: socket.socket, target: Target, proxy: Proxy) -> None:
    """Ask the proxy for a CONNECT tunnel to the target, as urllib3 will for every connection."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    authority = f"{host}:{target.port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if proxy.authorization:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    head = b""
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        while b"\r\n\r\n" not in head and len(head) < _MAX_PROXY_HEAD:
            chunk = sock.recv(_MAX_PROXY_HEAD)
            if not chunk:
                break
            head += chunk
    except OSError as exc:
        raise PreflightError(f"CONNECT to {authority} through proxy {proxy.describe()} failed: "
                             f"{exc.strerror or exc or 'timed out'}", 2) from None
    status_line = head.partition(b"\r\n")[0].decode("latin-1")
    parts = status_line.split(None, 2)
    if b"\r\n\r\n" not in head or len(parts) < 2 or not parts[0].startswith("HTTP/") \
            or not parts[1].isdigit():
        raise PreflightError(f"proxy {proxy.describe()} gave no HTTP answer to CONNECT "
                             f"{authority} (is it an HTTP proxy?)", 2)
    if not parts[1].startswith("2"):
        answer = " ".join(parts[1:])
        hint = (" (credentials go in the proxy URL: http://user:password@host:port)"
                if parts[1] == "407" else "")
        raise PreflightError(f"proxy {proxy.describe()} refused CONNECT to {authority}: "
                             f"{answer}{hint}{avoid_hint(proxy.source)}", 2)


def _handshake(sock: socket.socket, target: Target, context: ssl.SSLContext,
               with_cert: bool) -> None:
    began = time.monotonic()
    try:
        with context.wrap_socket(sock, server_hostname=target.host) as tls:
            _await_rejection(tls, time.monotonic() - began, target, with_cert)
    except ssl.SSLCertVerificationError as exc:
        reason = exc.verify_message or exc.reason or "certificate verify failed"
        raise PreflightError(f"TLS certificate of {target.origin} failed verification: "
                             f"{reason} (--insecure skips verification)", 2) from None
    except ssl.SSLError as exc:
        raise PreflightError(f"TLS handshake with {target.origin} failed: "
                             f"{exc.reason or str(exc).splitlines()[0]}", 2) from None
    except TimeoutError:
        raise PreflightError(f"TLS handshake with {target.origin} timed out "
                             f"(is it an https server?)", 2) from None
    except OSError as exc:
        raise PreflightError(f"TLS handshake with {target.origin} failed: "
                             f"{exc.strerror or exc}", 2) from None


def _await_rejection(tls: ssl.SSLSocket, handshake_s: float, target: Target,
                     with_cert: bool) -> None:
    """Wait briefly for the alert of a server that refuses our client certificate (or its lack).

    In TLS 1.3 the client's handshake ends before the server has checked the
    client certificate; a refusal arrives as an alert one round trip later, on
    the first read.  Without this wait, a server that requires a certificate
    would be found out only by a run in which every request fails.  The wait
    is two handshake times (at least 20 ms, at most 1 s); a server that stays
    silent, as HTTP servers do until asked, passes.

    Some servers refuse without an alert: asyncio's TLS (uvicorn) just closes the
    connection.  An HTTP server that closes a new connection before any request has
    refused it too, so that clean end of stream is a refusal as well.
    """
    if tls.version() != "TLSv1.3":   # TLS 1.2 checks the client certificate in the handshake
        return
    tls.settimeout(min(1.0, max(0.02, 2 * handshake_s)))
    try:
        if tls.recv(1):
            return   # a server that speaks first: not a refusal
        reason = "closed right after the handshake, without an alert"
    except ssl.SSLError as exc:
        reason = (exc.reason or "").lower().replace("_", " ")
        if "alert" not in reason:   # e.g. an EOF without close_notify: not a refusal
            return
    except (TimeoutError, OSError):
        return   # silent (as it should be), or reset: the load will tell
    if not with_cert:
        raise PreflightError(f"TLS handshake with {target.origin} failed: the server "
                             f"refused the connection ({reason}); does it require a client "
                             "certificate (--cert/--key)?", 2)
    raise PreflightError(f"TLS handshake with {target.origin} failed: the server refused "
                         f"the client certificate ({reason})", 2)


#: Headers the login sets itself: it sends its own JSON body, framed by urllib3.
_LOGIN_OWN = ("content-type", "content-length", "transfer-encoding")


def login_headers(config: RunConfig) -> dict[str, str]:
    """The run's --header / scenario headers, then the login's own Content-Type.

    The login goes where the load goes, so it carries the same user headers: a
    ``Host`` naming a virtual host (urllib3 then writes no Host of its own), an
    API key a gateway wants on every request.  Templated values (``{{ }}``) are per
    request of the load, rendered by the workers: the login, no request of it, goes without.
    """
    headers = {name: value for name, value in config.headers
               if name.lower() not in _LOGIN_OWN and "{{" not in value}
    headers["Content-Type"] = "application/json"
    return headers


def proxy_headers(proxy: Proxy) -> dict[str, str] | None:
    """What urllib3 adds to a CONNECT (https) or a forwarded request (http) for the proxy."""
    return {"Proxy-Authorization": proxy.authorization} if proxy.authorization else None


def login(config: RunConfig, password: str) -> str:
    """POST the credentials as JSON to the login endpoint and return the bearer token."""
    import urllib3  # only the coordinator logs in; workers import urllib3 after patching

    url = config.target.origin + config.target.base_path + config.login_endpoint
    context = client_context(config.insecure, config.tls) if config.target.scheme == "https" \
        else None
    settings: dict[str, Any] = {"ssl_context": context, "retries": False,
                                "timeout": urllib3.Timeout(total=config.timeout_s)}
    proxy = config.proxy   # the login goes the way the load will
    pool = urllib3.ProxyManager(proxy.url, proxy_headers=proxy_headers(proxy), **settings) \
        if proxy else urllib3.PoolManager(**settings)
    body = json.dumps({"username": config.username, "password": password}).encode()
    try:
        with warnings.catch_warnings():   # --insecure already said so, on one line
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            response = pool.request("POST", url, body=body, headers=login_headers(config))
    except urllib3.exceptions.HTTPError as exc:
        raise PreflightError(f"login failed: {type(exc).__name__} talking to {url}", 3) from None
    finally:
        pool.clear()
    if response.status != 200:
        raise PreflightError(f"login failed: {url} answered HTTP {response.status} "
                             f"for user {config.username!r}", 3)
    try:
        token = json.loads(response.data)[config.token_field]
    except (ValueError, KeyError, TypeError):
        raise PreflightError(f"login failed: the response has no {config.token_field!r} "
                             "field (see --token-field)", 3) from None
    if not isinstance(token, str) or not token:
        raise PreflightError(f"login failed: {config.token_field!r} is not a token string", 3)
    if not all("!" <= c <= "~" for c in token):   # it goes into a header line as it is
        raise PreflightError(f"login failed: {config.token_field!r} holds characters a "
                             "header cannot carry (space, control, non-ASCII)", 3)
    return token
