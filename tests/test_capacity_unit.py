"""``loadgen.stats.capacity`` without a request: a step's config, a step's judgement and the
search's report of each step, on synthetic documents and a fake ``run_step``.

The search's stopping rules (doubling, bisection, loadgen's own limit, a broken step) are
in ``test_verdict_unit.py``; the search against a real server of known capacity is in
``test_capacity.py``.  These cover what lies between: what a step is asked to send, and
when a step that met the SLOs still did not hold its rate.
"""

from __future__ import annotations

import pytest
from test_verdict_unit import BASE, doc, p99_slo, rate_of, server, steps

from loadgen.commands.capacity import step_config
from loadgen.stats import capacity


def test_a_step_is_a_constant_open_model_rate_for_the_step_length() -> None:
    config = step_config(BASE, 250.0, 3.0)
    assert config.model == "open"
    assert rate_of(config) == 250.0 and config.duration_s == 3.0
    assert config.requests is None   # a step is bounded by its length, not a request count
    assert config.url == BASE.url and config.endpoints == BASE.endpoints


def test_a_step_under_95_percent_of_its_rate_did_not_hold_it() -> None:
    """A server that silently queues meets a latency SLO on what it served: not a pass."""
    short = capacity.judge(200.0, doc(200.0, 10.0, achieved=189.0), [])
    assert not short.passed
    assert short.failures == ["achieved 189 req/s, under 95% of 200"]
    held = capacity.judge(200.0, doc(200.0, 10.0, achieved=190.0), [])
    assert held.passed and held.failures == []


def test_a_step_keeps_its_slo_failures_and_figures() -> None:
    step = capacity.judge(100.0, doc(100.0, 250.0, failures=25), ["p99 250 ms >= 100 ms"])
    assert not step.passed and step.failures == ["p99 250 ms >= 100 ms"]
    assert step.p99_ms == 250.0 and step.achieved_rps == 100.0
    assert step.failure_share == pytest.approx(0.25)
    public = step.public()
    assert public["slo_failures"] == ["p99 250 ms >= 100 ms"] and public["note"] is None
    assert public["result"]["summary"]["rps"] == 100.0


def test_a_step_of_a_run_that_did_not_complete_never_passes() -> None:
    assert not capacity.judge(100.0, doc(100.0, 10.0, status="interrupted"), []).passed


def test_a_step_with_no_requests_has_no_failure_share() -> None:
    empty = doc(100.0, 10.0, achieved=0.0)
    assert capacity.judge(100.0, empty, []).failure_share == 0.0


def test_each_step_is_reported_as_it_ends_in_the_order_tried() -> None:
    run_step, asked = server(limit=330.0)
    reported: list[capacity.Step] = []
    found = capacity.search(steps(run_step), p99_slo(), start_rate=50, max_rate=10_000,
                            precision=0.05, on_step=reported.append)
    assert [s.rate for s in reported] == asked
    assert reported == found.steps


def test_the_start_rate_is_capped_at_the_max_rate() -> None:
    run_step, asked = server(limit=10_000.0)
    found = capacity.search(steps(run_step), p99_slo(), start_rate=500, max_rate=300)
    assert asked == [300]
    assert found.capacity == 300 and "--max-rate 300" in found.verdict


def test_bisection_stops_within_the_precision() -> None:
    run_step, asked = server(limit=330.0)

    coarse = capacity.search(steps(run_step), p99_slo(), start_rate=50, max_rate=10_000,
                             precision=0.25)
    tried_coarse = len(asked)
    asked.clear()
    fine = capacity.search(steps(run_step), p99_slo(), start_rate=50, max_rate=10_000,
                           precision=0.01)
    assert tried_coarse < len(asked)
    for found in (coarse, fine):
        assert found.capacity is not None and found.capacity <= 330
    assert fine.capacity is not None and fine.capacity >= 330 * 0.99
    assert coarse.capacity is not None and coarse.capacity >= 330 / 1.25


def test_capacity_options_become_the_first_step_config() -> None:
    """``capacity_inputs`` (what cli.py calls): the first step is --start-rate for
    --step-duration, the SLOs are its thresholds, and the search derives every other step."""
    from loadgen.cli import capacity as capacity_cli
    from loadgen.commands.inputs import CapacitySettings, capacity_inputs

    args = ["--url", "http://127.0.0.1:9", "--slo", "p99<100ms", "--slo", "errors<1%",
            "--start-rate", "20", "--step-duration", "3s", "--concurrency", "4", "--save", "c.json"]
    with capacity_cli.make_context("capacity", args) as ctx:
        opts = dict(ctx.params)
    settings, config, login, outputs = capacity_inputs(opts)
    assert settings == CapacitySettings(20.0, 100_000.0, 0.05, 3.0, ("p99<100ms", "errors<1%"))
    assert config.model == "open" and rate_of(config) == 20.0 and config.duration_s == 3.0
    assert config.requests is None and config.concurrency == 4 and config.max_connections == 1000
    assert [t.text for t in config.thresholds] == ["p99<100ms", "errors<1%"]
    assert step_config(config, 20.0, 3.0) == config
    assert (login.username, outputs.save) == ("user", "c.json")
