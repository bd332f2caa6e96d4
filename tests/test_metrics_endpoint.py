"""``--metrics-port``: the Prometheus/OpenMetrics endpoint served while a run goes.

Fast tests feed the sink synthetic aggregates (tests/synthetic.py: real ``Aggregate``
and ``build_document``) and scrape its real HTTP server on 127.0.0.1 port 0, parsing
with prometheus-client's own parsers; one end-to-end run against the built-in target
is scraped while it goes; bad ports and hosts are one line, exit 2, nothing sent.
"""

from __future__ import annotations

import itertools
import select
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import finish, one_line_error, poll_until, run_in_process, start_loadgen, stop
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from synthetic import (
    JOURNEY_ROWS,
    WALL_START,
    iterations,
    journey_kinds,
    message,
    new_aggregate,
    tally,
)

from loadgen.output.metrics_endpoint import MetricsError, MetricsSink, target_rate
from loadgen.output.results import build_document
from loadgen.output.sinks import Snapshot
from loadgen.stats.aggregate import Aggregate, WorkerState

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, keyed by name and sorted labels."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(url: str, accept: str | None = None) -> str:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.read().decode()


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def counters(samples: Samples) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {key: v for key, v in samples.items() if key[0].endswith("_total")}


@pytest.fixture
def sink() -> Iterator[MetricsSink]:
    metrics = MetricsSink("127.0.0.1", 0)
    yield metrics
    metrics.close()


def second(agg: Any, k: int, a_us: int, b: int = 5) -> None:
    """Second ``k`` of a two-worker run: per worker, endpoint a has 10 2xx at ~``a_us``,
    a 500 and a timeout; endpoint b ``b`` 2xx at 2 ms."""
    for w in (0, 1):
        agg.add(message(w, k + 0.0004, [tally(10, 1, 1, ok_us=a_us), tally(b)]))


def test_counters_and_last_second_from_synthetic_aggregates(sink: MetricsSink) -> None:
    agg = new_aggregate(2, ("GET /a", "GET /b"))
    second(agg, 1, a_us=2_000)
    sink.on_update(Snapshot(agg.intervals, dict, aggregate=agg))
    first = parse(scrape(sink.url))
    second(agg, 2, a_us=50_000, b=0)
    sink.on_update(Snapshot(agg.intervals, dict, aggregate=agg))
    now = parse(scrape(sink.url))

    assert value(first, "loadgen_requests_total", endpoint="GET /a") == 24
    assert value(now, "loadgen_requests_total", endpoint="GET /a") == 48
    assert value(now, "loadgen_requests_total", endpoint="GET /b") == 10
    assert value(now, "loadgen_successes_total", endpoint="GET /a") == 40
    assert value(now, "loadgen_responses_total", endpoint="GET /a", status="500") == 4
    assert value(now, "loadgen_failures_total", endpoint="GET /a", kind="status",
                 status="500") == 4
    assert value(now, "loadgen_failures_total", endpoint="GET /a", kind="timeout",
                 status="") == 4
    # the failures add up to requests - successes, as in the report
    failed = sum(v for (name, _), v in now.items() if name == "loadgen_failures_total")
    assert failed == 48 + 10 - 40 - 10

    # endpoint a's last second is second 2's requests only (50 ms), not the run's
    p50 = value(now, "loadgen_latency_seconds", endpoint="GET /a", quantile="0.5")
    assert p50 is not None and 0.049 < p50 < 0.051
    assert value(first, "loadgen_latency_seconds", endpoint="GET /a", quantile="0.5") < 0.0025
    # the timeouts (1 s) are among the requests: the max is theirs
    top = value(now, "loadgen_latency_seconds", endpoint="GET /a", quantile="1")
    assert top is not None and top >= 1.0
    # endpoint b sent nothing in second 2: no latency for it, rather than a stale one
    assert value(now, "loadgen_latency_seconds", endpoint="GET /b", quantile="0.5") is None

    # the run-wide figures are the document's interval, exactly
    last = agg.intervals[-1]
    for quantile, key in (("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99"), ("1", "max")):
        assert value(now, "loadgen_run_latency_seconds", quantile=quantile) == pytest.approx(
            last["latency_ms"][key] / 1000.0, abs=1e-9)
    assert value(now, "loadgen_achieved_requests_per_second") == last["rps"]
    assert value(now, "loadgen_connections") == 8   # 4 per worker (synthetic.message)
    assert value(now, "loadgen_elapsed_seconds") == 2.0
    assert value(now, "loadgen_finished") == 0
    assert value(now, "loadgen_target_requests_per_second") is None   # closed model


