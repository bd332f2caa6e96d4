"""User journeys on the worker (engine.journey), against a scripted shop and the built-in one.

The scripted scenarios run in one fresh, monkey-patched interpreter
(tests/workerharness.py with tests/journeyscripts.py): plans built by hand (no
``[[users]]`` parsing), every worker of a scenario in that process, and a raw shop server
that logs every request it read and refuses what a correct client never sends (a
stale id, another user's id, a missing cookie: ``problems``).  Assertions are exact
counts: what the workers recorded (per row, per kind's iterations) against what the
server saw.  The last test runs a journey through ``engine.coordinator`` (worker
processes, pickled plans) against ``loadgen.target``'s shop.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from conftest import TargetServer
from helpers import run_harness
from journeyplans import journey_config, step

from loadgen.config.feeder import PER_USER, from_rows
from loadgen.config.journey import UserKind
from loadgen.config.model import plan_workers
from loadgen.engine.coordinator import Coordinator

LOGIN, ITEMS, ORDER = "shopper: POST /login", "shopper: GET /items", \
    "shopper: POST /orders/{{ item }}"
BROWSE = "browser: GET /browse/{{ seq }}"

SCENARIOS: list[dict[str, Any]] = [
    {"name": "shop", "script": "shop", "options": {"concurrency": 3, "workers": 2,
                                                   "iterations": 20}},
    # every 3rd listing has no item: json:items[0].id finds nothing
    {"name": "empty", "script": "shop_empty", "options": {"concurrency": 1, "iterations": 12}},
    # every 3rd listing's id has a space: it cannot go in /orders/{{ item }}
    {"name": "bad_id", "script": "shop_bad_id", "options": {"concurrency": 1, "iterations": 12}},
    # a token answers 401 after 2 uses; refresh_on = [401]
    {"name": "refresh", "script": "shop_refresh", "options": {"concurrency": 1,
                                                              "iterations": 5}},
    # the first 2 logins answer 500
    {"name": "login_fails", "script": "shop_login_fails",
     "options": {"concurrency": 1, "iterations": 4}},
    # 300 ms of think time after each step; a stop once the server read request 3 (the
    # second iteration's first step): that iteration is cut after its in-flight step
    {"name": "cut", "script": "shop_think", "stop_after": 3,
     "options": {"concurrency": 1, "duration": "30s"}},
    # 2 workers: arrivals k = 0, 2, 4, ... (shoppers) on one, the browsers on the other
    {"name": "open", "script": "two_kinds",
     "options": {"rate": 100, "duration": "5s", "iterations": 20, "concurrency": 1,
                 "max_connections": 4, "workers": 2}},
    # a stop while arrivals keep coming: iterations in progress are cut
    {"name": "open_stop", "script": "shop_paced", "stop_after": 40,
     "options": {"rate": 400, "duration": "30s", "concurrency": 1, "max_connections": 8}},
    # one user at most (the browsers' first is made beyond the cap); arrivals 0.1 ms apart
    # come faster than iterations (round trips) end: they wait
    {"name": "open_cap", "script": "two_kinds",
     "options": {"rate": 10000, "duration": "5s", "iterations": 20, "concurrency": 1,
                 "max_connections": 1}},
    # each login answered 200 ms late; arrivals 1 s apart, so only the first needs a login
    {"name": "open_slow_login", "script": "slow_login",
     "options": {"rate": 5, "duration": "5s", "iterations": 3, "concurrency": 1,
                 "max_connections": 1}},
    # users ramp up, hold, ramp down to 0 (10 ms of think time): no tickets, the stages end
    # the run; a user told to leave ends its iteration, the run's end cuts the rest
    {"name": "ramp_down", "script": "shop_paced",
     "options": {"user_stages": ["100ms:3", "200ms:3", "200ms:0"]}},
    # the tickets run out long before the stages do
    {"name": "ramp", "script": "shop", "options": {"user_stages": ["200ms:2", "8s:2"],
                                                   "iterations": 30}},
]


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    return run_harness(SCENARIOS)


def scenario(results: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    """One scenario's result: it ended by itself, every worker sent its final message."""
    got = results[name]
    assert "error" not in got, got
    assert got["messages"].count("final") == got["workers"], got["messages"]
    assert got["server"]["problems"] == []   # every id ordered was this user's, cookies sent
    return got


