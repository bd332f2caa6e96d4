"""The generator verdict (``loadgen.stats.verdict.judge``) and the capacity search around it.

One test per rule and per near miss, on plain numbers: each rule must fire
on the evidence it names, stay quiet just beside it, and say in its reason
both the figures behind it and what to change.  The capacity search runs
with a fake ``run_step`` returning tiny synthetic documents, so its stopping
rules are checked without a single request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from loadgen.config.model import Endpoint, RunConfig, Target
from loadgen.stats import capacity
from loadgen.stats.verdict import (
    DEMAND_LIMIT,
    LAG_FLOOR_MS,
    LAG_SHARE,
    POOL_FILL,
    POOL_SHARE,
    STARVED_WAIT,
    Evidence,
    WorkerLoad,
    judge,
    lag_limit_ms,
)


def lag(p99: float, p50: float | None = None) -> dict[str, float]:
    p50 = p99 / 10 if p50 is None else p50
    return {"p50": p50, "p90": (p50 + p99) / 2, "p99": p99, "max": p99 * 1.5}


def numbers(text: str) -> set[str]:
    return set(re.findall(r"\d[\d,]*(?:\.\d+)?", text))


# --- send lag ------------------------------------------------------------------------------------


def test_timer_jitter_below_the_floor_is_not_a_limit() -> None:
    # lag well above the (tiny) service time, but under LAG_FLOOR_MS: jitter
    out = judge(Evidence(open_model=True, send_lag_ms=lag(LAG_FLOOR_MS * 0.8),
                         lag_p50_by_second=[0.5, 0.6], service_p99_ms=1.0))
    assert out["limited"] is False and out["reasons"] == [] and out["causes"] == []
    assert out["lag_limit_ms"] == LAG_FLOOR_MS
    assert out["lateness_ms"]["p99"] == LAG_FLOOR_MS * 0.8


def test_lag_above_the_floor_but_small_against_the_service_time_is_not_a_limit() -> None:
    service = 100.0
    limit = LAG_SHARE * service
    assert limit > LAG_FLOOR_MS
    out = judge(Evidence(open_model=True, send_lag_ms=lag(limit - 1), lag_p50_by_second=[2.0],
                         service_p99_ms=service))
    assert out["limited"] is False and out["causes"] == []
    assert out["lag_limit_ms"] == limit == lag_limit_ms(service)


def test_lag_above_floor_and_share_is_a_limit() -> None:
    out = judge(Evidence(open_model=True, send_lag_ms=lag(80.0), lag_p50_by_second=[3.0, 4.0],
                         service_p99_ms=100.0))
    assert out["limited"] is True and out["causes"] == ["lag"]
    (reason,) = out["reasons"]
    assert {"80", "100", "50"} <= numbers(reason), reason   # lag p99, service p99, limit
    assert "--workers" in reason


def test_a_backlog_moves_the_median() -> None:
    # the p99 stays under the limit, but in one second half of the sends were 25 ms late
    out = judge(Evidence(open_model=True, send_lag_ms=lag(30.0), service_p99_ms=100.0,
                         lag_p50_by_second=[1.0, 2.0, 25.0, 3.0]))
    assert out["causes"] == ["backlog"]
    (reason,) = out["reasons"]
    assert "25" in numbers(reason) and "--workers" in reason


def test_a_median_under_the_floor_is_no_backlog() -> None:
    out = judge(Evidence(open_model=True, send_lag_ms=lag(30.0), service_p99_ms=100.0,
                         lag_p50_by_second=[1.0, LAG_FLOOR_MS - 0.1]))
    assert out["limited"] is False


def test_the_closed_model_ignores_send_lag() -> None:
    out = judge(Evidence(open_model=False, send_lag_ms=lag(500.0), service_p99_ms=10.0,
                         lag_p50_by_second=[200.0], waited=900, requests=1000, connections=4,
                         target_rps=1000.0, service_mean_ms=10.0))
    assert out["limited"] is False and out["causes"] == []


# --- connection pool -----------------------------------------------------------------------------

# needs 500 req/s x 0.05 s = 25 connections, has 20
POOL: dict[str, Any] = {"open_model": True, "send_lag_ms": lag(200.0), "service_p99_ms": 100.0,
                        "waited": 100, "requests": 1000, "connections": 20,
                        "max_connections": 20, "target_rps": 500.0, "service_mean_ms": 50.0}


def test_pool_exhaustion() -> None:
    assert 25 >= POOL_FILL * 20 and 100 / 1000 >= POOL_SHARE
    out = judge(Evidence(**POOL))
    assert out["limited"] is True and out["causes"] == ["pool"]
    (reason,) = out["reasons"]
    assert {"100", "1,000", "10", "20", "200", "500", "50", "25"} <= numbers(reason), reason
    assert "--max-connections" in reason
    assert out["waited_for_connection"] == 100 and out["waited_share"] == 0.1
    assert out["connections"] == 20 and out["connections_needed"] == 25.0


def test_pool_uses_opened_connections_without_a_limit() -> None:
    out = judge(Evidence(**{**POOL, "max_connections": None}))
    assert out["causes"] == ["pool"]


def test_a_stall_with_a_large_enough_pool_is_not_pool_exhaustion() -> None:
    # every connection waited on a server stall: waits and lag, but 100 req/s x 20 ms needs
    # only 2 of 50 connections -- the wait is the server's, not a limit of loadgen
    out = judge(Evidence(**{**POOL, "target_rps": 100.0, "service_mean_ms": 20.0,
                            "max_connections": 50, "send_lag_ms": lag(2000.0),
                            "service_p99_ms": 1500.0}))
    assert out["limited"] is False and out["causes"] == [] and out["reasons"] == []
    assert out["connections_needed"] == 2.0


def test_few_waits_are_not_pool_exhaustion() -> None:
    waited = int(POOL_SHARE * 1000) - 1
    out = judge(Evidence(**{**POOL, "waited": waited}))
    assert "pool" not in out["causes"]
    assert out["causes"] == ["lag"]   # still late: the lag rule speaks instead


def test_waits_without_lag_are_not_pool_exhaustion() -> None:
    out = judge(Evidence(**{**POOL, "send_lag_ms": lag(5.0)}))
    assert out["limited"] is False


def test_pool_exhaustion_needs_the_load_to_fill_the_pool() -> None:
    # 500 req/s x 30 ms = 15 connections, under 80% of 20: the pool was big enough
    out = judge(Evidence(**{**POOL, "service_mean_ms": 30.0}))
    assert 15 < POOL_FILL * 20
    assert "pool" not in out["causes"] and out["limited"] is False


# --- CPU -----------------------------------------------------------------------------------------


def test_a_busy_worker_is_cpu_limited() -> None:
    busy = WorkerLoad(3, cpu_percent_max=95.0, demand_percent_max=97.0, demand_cpu_percent=95.0,
                      demand_wait_percent=2.0, demand_second=4)
    out = judge(Evidence(open_model=False, workers=[busy], service_p99_ms=5.0))
    assert out["causes"] == ["cpu"]
    (reason,) = out["reasons"]
    assert "worker 3" in reason and {"95", "90"} <= numbers(reason)
    assert "--workers" in reason
    assert out["cpu_percent_max"] == 95.0 and out["demand_percent_max"] == 97.0


def test_two_workers_on_one_core_are_starved_not_busy() -> None:
    # each ran half the time and waited to run the other half: CPU alone reads 50%
    workers = [WorkerLoad(i, cpu_percent_max=50.0, demand_percent_max=100.0,
                          demand_cpu_percent=50.0, demand_wait_percent=50.0, demand_second=2)
               for i in (0, 1)]
    assert 100.0 >= DEMAND_LIMIT and 50.0 >= STARVED_WAIT
    out = judge(Evidence(open_model=False, workers=workers, service_p99_ms=5.0))
    assert out["causes"] == ["starved", "starved"]
    assert all("second 2" in r and "50%" in r and "free cores" in r for r in out["reasons"])
    assert "worker 0" in out["reasons"][0] and "worker 1" in out["reasons"][1]
    assert out["cpu_percent_max"] == 50.0
    assert out["demand_percent_max"] == 100.0 and out["run_queue_percent_max"] == 50.0


def test_demand_under_the_limit_is_not_a_limit() -> None:
    calm = WorkerLoad(0, cpu_percent_max=60.0, demand_percent_max=DEMAND_LIMIT - 1,
                      demand_cpu_percent=60.0, demand_wait_percent=STARVED_WAIT + 5)
    out = judge(Evidence(open_model=False, workers=[calm]))
    assert out["limited"] is False


# --- event loop ----------------------------------------------------------------------------------


def test_a_late_event_loop_is_a_limit() -> None:
    out = judge(Evidence(open_model=False, loop_lag_ms=lag(80.0), service_p99_ms=20.0))
    assert out["causes"] == ["loop"]
    (reason,) = out["reasons"]
    assert {"80", "20", "10"} <= numbers(reason) and "--workers" in reason
    assert out["loop_lag_ms"]["p99"] == 80.0


def test_loop_jitter_is_not_a_limit() -> None:
    out = judge(Evidence(open_model=False, loop_lag_ms=lag(30.0), service_p99_ms=100.0))
    assert out["limited"] is False


def test_loop_lag_is_not_counted_twice_when_sends_were_late() -> None:
    out = judge(Evidence(open_model=True, send_lag_ms=lag(80.0), loop_lag_ms=lag(80.0),
                         service_p99_ms=20.0))
    assert out["causes"] == ["lag"]


def test_no_evidence_no_limit() -> None:
    out = judge(Evidence(open_model=True))
    assert out == {**out, "limited": False, "reasons": [], "causes": [], "lateness_ms": None,
                   "loop_lag_ms": None, "lag_limit_ms": LAG_FLOOR_MS, "waited_share": 0.0,
                   "connections_needed": None, "cpu_percent_max": 0.0}


# --- capacity search with a fake run_step --------------------------------------------------------

BASE = RunConfig(url="http://127.0.0.1:1/", target=Target("http", "127.0.0.1", 1, ""),
                 endpoints=(Endpoint("GET", "/"),), requests=None, duration_s=1.0,
                 concurrency=4, workers=1, timeout_s=5.0)


def doc(rate: float, p99_ms: float, service_mean_ms: float = 5.0, achieved: float | None = None,
        causes: tuple[str, ...] = (), status: str = "complete",
        failures: int = 0) -> dict[str, Any]:
    """The few keys of a step's results document the search reads."""
    rps = rate if achieved is None else achieved
    requests = int(rps)
    return {"status": status,
            "summary": {"rps": rps, "requests": requests, "failures": failures,
                        "latency_ms": {"p99": p99_ms},
                        "service_time_ms": {"mean": service_mean_ms}},
            "generator_limited": bool(causes),
            "generator": {"reasons": [f"{c} reason" for c in causes], "causes": list(causes)}}


