"""``loadgen.stats.aggregate.Aggregate`` fed with synthetic worker messages: no processes, no network.

The messages (``tests/synthetic.py``) have exactly the shape
``loadgen.engine.worker.Worker._send_interval`` sends, so these tests pin the
coordinator's arithmetic -- counts, per-second intervals, the last partial
second, CPU demand, failures inside the latency distribution -- without the
timing noise of a real run.
"""

from __future__ import annotations

import pytest
from synthetic import iso, message, new_aggregate, tally

from loadgen.stats.aggregate import SLIVER_S, Aggregate, WorkerState
from loadgen.stats.metrics import Tally


def test_two_workers_several_seconds_count_exactly() -> None:
    agg = new_aggregate()
    for k in (1, 2, 3):
        agg.add(message(0, k + 0.0004, [tally(ok=10 * k, status_500=1)]))
        agg.add(message(1, k + 0.0007, [tally(ok=5, timeouts=k)]))
    agg.add(message(0, 3.4, [tally(ok=4)], final=True))
    agg.add(message(1, 3.3, [tally(status_500=1)], final=True))
    agg.finish()
    summary, (endpoint,) = agg.summaries()
    ok = 10 + 20 + 30 + 3 * 5 + 4
    assert summary["requests"] == ok + 3 + 1 + (1 + 2 + 3)
    assert summary["successes"] == ok
    assert summary["failures"] == 4 + 6
    assert summary["status_codes"] == {"200": ok, "500": 4}
    assert summary["failures_by_status"] == {"500": 4}
    assert summary["failures_by_kind"] == {"timeout": 6}
    assert summary["success_rate"] == pytest.approx(ok / summary["requests"])
    assert summary["duration_s"] == pytest.approx(3.4)
    assert summary["rps"] == pytest.approx(summary["requests"] / 3.4)
    assert endpoint["endpoint"] == "GET /a" and endpoint["requests"] == summary["requests"]
    assert [w.requests for w in agg.workers] == [60 + 3 + 4, 15 + 6 + 1]
    # one interval per second, the last one partial (the longer worker's 0.4 s)
    assert [i["t"] for i in agg.intervals] == [1.0, 2.0, 3.0, 3.4]
    assert [i["partial"] for i in agg.intervals] == [False, False, False, True]
    assert [i["requests"] for i in agg.intervals] == [17, 28, 39, 5]
    assert [i["failures"] for i in agg.intervals] == [2, 3, 4, 1]
    assert sum(i["requests"] for i in agg.intervals) == summary["requests"]


def test_interval_fields() -> None:
    agg = new_aggregate(workers=1)
    agg.add(message(0, 1.0002, [tally(ok=8, status_500=2)]))
    agg.add(message(0, 2.0001, [tally(ok=4)]))
    agg.add(message(0, 2.5, [tally(ok=1)], final=True))
    agg.finish()
    first, second, _ = agg.intervals
    assert set(first) >= {"t", "start", "length_s", "partial", "requests", "successes",
                          "failures", "rps", "latency_ms"}
    assert first["start"] == iso(0) == "2023-11-14T22:13:20.000+00:00"
    assert second["start"] == iso(1)
    assert first["t"] == 1.0 and first["length_s"] == 1.0 and first["partial"] is False
    assert (first["requests"], first["successes"], first["failures"]) == (10, 8, 2)
    assert first["rps"] == 10.0
    assert set(first["latency_ms"]) == {"p50", "p90", "p99", "max"}
    assert first["latency_ms"]["max"] == pytest.approx(3.0, rel=1e-3)   # the 500s are in it
    assert "send_lag_ms" not in first   # closed model: no send lag recorded


def test_interval_without_wall_start_has_no_start() -> None:
    agg = Aggregate(["GET /a"], [WorkerState(0)])
    agg.add(message(0, 1.0, [tally(ok=1)], final=True))
    agg.finish()
    assert agg.intervals[0]["start"] is None


def test_partial_last_interval_is_marked_with_its_own_rate() -> None:
    agg = new_aggregate()
    for w in (0, 1):
        agg.add(message(w, 1.0001, [tally(ok=50)]))
    for w in (0, 1):
        agg.add(message(w, 1.5, [tally(ok=20)], final=True))
    agg.finish()
    whole, half = agg.intervals
    assert whole["partial"] is False and whole["rps"] == 100.0
    assert half["partial"] is True
    assert half["length_s"] == pytest.approx(0.5)
    assert half["t"] == 1.5
    assert half["requests"] == 40
    assert half["rps"] == pytest.approx(40 / 0.5)
    assert half["start"] == iso(1)


def test_sliver_is_folded_when_the_run_is_finished_with_a_worker_still_open() -> None:
    """``finish`` folds a last sliver into the second before it (here one worker never
    sent its final message, so the second was still pending when the run ended)."""
    agg = new_aggregate()
    for k in (1, 2):
        for w in (0, 1):
            agg.add(message(w, k + 0.0004, [tally(ok=10)]))
    agg.add(message(0, 2.03, [tally(ok=2)], final=True))
    agg.finish()
    times = [i["t"] for i in agg.intervals]
    assert len(times) == len(set(times)) == 2
    last = agg.intervals[-1]
    assert last["requests"] == 22
    assert last["length_s"] == pytest.approx(1.03)
    assert last["partial"] is False
    assert last["rps"] == pytest.approx(22 / 1.03)
    assert last["t"] == pytest.approx(2.03)


