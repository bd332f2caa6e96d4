"""JWTs of the built-in target: issued at login, checked on protected routes.

Apart from the routes so a test (and the shop) can tell *why* a token was
refused: issue 12 needs the target to count 401s caused by expiry apart from
missing or forged tokens, to show that ``--auth`` renews tokens in time.
"""

from __future__ import annotations

import math
import secrets
import time
from typing import Any

import jwt

#: Default token lifetime (``--token-ttl``), as the target always had.
TOKEN_TTL_S = 3600
JWT_ALGORITHM = "HS256"
TOKEN_CACHE_SIZE = 4096

#: Why a request was refused with 401 (the keys of ``/__stats``'s ``unauthorized``).
MISSING = "missing"
BAD = "bad"
EXPIRED = "expired"
REASONS = (MISSING, BAD, EXPIRED)
#: The ``detail`` of each 401 answer.
DETAILS = {MISSING: "Not authenticated", BAD: "Invalid token", EXPIRED: "Token expired"}

Claims = dict[str, Any]


def bearer(authorization: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` value ("" if there is none)."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class Tokens:
    """Issues and verifies HS256 tokens with a per-process secret.

    Load tests send the same token thousands of times; HMAC verification plus
    JSON decoding would dominate a protected route's cost, so valid tokens are
    cached with their expiry. The cache is simply cleared when full: bounded
    memory, O(1), and a miss only costs one re-verification. Invalid tokens
    are not cached, so garbage cannot evict good entries.
    """

    def __init__(
        self,
        secret: str | None = None,
        *,
        ttl_s: int = TOKEN_TTL_S,
        cache_size: int = TOKEN_CACHE_SIZE,
    ) -> None:
        # Random per process: tokens of an earlier server are rightly refused.
        self.secret = secret if secret is not None else secrets.token_hex(32)
        self.ttl_s = ttl_s
        self._cache_size = cache_size
        self._cache: dict[str, tuple[Claims, float]] = {}

    def issue(self, sub: str, role: str) -> str:
        """A token for ``sub`` that lives at least ``ttl_s`` seconds.

        ``exp`` is whole seconds (PyJWT truncates it), so it is rounded *up*:
        a token never lives shorter than asked, which a short ``--token-ttl``
        would otherwise make a coin toss (``ttl_s`` 1 could mean 1 ms).
        """
        exp = math.ceil(time.time() + self.ttl_s)
        return jwt.encode({"sub": sub, "role": role, "exp": exp}, self.secret,
                          algorithm=JWT_ALGORITHM)

    def verify(self, token: str) -> Claims | str:
        """The claims of a valid, unexpired token, else why not (``BAD`` or ``EXPIRED``)."""
        if not token:
            return MISSING
        now = time.time()
        hit = self._cache.get(token)
        if hit is not None:
            if hit[1] > now:
                return hit[0]
            del self._cache[token]
            return EXPIRED
        try:
            claims: Claims = jwt.decode(
                token,
                self.secret,
                algorithms=[JWT_ALGORITHM],
                options={"require": ["exp", "sub", "role"]},
            )
        except jwt.ExpiredSignatureError:   # raised only once the signature checked out
            return EXPIRED
        except jwt.InvalidTokenError:
            return BAD
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[token] = (claims, float(claims["exp"]))
        return claims

    def check(self, authorization: str) -> Claims | str:
        """Claims for an ``Authorization`` header value, else ``MISSING``, ``BAD`` or ``EXPIRED``.

        ``bearer`` inlined: this runs on every protected request.
        """
        scheme, _, token = authorization.partition(" ")
        return self.verify(token.strip() if scheme.lower() == "bearer" else "")
