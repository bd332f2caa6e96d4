"""WSGI application of the built-in target server.

The target exists so loadgen can be benchmarked and tested against something
whose behaviour and capacity are known, so the app is written for speed rather
than elegance: no framework, a dict lookup on ``PATH_INFO`` per request,
pre-encoded bodies and header lists for the static routes, orjson for the rest.
Any per-request overhead here is overhead the load generator would mistake for
"server latency".

Every handler sets ``Content-Length`` itself (except ``/chunked``, and 204/304
which must not have one): pywsgi would otherwise compute it by summing the
body, and a HEAD response must carry the length of the GET body while sending
none of it. pywsgi does *not* strip bodies from HEAD responses on its own, so
handlers return an empty body for HEAD, and ``server.py`` additionally refuses
to write any body bytes for HEAD (needed for ``/chunked``).

Importing this module does not import gevent (``gevent.sleep`` is looked up
when a :class:`TargetApp` is created), so it can be imported anywhere; only
``server.serve`` monkey-patches.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import orjson

from loadgen.target.counters import Counters
from loadgen.target.responses import (
    BLOCK_SIZE,
    EMPTY,
    JSON_TYPE,
    STATUS_LINES,
    Body,
    Environ,
    Handler,
    StartResponse,
    method_not_allowed,
    read_body,
    send_error,
    send_json,
    static,
)
from loadgen.target.shop import Shop
from loadgen.target.tokens import DETAILS, TOKEN_CACHE_SIZE, TOKEN_TTL_S, Claims, Tokens

MAX_LOGIN_BODY = 64 * 1024
MAX_TRANSFORM_PARSE = 1024 * 1024
MAX_DELAY_MS = 60_000
MAX_BYTES = 64 * 1024 * 1024
MAX_TRACKED_PATHS = 10_000
OTHER_PATHS_KEY = "__other__"
#: ``/api/items/<id>`` records every id it is asked for (feeder tests); longer ids are 400.
ITEMS_PREFIX = "/api/items/"
MAX_ID_LENGTH = 256
#: Numbered shop users ``shopper1`` .. ``shopper<SHOPPERS>``, password ``<name>-pass``, so a
#: per-user feeder of credentials has many distinct users to log in as.
SHOPPER_PREFIX = "shopper"
SHOPPERS = 1000

#: Users of the stand-in "BiztelAI API": username -> (password, role).
USERS: dict[str, tuple[str, str]] = {
    "user": ("user123", "user"),
    "admin": ("admin123", "admin"),
}


def lookup_user(username: str) -> tuple[str, str] | None:
    """(password, role) of a known user: ``USERS``, or a numbered shopper; else ``None``."""
    user = USERS.get(username)
    if user is not None or not username.startswith(SHOPPER_PREFIX):
        return user
    number = username[len(SHOPPER_PREFIX):]
    # str(int(...)) round trip: "shopper07" is not "shopper7".
    if number.isascii() and number.isdigit() and str(int(number)) == number \
            and 1 <= int(number) <= SHOPPERS:
        return (f"{username}-pass", "user")
    return None


#: Bookkeeping routes: counting them would perturb the very numbers they report.
UNCOUNTED_PATHS = frozenset({"/__stats", "/__reset"})

_BLOCK = b"x" * BLOCK_SIZE
_BEARER = (("WWW-Authenticate", "Bearer"),)

_HEALTH = static({"status": "ok"})
_NOT_FOUND = static({"detail": "Not Found"})
_RESET = static({"status": "reset"})
_CLOSE = static({"status": "ok", "connection": "close"})
_SUMMARY = static(
    {
        "dataset": "biztel-chat-transcripts",
        "version": "2024.1",
        "rows": 8628,
        "conversations": 8628,
        "messages": 188378,
        "agents": ["agent_1", "agent_2"],
        "columns": ["conversation_id", "article_url", "agent", "message", "sentiment", "turn_rating"],
        "sentiment": {"positive": 0.42, "neutral": 0.37, "negative": 0.21},
        "missing_values": 0,
        "generated_at": "2024-01-01T00:00:00Z",
    }
)
_TRANSCRIPT = static(
    {
        "transcript_id": "t_0001",
        "article_url": "https://www.example.com/articles/sample",
        "messages": 22,
        "agent_1": {"messages": 11, "sentiment": "positive", "avg_words": 19.4},
        "agent_2": {"messages": 11, "sentiment": "neutral", "avg_words": 17.9},
        "summary": "Two agents discuss a news article; the tone stays friendly throughout.",
        "topics": ["sports", "media", "technology"],
    }
)
#: JSON bodies for ``/status/<code>`` (codes that may carry a body).
_STATUS_BODIES: dict[int, bytes] = {
    code: orjson.dumps({"status": code}) for code in range(200, 600) if code not in (204, 304)
}


def _parse_uint(text: str) -> int | None:
    """Parse a path parameter as a non-negative int; ``None`` if it is not one.

    ``isascii`` matters: ``str.isdigit`` accepts e.g. superscript digits that
    ``int`` rejects. The length bound keeps hostile input from costing time.
    """
    if 0 < len(text) <= 12 and text.isascii() and text.isdigit():
        return int(text)
    return None


def _byte_pieces(n: int, piece: int) -> Iterator[bytes]:
    """Yield ``n`` bytes in pieces of at most ``piece`` bytes (piece <= BLOCK_SIZE)."""
    full = _BLOCK if piece == BLOCK_SIZE else _BLOCK[:piece]
    while n >= piece:
        yield full
        n -= piece
    if n:
        yield _BLOCK[:n]


def _utf8(path_part: str) -> str:
    """A WSGI path part (its bytes as latin-1, PEP 3333) as the UTF-8 text the client meant.

    So an id from a feeder reads in ``/__stats`` as it was written; bytes that are
    not UTF-8 are kept as their latin-1 characters.
    """
    raw = path_part.encode("latin-1")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return path_part


def _nothing() -> Iterator[bytes]:
    """An empty body *without* ``__len__``, so pywsgi still announces chunked encoding."""
    return
    yield  # pragma: no cover - makes this a generator


class TargetApp:
    """The WSGI callable; holds the tokens (per-process secret), the shop and the counters.

    State lives on an instance rather than in module globals so a test can
    build a fresh app, and so the secret is random per server process (tokens
    from an earlier run are rightly rejected). Routes of their own concern live
    in their own modules (``shop``, ``tokens``); what ``/__stats`` reports
    beyond request counts is ``counters``.

    Counters are plain ints and dicts: under gevent all handlers run on one OS
    thread and never yield between read and write of a counter, so the
    increments are exact without locks.
    """

    def __init__(
        self,
        secret: str | None = None,
        *,
        sleep: Callable[[float], Any] | None = None,
        token_ttl_s: int = TOKEN_TTL_S,
        token_cache_size: int = TOKEN_CACHE_SIZE,
        max_tracked_paths: int = MAX_TRACKED_PATHS,
    ) -> None:
        self.tokens = Tokens(secret, ttl_s=token_ttl_s, cache_size=token_cache_size)
        self.secret = self.tokens.secret
        if sleep is None:
            # Imported here, not at module level: see the module docstring.
            from gevent import sleep as gevent_sleep

            sleep = gevent_sleep
        self._sleep = sleep
        self._max_tracked_paths = max_tracked_paths
        self.counters = Counters()
        self.shop = Shop(self.authorize, self.counters)
        self.total = 0
        self.paths: dict[str, int] = {}
        self.methods: dict[str, int] = {}
        self._exact: dict[str, Handler] = {
            "/api/health": self._health,
            "/api/auth/login": self._login,
            "/api/dataset/summary": self._summary,
            "/api/dataset/transform": self._transform,
            "/api/analysis/transcript": self._transcript,
            "/shop/items": self.shop.items_route,
            "/shop/orders": self.shop.orders_route,
            "/close": self._close,
            "/__stats": self._stats,
            "/__reset": self._reset,
        }
        self._prefix: dict[str, Handler] = {
            "/delay/": self._delay,
            "/status/": self._status,
            "/bytes/": self._bytes,
            "/chunked/": self._chunked,
        }

    # -- dispatch -----------------------------------------------------------

    def __call__(self, environ: Environ, start_response: StartResponse) -> Body:
        path: str = environ.get("PATH_INFO") or "/"
        method: str = environ["REQUEST_METHOD"]
        if path not in UNCOUNTED_PATHS:
            self._count(path, method)
        handler = self._exact.get(path)
        arg = ""
        if handler is None:
            slash = path.find("/", 1)
            if slash > 0:
                handler = self._prefix.get(path[: slash + 1])
                arg = path[slash + 1 :]
            if handler is None and path.startswith(ITEMS_PREFIX):
                handler = self._item
                arg = path[len(ITEMS_PREFIX) :]
            if handler is None:
                raw, headers = _NOT_FOUND
                start_response("404 Not Found", headers)
                return EMPTY if method == "HEAD" else (raw,)
        return handler(environ, start_response, method, arg)

    def _count(self, path: str, method: str) -> None:
        self.total += 1
        paths = self.paths
        if path not in paths and len(paths) >= self._max_tracked_paths:
            # Bound memory when a run hits many distinct URLs (e.g. /bytes/<random>);
            # the total stays exact.
            path = OTHER_PATHS_KEY
        paths[path] = paths.get(path, 0) + 1
        methods = self.methods
        methods[method] = methods.get(method, 0) + 1

    def stats(self) -> dict[str, Any]:
        """``/__stats``: the request counts (the original three keys) and ``Counters``'."""
        return {"requests": self.total, "paths": self.paths, "methods": self.methods,
                **self.counters.snapshot()}

    def reset(self) -> None:
        self.total = 0
        self.paths = {}
        self.methods = {}
        self.counters.reset()

    def authorize(self, environ: Environ, start_response: StartResponse,
                  head: bool) -> Claims | Body:
        """The claims of the request's bearer token, or the 401 sent (counted by reason)."""
        result = self.tokens.check(environ.get("HTTP_AUTHORIZATION", ""))
        if isinstance(result, str):
            self.counters.unauthorized[result] += 1
            return send_error(start_response, 401, DETAILS[result], head, _BEARER)
        return result

    # -- bookkeeping --------------------------------------------------------

    def _stats(self, environ: Environ, start_response: StartResponse, method: str, arg: str) -> Body:
        if method not in ("GET", "HEAD"):
            return method_not_allowed(start_response, "GET, HEAD", method == "HEAD")
        return send_json(start_response, 200, self.stats(), method == "HEAD")

    def _reset(self, environ: Environ, start_response: StartResponse, method: str, arg: str) -> Body:
        if method != "POST":
            return method_not_allowed(start_response, "POST", method == "HEAD")
        self.reset()
        raw, headers = _RESET
        start_response("200 OK", headers)
        return (raw,)

    # -- "BiztelAI API" -----------------------------------------------------

    def _health(self, environ: Environ, start_response: StartResponse, method: str, arg: str) -> Body:
        if method == "GET":
            raw, headers = _HEALTH
            start_response("200 OK", headers)
            return (raw,)
        if method == "HEAD":
            start_response("200 OK", _HEALTH[1])
            return EMPTY
        return method_not_allowed(start_response, "GET, HEAD", False)

    def _summary(self, environ: Environ, start_response: StartResponse, method: str, arg: str) -> Body:
        if method not in ("GET", "HEAD"):
            return method_not_allowed(start_response, "GET, HEAD", False)
        raw, headers = _SUMMARY
        start_response("200 OK", headers)
        return EMPTY if method == "HEAD" else (raw,)

    def _login(self, environ: Environ, start_response: StartResponse, method: str, arg: str) -> Body:
        if method != "POST":
            return method_not_allowed(start_response, "POST", method == "HEAD")
        total, raw = read_body(environ, MAX_LOGIN_BODY)
        if total > MAX_LOGIN_BODY:
            return send_error(start_response, 413, "Request body too large", False)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return send_error(start_response, 400, "Body must be a JSON object", False)
        if not isinstance(data, dict):
            return send_error(start_response, 400, "Body must be a JSON object", False)
        username = data.get("username")
        password = data.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            return send_error(start_response, 400, "username and password (strings) are required",
                              False)
        user = lookup_user(username)
        # compare_digest on bytes: it rejects non-ASCII str, which a client may send.
        if user is None or not hmac.compare_digest(password.encode(), user[0].encode()):
            self.counters.logins_refused += 1
            return send_error(start_response, 401, "Invalid credentials", False, _BEARER)
        token = self.tokens.issue(username, user[1])
        self.counters.logged_in(username)
        return send_json(start_response, 200, {"access_token": token, "token_type": "bearer"},
                         False)

    def verify_token(self, token: str) -> Claims | None:
        """The claims of a valid, unexpired token, else ``None`` (see ``Tokens.verify``)."""
        result = self.tokens.verify(token)
        return None if isinstance(result, str) else result

    def _transcript(self, environ: Environ, start_response: StartResponse, method: str, arg: str) -> Body:
        head = method == "HEAD"
        if method not in ("GET", "HEAD"):
            return method_not_allowed(start_response, "GET, HEAD", False)
        claims = self.authorize(environ, start_response, head)
        if not isinstance(claims, dict):
            return claims
        if claims.get("role") != "admin":
            return send_error(start_response, 403, "Admin role required", head)
        raw, headers = _TRANSCRIPT
        start_response("200 OK", headers)
        return EMPTY if head else (raw,)

    def _transform(self, environ: Environ, start_response: StartResponse, method: str, arg: str) -> Body:
        """Echo what was received and upper-case a ``text`` field.

        Arbitrary (non-JSON) payloads are accepted on purpose, so load tests
        can post random bodies of any size and still get a 200.
        """
        if method not in ("GET", "HEAD", "POST"):
            return method_not_allowed(start_response, "GET, HEAD, POST", False)
        text: Any = None
        received = 0
        if method == "POST":
            received, raw = read_body(environ, MAX_TRANSFORM_PARSE)
            if raw and received <= MAX_TRANSFORM_PARSE:
                try:
                    data = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    data = None
                if isinstance(data, dict):
                    text = data.get("text")
        else:
            query = environ.get("QUERY_STRING")
            if query:
                text = parse_qs(query).get("text", [None])[0]
        transformed = text.upper() if isinstance(text, str) else None
        words = len(text.split()) if isinstance(text, str) else 0
        payload = {
            # HEAD must describe the GET representation, Content-Length included.
            "method": "GET" if method == "HEAD" else method,
            "received_bytes": received,
            "transformed": transformed,
            "word_count": words,
        }
        return send_json(start_response, 200, payload, method == "HEAD")

    # -- utility routes -----------------------------------------------------

    def _item(self, environ: Environ, start_response: StartResponse, method: str,
              arg: str) -> Body:
        """``/api/items/<id>``: records the id, so a test can check every feeder row's use."""
        if method not in ("GET", "HEAD"):
            return method_not_allowed(start_response, "GET, HEAD", method == "HEAD")
        if not arg or len(arg) > MAX_ID_LENGTH:
            return send_error(start_response, 400, f"id must be 1..{MAX_ID_LENGTH} characters",
                              method == "HEAD")
        if not arg.isascii():
            arg = _utf8(arg)
        self.counters.saw_id(arg)
        return send_json(start_response, 200, {"id": arg}, method == "HEAD")

    def _delay(self, environ: Environ, start_response: StartResponse, method: str, arg: str) -> Body:
        ms = _parse_uint(arg)
        if ms is None or ms > MAX_DELAY_MS:
            return send_error(start_response, 400, f"delay must be 0..{MAX_DELAY_MS} ms",
                              method == "HEAD")
        if ms:
            self._sleep(ms / 1000.0)
        return send_json(start_response, 200, {"delay_ms": ms}, method == "HEAD")

    def _status(self, environ: Environ, start_response: StartResponse, method: str, arg: str) -> Body:
        code = _parse_uint(arg)
        if code is None or not 100 <= code <= 599:
            return send_error(start_response, 400, "status must be 100..599", method == "HEAD")
        if code in (204, 304):
            # No body and no Content-Length (pywsgi rejects a non-zero one).
            start_response(STATUS_LINES[code], [])
            return EMPTY
        if code < 200:
            # A 1xx is an interim response to a client, which will keep waiting
            # for a final one; closing turns that wait into a clean EOF.
            start_response(STATUS_LINES[code], [("Content-Length", "0"), ("Connection", "close")])
            return EMPTY
        raw = _STATUS_BODIES[code]
        start_response(
            STATUS_LINES[code], [("Content-Type", JSON_TYPE), ("Content-Length", str(len(raw)))]
        )
        return EMPTY if method == "HEAD" else (raw,)

    def _bytes(self, environ: Environ, start_response: StartResponse, method: str, arg: str) -> Body:
        n = _parse_uint(arg)
        if n is None or n > MAX_BYTES:
            return send_error(start_response, 400, f"n must be 0..{MAX_BYTES}", method == "HEAD")
        start_response(
            "200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))]
        )
        if method == "HEAD" or n == 0:
            return EMPTY
        if n <= BLOCK_SIZE:
            return (_BLOCK[:n],)
        # Explicit Content-Length keeps pywsgi from chunking this generator.
        return _byte_pieces(n, BLOCK_SIZE)

    def _chunked(self, environ: Environ, start_response: StartResponse, method: str, arg: str) -> Body:
        n = _parse_uint(arg)
        if n is None or n > MAX_BYTES:
            return send_error(start_response, 400, f"n must be 0..{MAX_BYTES}", method == "HEAD")
        headers = [("Content-Type", "application/octet-stream")]
        if environ.get("SERVER_PROTOCOL") == "HTTP/1.0":
            # No chunked encoding in HTTP/1.0: the body is delimited by closing.
            headers.append(("Connection", "close"))
        start_response("200 OK", headers)
        if method == "HEAD":
            return _nothing()
        # At least a few chunks for small n, at most BLOCK_SIZE per chunk for large n.
        piece = min(BLOCK_SIZE, max(1, -(-n // 4)))
        # A generator (no __len__) is what makes pywsgi use Transfer-Encoding: chunked.
        return _byte_pieces(n, piece)

    def _close(self, environ: Environ, start_response: StartResponse, method: str, arg: str) -> Body:
        # pywsgi sees the Connection: close we provide and closes after the response.
        raw, headers = _CLOSE
        start_response("200 OK", [*headers, ("Connection", "close")])
        return EMPTY if method == "HEAD" else (raw,)
