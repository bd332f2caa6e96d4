"""The worker's serve loop and its request sources, without the CLI or the coordinator.

``Worker.serve`` fed by ``tickets()`` (closed model) or by ``released()`` and
``dispatch()`` (open model), against scripted raw HTTP servers.  The worker must
run monkey-patched and this process never is, so every scenario below runs in one
fresh interpreter (tests/workerharness.py), which prints what the worker reported
(merged as the coordinator merges it) beside what the server counted.

Every assertion is a count or a bound that follows from causality (a response
held until request k was released cannot arrive before request k was due), never
a measured speed.  The deadlines here only catch a hang.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import run_harness

RATE = 100.0                # open model: requests per second ...
OPEN_S = 0.3                # ... for this long: request k is due at k / RATE, k = 0..29
SCHEDULED = 30
HELD_UNTIL = 5              # the first response waits until requests 1..5 are released
# Rounding between libev's clock and perf_counter, and int(seconds * 1e6): bounds that
# follow from the schedule are checked to within this.
CLOCK_SLACK_US = 1_000

SCENARIOS: list[dict[str, Any]] = [
    {"name": "closed", "server": {"kind": "ok"},
     "options": {"requests": 47, "concurrency": 3}},
    {"name": "interim", "server": {"kind": "continue"},
     "options": {"requests": 20}},
    {"name": "chunked", "server": {"kind": "chunked"},
     "options": {"requests": 20}},
    {"name": "drop", "server": {"kind": "drop", "every": 3},
     "options": {"requests": 20}},
    {"name": "silent", "server": {"kind": "silent"},
     "options": {"requests": 4, "timeout": "200ms"}},
    {"name": "close", "server": {"kind": "close"},
     "options": {"requests": 10}},
    {"name": "fin", "server": {"kind": "fin", "every": 3},
     "options": {"requests": 20}},
    {"name": "open", "server": {"kind": "ok"},
     "options": {"rate": RATE, "duration": f"{OPEN_S}s", "concurrency": 2}},
    # 100 ms between sends: the dispatcher's long waits, which a stop can cut short
    {"name": "open_slow", "server": {"kind": "ok"},
     "options": {"rate": 10, "duration": "500ms", "concurrency": 1}},
    {"name": "open_held", "server": {"kind": "ok", "hold_until_queued": HELD_UNTIL},
     "options": {"rate": RATE, "duration": f"{OPEN_S}s", "concurrency": 1,
                 "max_connections": 1}},
    {"name": "open_stall", "server": {"kind": "ok", "stall_first_s": OPEN_S},
     "options": {"rate": RATE, "duration": f"{OPEN_S}s", "concurrency": 1,
                 "max_connections": 1, "timeout": "100ms"}},
    {"name": "stop_closed", "server": {"kind": "ok"}, "stop_after": 30,
     "options": {"requests": 100_000, "duration": "30s"}},
    {"name": "stop_open", "server": {"kind": "ok"}, "stop_after": 10,
     "options": {"rate": 200, "duration": "30s"}},
    # request 1 is due 100 s after the start, far past the harness's deadline for a scenario
    {"name": "stop_open_idle", "server": {"kind": "ok"}, "stop_after": 1,
     "options": {"rate": 0.01, "duration": "200s"}},
]


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    """Every scenario, in one interpreter (each with its own server, worker and pipe)."""
    return run_harness(SCENARIOS)


def scenario(results: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    """One scenario's result; it must have ended by itself with a final report."""
    got = results[name]
    assert "error" not in got, got
    assert got["messages"][-1] == "final", got["messages"]
    return got


def assert_written_once(got: dict[str, Any]) -> None:
    """Every request recorded was written once, and the server read each of them."""
    assert got["server"]["requests"] == got["requests"]
    assert got["bytes_out"] == got["requests"] * got["plan"]["request_bytes"]
    assert got["server"]["open_handlers"] == 0


# -- the closed model: tickets() ------------------------------------------------------------


def test_closed_model_sends_exactly_its_tickets_over_its_connections(results) -> None:
    got = scenario(results, "closed")
    assert got["requests"] == 47
    assert got["codes"] == {"200": 47}
    assert got["errors"] == {}
    assert got["latency"]["count"] == got["success"]["count"] == 47
    assert_written_once(got)
    # the preconnected connections, kept alive for the whole run, each served some tickets
    per_connection = got["server"]["per_connection"]
    assert len(per_connection) == got["plan"]["connections"] == 3
    assert sum(per_connection) == 47 and min(per_connection) >= 1
    assert got["connects"] == 3 and got["reconnects"] == 0
    assert got["service"] is None and got["send_lag"]["count"] == 0   # open model only


def test_interim_responses_are_skipped_and_the_final_status_counted(results) -> None:
    """100 Continue alone on the wire, then 103 Early Hints and the 200 in one write."""
    got = scenario(results, "interim")
    assert got["codes"] == {"200": 20}   # never 100 or 103
    assert got["errors"] == {}
    assert_written_once(got)
    assert got["server"]["connections"] == 2   # and the connection stayed in step


def test_chunked_responses_keep_the_connection(results) -> None:
    got = scenario(results, "chunked")
    assert got["codes"] == {"200": 20}
    assert got["errors"] == {}
    assert_written_once(got)
    assert got["server"]["connections"] == 2 and got["reconnects"] == 0


# -- failures, closes and reconnects ------------------------------------------------------


