"""A tiny shop API on the built-in target, for journey tests and examples.

``GET /shop/items`` shows each logged-in user a few items whose ids are new on
every call, and ``POST /shop/orders`` accepts an item only if it was shown to
*that* user and not ordered yet. So a journey passes only if it really
extracts the id from the listing it just got (issue 12): a literal id, a stale
one, one from another user or a second order of the same item is refused.

Answers of ``POST /shop/orders`` (after a valid token and a well-formed body):
201 ``{"order_id", "item"}``; 404 for an id this user was never shown (or shown
so long ago that it was forgotten: the last ``SHOWN_PER_USER`` ids are kept);
409 for an id this user already ordered. A body that is not a JSON object with
a string ``item`` is 400, one over ``MAX_ORDER_BODY`` bytes 413.

Cost: listing makes ``ITEMS_PER_LISTING`` ids from a counter and remembers
them in a per-user ``OrderedDict`` capped at ``SHOWN_PER_USER`` (O(1) per id,
the oldest dropped with ``popitem(last=False)``); an order is one dict lookup.
Users are only those whose token verified, so memory is bounded by the user
table times the cap. No locks: see ``counters``.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson

from loadgen.target.counters import Counters
from loadgen.target.responses import (
    Body,
    Environ,
    StartResponse,
    method_not_allowed,
    read_body,
    send_error,
    send_json,
)

ITEMS_PER_LISTING = 3
SHOWN_PER_USER = 64
MAX_ORDER_BODY = 64 * 1024
#: (name, price) of the goods on offer, cycled through by the id counter.
CATALOGUE = (
    ("Teapot", 18.5), ("Mug", 6.0), ("Kettle", 42.0), ("Tea towel", 4.25),
    ("Biscuit tin", 9.9), ("Strainer", 3.5), ("Cosy", 12.0),
)

#: ``authorize(environ, start_response, head)``: the token's claims, or the 401 already sent.
Authorize = Callable[[Environ, StartResponse, bool], dict[str, Any] | Body]

_SHOWN = False     # value in a user's OrderedDict: shown, not ordered yet
_ORDERED = True


class Shop:
    """The shop's state (what each user was shown) and its two routes."""

    def __init__(self, authorize: Authorize, counters: Counters,
                 shown_per_user: int = SHOWN_PER_USER) -> None:
        self._authorize = authorize
        self._counters = counters
        self._shown_per_user = shown_per_user
        self._shown: dict[str, OrderedDict[str, bool]] = {}
        # A random prefix per process: ids of an earlier server are never "shown".
        self._prefix = secrets.token_hex(3) + "-"
        self._next_id = 0
        self._next_order = 0

    def list_items(self, user: str) -> list[dict[str, Any]]:
        """``ITEMS_PER_LISTING`` new items for ``user``, remembered as shown to them."""
        shown = self._shown.get(user)
        if shown is None:
            shown = self._shown[user] = OrderedDict()
        items = []
        for _ in range(ITEMS_PER_LISTING):
            n = self._next_id
            self._next_id = n + 1
            item_id = f"{self._prefix}{n:x}"
            name, price = CATALOGUE[n % len(CATALOGUE)]
            items.append({"id": item_id, "name": name, "price": price})
            shown[item_id] = _SHOWN
            if len(shown) > self._shown_per_user:
                shown.popitem(last=False)
        self._counters.listings += 1
        self._counters.items_shown += ITEMS_PER_LISTING
        return items

    def order(self, user: str, item_id: str) -> tuple[int, dict[str, Any]]:
        """Order ``item_id`` for ``user``: (201, the order) or (404 / 409, why not)."""
        shown = self._shown.get(user)
        state = shown.get(item_id) if shown is not None else None
        if shown is None or state is None:
            self._counters.orders_not_shown += 1
            return 404, {"detail": "Item not shown to this user"}
        if state is _ORDERED:
            self._counters.orders_already_ordered += 1
            return 409, {"detail": "Item already ordered"}
        shown[item_id] = _ORDERED
        self._next_order += 1
        self._counters.orders_created += 1
        return 201, {"order_id": f"ord-{self._prefix}{self._next_order:x}", "item": item_id}

    # -- routes -------------------------------------------------------------

    def items_route(self, environ: Environ, start_response: StartResponse, method: str,
                    arg: str) -> Body:
        if method != "GET":   # no HEAD: a listing changes state, and its ids would be lost
            return method_not_allowed(start_response, "GET", method == "HEAD")
        claims = self._authorize(environ, start_response, False)
        if not isinstance(claims, dict):
            return claims
        return send_json(start_response, 200, {"items": self.list_items(claims["sub"])}, False)

    def orders_route(self, environ: Environ, start_response: StartResponse, method: str,
                     arg: str) -> Body:
        if method != "POST":
            return method_not_allowed(start_response, "POST", method == "HEAD")
        claims = self._authorize(environ, start_response, False)
        if not isinstance(claims, dict):
            return claims
        total, raw = read_body(environ, MAX_ORDER_BODY)
        if total > MAX_ORDER_BODY:
            return send_error(start_response, 413, "Request body too large", False)
        item_id = _item_of(raw)
        if item_id is None:
            return send_error(start_response, 400, 'Body must be {"item": "<id>"}', False)
        code, payload = self.order(claims["sub"], item_id)
        return send_json(start_response, code, payload, False)


def _item_of(raw: bytes) -> str | None:
    """The ``item`` string of a JSON object body, else ``None`` (malformed)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    item = data.get("item") if isinstance(data, dict) else None
    return item if isinstance(item, str) else None
