"""``loadgen.engine.collector.Collector`` driven through a scripted transport: no processes.

The local coordinator and the Dask cluster keep only their transports; the
run's life (ready, start, merge, Ctrl-C, status, release) is the skeleton's,
so it is pinned here with synthetic worker messages (``tests/synthetic.py``).
"""

from __future__ import annotations

import signal
from types import SimpleNamespace
from typing import Any

import pytest
from synthetic import iterations, message, tally

from loadgen.config.model import DEFAULT_EXPECT_STATUS
from loadgen.engine import collector as collector_module
from loadgen.engine.collector import Collector
from loadgen.stats.aggregate import Aggregate

SIGINT = "sigint"   # a script step: Ctrl-C arrives while the messages are read


class Scripted(Collector):
    """A transport whose ready answer and messages are given up front."""

    def __init__(self, script: list[list[Any]], ready: bool | None = True,
                 fail: OSError | None = None, timeout_s: float = 1.0,
                 journeys: Any = None) -> None:
        config = SimpleNamespace(endpoints=[SimpleNamespace(name="GET /a", expect_status=DEFAULT_EXPECT_STATUS)],
                                 timeout_s=timeout_s, journeys=journeys)
        self.seconds: list[int] = []
        super().__init__(config, lambda agg: self.seconds.append(len(agg.intervals)))  # type: ignore[arg-type]
        self.script = script
        self.ready_answer = ready      # None: never ready
        self.fail = fail
        self.ready = False
        self.open: set[int] = set()
        self.calls: list[str] = []

    def _launch(self, plans: list[Any]) -> None:
        self.open = {p.index for p in plans}
        self.calls.append("launch")

    def _all_ready(self) -> bool:
        return self.ready

    def _poll_ready(self, agg: Aggregate) -> bool:
        if self.ready_answer is False:
            self.problems.append("worker 0 failed: boom")
            return False
        self.ready = self.ready_answer is True
        return True

    def _not_ready_problem(self) -> str:
        return "workers did not become ready in time"

    def _start(self, agg: Aggregate) -> bool:
        agg.wall_start = 1_700_000_000.0
        self.calls.append("start")
        return True

    def _call_off(self) -> None:
        self.calls.append("call off")

    def _active(self) -> bool:
        return bool(self.open)

    def _send_stop(self) -> None:
        self.calls.append("stop")

    def _poll(self, agg: Aggregate) -> None:
        if self.fail is not None:
            raise self.fail
        for item in self.script.pop(0) if self.script else []:
            if item == SIGINT:
                self._on_sigint(signal.SIGINT, None)
            else:
                self._merge(agg, item)
                if item["type"] == "final":
                    self.open.discard(item["worker"])

    def _check_lost(self, agg: Aggregate, now: float) -> None:
        if not self.script:   # the script ran out: whoever is still open went silent
            for index in sorted(self.open):
                agg.lose(index, "silent")
                self.problems.append(f"worker {index} lost: silent")
            self.open.clear()

    def _release(self, started: bool) -> None:
        self.calls.append(f"release started={started}")


def plans(n: int) -> list[Any]:
    return [SimpleNamespace(index=i) for i in range(n)]


def seconds_of(worker: int, k: int) -> list[dict[str, Any]]:
    return [message(worker, s + 0.0005, [tally(ok=2)]) for s in range(1, k + 1)]


def test_a_run_merges_every_report_and_is_complete() -> None:
    run = Scripted([seconds_of(0, 2) + seconds_of(1, 2),
                    [message(0, 2.5, [tally(ok=1)], final=True),
                     message(1, 2.4, [tally(ok=1)], final=True)]])
    outcome = run.collect(plans(2))
    assert outcome.status == "complete" and outcome.problems == [] and outcome.nodes is None
    assert run.calls == ["launch", "start", "release started=True"]
    assert outcome.aggregate.all_totals().hist.get_total_count() == 2 * (2 * 2 + 1)
    assert run.seconds == [1, 2]   # on_interval once per merged second, not per message
    assert [i["t"] for i in outcome.aggregate.intervals] == [1.0, 2.0, 2.5]


def test_first_ctrl_c_stops_gracefully_and_counts_the_last_reports() -> None:
    run = Scripted([seconds_of(0, 1) + [SIGINT], [], [message(0, 1.3, [tally(ok=3)], final=True)]])
    outcome = run.collect(plans(1))
    assert outcome.status == "interrupted" and outcome.problems == []
    assert run.calls == ["launch", "start", "stop", "release started=True"]
    assert outcome.aggregate.all_totals().hist.get_total_count() == 2 + 3


