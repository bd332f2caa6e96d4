"""The live view (``loadgen.output.liveview``) on synthetic updates, drawn into a recording
rich Console: no terminal, no processes, no network."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console
from synthetic import JOURNEY_ROWS, iterations, journey_kinds, message, new_aggregate, tally

from loadgen.output.liveview import (
    MAX_ROWS,
    Frame,
    LivePlan,
    LiveSink,
    LiveView,
    Row,
    frame_of,
    generator_status,
    render,
    target_rate,
)
from loadgen.output.progress import Progress
from loadgen.output.sinks import ProgressSink, Snapshot, live_or_plain
from loadgen.stats.aggregate import Aggregate, WorkerState

ENDPOINTS = ("GET /api/health", "POST /api/orders")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def recording() -> Console:
    return Console(file=io.StringIO(), record=True, width=120, force_terminal=True,
                   color_system=None)


def two_seconds() -> Any:
    """Two workers, two endpoints, two whole seconds: the orders fail (500s, timeouts)."""
    agg = new_aggregate(workers=2, endpoints=ENDPOINTS)
    for k in (1, 2):
        agg.add(message(0, k + 0.0004, [tally(ok=40 * k), tally(ok=5, status_500=2)]))
        agg.add(message(1, k + 0.0007, [tally(ok=10), tally(ok=5, timeouts=k)],
                        connections=6))
    return agg


def test_target_rate_is_the_schedules_mean_over_the_second() -> None:
    ramp = [{"duration_s": 4.0, "start_rate": 0.0, "end_rate": 400.0},
            {"duration_s": 6.0, "start_rate": 400.0, "end_rate": 400.0}]
    assert target_rate(ramp, 0.0, 1.0) == pytest.approx(50.0)     # 0 -> 100 req/s
    assert target_rate(ramp, 3.0, 4.0) == pytest.approx(350.0)
    assert target_rate(ramp, 3.5, 4.5) == pytest.approx(0.5 * 375 + 0.5 * 400)
    assert target_rate(ramp, 8.0, 9.0) == pytest.approx(400.0)
    assert target_rate(ramp, 10.0, 11.0) == 0.0                    # past the end
    assert target_rate([{"duration_s": None, "start_rate": 75.0, "end_rate": 75.0}],
                       100.0, 101.0) == pytest.approx(75.0)        # open-ended --rate
    assert target_rate([], 0.0, 1.0) is None                       # closed model


def test_the_plan_reads_the_public_config() -> None:
    stages = [{"duration_s": 3.0, "start_rate": 0.0, "end_rate": 90.0},
              {"duration_s": 6.0, "start_rate": 90.0, "end_rate": 90.0}]
    plan = LivePlan.from_config({"model": "open", "duration_s": None, "requests": None,
                                 "concurrency": 20, "schedule": stages})
    assert plan.total_s == 9.0 and plan.users is None and list(plan.schedule) == stages
    closed = LivePlan.from_config({"model": "closed", "duration_s": None, "requests": 500,
                                   "concurrency": 20, "schedule": None})
    assert (closed.total_s, closed.requests, closed.users) == (None, 500, 20)
    ramped = LivePlan.from_config({"model": "closed", "duration_s": 5.0, "concurrency": 8,
                                   "user_stages": [{"duration_s": 5.0, "start_users": 0,
                                                    "end_users": 8}]})
    assert ramped.total_s == 5.0 and ramped.users is None   # the intervals say how many


def test_a_frame_has_each_endpoints_last_second_and_counts_since_the_start() -> None:
    frame = frame_of(two_seconds(), LivePlan(total_s=10.0, users=20))
    assert frame is not None and frame.elapsed_s == 2.0
    health, orders = frame.rows
    assert health.name == "GET /api/health" and orders.name == "POST /api/orders"
    assert health.rps == pytest.approx(80 + 10) and health.requests == 40 + 80 + 20
    assert health.successes == health.requests and not health.failures
    assert health.p50_ms == pytest.approx(2.0, rel=0.05)
    assert orders.rps == pytest.approx(5 + 2 + 5 + 2) and orders.requests == 10 + 4 + 10 + 3
    assert orders.failures == {"500": 4, "timeout": 3}
    assert orders.p99_ms == pytest.approx(1000.0, rel=0.01)   # a 1 s timeout in the second
    assert frame.total.requests == health.requests + orders.requests
    assert frame.total.failures == {"500": 4, "timeout": 3}
    assert frame.total.rps == pytest.approx(90 + 14)
    assert frame.connections == 10 and frame.users == 20 and frame.target_rps is None
    assert frame.iterations is None
    assert frame_of(new_aggregate(), LivePlan()) is None   # nothing merged yet


def test_a_journey_runs_frame_counts_completed_iterations() -> None:
    agg = Aggregate(list(JOURNEY_ROWS), [WorkerState(0)], journeys=journey_kinds())
    for k in (1, 2):
        rows = [tally(ok=1 if k == 1 else 0), tally(ok=10), tally(ok=9, status_500=1),
                tally(ok=5)]
        kinds = [iterations([30_000] * 9, [(2, 12_000)], cut=k - 1), iterations([4_000] * 5)]
        agg.add(message(0, k + 0.0004, rows, journeys=kinds))
    frame = frame_of(agg, LivePlan(iterations=100))
    assert frame is not None
    assert frame.iterations == 2 * (10 + 5)          # successes and failures; cut ones are not
    assert frame.iterations_rps == pytest.approx(15.0)
    assert frame.total.requests == 1 + 2 * 25 and frame.total.failures == {"500": 2}


def test_the_view_shows_endpoints_rates_the_bar_and_plain_numbers() -> None:
    frame = Frame(
        elapsed_s=12.0, plan=LivePlan(total_s=30.0), target_rps=300.0,
        connections=24, generator="ok (send lag p99 1.2 ms)",
        rows=[Row("GET /api/health", 99.0, 1200, 1200, 0.412, 1.234),
              Row("GET /api/dataset/summary", 1_234_567.0, 2_000_000, 1_999_985, 1.02,
                  3012.4, {"503": 12, "timeout": 3})],
        total=Row("All endpoints", 1_234_666.0, 2_001_200, 2_001_185, 0.61, 3012.4,
                  {"503": 12, "timeout": 3}))
    console = recording()
    console.print(render(frame))
    text = console.export_text()
    assert "loadgen  12s / 30s" in text and "40%" in text and "━" in text   # the bar
    assert "target 300 req/s | achieved 1,234,666 req/s | 24 connections" in text
    assert "generator: ok (send lag p99 1.2 ms)" in text
    health = next(line for line in text.splitlines() if "GET /api/health" in line)
    assert health.split() == ["GET", "/api/health", "99.0", "100.0%", "0.412", "1.23"]
    summary = next(line for line in text.splitlines() if "dataset/summary" in line)
    assert "1,234,567" in summary and "3,012" in summary and ">99.9%" in summary
    assert "503: 12, timeout: 3" in summary
    assert "All endpoints" in text and "e+" not in text


def test_a_journey_run_shows_iterations_and_a_count_bound_run_its_share() -> None:
    frame = Frame(elapsed_s=3.0, plan=LivePlan(iterations=200, users=10), users=10.0,
                  iterations=50, iterations_rps=17.0,
                  rows=[Row("shop: GET /login", 17.0, 50, 50, 1.0, 2.0)],
                  total=Row("All endpoints", 17.0, 50, 50, 1.0, 2.0))
    console = recording()
    console.print(render(frame))
    text = console.export_text()
    assert "3s | 50 / 200 iterations" in text and "25%" in text
    assert "achieved 17.0 iterations/s (50 done), 17.0 req/s | 10.0 users" in text
    open_model = Frame(elapsed_s=3.0, plan=LivePlan(), target_rps=20.0, iterations=50,
                       iterations_rps=17.0, rows=[], total=Row("All endpoints", 34.0, 90, 90,
                                                               1.0, 2.0))
    console.print(render(open_model))   # its schedule counts iterations, not requests
    assert "target 20.0 iterations/s | achieved 17.0 iterations/s (50 done), 34.0 req/s" in (
        console.export_text())


def test_generator_status_follows_the_verdicts_rules_on_what_is_known_so_far() -> None:
    quiet = {"send_lag_ms": {"p50": 0.4, "p99": 1.2}, "latency_ms": {"p99": 5.0}}
    assert generator_status(quiet, 50.0, 2.0) == "ok (send lag p99 1.20 ms, worker CPU peak 50%)"
    backlog = {"send_lag_ms": {"p50": 25.0, "p99": 3012.0}, "latency_ms": {"p99": 3100.0}}
    assert generator_status(backlog, 50.0, 0.0) == (
        "behind schedule (send lag p99 3,012 ms, worker CPU peak 50%)")
    late = {"send_lag_ms": {"p50": 1.0, "p99": 68.9}, "latency_ms": {"p99": 134.0}}
    assert generator_status(late, 12.0, 55.0) == (
        "sending late, starved of CPU (send lag p99 68.9 ms, worker CPU peak 12%, "
        "waited to run 55%)")
    # late because every connection was busy: the verdict blames the pool or the server
    assert generator_status(backlog, 17.0, 0.0, waited_share=0.36) == (
        "sends wait for a free connection (36% of sends waited for a connection, send lag "
        "p99 3,012 ms, worker CPU peak 17%)")
    assert generator_status(quiet, 17.0, 0.0, waited_share=0.36) == (
        "ok (36% of sends waited for a connection, send lag p99 1.20 ms, worker CPU peak 17%)")
    assert generator_status({}, 97.0, 0.0) == "CPU-bound (worker CPU peak 97%)"
    assert generator_status({}, 12.0, 0.0) == "ok (worker CPU peak 12%)"


def test_a_long_list_keeps_its_busiest_endpoints_in_the_runs_order() -> None:
    names = tuple(f"GET /e{i}" for i in range(MAX_ROWS + 3))
    agg = new_aggregate(workers=1, endpoints=names)
    # the first three endpoints are the quietest
    agg.add(message(0, 1.0004, [tally(ok=1 if i < 3 else 10 + i) for i in range(len(names))]))
    frame = frame_of(agg, LivePlan())
    assert frame is not None and frame.hidden_rows == 3
    assert [r.name for r in frame.rows] == list(names[3:])


def test_the_sink_draws_each_update_and_leaves_nothing_behind() -> None:
    console = recording()
    sink = LiveSink(LiveView(LivePlan(total_s=10.0), io.StringIO(), console=console))
    agg = two_seconds()
    sink.on_update(Snapshot(agg.intervals, dict))   # no aggregate (a capacity step): nothing
    assert sink.view.frames == 0
    sink.on_update(Snapshot(agg.intervals, dict, aggregate=agg))
    sink.on_update(Snapshot(agg.intervals, dict, aggregate=agg))
    assert sink.view.frames == 2 and sink.view.live is not None
    assert "POST /api/orders" in console.export_text(clear=False)
    assert sink.on_finish({}) is None
    assert sink.view.live is None   # stopped: transient, the report takes its place
    sink.end()                      # a second end (Ctrl-C path) is harmless


def test_a_terminal_gets_the_live_view_anything_else_the_plain_line() -> None:
    config = {"model": "closed", "requests": 100, "concurrency": 4}
    assert isinstance(live_or_plain(Progress(False, 100, None, stream=Terminal()), config),
                      LiveSink)
    assert isinstance(live_or_plain(Progress(False, 100, None, stream=io.StringIO()), config),
                      ProgressSink)
    quiet = live_or_plain(Progress(True, 100, None, stream=Terminal()), config)
    assert isinstance(quiet, ProgressSink)