def iterations(got: dict[str, Any], kind: str = "shopper") -> dict[str, Any]:
    """A kind's iteration counts (without the duration figure)."""
    return {k: v for k, v in got["journeys"][kind].items() if k != "max_us"}


def server_counts(got: dict[str, Any]) -> Counter[str]:
    """What the server read, by row name."""
    names = {"/login": LOGIN, "/items": ITEMS}
    out: Counter[str] = Counter()
    for method, target, *_ in got["server"]["requests"]:
        if target.startswith("/orders/"):
            out[ORDER] += 1
        elif target.startswith("/browse/"):
            out[BROWSE] += 1
        else:
            out[names[target]] += 1
    return out


def assert_rows_match_server(got: dict[str, Any]) -> None:
    """Each row's count is what the server read (no step recorded unsent, none unrecorded)."""
    recorded = {name: row["requests"] for name, row in got["rows"].items() if row["requests"]}
    assert recorded == dict(server_counts(got))


# -- the closed model ---------------------------------------------------------------------


def test_iterations_are_exact_across_two_workers_and_values_flow_between_steps(results) -> None:
    got = scenario(results, "shop")
    assert got["workers"] == 2
    rows = got["rows"]
    assert rows[LOGIN]["codes"] == {"200": 3}          # on_start once per user (3 users)
    assert rows[ITEMS]["codes"] == {"200": 20}
    assert rows[ORDER]["codes"] == {"201": 20}         # each ordered the id it was shown
    assert got["journeys"]["shopper"]["successes"] == 20
    assert got["journeys"]["shopper"]["failures"] == got["journeys"]["shopper"]["cut"] == 0
    assert_rows_match_server(got)
    requests = got["server"]["requests"]
    # per-user feeder: users 0, 1, 2 (ranks 0..2) logged in as rows 0..2, once each
    logins = sorted(json.loads(body)["username"] for m, t, _, _, body, _ in requests
                    if t == "/login")
    assert logins == ["u0", "u1", "u2"]
    # the token and the cookie of the connection's own login went with every later step
    login_of = {}
    for method, target, auth, cookie, body, conn in requests:
        if target == "/login":
            login_of[conn] = json.loads(body)["username"]
            assert cookie is None
        else:
            user = login_of[conn]
            assert auth.startswith("Bearer tok") and auth.endswith(f"-{user}")
            assert cookie == f"sid=s-{user}"
    # the id in the path and the body is the one the server listed just before
    orders = [(t, json.loads(b)) for m, t, _, _, b, _ in requests if t.startswith("/orders/")]
    assert all(t == f"/orders/{b['item']}" for t, b in orders)
    assert len({t for t, _ in orders}) == 20


def test_a_failed_extraction_fails_the_iteration_and_the_user_goes_on(results) -> None:
    got = scenario(results, "empty")
    rows = got["rows"]
    assert rows[ITEMS]["requests"] == 12 and rows[ITEMS]["codes"] == {"200": 8}
    assert rows[ITEMS]["errors"] == {"extract": 4}
    assert rows[ITEMS]["checks_failed"] == {"json:items[0].id found nothing": 4}
    assert rows[ORDER]["codes"] == {"201": 8}   # no order without an item
    assert rows[LOGIN]["codes"] == {"200": 1}   # the user kept its login
    assert iterations(got) == {"successes": 8, "failures": 4, "cut": 0,
                                          "failed_at": {ITEMS: 4}}
    assert_rows_match_server(got)


def test_an_extracted_value_that_cannot_be_sent_fails_the_step_that_got_it(results) -> None:
    got = scenario(results, "bad_id")
    rows = got["rows"]
    assert rows[ITEMS]["checks_failed"] == {
        "extract item: value cannot be sent in a request path": 4}
    assert rows[ITEMS]["errors"] == {"extract": 4}
    assert rows[ORDER]["codes"] == {"201": 8}
    assert got["journeys"]["shopper"]["failed_at"] == {ITEMS: 4}
    assert_rows_match_server(got)   # the bad id never went out
    assert not any(" " in t for _, t, *_ in got["server"]["requests"])