def test_second_ctrl_c_stops_at_once_and_says_what_is_missing() -> None:
    run = Scripted([seconds_of(0, 1) + [SIGINT], [SIGINT], seconds_of(0, 3)])
    outcome = run.collect(plans(1))
    assert outcome.status == "interrupted"
    assert run.calls.count("stop") == 1 and run.hard_stop
    (problem,) = outcome.problems
    assert "second Ctrl-C" in problem
    assert outcome.aggregate.all_totals().hist.get_total_count() == 2   # nothing after it


def test_stop_is_a_first_ctrl_c() -> None:
    run = Scripted([[], [message(0, 0.5, [tally(ok=1)], final=True)]])
    run.stop()
    outcome = run.collect(plans(1))
    # asked to stop before the workers were ready: the run is called off, never started
    assert run.calls == ["launch", "call off", "release started=False"]
    assert outcome.status == "interrupted"


def test_a_lost_worker_fails_the_run_and_keeps_the_others_data() -> None:
    run = Scripted([seconds_of(0, 1) + seconds_of(1, 1),
                    [message(1, 1.2, [tally(ok=1)], final=True)]])
    outcome = run.collect(plans(2))
    assert outcome.status == "failed"
    assert outcome.problems == ["worker 0 lost: silent"]
    assert [w.lost for w in outcome.aggregate.workers] == ["silent", ""]
    assert outcome.aggregate.all_totals().hist.get_total_count() == 2 + 2 + 1


def test_a_failure_before_the_start_calls_the_run_off() -> None:
    run = Scripted([], ready=False)
    outcome = run.collect(plans(1))
    assert run.calls == ["launch", "call off", "release started=False"]
    assert outcome.status == "failed" and outcome.problems == ["worker 0 failed: boom"]


def test_workers_not_ready_by_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collector_module, "READY_TIMEOUT_S", 0.0)
    run = Scripted([], ready=None, timeout_s=0.0)
    outcome = run.collect(plans(1))
    assert outcome.status == "failed"
    assert outcome.problems == ["workers did not become ready in time"]
    assert run.calls == ["launch", "call off", "release started=False"]


def test_a_broken_transport_is_an_error_by_default_and_released() -> None:
    run = Scripted([], fail=ConnectionResetError("gone"))
    with pytest.raises(ConnectionResetError):
        run.collect(plans(1))
    assert run.calls == ["launch", "start", "release started=True"]
    assert signal.getsignal(signal.SIGINT) is not run._on_sigint   # the handler is restored


def test_a_journey_run_merges_the_iterations_its_workers_report() -> None:
    """The collector gives the aggregate the run's kinds (``RunConfig.journeys``), so the
    ``"journeys"`` of every report are merged, on a local run and a cluster node alike."""
    from loadgen.config.journey import Journeys, UserKind

    kinds = Journeys((UserKind("user", steps=(0,)),))
    run = Scripted([[message(0, 1.0005, [tally(ok=3)], journeys=[
                        iterations([30_000, 40_000], [(0, 5_000)])]),
                     message(0, 1.4, [tally(ok=1)], final=True,
                             journeys=[iterations([35_000], cut=1)])]], journeys=kinds)
    outcome = run.collect(plans(1))
    (journey,) = outcome.aggregate.journey_summaries() or []
    figures = journey["iterations"]
    assert (figures["total"], figures["successes"], figures["failures"], figures["cut"]) == (
        5, 3, 1, 1)
    assert figures["failed_at"] == {"GET /a": 1}
    assert [i["iterations"] for i in outcome.aggregate.intervals] == [3, 1]


# --- the plan, made once per run ---------------------------------------------------------------


def test_the_plan_is_made_once_with_the_login_header_in_every_worker_plan() -> None:
    """The token reaches workers only through their plans; the user's headers come first."""
    from loadgen.config.model import Endpoint, RunConfig, Target, plan_workers, worker_connections

    config = RunConfig(url="http://127.0.0.1:5000", target=Target.parse("http://127.0.0.1:5000"),
                       endpoints=(Endpoint("GET", "/a"),), requests=10, duration_s=None,
                       concurrency=7, workers=3, timeout_s=5.0, headers=(("X-User", "1"),),
                       max_connections=11)
    token = (("Authorization", "Bearer t0k"),)
    plans = plan_workers(config, token)
    assert [p.headers for p in plans] == [(("X-User", "1"), *token)] * 3
    assert [p.headers for p in plan_workers(config)] == [(("X-User", "1"),)] * 3
    assert [p.tickets for p in plans] == [4, 3, 3] and [p.first_ticket for p in plans] == [0, 4, 7]
    # the open-file check, made before the login, sees exactly the plans' connections
    assert worker_connections(config) == [(p.connections, p.max_connections) for p in plans]
    assert worker_connections(config) == [(3, 4), (2, 4), (2, 3)]
    assert "t0k" not in repr(plans) and "t0k" not in repr(config.public())