def p99_slo(limit_ms: float = 100.0) -> capacity.Evaluate:
    def evaluate(d: dict[str, Any]) -> list[str]:
        p99 = d["summary"]["latency_ms"]["p99"]
        return [f"p99 {p99} ms >= {limit_ms} ms"] if p99 >= limit_ms else []
    return evaluate


def steps(run_step: Callable[[RunConfig], dict[str, Any]], step_s: float = 1.0
          ) -> Callable[[float], dict[str, Any]]:
    """The search's ``run_step(rate)``: each rate made into a step's config, as
    ``commands.capacity`` makes it, then run by ``run_step``."""
    from loadgen.commands.capacity import step_config

    return lambda rate: run_step(step_config(BASE, rate, step_s))


def rate_of(config: RunConfig) -> float:
    (stage,) = config.schedule.describe()
    assert stage["start_rate"] == stage["end_rate"] and config.duration_s == stage["duration_s"]
    return stage["start_rate"]


def server(limit: float, limited_from: float | None = None,
           causes: tuple[str, ...] = ("cpu",)) -> tuple[capacity.RunStep, list[float]]:
    """A synthetic server: p99 10 ms up to ``limit`` req/s, 500 ms above.  From
    ``limited_from`` req/s on, loadgen reports itself as the limit with ``causes``."""
    asked: list[float] = []

    def run_step(config: RunConfig) -> dict[str, Any]:
        rate = rate_of(config)
        asked.append(rate)
        strained = limited_from is not None and rate >= limited_from
        return doc(rate, 10.0 if rate <= limit else 500.0, causes=causes if strained else ())
    return run_step, asked


