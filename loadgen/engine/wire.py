"""The bytes of an HTTP/1.1 request: one definition shared by static and templated requests.

Static endpoints build their request once (``build_request``); templated ones
(``engine.render``) compile the same head into a format string.  Both go
through ``head_lines`` so the header order, loadgen's defaults and the rules
for Content-Length cannot drift apart.  Pure (no gevent, no sockets), so the
coordinator and unit tests may import it.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Methods that always announce a body length, even an empty one (as curl and hey do).
BODY_METHODS = ("POST", "PUT", "PATCH")


def head_lines(method: str, host_header: str, path: str,
               headers: Sequence[tuple[str, str]], close: bool = False) -> list[str]:
    """The request line and header lines, without Content-Length and the blank line.

    A user header replaces loadgen's default of the same name, case-insensitively:
    ``Host`` (a virtual host reached by IP, as curl ``-H 'Host: ...'``), ``User-Agent``,
    ``Accept``.  A ``#fragment`` never goes on the wire.  ``close``
    (``--no-keepalive``) adds ``Connection: close``, as hey's ``-disable-keepalive``
    does, unless the user gave a Connection header (config checked that it says close).
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
    if close and "connection" not in given:
        lines.append("Connection: close")
    lines.extend(f"{name}: {value}" for name, value in headers
                 if name.lower() not in ("host", "content-length"))
    return lines


def always_has_length(method: str, headers: Sequence[tuple[str, str]]) -> bool:
    """Whether the request announces Content-Length even when its body is empty.

    Content-Length is always loadgen's own, written once (config checked that a
    user's agrees with the body); a request with a non-empty body always has it.
    """
    return method in BODY_METHODS or any(n.lower() == "content-length" for n, _ in headers)


def build_request(method: str, host_header: str, path: str,
                  headers: list[tuple[str, str]], body: bytes, close: bool = False) -> bytes:
    """The full request, built once per endpoint and written as-is for every send."""
    lines = head_lines(method, host_header, path, headers, close)
    if body or always_has_length(method, headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
