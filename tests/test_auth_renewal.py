"""``--auth`` logs in again before the token expires and after 401s (issue 12, section 4).

Units first: when to renew (a pure function of ``exp``, ``iat`` and now), and the
``Renewal``'s decisions on a fake clock and a fake login (no thread, no sockets).
Then real runs on 127.0.0.1: the built-in target with ``--token-ttl 2`` (its
``/__stats`` says how many 401s were caused by expiry and how many logins it
issued), and a raw server whose tokens carry no ``exp`` and are revoked (only 401s
tell), or whose login breaks after the first one.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from conftest import TargetServer, start_target_server, stop_target_server
from helpers import loadgen, one_line_error
from rawservers import RawServer, RotatingTokens, token_api

from loadgen.engine.renewal import (
    LEAD_S,
    MIN_DELAY_S,
    RETRY_S,
    Renewal,
    renewal_delay,
    token_times,
)
from loadgen.output.table import auth_lines
from loadgen.output.validate import check_document

PASSWORD = "pw-renew-7731"


# -- units: when to log in again ----------------------------------------------------------------


def test_renewal_delay_leaves_a_lead_before_exp() -> None:
    now = 1_000_000.0
    # an hour's token: renewed when 80% of its life has passed
    assert renewal_delay(now + 3600, now, now) == pytest.approx(0.8 * 3600)
    # a 60 s token: 20% (12 s) before exp
    assert renewal_delay(now + 60, None, now) == pytest.approx(48)
    # a 5 s token: LEAD_S before exp (more than 20% of its life)
    assert renewal_delay(now + 5, None, now) == pytest.approx(5 - LEAD_S)
    # a 3 s token: half its life before exp (LEAD_S would leave too little)
    assert renewal_delay(now + 3, None, now) == pytest.approx(1.5)
    # a token nearly spent (iat says it lived 10 s, 0.1 s are left): as soon as allowed
    assert renewal_delay(now + 0.1, now - 9.9, now) == MIN_DELAY_S


def test_renewal_delay_without_exp_or_with_skewed_clocks() -> None:
    now = 1_000_000.0
    assert renewal_delay(None, None, now) is None           # only 401s can tell
    assert renewal_delay(now - 5, None, now) is None        # expired on arrival, life unknown
    # this clock is 100 s behind the server's: exp - now would be 110 s of a 10 s token
    assert renewal_delay(now + 110, now + 100, now) == pytest.approx(10 - LEAD_S)
    # this clock is 100 s ahead: the token looks expired, iat gives its life from now
    assert renewal_delay(now - 90, now - 100, now) == pytest.approx(10 - LEAD_S)


def test_token_times_reads_claims_without_the_key() -> None:
    token = jwt.encode({"exp": 2_000_000_000, "iat": 1_999_999_000}, "secret" * 6,
                       algorithm="HS256")
    assert token_times(token) == (2_000_000_000.0, 1_999_999_000.0)
    assert token_times(jwt.encode({"sub": "x"}, "secret" * 6, algorithm="HS256")) == (None, None)
    assert token_times("not-a-jwt") == (None, None)
    expired = jwt.encode({"exp": 1_000_000_000}, "secret" * 6, algorithm="HS256")
    assert token_times(expired) == (1_000_000_000.0, None)   # read, not refused


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make_token(exp_in: float | None, clock: FakeClock, n: int = 0) -> str:
    claims: dict[str, Any] = {"n": n}
    if exp_in is not None:
        claims["exp"] = clock.t + exp_in
    return jwt.encode(claims, "k" * 32, algorithm="HS256")


def test_renewal_logs_in_before_expiry_and_hands_the_header_over_once() -> None:
    clock = FakeClock()
    issued = [make_token(10, clock, n) for n in range(1, 4)]
    renewal = Renewal(lambda: issued.pop(0), make_token(10, clock), clock=clock, wall=clock)
    assert renewal.take() is None and renewal.next_reason() is None
    clock.t += 10 - LEAD_S
    assert renewal.next_reason() == "before_expiry"
    renewal.renew("before_expiry")
    header = renewal.take()
    assert header is not None and header[0][0] == "Authorization"
    assert header[0][1].startswith("Bearer ") and renewal.take() is None   # given once
    assert renewal.next_reason() is None                   # the new token's due is later
    renewal.renew_if_due()                                 # (a capacity step's start)
    assert renewal.take() is None
    clock.t += 10
    renewal.renew_if_due()
    assert renewal.take() is not None
    assert renewal.summary() == {"logins": 3, "renewed_before_expiry": 2,
                                 "renewed_after_401": 0, "failed": 0, "problems": []}


def test_renewal_after_401s_at_most_once_a_second() -> None:
    clock = FakeClock()
    logins = iter(make_token(None, clock, n) for n in range(1, 10))
    renewal = Renewal(lambda: next(logins), make_token(None, clock), clock=clock, wall=clock)
    renewal.unauthorized(5)           # within RETRY_S of the first login: its rollout
    assert renewal.next_reason() is None
    clock.t += RETRY_S
    renewal.unauthorized(0)
    assert renewal.next_reason() is None
    renewal.unauthorized(3)
    assert renewal.next_reason() == "after_401"
    renewal.renew("after_401")
    renewal.unauthorized(7)           # the same second: not again
    assert renewal.next_reason() is None
    clock.t += RETRY_S
    renewal.unauthorized(1)
    assert renewal.next_reason() == "after_401"
    renewal.renew("after_401")
    assert renewal.summary()["renewed_after_401"] == 2 and renewal.summary()["logins"] == 3


def test_a_failed_login_is_counted_named_and_retried() -> None:
    clock = FakeClock()

    def broken() -> str:
        raise RuntimeError("login failed: http://x/api/auth/login answered HTTP 500")

    first = make_token(5, clock)
    renewal = Renewal(broken, first, clock=clock, wall=clock)
    clock.t += 5 - LEAD_S
    renewal.renew("before_expiry")
    renewal.renew("before_expiry")
    assert renewal.take() is None                          # the old token stays
    assert renewal.next_reason() is None                   # retried RETRY_S later
    clock.t += RETRY_S
    assert renewal.next_reason() == "before_expiry"
    summary = renewal.summary()
    assert summary["failed"] == 2 and summary["logins"] == 1
    problem = ("a login to renew the token failed: login failed: "
               "http://x/api/auth/login answered HTTP 500")
    assert summary["problems"] == [problem]   # named once, counted twice
    assert auth_lines(summary) == [
        "Logins: 1 (0 before expiry, 0 after 401s, 2 failed)",
        f"Login problem: {problem}; the run went on with the token it had"]


def test_auth_block_is_read_and_checked() -> None:
    doc: dict[str, Any] = {"status": "complete", "summary": {}, "endpoints": [],
                           "histograms": {}}
    check_document(doc, "old.json", charts=False)           # no auth block: an older file
    assert auth_lines(doc.get("auth")) == []
    doc["auth"] = {"logins": 5, "renewed_before_expiry": 4, "renewed_after_401": 1,
                   "failed": 0, "problems": []}
    check_document(doc, "new.json", charts=False)
    assert auth_lines(doc["auth"]) == ["Logins: 5 (4 before expiry, 1 after 401s)"]
    doc["auth"]["logins"] = "5"
    with pytest.raises(Exception, match="auth 'logins' is not an integer"):
        check_document(doc, "bad.json", charts=False)


# -- real runs -----------------------------------------------------------------------------------


@pytest.fixture
def short_tokens(tmp_path: Path) -> Iterator[TargetServer]:
    server = start_target_server(tmp_path / "target.log", args=("--token-ttl", "2"))
    try:
        yield server
    finally:
        stop_target_server(server)


def stats(server: TargetServer) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{server.host}:{server.port}/__stats", timeout=5) as r:
        return json.loads(r.read())


@pytest.mark.serial
def test_a_run_longer_than_the_tokens_live_gets_no_expiry_401(short_tokens: TargetServer,
                                                              tmp_path: Path) -> None:
    """6 s of load with 2 s tokens: every request succeeds; the server issued exactly the
    logins loadgen counted, and refused none for expiry."""
    save = tmp_path / "r.json"
    run = loadgen("run", "--url", f"http://{short_tokens.host}:{short_tokens.port}",
                  "--endpoint", "/shop/items", "--auth", "--username", "user",
                  "--password", "user123", "--duration", "6s", "--concurrency", "2",
                  "--workers", "2", "-q", save=save)
    assert run.status == 0, run.stdout + run.stderr
    doc = run.doc
    assert doc is not None
    server = stats(short_tokens)
    assert server["unauthorized"] == {"missing": 0, "bad": 0, "expired": 0}
    auth = doc["auth"]
    assert auth["logins"] == server["logins"]["issued"] >= 3
    assert auth["renewed_before_expiry"] == auth["logins"] - 1
    assert auth["failed"] == 0 and auth["renewed_after_401"] == 0
    assert doc["summary"]["status_codes"] == {"200": server["shop"]["listings"]}
    assert f"Logins: {auth['logins']} ({auth['logins'] - 1} before expiry, 0 after 401s)" \
        in run.stdout


def test_401s_make_it_log_in_again_and_stay_counted(tmp_path: Path) -> None:
    """Tokens without exp, revoked by the server after 1.5 s: only 401s tell. loadgen logs
    in again after them, and each 401 is a failure with the server's own count."""
    tokens = RotatingTokens(PASSWORD, revoke_after_s=1.5)
    save = tmp_path / "r.json"
    with RawServer(tokens.handler) as server:
        run = loadgen("run", "--url", server.url, "--endpoint", "/api/secret", "--auth",
                      "--username", "admin", "--password", PASSWORD, "--duration", "4s",
                      "--rate", "100", "--concurrency", "2", "--workers", "1", "-q",
                      save=save)
    assert run.status == 0, run.stdout + run.stderr
    doc = run.doc
    assert doc is not None
    auth = doc["auth"]
    assert auth["renewed_after_401"] >= 1 and auth["renewed_before_expiry"] == 0
    assert auth["logins"] == len(tokens.issued) == 1 + auth["renewed_after_401"]
    assert doc["summary"]["failures_by_status"] == {"401": tokens.refused}
    assert doc["summary"]["status_codes"]["200"] == server.requests
    assert doc["summary"]["requests"] == 400