def test_capacity_of_a_server_with_a_known_limit() -> None:
    run_step, asked = server(limit=330.0)
    found = capacity.search(steps(run_step), p99_slo(), start_rate=50, max_rate=10_000,
                            precision=0.05)
    assert asked[:4] == [50, 100, 200, 400]   # doubling until a step fails, then bisecting
    assert found.capacity is not None and 330 * 0.95 <= found.capacity <= 330
    assert found.generator_limited is False
    assert "capacity" in found.verdict
    assert [s.passed for s in found.steps] == [r <= 330 for r in asked]


def test_a_passing_generator_limited_step_does_not_stop_the_search() -> None:
    run_step, asked = server(limit=330.0, limited_from=200.0)
    found = capacity.search(steps(run_step), p99_slo(), start_rate=50, max_rate=10_000,
                            precision=0.05)
    # 200 held although loadgen was strained; 400 failed while strained: stop there
    assert asked == [50, 100, 200, 400]
    step200 = found.steps[2]
    assert step200.passed and step200.generator_limited and step200.note.startswith("held")
    assert found.capacity == 200
    assert found.generator_limited is True
    assert "400" in found.verdict and "cpu reason" in found.verdict
    assert "held up to 200" in found.verdict


def test_a_failed_limited_step_stops_the_search_at_the_highest_held() -> None:
    run_step, asked = server(limit=10_000.0, limited_from=400.0)

    def failing_when_strained(config: RunConfig) -> dict[str, Any]:
        d = run_step(config)
        if d["generator_limited"]:   # loadgen could not send it all: the rate was missed
            d["summary"]["rps"] = 0.8 * rate_of(config)
        return d

    found = capacity.search(steps(failing_when_strained), p99_slo(), start_rate=100,
                            max_rate=10_000)
    assert asked == [100, 200, 400]
    assert found.capacity == 200 and found.generator_limited is True
    assert not found.steps[-1].passed and found.steps[-1].note == ""
    assert "whether the server holds more is unknown" in found.verdict