@pytest.mark.parametrize(("sliver_s", "tail"), [(0.03, 3), (0.0, 3), (0.0011, 0)],
                         ids=["sliver-with-responses", "zero-length", "empty-sliver"])
def test_sliver_is_folded_at_the_normal_end_of_a_run(sliver_s: float, tail: int) -> None:
    assert sliver_s < SLIVER_S
    agg = new_aggregate()
    for k in (1, 2):
        for w in (0, 1):
            agg.add(message(w, k + 0.0004 if sliver_s else float(k), [tally(ok=10)]))
    for w in (0, 1):   # both workers end normally, just after the 2 s boundary
        agg.add(message(w, 2.0 + sliver_s, [tally(ok=tail)], final=True))
    agg.finish()
    times = [i["t"] for i in agg.intervals]
    assert len(times) == len(set(times)) == 2, agg.intervals
    assert [i["partial"] for i in agg.intervals] == [False, False], agg.intervals
    assert max(i["rps"] for i in agg.intervals) <= (20 + 2 * tail) / 1.0, agg.intervals
    assert agg.intervals[-1]["requests"] == 20 + 2 * tail


def test_a_lost_worker_lets_seconds_close() -> None:
    agg = new_aggregate()
    agg.add(message(0, 1.0003, [tally(ok=10)]))
    agg.add(message(1, 1.0004, [tally(ok=10)]))
    agg.add(message(0, 2.0003, [tally(ok=10)]))
    assert [i["t"] for i in agg.intervals] == [1.0]   # second 2 waits for worker 1
    agg.lose(1, "worker 1 exited with status -9")
    assert [i["t"] for i in agg.intervals] == [1.0, 2.0]   # ... not for a lost worker
    agg.add(message(0, 3.0003, [tally(ok=10)]))
    assert [i["t"] for i in agg.intervals] == [1.0, 2.0, 3.0]
    agg.add(message(0, 3.2, [tally(ok=2)], final=True))
    agg.finish()
    assert agg.intervals[-1]["partial"] is True and agg.intervals[-1]["requests"] == 2
    assert agg.workers[1].lost == "worker 1 exited with status -9"
    summary, _ = agg.summaries()
    assert summary["requests"] == 42


def test_cpu_demand_is_cpu_plus_run_queue_wait_per_whole_second() -> None:
    agg = new_aggregate()
    # worker 0 (cumulative counters): 40% busy, then 50% busy + 50% denied, then 70% busy
    for k, cpu, delay in ((1, 0.4, 0.0), (2, 0.9, 0.5), (3, 1.6, 0.5)):
        agg.add(message(0, float(k), [tally(ok=1)], cpu_s=cpu, run_delay_s=delay))
        agg.add(message(1, float(k), [tally(ok=1)], cpu_s=0.3 * k))
    # a final sliver with a large share of CPU is too short to count
    agg.add(message(0, 3.05, [tally()], final=True, cpu_s=1.65, run_delay_s=0.54))
    agg.add(message(1, 3.05, [tally()], final=True, cpu_s=0.95))
    agg.finish()
    w0, w1 = agg.workers
    assert w0.demand_percent_max == pytest.approx(100.0)
    assert w0.demand_cpu_percent == pytest.approx(50.0)
    assert w0.demand_wait_percent == pytest.approx(50.0)
    assert w0.demand_second == 2
    assert w0.cpu_percent_max == pytest.approx(70.0)
    assert w1.demand_percent_max == pytest.approx(30.0)
    assert w1.demand_wait_percent == 0.0
    verdict = agg.generator_verdict(open_model=False)
    assert verdict["causes"] == ["starved"]
    assert verdict["demand_percent_max"] == 100.0
    assert verdict["run_queue_percent_max"] == 50.0
    assert verdict["cpu_percent_max"] == 70.0


def test_failures_are_inside_the_latency_distribution() -> None:
    agg = new_aggregate()
    for w in (0, 1):   # 2% of the requests time out after 1 s
        agg.add(message(w, 1.0, [tally(ok=98, timeouts=2, ok_us=2_000)]))
        agg.add(message(w, 1.0, [tally()], final=True))
    agg.finish()
    summary, _ = agg.summaries()
    assert summary["failures_by_kind"] == {"timeout": 4}
    assert summary["latency_ms"]["p99"] >= 1000.0
    assert summary["latency_ms"]["max"] >= 1000.0
    assert summary["success_latency_ms"]["p99"] < 3.0
    assert summary["success_latency_ms"]["max"] < 3.0
    assert agg.intervals[0]["latency_ms"]["p99"] >= 1000.0
    assert agg.intervals[0]["failures"] == 4


