"""Response helpers shared by the target's route modules (``app``, ``shop``).

They live apart from the routes so each route module stays small and imports
only this; every helper sets ``Content-Length`` itself (see ``app``'s
docstring for why) and sends no body on HEAD.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import orjson

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
Body = Iterable[bytes]
Handler = Callable[[Environ, StartResponse, str, str], Body]

JSON_TYPE = "application/json"
#: Size of one read from the request body (and of ``/bytes`` pieces).
BLOCK_SIZE = 64 * 1024
EMPTY: tuple[bytes, ...] = ()


def _reason(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


#: Pre-built status lines for every code ``/status/<code>`` accepts.
STATUS_LINES: dict[int, str] = {code: f"{code} {_reason(code)}" for code in range(100, 600)}


def static(body: Any) -> tuple[bytes, list[tuple[str, str]]]:
    """Encode a constant JSON body once, together with its header list.

    pywsgi copies the header list in ``start_response`` and never mutates it,
    so one list can be shared by all requests.
    """
    raw = orjson.dumps(body)
    return raw, [("Content-Type", JSON_TYPE), ("Content-Length", str(len(raw)))]


def send_json(
    start_response: StartResponse,
    code: int,
    payload: Any,
    head: bool,
    extra: Iterable[tuple[str, str]] = (),
) -> Body:
    """Send ``payload`` as JSON with an explicit Content-Length (none on HEAD)."""
    raw = orjson.dumps(payload)
    start_response(
        STATUS_LINES[code],
        [("Content-Type", JSON_TYPE), ("Content-Length", str(len(raw))), *extra],
    )
    return EMPTY if head else (raw,)


def send_error(
    start_response: StartResponse,
    code: int,
    detail: str,
    head: bool,
    extra: Iterable[tuple[str, str]] = (),
) -> Body:
    return send_json(start_response, code, {"detail": detail}, head, extra)


def method_not_allowed(start_response: StartResponse, allow: str, head: bool) -> Body:
    return send_error(start_response, 405, "Method Not Allowed", head, [("Allow", allow)])


def read_body(environ: Environ, keep: int) -> tuple[int, bytes]:
    """Read the whole request body; return its length and its first ``keep`` bytes.

    Reading everything (rather than stopping at ``keep``) keeps the connection
    in sync for keep-alive without relying on the server to discard leftovers,
    and lets large uploads be counted without holding them in memory.
    """
    stream = environ["wsgi.input"]
    total = 0
    kept: list[bytes] = []
    room = keep
    while True:
        chunk = stream.read(BLOCK_SIZE)
        if not chunk:
            break
        total += len(chunk)
        if room > 0:
            kept.append(chunk[:room])
            room -= len(kept[-1])
    return total, b"".join(kept)