def test_a_saturated_server_behind_a_full_pool_is_the_servers_failure() -> None:
    """Pool-only, and the server's own service time rose 1.5x over its lowest held step:
    the full pool was the server's queue, so the step failed on the server and the
    search bisects on."""
    def run_step(config: RunConfig) -> dict[str, Any]:
        rate = rate_of(config)
        if rate <= 300:
            return doc(rate, 10.0, service_mean_ms=5.0)
        return doc(rate, 800.0, service_mean_ms=40.0, achieved=0.7 * rate, causes=("pool",))

    found = capacity.search(steps(run_step), p99_slo(), start_rate=100, max_rate=10_000,
                            precision=0.05)
    assert found.generator_limited is False
    assert found.capacity is not None and 300 * 0.95 <= found.capacity <= 300
    saturated = [s for s in found.steps if s.generator_limited]
    assert saturated and all(s.note.startswith("server saturated") for s in saturated)
    assert len(found.steps) > 4   # bisected past the first failed step (400)


def test_a_pool_limited_step_without_saturation_stops_the_search() -> None:
    def run_step(config: RunConfig) -> dict[str, Any]:
        rate = rate_of(config)
        if rate <= 300:
            return doc(rate, 10.0, service_mean_ms=5.0)
        # the service time barely moved: the pool was loadgen's limit
        return doc(rate, 800.0, service_mean_ms=6.0, causes=("pool",))

    found = capacity.search(steps(run_step), p99_slo(), start_rate=100, max_rate=10_000)
    assert found.generator_limited is True and found.capacity == 200
    assert [s.rate for s in found.steps] == [100, 200, 400]