def test_refresh_on_logs_in_again_and_retries_the_step_once(results) -> None:
    """Tokens last 2 uses: iteration 1 uses both; each later one gets a 401 on items,
    logs in again and retries (both items requests counted)."""
    got = scenario(results, "refresh")
    rows = got["rows"]
    assert rows[LOGIN]["codes"] == {"200": 5}             # 1 + a refresh in iterations 2..5
    assert rows[ITEMS]["codes"] == {"200": 5, "401": 4}   # the 401s stay failures of the row
    assert rows[ORDER]["codes"] == {"201": 5}
    assert iterations(got) == {"successes": 5, "failures": 0, "cut": 0,
                                          "failed_at": {}}
    assert_rows_match_server(got)
    targets = [t for _, t, *_ in got["server"]["requests"]]
    assert targets[:3] == ["/login", "/items", targets[2]]
    assert targets[3:6] == ["/items", "/login", "/items"]   # 401, refresh, retry


def test_a_failed_on_start_fails_its_iteration_and_is_tried_again(results) -> None:
    got = scenario(results, "login_fails")
    rows = got["rows"]
    assert rows[LOGIN]["codes"] == {"500": 2, "200": 1}
    assert rows[ITEMS]["codes"] == {"200": 2}   # never an iteration without a login
    assert rows[ORDER]["codes"] == {"201": 2}
    assert iterations(got) == {"successes": 2, "failures": 2, "cut": 0,
                                          "failed_at": {LOGIN: 2}}
    assert_rows_match_server(got)


def test_a_stop_cuts_the_iteration_in_progress_after_its_in_flight_step(results) -> None:
    got = scenario(results, "cut")
    rows = got["rows"]
    assert rows[ITEMS]["codes"] == {"200": 2}
    assert rows[ORDER]["codes"] == {"201": 1}   # no new step after the stop
    assert iterations(got) == {"successes": 1, "failures": 0, "cut": 1,
                                          "failed_at": {}}
    assert_rows_match_server(got)


def test_a_ramp_runs_journeys_on_its_users_until_the_iterations_run_out(results) -> None:
    got = scenario(results, "ramp")
    rows = got["rows"]
    assert rows[LOGIN]["codes"] == {"200": 2}
    assert rows[ITEMS]["codes"] == {"200": 30}
    assert rows[ORDER]["codes"] == {"201": 30}
    assert got["journeys"]["shopper"]["successes"] == 30
    assert got["server"]["connections"] == 2
    assert_rows_match_server(got)


def assert_iterations_add_up(got: dict[str, Any]) -> None:
    """Every iteration listed (its first step went out); it either ordered (a success), was
    cut before it could, or failed: nothing lost, nothing counted twice."""
    it, rows = iterations(got), got["rows"]
    assert it["failures"] == 0
    assert rows[ORDER]["requests"] == it["successes"]
    assert rows[ITEMS]["requests"] == it["successes"] + it["cut"]


def test_a_ramp_down_lets_users_end_their_iteration_and_the_end_cuts_the_rest(results) -> None:
    got = scenario(results, "ramp_down")
    assert got["rows"][LOGIN]["codes"] == {"200": 3}   # each of the 3 users once
    assert got["server"]["connections"] == 3
    assert iterations(got)["successes"] > 0
    assert_iterations_add_up(got)
    assert_rows_match_server(got)


# -- the open model -----------------------------------------------------------------------


def test_open_model_arrivals_are_the_iterations_split_between_kinds(results) -> None:
    got = scenario(results, "open")
    rows = got["rows"]
    assert rows[ITEMS]["codes"] == {"200": 10} and rows[ORDER]["codes"] == {"201": 10}
    assert rows[BROWSE]["codes"] == {"200": 10}
    # a user's on_start runs once, when it is made: one login per shopper user
    assert rows[LOGIN]["requests"] == len({c for _, t, _, _, _, c in got["server"]["requests"]
                                           if t == "/login"})
    assert got["journeys"]["shopper"]["successes"] == 10
    assert got["journeys"]["browser"]["successes"] == 10
    # {{ seq }} of a step is the arrival's index: kinds alternate (weights 1:1)
    seqs = sorted(int(t.rsplit("/", 1)[1]) for _, t, *_ in got["server"]["requests"]
                  if t.startswith("/browse/"))
    assert seqs == list(range(1, 20, 2))
    assert_rows_match_server(got)


def test_open_model_a_stop_cuts_iterations_in_progress(results) -> None:
    got = scenario(results, "open_stop")
    assert iterations(got)["successes"] > 0
    assert_iterations_add_up(got)
    assert_rows_match_server(got)