def test_final_scrape_equals_the_document(sink: MetricsSink) -> None:
    agg = new_aggregate(2, ("GET /a", "GET /b"))
    second(agg, 1, a_us=2_000)
    sink.on_update(Snapshot(agg.intervals, dict, aggregate=agg))
    during = counters(parse(scrape(sink.url)))
    for w in (0, 1):   # the last, partial second arrives with the final messages
        agg.add(message(w, 1.5, [tally(3, timeouts=1), tally(2)], final=True))
    agg.finish()
    doc = build_document({"model": "closed"}, agg, "complete", [], dt_start())
    sink.on_finish(doc)
    final = parse(scrape(sink.url))
    assert value(final, "loadgen_finished") == 1
    for block in doc["endpoints"]:
        name = block["endpoint"]
        assert value(final, "loadgen_requests_total", endpoint=name) == block["requests"]
        assert value(final, "loadgen_successes_total", endpoint=name) == block["successes"]
        for status, n in block["status_codes"].items():
            assert value(final, "loadgen_responses_total", endpoint=name, status=status) == n
        for kind, n in block["failures_by_kind"].items():
            assert value(final, "loadgen_failures_total", endpoint=name, kind=kind,
                         status="") == n
    assert all(n <= counters(final)[key] for key, n in during.items())


def test_openmetrics_when_asked(sink: MetricsSink) -> None:
    agg = new_aggregate(2)
    second(agg, 1, a_us=2_000)
    sink.on_update(Snapshot(agg.intervals, dict, aggregate=agg))
    text = scrape(sink.url, accept="application/openmetrics-text; version=1.0.0")
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(text)}
    assert families["loadgen_requests"].type == "counter"
    assert [s.value for s in families["loadgen_requests"].samples
            if s.name == "loadgen_requests_total"] == [24]


def test_capacity_steps_carry_the_counters_on(sink: MetricsSink) -> None:
    docs = []
    for step in range(2):
        agg = new_aggregate(2)
        sink.stages = [{"duration_s": 2.0, "start_rate": 100.0 * (step + 1),
                        "end_rate": 100.0 * (step + 1)}]
        second(agg, 1, a_us=2_000)
        sink.on_update(Snapshot(agg.intervals, dict, aggregate=agg))
        samples = parse(scrape(sink.url))
        assert value(samples, "loadgen_requests_total", endpoint="GET /a") == 24 * (step + 1)
        assert value(samples, "loadgen_target_requests_per_second") == 100.0 * (step + 1)
        agg.finish()
        docs.append(build_document({"model": "open"}, agg, "complete", [], dt_start()))
    sink.on_finish({"schema": "loadgen-capacity/1", "steps": [{"result": d} for d in docs]})
    assert value(parse(scrape(sink.url)), "loadgen_requests_total", endpoint="GET /a") == 48