def test_no_success_leaves_success_latency_empty() -> None:
    agg = new_aggregate(workers=1)
    agg.add(message(0, 1.0, [tally(timeouts=3)], final=True))
    agg.finish()
    summary, _ = agg.summaries()
    assert summary["successes"] == 0 and summary["success_rate"] == 0.0
    assert set(summary["success_latency_ms"].values()) == {None}
    assert summary["latency_ms"]["min"] >= 999.0


def test_merged_min_ignores_an_endpoint_that_recorded_nothing() -> None:
    agg = new_aggregate(endpoints=("GET /busy", "GET /idle"))
    for w in (0, 1):
        agg.add(message(w, 1.0, [tally(ok=5, ok_us=7_000), tally()]))
        agg.add(message(w, 1.2, [tally(ok=1, ok_us=9_000), tally()], final=True))
    agg.finish()
    summary, (busy, idle) = agg.summaries()
    assert idle["requests"] == 0 and idle["latency_ms"]["min"] is None
    assert busy["latency_ms"]["min"] == pytest.approx(7.0, rel=1e-3)
    assert summary["latency_ms"]["min"] == busy["latency_ms"]["min"]
    assert summary["success_latency_ms"]["min"] == busy["latency_ms"]["min"]
    assert all(i["latency_ms"]["p50"] >= 7.0 for i in agg.intervals)


def test_open_model_service_time_and_send_lag() -> None:
    agg = new_aggregate()
    for w in (0, 1):
        agg.add(message(w, 1.0, [tally(ok=10, open_model=True)], waited=3,
                        lateness_us=[500] * 9 + [30_000]))
        agg.add(message(w, 1.0, [tally(open_model=True)], final=True, waited=4))
    agg.finish()
    summary, _ = agg.summaries()
    assert summary["service_time_ms"]["p50"] == pytest.approx(2.0, rel=0.01)
    assert agg.intervals[0]["send_lag_ms"]["p50"] == pytest.approx(0.5, rel=0.01)
    assert agg.intervals[0]["send_lag_ms"]["p99"] == pytest.approx(30.0, rel=0.01)
    assert agg.lag_p50_by_second == [pytest.approx(0.5, rel=0.01)]
    verdict = agg.generator_verdict(open_model=True, max_connections=8, target_rps=20.0)
    assert verdict["waited_for_connection"] == 8   # the cumulative count of each worker, summed
    assert verdict["waited_share"] == pytest.approx(8 / 20)
    assert verdict["connections"] == 8
    assert verdict["lateness_ms"]["p99"] == pytest.approx(30.0, rel=0.01)


def test_users_add_up_across_workers_and_a_sliver_is_weighted_by_its_length() -> None:
    """--user-stage: each worker sends its mean active users; the second's figure is their
    sum, and a folded last sliver counts by its length (only ramps carry ``users``)."""
    agg = new_aggregate()
    for k, means in ((1, (1.0, 0.5)), (2, (3.0, 2.0))):
        for w in (0, 1):
            agg.add({**message(w, k + 0.0004, [tally(ok=10)]), "users": means[w]})
    for w in (0, 1):   # both end just after the boundary, with no user left
        agg.add({**message(w, 2.05, [tally(ok=1)], final=True), "users": 0.0})
    agg.finish()
    assert [i["users"] for i in agg.intervals] == [1.5, round(5.0 * 1.0 / 1.05, 2)]
    plain = new_aggregate()
    plain.add(message(0, 1.0, [tally(ok=1)], final=True))
    plain.add(message(1, 1.0, [tally(ok=1)], final=True))
    plain.finish()
    assert "users" not in plain.intervals[0]


def _checked(ok: int, failed: dict[str, int]) -> Tally:
    """An endpoint with checks: ``ok`` responses passed them, ``failed`` by check name."""
    t = tally(ok=ok)
    t.checked = ok + sum(failed.values())
    for name, n in failed.items():
        for _ in range(n):
            t.check_failed(name, 100, 50, 2_500)
    return t


def test_failed_checks_merge_by_name_across_workers_and_seconds() -> None:
    agg = new_aggregate(endpoints=("GET /a", "GET /b"))
    agg.add(message(0, 1.0004, [_checked(5, {'body_contains "x"': 2}), tally(ok=3)]))
    agg.add(message(1, 1.0007, [_checked(4, {'body_contains "x"': 1, "json a == 1": 3}),
                                tally(ok=1)]))
    agg.add(message(0, 1.5, [_checked(1, {"json a == 1": 1}), tally()], final=True))
    agg.add(message(1, 1.4, [tally(), tally()], final=True))
    agg.finish()
    summary, (a, b) = agg.summaries()
    assert a["checked"] == 5 + 2 + 4 + 4 + 1 + 1
    assert a["checks_failed"] == {'body_contains "x"': 3, "json a == 1": 4}
    assert a["failures_by_kind"] == {"check": 7} and a["failures"] == 7
    assert a["requests"] == a["successes"] + 7 == 17
    assert "checked" not in b and "checks_failed" not in b   # no checks: no new fields
    assert summary["checked"] == 17 and summary["checks_failed"] == a["checks_failed"]
    assert summary["failures_by_kind"] == {"check": 7}
    assert sum(i["failures"] for i in agg.intervals) == 7