def test_a_failed_relogin_is_named_and_the_run_goes_on(tmp_path: Path) -> None:
    """The login works once, then answers 500: the run finishes on the old token (its
    401s are failures), and the report names the failed logins."""
    tokens = RotatingTokens(PASSWORD, ttl_s=2, logins_left=1)
    save = tmp_path / "r.json"
    with RawServer(tokens.handler) as server:
        run = loadgen("run", "--url", server.url, "--endpoint", "/api/secret", "--auth",
                      "--username", "admin", "--password", PASSWORD, "--duration", "4s",
                      "--rate", "50", "--concurrency", "2", "--workers", "1", "-q",
                      save=save)
    assert run.status == 0, run.stdout + run.stderr
    doc = run.doc
    assert doc is not None
    auth = doc["auth"]
    assert auth["logins"] == 1 and auth["failed"] == tokens.failed_logins >= 1
    assert auth["problems"] and "answered HTTP 500" in auth["problems"][0]
    assert "Login problem: a login to renew the token failed" in run.stdout
    assert doc["summary"]["requests"] == 200
    assert doc["summary"]["status_codes"].get("200", 0) == server.requests
    assert doc["summary"]["failures_by_status"].get("401", 0) == tokens.refused


def test_a_token_a_header_cannot_carry_is_a_failed_login() -> None:
    """Sent as it is, a token with a line break would split the request: refused at login
    (a renewed one alike: a failed renewal, counted)."""
    with RawServer(token_api(PASSWORD, "abc\\r\\nX-Injected: 1")) as server:
        run = loadgen("run", "--url", server.url, "--endpoint", "/api/secret", "--auth",
                      "--username", "admin", "--password", PASSWORD, "--requests", "5")
    line = one_line_error(run, status=3)
    assert "header cannot carry" in line and server.requests == 0
