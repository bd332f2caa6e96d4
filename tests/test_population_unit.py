"""The user-count schedule of ``--user-stage``: a pure function of time, split exactly."""

from __future__ import annotations

import itertools

import pytest

from loadgen.config.model import ConfigError, users_of_worker
from loadgen.config.stages import parse_user_stage
from loadgen.engine.population import build_user_schedule

RAMP = build_user_schedule(0, [(2.0, 6), (2.0, 6), (1.0, 0)])


def test_count_follows_the_line_in_whole_steps() -> None:
    """Up: the floor of the line (a user every 1/3 s); down: its ceiling (one every 1/6 s)."""
    assert [RAMP.users_at(t) for t in (0.0, 0.3, 0.34, 1.0, 1.99, 2.0, 3.5, 4.0)] == \
        [0, 0, 1, 3, 5, 6, 6, 6]
    assert [RAMP.users_at(4.0 + t) for t in (0.1, 0.17, 0.5, 0.99)] == [6, 5, 3, 1]
    assert RAMP.users_at(5.0) == 0
    assert RAMP.duration_s == 5.0 and RAMP.peak == 6


def test_starting_count_and_describe() -> None:
    schedule = build_user_schedule(4, [(1.0, 2)])
    assert schedule.users_at(0.0) == 4 and schedule.users_at(0.6) == 3
    assert schedule.describe() == [{"duration_s": 1.0, "start_users": 4, "end_users": 2}]


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 7])
def test_workers_changes_add_up_to_the_schedule(workers: int) -> None:
    """Replaying every worker's own changes gives exactly users_at(t) between changes, and
    each worker only ever touches its own users (u % W == w)."""
    schedule = build_user_schedule(3, [(1.0, 10), (0.5, 10), (2.0, 1), (1.0, 5)])
    events = []
    for w in range(workers):
        times = []
        for t, user, starts in schedule.changes(w, workers):
            assert user % workers == w
            times.append(t)
            events.append((t, user, starts))
        assert times == sorted(times)
    events.sort(key=lambda e: (e[0], not e[2]))
    active = set(range(schedule.start_users))
    probes = sorted({t for t, _, _ in events} | {0.0, schedule.duration_s})
    i = 0
    for left, right in itertools.pairwise(probes):
        while i < len(events) and events[i][0] <= left:
            t, user, starts = events[i]
            if starts:
                assert user not in active
                active.add(user)
            else:
                active.remove(user)
            i += 1
        middle = (left + right) / 2
        assert len(active) == schedule.users_at(middle)
        assert active == set(range(len(active)))   # always users 0 .. N-1
        for w in range(workers):
            assert sum(1 for u in active if u % workers == w) == \
                users_of_worker(len(active), w, workers)


def test_split_is_exact() -> None:
    for total in range(30):
        for workers in (1, 2, 3, 8):
            shares = [users_of_worker(total, w, workers) for w in range(workers)]
            assert sum(shares) == total and max(shares) - min(shares) <= 1


@pytest.mark.parametrize("text, words", [
    ("10s:-1", "whole number"), ("10s:2.5", "whole number"), ("10s", "DURATION:USERS"),
    ("abc:3", "not a duration"), ("0s:3", "greater than zero"), ("1s:2000000", "more than"),
])
def test_bad_stages(text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_user_stage(text)


def test_all_zero_is_refused() -> None:
    assert parse_user_stage("30s:100") == (30.0, 100)
    with pytest.raises(ConfigError, match="nothing would be sent"):
        build_user_schedule(0, [(1.0, 0)])


def options(**given: object) -> dict[str, object]:
    from loadgen.cli import _run_defaults

    return {**_run_defaults(), "url": "http://127.0.0.1:9", **given}


def test_config_of_a_ramp() -> None:
    """The stages end the run (a shorter --duration sooner); concurrency is the peak; the
    first stage starts from --concurrency only when it was given; workers at most the peak."""
    from loadgen.commands.inputs import build_config
    from loadgen.config.model import plan_workers

    config = build_config(options(user_stages=("2s:6", "1s:0"), workers=4))
    assert (config.duration_s, config.requests, config.concurrency) == (3.0, None, 6)
    assert config.user_schedule.start_users == 0 and config.workers == 4
    assert config.public()["user_stages"][0] == {"duration_s": 2.0, "start_users": 0,
                                                 "end_users": 6}
    plans = plan_workers(config)
    assert [(p.connections, p.max_connections) for p in plans] == [(0, 2), (0, 2), (0, 1), (0, 1)]
    config = build_config(options(user_stages=("10s:2",), concurrency=5, duration="4s",
                                  workers=8))
    assert (config.duration_s, config.concurrency, config.workers) == (4.0, 5, 5)
    assert [p.connections for p in plan_workers(config)] == [1] * 5
    plain = build_config(options())
    assert (plain.concurrency, plain.user_schedule) == (10, None)
    assert "user_stages" not in plain.public()
