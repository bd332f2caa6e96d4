"""What the target counts beyond requests per path and method, for ``/__stats``.

Tests of issue 12 check load runs against what the server saw: logins, 401s
by reason (expiry apart), orders, every id a feeder sent, and how many
connections were open at once (a user ramp shows there). Each update is O(1)
and memory is bounded (``max_ids`` distinct ids, then only a count).

No locks: under gevent every handler runs on one OS thread and never yields
between reading and writing a counter, so the increments are exact.
"""

from __future__ import annotations

from typing import Any

from loadgen.target.tokens import REASONS

MAX_TRACKED_IDS = 100_000


class Counters:
    """The counters, their ``/__stats`` view (``snapshot``) and ``reset``."""

    def __init__(self, max_ids: int = MAX_TRACKED_IDS) -> None:
        self._max_ids = max_ids
        self.open = 0        # connections open now: not a counter, survives reset
        self.reset()

    def reset(self) -> None:
        """Zero every counter; the peak restarts from the connections open now."""
        self.logins_issued = 0
        self.logins_by_user: dict[str, int] = {}   # per-user credentials: who logged in
        self.logins_refused = 0
        self.unauthorized = dict.fromkeys(REASONS, 0)
        self.listings = 0
        self.items_shown = 0
        self.orders_created = 0
        self.orders_not_shown = 0
        self.orders_already_ordered = 0
        self.ids: dict[str, int] = {}
        self.ids_untracked = 0
        self.peak = self.open
        self.accepted = 0

    def saw_id(self, item_id: str) -> None:
        """Count one request for ``item_id`` (past ``max_ids`` distinct ids: only counted)."""
        ids = self.ids
        if item_id in ids:
            ids[item_id] += 1
        elif len(ids) < self._max_ids:
            ids[item_id] = 1
        else:
            self.ids_untracked += 1

    def logged_in(self, username: str) -> None:
        """Count one login issued, and whose (usernames are bounded by the user table)."""
        self.logins_issued += 1
        self.logins_by_user[username] = self.logins_by_user.get(username, 0) + 1

    def connection_opened(self) -> None:
        self.accepted += 1
        self.open += 1
        self.peak = max(self.peak, self.open)

    def connection_closed(self) -> None:
        self.open -= 1

    def snapshot(self) -> dict[str, Any]:
        """The ``/__stats`` keys this module owns (copies: the answer is a moment's)."""
        refused = self.orders_not_shown + self.orders_already_ordered
        return {
            "logins": {"issued": self.logins_issued, "refused": self.logins_refused},
            "logins_by_user": dict(self.logins_by_user),
            "unauthorized": dict(self.unauthorized),
            "shop": {"listings": self.listings, "items_shown": self.items_shown},
            "orders": {"created": self.orders_created, "refused": refused,
                       "not_shown": self.orders_not_shown,
                       "already_ordered": self.orders_already_ordered},
            "ids_seen": dict(self.ids),
            "ids_untracked": self.ids_untracked,
            "connections": {"open": self.open, "peak": self.peak, "accepted": self.accepted},
        }