def test_journey_iterations_by_kind_and_outcome(sink: MetricsSink) -> None:
    agg = Aggregate(list(JOURNEY_ROWS), [WorkerState(0)], journeys=journey_kinds())
    agg.wall_start = WALL_START
    rows = [tally(ok=1), tally(ok=10), tally(ok=9, status_500=1), tally(ok=5)]
    agg.add(message(0, 1.0004, rows, journeys=[iterations([30_000] * 9, [(2, 12_000)]),
                                               iterations([4_000] * 5)]))
    sink.on_update(Snapshot(agg.intervals, dict, aggregate=agg))
    during = parse(scrape(sink.url))
    assert value(during, "loadgen_iterations_total", kind="shopper", outcome="success") == 9
    assert value(during, "loadgen_iterations_total", kind="shopper", outcome="failure") == 1
    assert value(during, "loadgen_iterations_total", kind="browser", outcome="success") == 5
    agg.add(message(0, 1.5, [tally(), tally(), tally(), tally()], final=True,
                    journeys=[iterations(cut=1), iterations()]))
    agg.finish()
    doc = build_document({"model": "closed"}, agg, "complete", [], dt_start())
    sink.on_finish(doc)
    final = parse(scrape(sink.url))
    for journey in doc["journeys"]:
        figures = journey["iterations"]
        for outcome, key in (("success", "successes"), ("failure", "failures"), ("cut", "cut")):
            assert value(final, "loadgen_iterations_total", kind=journey["name"],
                         outcome=outcome) == figures[key]
    assert value(final, "loadgen_iterations_total", kind="shopper", outcome="cut") == 1


def test_target_rate_is_the_schedules_mean_over_the_second() -> None:
    constant = [{"duration_s": 3.0, "start_rate": 50.0, "end_rate": 50.0}]
    assert target_rate(constant, 1.0, 2.0) == 50.0
    assert target_rate(constant, 3.0, 4.0) == 0.0            # after the schedule's end
    ramp = [{"duration_s": 10.0, "start_rate": 0.0, "end_rate": 100.0}]
    assert target_rate(ramp, 0.0, 1.0) == pytest.approx(5.0)   # 0 -> 10 req/s
    assert target_rate(ramp, 9.0, 10.0) == pytest.approx(95.0)
    stages = [{"duration_s": 1.0, "start_rate": 0.0, "end_rate": 20.0},
              {"duration_s": None, "start_rate": 20.0, "end_rate": 20.0}]   # then open-ended
    assert target_rate(stages, 0.5, 1.5) == pytest.approx((7.5 + 10.0) / 1.0)
    assert target_rate(stages, 5.0, 6.0) == 20.0


def test_port_in_use_is_refused() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsError, match=f"--metrics-port {port}: cannot listen"):
            MetricsSink("127.0.0.1", port)


def test_close_stops_serving() -> None:
    metrics = MetricsSink("127.0.0.1", 0)
    assert "loadgen_finished 0.0" in scrape(metrics.url)
    metrics.close()
    with pytest.raises(urllib.error.URLError):
        scrape(metrics.url)
    metrics.close()   # twice is fine (a finally after an error)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_endpoint_released_when_the_preflight_fails() -> None:
    """An unreachable target is still one line, exit 2 (the address is never announced),
    and the metrics port is free again afterwards: the endpoint closed with the command."""
    port = closed_port()
    run = run_in_process("run", "--url", f"http://127.0.0.1:{closed_port()}",
                         "--metrics-port", str(port))
    assert "Metrics at" not in one_line_error(run)
    MetricsSink("127.0.0.1", port).close()   # would raise MetricsError if still bound


def dt_start() -> Any:
    import datetime as dt

    return dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


# -- the command line --------------------------------------------------------------------


@pytest.mark.parametrize(("args", "needle"), [
    (["--metrics-host", "192.0.2.1", "--metrics-port", "0"],
     "--metrics-host 192.0.2.1: cannot listen on 192.0.2.1:0"),
    (["--metrics-host", "127.0.0.1"], "--metrics-host needs --metrics-port"),
    (["--metrics-port", "70000"], "--metrics-port"),
])
def test_bad_metrics_option_is_one_line_exit_2(target_server: Any, args: list[str],
                                               needle: str) -> None:
    target_server.reset()
    run = run_in_process("run", "--url", target_server.url, "--requests", "5", *args)
    assert needle in one_line_error(run)
    assert target_server.stats()["requests"] == 0