def test_a_close_after_the_request_is_a_read_failure_never_resent(results) -> None:
    """Every third request on a connection is read and left unanswered (nginx's 444)."""
    got = scenario(results, "drop")
    server = got["server"]
    assert server["dropped"] >= 1
    assert got["requests"] == 20
    assert got["errors"] == {"read": server["dropped"]}
    assert got["codes"] == {"200": server["answered"]}
    assert_written_once(got)   # server count == loadgen count: nothing was sent twice
    # a dropped connection is never used again; the next request opens a new one (not a
    # reconnect: the close was found while reading, as a failure)
    assert max(server["per_connection"]) <= 3
    assert got["connects"] == server["connections"] >= server["dropped"]
    assert got["reconnects"] == 0


def test_a_server_that_never_answers_gives_timeouts_at_the_timeout(results) -> None:
    got = scenario(results, "silent")   # ended by itself: bounded by the timeouts
    assert got["errors"] == {"timeout": 4}
    assert got["codes"] == {}
    assert got["failed"]["count"] == 4
    assert got["failed"]["min_upper_us"] >= got["plan"]["timeout_us"]
    assert_written_once(got)
    assert max(got["server"]["per_connection"]) == 1   # a timed-out connection is never reused


def test_connection_close_answers_get_a_new_connection_each(results) -> None:
    got = scenario(results, "close")
    assert got["codes"] == {"200": 10}
    assert got["errors"] == {}
    assert_written_once(got)
    server = got["server"]
    assert server["per_connection"] == [1] * server["connections"]
    assert got["connects"] == server["connections"] == 10
    assert got["reconnects"] == 0   # the response said it would close: not found by surprise


def test_an_idle_close_is_replaced_before_the_write_and_counted(results) -> None:
    """Every third response carries the server's FIN: the next request must go out on a new
    connection, uncounted as a failure, and counted in ``reconnects``."""
    got = scenario(results, "fin")
    assert got["codes"] == {"200": 20}
    assert got["errors"] == {}
    assert_written_once(got)
    server = got["server"]
    assert got["reconnects"] >= 1
    assert server["connections"] == got["plan"]["connections"] + got["reconnects"]
    assert got["connects"] == server["connections"]


# -- the open model: dispatch() and released() --------------------------------------------


def test_open_model_sends_exactly_the_scheduled_requests(results) -> None:
    got = scenario(results, "open")
    assert got["requests"] == SCHEDULED
    assert got["codes"] == {"200": SCHEDULED}
    assert got["errors"] == {}
    assert_written_once(got)
    # every request has a latency (from its intended time), a service time (from its
    # write) and a send lag
    assert got["latency"]["count"] == got["service"]["count"] == SCHEDULED
    assert got["send_lag"]["count"] == SCHEDULED


def test_open_model_long_waits_release_exactly_the_schedule(results) -> None:
    got = scenario(results, "open_slow")
    assert got["codes"] == {"200": 5}
    assert got["errors"] == {}
    assert_written_once(got)
    assert got["send_lag"]["count"] == got["service"]["count"] == 5


def test_open_model_latency_runs_from_the_intended_time(results) -> None:
    """One connection; the first response waits until request HELD_UNTIL is released.

    Request 0 (due at 0) cannot be answered before request 5 was due (5 / RATE), and
    request 1 (due at 1 / RATE) cannot be written before that answer: its latency and its
    send lag include the wait in the queue, which its service time does not.
    """
    got = scenario(results, "open_held")
    assert got["codes"] == {"200": SCHEDULED}
    assert_written_once(got)
    assert got["server"]["connections"] == 1   # it waited: it did not open another
    assert got["latency"]["max_us"] >= HELD_UNTIL / RATE * 1e6 - CLOCK_SLACK_US
    assert got["send_lag"]["max_us"] >= (HELD_UNTIL - 1) / RATE * 1e6 - CLOCK_SLACK_US


def test_open_model_requests_stale_past_the_timeout_are_timeouts_never_sent(results) -> None:
    """The whole process stalls for OPEN_S on the first response: requests 1..19 (due
    before OPEN_S - timeout) were stale when taken, so they are timeouts and never sent,
    and request 0, answered late, is a timeout too."""
    got = scenario(results, "open_stall")
    assert got["requests"] == SCHEDULED
    timeouts = got["errors"].pop("timeout")
    assert got["errors"] == {}
    assert timeouts >= 20
    assert timeouts + got["codes"].get("200", 0) == SCHEDULED
    assert got["failed"]["min_upper_us"] >= got["plan"]["timeout_us"]
    sent = got["server"]["requests"]
    assert SCHEDULED - sent >= 19
    # those sent (and only those) have bytes out and a service time
    assert got["bytes_out"] == sent * got["plan"]["request_bytes"]
    assert got["service"]["count"] == sent
    assert got["send_lag"]["count"] == SCHEDULED


# -- a stop from the coordinator --------------------------------------------------------


@pytest.mark.parametrize("name,at_least,cap", [("stop_closed", 30, 100_000),
                                               ("stop_open", 10, 200 * 30)])
def test_a_stop_ends_the_run_with_every_request_counted(results, name, at_least, cap) -> None:
    got = scenario(results, name)
    assert got["stop_sent"]
    assert at_least <= got["requests"] < cap
    assert got["errors"] == {}
    assert got["codes"] == {"200": got["requests"]}
    assert_written_once(got)   # the in-flight requests were finished and counted


def test_a_stop_does_not_wait_for_the_next_scheduled_send(results) -> None:
    """A stop while the dispatcher sleeps until the next due time (a low rate, a ramp from
    zero) ends the run at once: the scenario ends by itself, long before request 1 is due."""
    got = scenario(results, "stop_open_idle")
    assert got["stop_sent"]
    assert got["requests"] == got["server"]["requests"] == 1
    assert got["codes"] == {"200": 1}