def test_open_model_at_its_cap_queues_arrivals_per_kind(results) -> None:
    got = scenario(results, "open_cap")
    assert got["server"]["connections"] == 2   # one shopper, and the browsers' first user
    assert got["rows"][LOGIN]["codes"] == {"200": 1}
    assert got["journeys"]["shopper"]["successes"] == 10
    assert got["journeys"]["browser"]["successes"] == 10
    assert got["waited"] >= 1
    assert_rows_match_server(got)


def test_open_model_first_step_latency_runs_from_the_arrival(results) -> None:
    """Coordinated omission: the first arrival waited for its new user's login (200 ms):
    its first step's latency, and its iteration's time, include that wait."""
    got = scenario(results, "open_slow_login")
    rows = got["rows"]
    assert rows[LOGIN]["codes"] == {"200": 1}
    assert rows[ITEMS]["codes"] == {"200": 3} and rows[ORDER]["codes"] == {"201": 3}
    assert rows[LOGIN]["max_us"] >= 200_000
    assert rows[ITEMS]["max_us"] >= 200_000    # from the arrival, not from its own send
    assert got["journeys"]["shopper"]["max_us"] >= 200_000
    assert got["journeys"]["shopper"]["successes"] == 3
    assert_rows_match_server(got)


# -- end to end: worker processes against the built-in target's shop ------------------------


def test_a_journey_through_the_coordinator_against_the_builtin_shop(
        target_server: TargetServer) -> None:
    """login (per-user credentials) -> list -> order the listed id, 2 worker processes."""
    users = from_rows("shoppers.csv", ("username", "password"),
                      [(f"shopper{i}", f"shopper{i}-pass") for i in range(1, 5)], mode=PER_USER)
    cols = users.columns
    auth = (("Authorization", "Bearer {{ token }}"),)
    endpoints = [
        step("shopper", "POST", "/api/auth/login",
             headers=(("Content-Type", "application/json"),),
             body='{"username": "{{ username }}", "password": "{{ password }}"}',
             rules={"extract": {"token": "json:access_token"}}, columns=cols),
        step("shopper", "GET", "/shop/items", headers=auth,
             rules={"extract": {"item": "json:items[0].id"}}, columns=cols,
             extracted=("token",)),
        step("shopper", "POST", "/shop/orders",
             headers=(*auth, ("Content-Type", "application/json")),
             body='{"item": "{{ item }}"}',
             rules={"expect": {"status": [201], "body_contains": "order_id"}}, columns=cols,
             extracted=("token", "item")),
    ]
    kind = UserKind("shopper", 1.0, (0.0, 0.0), on_start=(0,), steps=(1, 2), feeder=users)
    base = {"endpoints": ("/x",), "headers": (), "timeout": "5s", "insecure": False,
            "auth": False, "username": "u", "password": None, "login_endpoint": "/login",
            "token_field": "t", "method": None}
    config = journey_config(target_server.url, {"concurrency": 4, "workers": 2,
                                                "iterations": 40}, base, endpoints, [kind])
    target_server.reset()
    outcome = Coordinator(config, plan_workers(config), None).run()
    assert outcome.status == "complete", outcome.problems
    rows = {e.name: t for e, t in zip(config.endpoints, outcome.aggregate.totals)}
    assert dict(rows["shopper: POST /api/auth/login"].codes) == {"200": 4}
    assert dict(rows["shopper: GET /shop/items"].codes) == {"200": 40}
    assert dict(rows["shopper: POST /shop/orders"].codes) == {"201": 40}
    stats = target_server.stats()
    assert stats["paths"] == {"/api/auth/login": 4, "/shop/items": 40, "/shop/orders": 40}
    assert stats["orders"]["created"] == 40 and stats["orders"]["refused"] == 0


def test_the_jars_cookies_join_the_request_in_one_cookie_header() -> None:
    from loadgen.engine.journey import _with_cookie

    plain = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
    assert _with_cookie(plain, b"sid=1", b"") == \
        b"GET /a HTTP/1.1\r\nCookie: sid=1\r\nHost: h\r\n\r\n"
    own = b"GET /a HTTP/1.1\r\nHost: h\r\ncookie: theme=dark\r\nX: y\r\n\r\n"
    assert _with_cookie(own, b"sid=1", b"\r\ncookie: ") == \
        b"GET /a HTTP/1.1\r\nHost: h\r\ncookie: theme=dark; sid=1\r\nX: y\r\n\r\n"
