"""Keeping ``--auth``'s one login fresh for a whole run (issue 12, section 4).

The password never leaves the coordinator (``commands.inputs.Credentials``), so
the coordinator logs in again, in a thread of its own (a login can take up to
``--timeout``; the collect loop must keep reading the workers' pipes meanwhile),
and the collect loop (``engine.collector``) hands each new bearer header to the
workers, which swap their prebuilt request bytes.  Two reasons to log in again:

- **before expiry**: the token's ``exp`` claim is read without verifying it
  (loadgen does not hold the server's key, and need not: the server checks it);
  ``renewal_delay`` says when.  A token without ``exp`` is renewed only after 401s.
- **after 401s**: when the workers report any 401 in a second, the thread logs in
  again, at most once per ``RETRY_S`` and not within ``RETRY_S`` of the last login
  (401s reported just after a renewal were mostly answered to the old token, which
  the workers are only now replacing).  The 401s stay counted as failures.

A failed login is counted and named (``problems``), never raised: the run goes
on with the token it has, and a login before expiry is retried ``RETRY_S`` later.
The token is held here and in the workers' request bytes only; ``summary`` has
counts and the login's error lines (which never hold the token or the password).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Self

from loadgen.schema import AuthSummary

#: Log in again at least this long before ``exp`` (at most half the token's life): the
#: new header must reach every worker, and requests already queued at the server with
#: the old one must be checked, before it expires.  Not ``--timeout``: with the default
#: 10 s a 3 s token would be renewed without pause.
LEAD_S = 2.0
#: ... and at least this share of the token's life before ``exp`` (80% of a long-lived
#: token's life passes before it is renewed: an hour's token at 48 minutes).
LEAD_SHARE = 0.2
#: Logins are never closer than this on a schedule (a token born nearly expired).
MIN_DELAY_S = 0.25
#: The least time between a login and a login after 401s; also the retry after a failure.
RETRY_S = 1.0
#: ``stop`` waits this long for a login under way.
STOP_WAIT_S = 2.0
#: Distinct login failures kept for the report (the count covers them all).
MAX_PROBLEMS = 5

Headers = tuple[tuple[str, str], ...]


def token_times(token: str) -> tuple[float | None, float | None]:
    """The token's ``exp`` and ``iat`` claims (None when absent or not a JWT), unverified.

    PyJWT (and the cryptography it loads, ~75 ms) is imported here, by runs that log in,
    not by every run's start-up.
    """
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except (jwt.InvalidTokenError, ValueError, TypeError):   # not a JWT: renew after 401s
        return None, None

    def number(key: str) -> float | None:
        value = claims.get(key) if isinstance(claims, dict) else None
        return float(value) if isinstance(value, (int, float)) \
            and not isinstance(value, bool) else None

    return number("exp"), number("iat")


def renewal_delay(exp: float | None, iat: float | None, now: float) -> float | None:
    """Seconds from ``now`` (when the login answered, wall clock) until the next login.

    None: the token says nothing of its expiry (no ``exp``), or it was already
    expired by this machine's clock without an ``iat`` to tell its life: only 401s
    can then say when to log in again.  The token's life is ``exp - iat`` when it
    has an ``iat``, else ``exp - now``; what is left of it is ``exp - now``, but
    never more than the life (this clock behind the server's) and, when this clock
    is ahead (nothing left), the life counted from now.  The login comes
    ``max(LEAD_SHARE * life, min(LEAD_S, life / 2))`` before the end of that.
    """
    if exp is None:
        return None
    left = exp - now
    life = exp - iat if iat is not None and iat < exp else left
    if life <= 0:
        return None
    if left <= 0 or left > life:
        left = life
    lead = max(LEAD_SHARE * life, min(LEAD_S, life / 2))
    return max(MIN_DELAY_S, left - lead)


def bearer_headers(token: str) -> Headers:
    return (("Authorization", f"Bearer {token}"),)


class Renewal:
    """The run's login, renewed in a thread; ``take`` gives the collect loop a new header.

    ``login`` returns a fresh token or raises (the message of its exception is the
    problem named); ``token`` is the one the preflight login returned.  ``clock``
    and ``wall`` are for the unit tests.
    """

    def __init__(self, login: Callable[[], str], token: str, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self._login = login
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._token = token
        self._fresh = False              # a token the workers have not been given yet
        self._after_401 = False          # 401s were reported: log in again
        self._last_attempt = clock()
        self._due = self._schedule(token)
        self.logins = 1                  # the preflight login
        self.before_expiry = 0
        self.after_401 = 0
        self.failed = 0
        self.problems: list[str] = []

    def _schedule(self, token: str) -> float | None:
        """When (monotonic) to log in again for this token; None: only after 401s."""
        exp, iat = token_times(token)
        delay = renewal_delay(exp, iat, self._wall())
        return None if delay is None else self._clock() + delay

    # -- what the coordinator calls -------------------------------------------------------

    def headers(self) -> Headers:
        """The current bearer header (for plans made now)."""
        with self._lock:
            self._fresh = False
            return bearer_headers(self._token)

    def take(self) -> Headers | None:
        """The bearer header of a token logged in since the last call, else None."""
        with self._lock:
            if not self._fresh:
                return None
            self._fresh = False
            return bearer_headers(self._token)

    def unauthorized(self, count: int) -> None:
        """Workers reported ``count`` 401s: log in again, unless one was just made."""
        if count <= 0:
            return
        with self._lock:
            if self._clock() - self._last_attempt < RETRY_S:
                return
            self._after_401 = True
        self._wake.set()

    def summary(self) -> AuthSummary:
        with self._lock:
            return {"logins": self.logins, "renewed_before_expiry": self.before_expiry,
                    "renewed_after_401": self.after_401, "failed": self.failed,
                    "problems": list(self.problems)}

    def start(self) -> None:
        """Renew in a thread while the load runs (again after ``stop``: capacity steps)."""
        self._stopped = threading.Event()   # its own: a thread left in a login ends alone
        self._wake.clear()
        self._thread = threading.Thread(target=self._run, args=(self._stopped,),
                                        name="loadgen-auth-renewal", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing before the run's document is built, so its counts are the server's.

        A login under way is waited for up to ``STOP_WAIT_S`` (then left to its daemon
        thread: a second Ctrl-C must not wait for a login's whole ``--timeout``).
        """
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(STOP_WAIT_S)
            self._thread = None

    def renew_if_due(self) -> None:
        """Log in now if the token is due (between capacity steps nobody renews it)."""
        if self.next_reason() == "before_expiry":
            self.renew("before_expiry")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the thread -----------------------------------------------------------------------

    def _run(self, stopped: threading.Event) -> None:
        while not stopped.is_set():
            reason = self.next_reason()
            if reason is None:
                with self._lock:
                    due = self._due
                self._wake.wait(None if due is None else max(0.0, due - self._clock()))
                self._wake.clear()
                continue
            self.renew(reason)

    def next_reason(self) -> str | None:
        """"after_401", "before_expiry" or None (nothing to do yet)."""
        with self._lock:
            if self._after_401:
                return "after_401"
            if self._due is not None and self._clock() >= self._due:
                return "before_expiry"
            return None

    def renew(self, reason: str) -> None:
        """Log in once and count it; a failure is counted, named, and retried later."""
        with self._lock:
            self._after_401 = False
            self._last_attempt = self._clock()
        try:
            token = self._login()
        except Exception as exc:  # noqa: BLE001 - any failure: keep the old token, go on
            with self._lock:
                self.failed += 1
                line = f"a login to renew the token failed: {exc}"
                if line not in self.problems and len(self.problems) < MAX_PROBLEMS:
                    self.problems.append(line)
                if reason == "before_expiry":   # try again soon; 401s may also ask
                    self._due = self._clock() + RETRY_S
            return
        due = self._schedule(token)
        with self._lock:
            self._token = token
            self._fresh = True
            self._due = due
            self.logins += 1
            if reason == "after_401":
                self.after_401 += 1
            else:
                self.before_expiry += 1