def test_metrics_port_in_use_is_one_line_exit_2(target_server: Any) -> None:
    target_server.reset()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for command in (("run", "--requests", "5"), ("capacity", "--slo", "p99<1s")):
            run = run_in_process(command[0], "--url", target_server.url, *command[1:],
                                 "--metrics-port", port)
            assert f"--metrics-port {port}: cannot listen on 127.0.0.1:{port}" in (
                one_line_error(run))
    assert target_server.stats()["requests"] == 0


def metrics_url(proc: subprocess.Popen[str], limit_s: float = 60.0) -> str:
    """The address the run printed on stderr ("Metrics at URL"), its first line."""
    assert proc.stderr is not None
    ready, _, _ = select.select([proc.stderr], [], [], limit_s)
    assert ready, "the run never said where its metrics are"
    line = proc.stderr.readline()
    assert line.startswith("Metrics at http://127.0.0.1:"), line
    return line.split()[-1]


def test_scraped_during_a_real_run(target_server: Any, tmp_path: Path) -> None:
    """Scrapes while a 3 s run at 50 req/s goes: counters never go down, never pass the
    saved totals; each scraped second's run-wide figures are the saved interval's; the
    endpoint stops with the command; the secret header's value is never served."""
    save = tmp_path / "run.json"
    proc = start_loadgen("run", "--url", target_server.url, "--rate", "50", "--duration", "3s",
                         "--workers", "1", "--endpoint", "/api/health", "--endpoint",
                         "/api/nothing-here", "--header", "X-Api-Key: s3cret-metrics-value",
                         "--metrics-port", "0", "--quiet", "--save", str(save))
    scrapes: list[Samples] = []
    texts: list[str] = []

    def take() -> bool:
        """One scrape; True once the endpoint is gone (the run is over)."""
        try:
            text = scrape(url)
        except (urllib.error.URLError, ConnectionError):
            return True
        texts.append(text)
        scrapes.append(parse(text))
        return False

    try:
        url = metrics_url(proc)
        # during the run: a scrape with requests in it, before the run has finished
        assert poll_until(lambda: take() or value(scrapes[-1], "loadgen_requests_total",
                                                  endpoint="GET /api/health"), 60.0)
        assert poll_until(take, 60.0, every_s=0.05), "the endpoint outlived the run"
        run = finish(proc, save)
    finally:
        stop(proc)
    assert run.status == 0, run.stderr
    doc = run.doc
    assert doc is not None and doc["status"] == "complete"

    during = [s for s in scrapes if value(s, "loadgen_finished") == 0
              and value(s, "loadgen_elapsed_seconds")]
    assert during, "no scrape saw the run going"
    final = {("loadgen_requests_total", (("endpoint", b["endpoint"]),)): b["requests"]
             for b in doc["endpoints"]}
    for b in doc["endpoints"]:
        for status, n in b["status_codes"].items():
            final[("loadgen_responses_total",
                   (("endpoint", b["endpoint"]), ("status", status)))] = n
    for earlier, later in itertools.pairwise(scrapes):   # counters never go down
        assert all(later.get(key, 0) >= n for key, n in counters(earlier).items())
    for samples in scrapes:   # ... never pass the saved totals; equal them once final
        for key, n in counters(samples).items():
            if key in final:
                assert n <= final[key], key
                if value(samples, "loadgen_finished") == 1:
                    assert n == final[key], key
    # the scraped second is the saved one (unless a last sliver of the run joined it
    # afterwards: its end moved, see stats.aggregate.SLIVER_S)
    intervals = {i["t"]: i for i in doc["intervals"]}
    seconds = [s for s in during if value(s, "loadgen_elapsed_seconds") in intervals]
    assert seconds
    for samples in seconds:
        interval = intervals[value(samples, "loadgen_elapsed_seconds")]
        assert value(samples, "loadgen_run_latency_seconds", quantile="0.99") == pytest.approx(
            interval["latency_ms"]["p99"] / 1000.0, abs=1e-9)
        assert value(samples, "loadgen_achieved_requests_per_second") == interval["rps"]
        assert value(samples, "loadgen_target_requests_per_second") == pytest.approx(50.0)
    assert all("s3cret-metrics-value" not in text for text in texts)
