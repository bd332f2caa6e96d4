"""Checks and the JWT login that happen in the coordinator before any load is sent.

Reachability is checked first so that a typo in ``--url`` is bad input
(exit 2, nothing sent) instead of a run full of connect errors.  The login
happens once; the token goes to the workers as a header and is never
written to results, logs or the terminal.
"""

from __future__ import annotations

import json
import socket

from loadgen.config import RunConfig, Target


class PreflightError(Exception):
    """The one line to show the user; ``status`` is the exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def check_reachable(target: Target, timeout: float) -> None:
    """Resolve the host and open (then close) one TCP connection to it."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise PreflightError(f"cannot resolve host {target.host!r}: {exc.strerror}", 2) from None
    last: OSError | None = None
    for family, kind, proto, _, address in infos:
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(min(timeout, 5.0))
                sock.connect(address)
                return
        except OSError as exc:
            last = exc
    reason = last.strerror if last and last.strerror else str(last or "no address")
    raise PreflightError(f"cannot reach {target.origin}: {reason}", 2)


def login(config: RunConfig, password: str) -> str:
    """POST the credentials as JSON to the login endpoint and return the bearer token."""
    import urllib3  # only the coordinator logs in; workers import urllib3 after patching

    url = config.target.origin + config.target.base_path + config.login_endpoint
    pool = urllib3.PoolManager(cert_reqs="CERT_NONE" if config.insecure else "CERT_REQUIRED",
                               timeout=urllib3.Timeout(total=config.timeout_s), retries=False)
    body = json.dumps({"username": config.username, "password": password}).encode()
    try:
        response = pool.request("POST", url, body=body,
                                headers={"Content-Type": "application/json"})
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
    return token
