"""One virtual user's cookie jar (issue 12, section 2): Set-Cookie in, Cookie out.

A virtual user talks to one origin (the run's target), so the jar is per user and per
origin: it keeps what that origin set (RFC 6265: path scoping, Max-Age and Expires,
Secure only over https, a Domain attribute that does not match the host refused) and
renders the Cookie header for the user's next request.

Parsing is the standard library's ``http.cookiejar.parse_ns_headers``: the parser
``CookieJar.extract_cookies`` itself runs on Set-Cookie headers, callable on the
header strings alone.  The alternatives were worse here: ``http.cookiejar.CookieJar``
wants a urllib ``Request`` and a response object per response (and its policy
machinery: more work than one origin needs), and ``http.cookies.SimpleCookie`` is a
Cookie-header parser that misreads real Set-Cookie headers: it drops a whole header
with a flag it does not know (``Partitioned``) and turns an unknown attribute
(``Priority=High``) into a second cookie.  ``parse_ns_headers`` is also about 2.5x
cheaper (12 against 30 µs for a header with Expires).  It is undocumented (typeshed
lists only documented names, hence the ``type: ignore``) but CookieJar has used it since
Python 2, and tests/test_checks_unit.py holds it to what this module relies on.
Set-Cookie is rare (a login); rendering, per request, is cached until the jar changes.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.cookiejar import parse_ns_headers  # type: ignore[attr-defined]  # see the docstring
from typing import Any

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")   # RFC 6265 cookie-name: an RFC 2616 token


@dataclass(slots=True)
class _Cookie:
    value: str
    path: str
    expires: float | None   # time.time() seconds; None: until the user ends
    order: int               # creation order: ties on path length go to the older


class CookieJar:
    """The cookies one origin (``host``, over https or not) set for one virtual user."""

    __slots__ = ("_cache", "_cookies", "_created", "_next_expiry", "host", "https")

    def __init__(self, host: str, https: bool) -> None:
        self.host = host.lower().strip("[]")   # an IPv6 literal as in a URL: [::1]
        self.https = https
        self._cookies: dict[tuple[str, str], _Cookie] = {}   # (name, path) -> cookie
        self._cache: dict[str, str | None] = {}               # request path -> Cookie header
        self._created = 0
        self._next_expiry: float | None = None

    def __len__(self) -> int:
        return len(self._cookies)

    def receive(self, headers: Iterable[tuple[bytes, bytes]], request_path: str,
                now: float | None = None) -> None:
        """Take the Set-Cookie headers of a response to ``request_path`` (the request
        target, query and all: the default cookie path comes from it)."""
        lines = [value.decode("latin-1") for name, value in headers
                 if len(name) == 10 and name.lower() == b"set-cookie"]
        if not lines:
            return
        now = time.time() if now is None else now
        for pairs in parse_ns_headers(lines):
            self._set(pairs, request_path, now)
        self._cache.clear()
        expiries = [c.expires for c in self._cookies.values() if c.expires is not None]
        self._next_expiry = min(expiries) if expiries else None

    def _set(self, pairs: list[tuple[str, Any]], request_path: str, now: float) -> None:
        """One Set-Cookie line (RFC 6265 §5.2 and §5.3, for a single origin)."""
        name, value = pairs[0]
        if value is None or not _TOKEN.fullmatch(name):   # no '=': ignored, as §5.2 says
            return
        attrs = {key.lower(): val for key, val in pairs[1:]}
        if "secure" in attrs and not self.https:
            return
        domain = attrs.get("domain")
        if domain and not _domain_matches(self.host, domain.lower().lstrip(".")):
            return
        path = attrs.get("path")
        if not path or not path.startswith("/"):
            path = default_path(request_path)
        expires: float | None = None
        max_age = attrs.get("max-age")
        if max_age is not None and re.fullmatch(r"-?\d+", max_age):   # wins over Expires
            expires = now + int(max_age)
        elif isinstance(attrs.get("expires"), float):   # parse_ns_headers made it a time
            expires = attrs["expires"]
        key = (name, path)
        if expires is not None and expires <= now:   # how a server deletes a cookie
            self._cookies.pop(key, None)
            return
        old = self._cookies.get(key)
        order = old.order if old else self._created
        self._created += 1
        self._cookies[key] = _Cookie(value, path, expires, order)

    def header(self, request_path: str, now: float | None = None) -> str | None:
        """The Cookie header value for a request to ``request_path``, or None (no cookie
        applies).  Longer paths first, then older cookies (RFC 6265 §5.4)."""
        if not self._cookies:
            return None
        if self._next_expiry is not None:
            now = time.time() if now is None else now
            if now >= self._next_expiry:
                self._expire(now)
        path = request_path.partition("?")[0] or "/"
        try:
            return self._cache[path]
        except KeyError:
            pass
        chosen = sorted((c for c in self._cookies.items() if _path_matches(path, c[1].path)),
                        key=lambda item: (-len(item[1].path), item[1].order))
        rendered = "; ".join(f"{name}={c.value}" for (name, _), c in chosen) or None
        self._cache[path] = rendered
        return rendered

    def _expire(self, now: float) -> None:
        self._cookies = {k: c for k, c in self._cookies.items()
                         if c.expires is None or c.expires > now}
        expiries = [c.expires for c in self._cookies.values() if c.expires is not None]
        self._next_expiry = min(expiries) if expiries else None
        self._cache.clear()


def default_path(request_path: str) -> str:
    """RFC 6265 §5.1.4: the request path up to, not including, its last '/' ('/' if none)."""
    path = request_path.partition("?")[0]
    if not path.startswith("/") or path.count("/") == 1:
        return "/"
    return path[:path.rindex("/")]


def _path_matches(request_path: str, cookie_path: str) -> bool:
    """RFC 6265 §5.1.4: /docs matches /docs, /docs/ and /docs/x, not /docsx."""
    if request_path == cookie_path:
        return True
    return request_path.startswith(cookie_path) and (
        cookie_path.endswith("/") or request_path[len(cookie_path)] == "/")


def _domain_matches(host: str, domain: str) -> bool:
    """RFC 6265 §5.1.3: the host is the domain, or a name under it (never an IP under it)."""
    if host == domain:
        return True
    try:
        ipaddress.ip_address(host)
        return False
    except ValueError:
        return host.endswith("." + domain)