def test_pool_and_another_cause_is_not_read_as_saturation() -> None:
    def run_step(config: RunConfig) -> dict[str, Any]:
        rate = rate_of(config)
        if rate <= 300:
            return doc(rate, 10.0, service_mean_ms=5.0)
        return doc(rate, 800.0, service_mean_ms=40.0, causes=("pool", "cpu"))

    found = capacity.search(steps(run_step), p99_slo(), start_rate=100, max_rate=10_000)
    assert found.generator_limited is True and found.capacity == 200


def test_a_broken_step_stops_the_search() -> None:
    def run_step(config: RunConfig) -> dict[str, Any]:
        rate = rate_of(config)
        return doc(rate, 10.0, status="complete" if rate < 400 else "failed")

    found = capacity.search(steps(run_step), p99_slo(), start_rate=100, max_rate=10_000)
    assert found.capacity == 200 and "the run failed" in found.verdict


@pytest.mark.parametrize(("limit", "expected"), [(10_000.0, 800.0), (50.0, None)])
def test_search_ends_at_max_rate_or_at_the_start_rate(limit: float,
                                                      expected: float | None) -> None:
    run_step, _ = server(limit=limit)
    found = capacity.search(steps(run_step), p99_slo(), start_rate=100, max_rate=800)
    assert found.capacity == expected
    assert ("--max-rate" if expected else "--start-rate") in found.verdict


def test_a_worker_waiting_a_third_of_a_second_to_run_is_starved() -> None:
    """Two workers on one core, each idle part of the time while responses were pending:
    CPU + run-queue wait stays under 90%, but waiting to run 45% of a second is starvation."""
    workers = [WorkerLoad(i, cpu_percent_max=25.0, demand_percent_max=70.0,
                          demand_cpu_percent=25.0, demand_wait_percent=45.0, demand_second=2,
                          wait_percent_max=45.0, wait_second=2) for i in (0, 1)]
    out = judge(Evidence(open_model=False, workers=workers, service_p99_ms=1.0,
                         loop_lag_ms=lag(12.0)))
    assert out["causes"] == ["starved", "starved"]
    assert all("45%" in r and "free cores" in r for r in out["reasons"])


def test_late_sends_on_a_crowded_machine_advise_free_cores_not_more_workers() -> None:
    crowded = WorkerLoad(0, cpu_percent_max=8.0, demand_percent_max=30.0,
                         demand_cpu_percent=8.0, demand_wait_percent=22.0, demand_second=3,
                         wait_percent_max=25.0, wait_second=3)
    out = judge(Evidence(open_model=True, send_lag_ms=lag(40.0), service_p99_ms=2.0,
                         workers=[crowded]))
    assert out["causes"] == ["lag"]
    assert "free cores" in out["reasons"][0] and "--workers" not in out["reasons"][0]


def test_a_busy_worker_behind_schedule_is_named_before_the_pool() -> None:
    """30k req/s on one worker: 83% CPU, connections busy because responses are read late.
    The pool reason alone would send the user to --max-connections; the CPU comes first."""
    busy = WorkerLoad(0, cpu_percent_max=83.0, demand_percent_max=88.0, demand_cpu_percent=83.0,
                      demand_wait_percent=5.0, demand_second=2)
    out = judge(Evidence(open_model=True, send_lag_ms=lag(9000.0, p50=4000.0),
                         lag_p50_by_second=[4000.0], service_p99_ms=15.0, service_mean_ms=3.0,
                         target_rps=30000, waited=20000, requests=40000, connections=50,
                         max_connections=50, workers=[busy]))
    assert out["causes"] == ["cpu", "pool"]
    assert "83%" in out["reasons"][0] and "--workers" in out["reasons"][0]
    assert "may follow from the CPU limit" in out["reasons"][1]
