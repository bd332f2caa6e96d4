"""``--metrics-port``: the run's numbers for Prometheus (or any OpenMetrics scraper) while it goes.

Why a pull endpoint in the coordinator: Grafana dashboards already scrape
Prometheus targets, and the coordinator is where the workers' deltas are merged
every second, so the numbers it serves are the ones the JSON file and the live
line show, with no new path from the workers.  It is a sink like the others:
fed by the per-second updates (the merged ``Aggregate``), finished with the final
document.  prometheus-client's own HTTP server serves it from a daemon thread, with
a registry of its own (never the library's global one: nothing else loadgen
imports can add to it), and the scrape renders a snapshot the sink swapped in
whole, so a scrape never sees half an update and never blocks the collect loop.

What it serves (units are Prometheus' base units: seconds, requests per second):

* journey runs: ``loadgen_iterations_total`` by ``kind`` and ``outcome`` (success,
  failure, cut);
* counters, by ``endpoint`` (the document's endpoint names: ``METHOD path``, never
  a header, body or feeder value): ``loadgen_requests_total``,
  ``loadgen_successes_total``, ``loadgen_responses_total`` (by ``status``) and
  ``loadgen_failures_total`` (by ``kind`` and ``status``: kind ``status`` with the
  HTTP status of an answer outside the success set, else a kind of the document's
  vocabulary, ``connect``, ``timeout``, ... ``check``, with ``status=""``), so
  ``sum(loadgen_failures_total)`` is the report's failures;
* gauges of the last merged second: ``loadgen_latency_seconds`` by endpoint and
  ``loadgen_run_latency_seconds`` (all endpoints, the numbers of the document's
  interval), each with ``quantile`` 0.5, 0.9, 0.99 and 1 (the max);
  ``loadgen_achieved_requests_per_second``, ``loadgen_target_requests_per_second``
  (open model: the schedule's mean over that second), ``loadgen_users`` (closed
  model), ``loadgen_connections``, ``loadgen_generator_lateness_seconds`` (open
  model: intended send time to bytes written, ``quantile`` 0.5 and 0.99);
  ``loadgen_elapsed_seconds`` and ``loadgen_finished`` (1 once the final values are in).

The counters during the run are the merged totals at that moment (at most the final
ones, never decreasing); ``on_finish`` sets them from the final document, so a
scrape that sees ``loadgen_finished 1`` sees exactly the document's totals.  The
server stops when the command ends (``close``): the final values are served while
the report and files are written, not after.

A per-endpoint latency is read from the difference between two updates' cumulative
histograms (the requests merged since the previous update: the last second, give or
take a worker whose report arrived early); the run-wide one is the interval itself.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector, CollectorRegistry

from loadgen.errors import InputError
from loadgen.stats.failures import failures_by_kind, failures_by_status
from loadgen.stats.metrics import new_histogram, percentiles_us

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from loadgen.output.sinks import Document, Snapshot
    from loadgen.stats.aggregate import Aggregate

DEFAULT_HOST = "127.0.0.1"
#: The quantiles of a latency gauge, and the interval keys they read (1 is the max).
QUANTILES = (("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99"), ("1", "max"))
LATENESS_QUANTILES = (("0.5", "p50"), ("0.99", "p99"))
Stages = Sequence[Mapping[str, float | None]]


class MetricsError(InputError):
    """The metrics endpoint cannot listen where it was asked to: exit 2, before any load."""


@dataclass(frozen=True)
class EndpointCounts:
    """One endpoint's counters, cumulative since the start."""

    requests: int = 0
    successes: int = 0
    codes: Mapping[str, int] = field(default_factory=dict)        # every response's status
    by_status: Mapping[str, int] = field(default_factory=dict)    # answers outside the set
    by_kind: Mapping[str, int] = field(default_factory=dict)      # no answer, check, extract


@dataclass(frozen=True)
class State:
    """What one scrape shows; replaced whole by each update (a reference swap)."""

    counts: Mapping[str, EndpointCounts] = field(default_factory=dict)
    iterations: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # kind: outcome
    latency_s: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # by endpoint
    run_latency_s: Mapping[str, float] = field(default_factory=dict)
    achieved_rps: float | None = None
    target_rps: float | None = None
    users: float | None = None
    connections: int | None = None
    lateness_s: Mapping[str, float] = field(default_factory=dict)
    elapsed_s: float | None = None
    finished: bool = False


class _Exposition(Collector):
    """Renders the sink's current ``State`` as metric families at scrape time."""

    def __init__(self, sink: MetricsSink) -> None:
        self.sink = sink

    def collect(self) -> Iterator[Metric]:
        return iter(families(self.sink.state))


def families(state: State) -> list[Metric]:
    """The metric families of ``state`` (pure: the unit tests call it directly too)."""
    out: list[Metric] = []
    requests = CounterMetricFamily("loadgen_requests", "Requests completed (any outcome).",
                                   labels=["endpoint"])
    successes = CounterMetricFamily("loadgen_successes",
                                    "Requests answered with a status of the success set "
                                    "(and passing their checks).", labels=["endpoint"])
    responses = CounterMetricFamily("loadgen_responses", "Responses by HTTP status.",
                                    labels=["endpoint", "status"])
    failures = CounterMetricFamily("loadgen_failures",
                                   "Requests that did not succeed: kind 'status' (an answer "
                                   "outside the success set, with its status) or the kind of "
                                   "failure without one (connect, timeout, write, read, "
                                   "protocol, check, extract).",
                                   labels=["endpoint", "kind", "status"])
    for name, counts in state.counts.items():
        requests.add_metric([name], counts.requests)
        successes.add_metric([name], counts.successes)
        for status, n in sorted(counts.codes.items()):
            responses.add_metric([name, status], n)
        for status, n in sorted(counts.by_status.items()):
            failures.add_metric([name, "status", status], n)
        for kind, n in sorted(counts.by_kind.items()):
            failures.add_metric([name, kind, ""], n)
    out += [requests, successes, responses, failures]
    if state.iterations:
        iterations = CounterMetricFamily("loadgen_iterations",
                                         "Journey runs: iterations by user kind and outcome "
                                         "(success, failure, cut: interrupted by the run's end "
                                         "or a leaving user).", labels=["kind", "outcome"])
        for kind, outcomes in state.iterations.items():
            for outcome, n in outcomes.items():
                iterations.add_metric([kind, outcome], n)
        out.append(iterations)

    latency = GaugeMetricFamily("loadgen_latency_seconds",
                                "Latency of the requests of the last second, by endpoint "
                                "(quantile 1: the max).", labels=["endpoint", "quantile"])
    for name, figures in state.latency_s.items():
        for quantile, key in QUANTILES:
            if key in figures:
                latency.add_metric([name, quantile], figures[key])
    run_latency = _quantile_gauge("loadgen_run_latency_seconds",
                                  "Latency of the last second, all endpoints "
                                  "(quantile 1: the max).", QUANTILES, state.run_latency_s)
    lateness = _quantile_gauge("loadgen_generator_lateness_seconds",
                               "Open model: intended send time to bytes written, last second.",
                               LATENESS_QUANTILES, state.lateness_s)
    out += [latency, run_latency, lateness]

    gauges = (
        ("loadgen_achieved_requests_per_second",
         "Requests completed in the last second, per second.", state.achieved_rps),
        ("loadgen_target_requests_per_second",
         "Open model: the rate the schedule asked for over the last second.", state.target_rps),
        ("loadgen_users", "Closed model: active virtual users (mean over the last second).",
         state.users),
        ("loadgen_connections", "Connections the workers hold.", state.connections),
        ("loadgen_elapsed_seconds",
         "Seconds since the run's start, at the end of the last merged second.",
         state.elapsed_s))
    for name, doc, value in gauges:
        if value is not None:
            out.append(GaugeMetricFamily(name, doc, value=value))
    out.append(GaugeMetricFamily("loadgen_finished",
                                 "1 once the counters hold the run's final totals.",
                                 value=1.0 if state.finished else 0.0))
    return out


class MetricsSink:
    """The endpoint: listening from construction (so a bad port or host is bad input
    before any load) until ``close``.

    ``stages``: the open model's schedule (``config.schedule.describe()``), for the
    target rate; ``users``: the closed model's fixed number of users (None when they
    ramp, ``--user-stage``: each interval says how many were active, or in the open model).
    """

    def __init__(self, host: str, port: int, stages: Stages | None = None,
                 users: int | None = None) -> None:
        self.stages = stages
        self.fixed_users = users
        self.state = State()
        self._aggregate: Aggregate | None = None
        self._previous: list[np.ndarray] = []   # each endpoint's cumulative counts, last update
        self._base: dict[str, EndpointCounts] = {}   # capacity: the finished steps' totals
        self._base_iterations: dict[str, dict[str, int]] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Exposition(self))
        try:
            server, thread = start_http_server(port, host, registry=self.registry)
        except (OSError, UnicodeError) as exc:   # in use, not an address here, no such name
            reason = getattr(exc, "strerror", None) or exc
            # the port's fault (taken, or privileged), else the host's
            option = (f"--metrics-port {port}"
                      if getattr(exc, "errno", None) in (errno.EADDRINUSE, errno.EACCES)
                      else f"--metrics-host {host}")
            raise MetricsError(f"{option}: cannot listen on {_hostport(host, port)}: "
                               f"{reason}") from None
        self._server: WSGIServer | None = server
        self._thread: threading.Thread | None = thread
        self.host = host
        self.port: int = server.server_port

    @property
    def url(self) -> str:
        return f"http://{_hostport(self.host, self.port)}/metrics"

    def on_update(self, snapshot: Snapshot) -> None:
        agg = snapshot.aggregate
        if agg is None or not snapshot.intervals:
            return   # a capacity step's summary update: nothing new to serve
        if agg is not self._aggregate:
            self._next_aggregate(agg)
        last = snapshot.intervals[-1]
        latency = {name: figures for name, figures in
                   zip(agg.endpoint_names, self._last_second_latency(agg)) if figures}
        length = last.get("length_s") or 1.0
        end = float(last["t"])
        users = last.get("users")
        self.state = State(
            counts=_add_counts(self._base, _aggregate_counts(agg)),
            iterations=_add_iterations(self._base_iterations, _aggregate_iterations(agg)),
            latency_s=latency,
            run_latency_s=_seconds(last.get("latency_ms") or {}),
            achieved_rps=last.get("rps"),
            target_rps=(target_rate(self.stages, end - length, end)
                        if self.stages is not None else None),
            users=users if users is not None else self.fixed_users,
            connections=sum(w.connections for w in agg.workers),
            lateness_s=_seconds(last.get("send_lag_ms") or {}),
            elapsed_s=end,
            finished=False)

    def on_finish(self, doc: Document) -> int | None:
        """The final totals, from the document itself (what ``--save`` wrote)."""
        steps = doc.get("steps")
        docs = [s["result"] for s in steps] if isinstance(steps, list) else [doc]
        counts: dict[str, EndpointCounts] = {}
        iterations: dict[str, dict[str, int]] = {}
        for result in docs:
            counts = _add_counts(counts, _document_counts(result))
            iterations = _add_iterations(iterations, _document_iterations(result))
        old = self.state
        self.state = State(counts=counts, iterations=iterations, latency_s=old.latency_s,
                           run_latency_s=old.run_latency_s, achieved_rps=old.achieved_rps,
                           target_rps=old.target_rps, users=old.users,
                           connections=old.connections, lateness_s=old.lateness_s,
                           elapsed_s=old.elapsed_s, finished=True)
        return None

    def close(self) -> None:
        """Stop serving (the command is over); safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _next_aggregate(self, agg: Aggregate) -> None:
        """A new run's aggregate (a capacity search's next step): the last one's totals,
        final now, carry on under the new one's, so the counters never go down."""
        if self._aggregate is not None:
            self._base = _add_counts(self._base, _aggregate_counts(self._aggregate))
            self._base_iterations = _add_iterations(self._base_iterations,
                                                    _aggregate_iterations(self._aggregate))
        self._aggregate = agg
        self._previous = []

    def _last_second_latency(self, agg: Aggregate) -> list[dict[str, float]]:
        """Each endpoint's p50/p90/p99/max (s) over the requests merged since the last
        update: the difference of the cumulative histograms' counts."""
        now = [np.ctypeslib.as_array(t.hist.counts).copy() for t in agg.totals]
        before = self._previous or [np.zeros_like(c) for c in now]
        self._previous = now
        return [_figures(c - p) for c, p in zip(now, before)]


def _figures(counts: np.ndarray) -> dict[str, float]:
    """p50, p90, p99 and max in seconds of a histogram's counts; {} when empty."""
    total = int(counts.sum())
    if total <= 0:
        return {}
    hist = new_histogram()
    np.ctypeslib.as_array(hist.counts)[:] = counts
    hist.total_count = total
    values = percentiles_us(hist, [50.0, 90.0, 99.0, 100.0])
    return {key: value / 1e6 for (_, key), value in zip(QUANTILES, values)}


def _seconds(figures_ms: Mapping[str, Any]) -> dict[str, float]:
    return {key: round(float(value) / 1000.0, 9) for key, value in figures_ms.items()
            if value is not None}


def target_rate(stages: Stages, start: float, end: float) -> float:
    """The schedule's mean rate (requests/s) over ``[start, end]`` seconds of the run: the
    requests it makes due in that span, per second (0 after its end)."""
    if end <= start:
        return 0.0
    return (_due(stages, end) - _due(stages, start)) / (end - start)


def _due(stages: Stages, t: float) -> float:
    """Requests the schedule makes due by ``t``: the area under its piecewise-linear rate."""
    due, at = 0.0, 0.0
    for stage in stages:
        r0, r1 = float(stage["start_rate"] or 0.0), float(stage["end_rate"] or 0.0)
        length = stage["duration_s"]
        if length is None:   # the open-ended constant rate after the stages
            return due + r0 * max(0.0, t - at)
        span = min(max(t - at, 0.0), float(length))
        if length > 0:
            due += span * (r0 + (r0 + (r1 - r0) * span / float(length))) / 2.0
        at += float(length)
        if t <= at:
            break
    return due


def _aggregate_counts(agg: Aggregate) -> dict[str, EndpointCounts]:
    return {name: EndpointCounts(
                requests=t.requests, successes=t.successes, codes=dict(t.codes),
                by_status={k: n for k, n in t.failed_codes.items() if n},
                by_kind={k: n for k, n in t.errors.items() if n})
            for name, t in zip(agg.endpoint_names, agg.totals)}


def _aggregate_iterations(agg: Aggregate) -> dict[str, dict[str, int]]:
    kinds = agg.journeys.kinds if agg.journeys is not None else ()
    return {kind.name: {"success": t.successes, "failure": t.failures, "cut": t.cut}
            for kind, t in zip(kinds, agg.iterations)}


def _document_iterations(doc: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    return {str(j["name"]): {"success": int(j["iterations"]["successes"]),
                             "failure": int(j["iterations"]["failures"]),
                             "cut": int(j["iterations"]["cut"])}
            for j in doc.get("journeys") or ()}


def _add_iterations(a: Mapping[str, Mapping[str, int]], b: Mapping[str, Mapping[str, int]]
                    ) -> dict[str, dict[str, int]]:
    out = {kind: dict(outcomes) for kind, outcomes in a.items()}
    for kind, outcomes in b.items():
        out[kind] = _sum(out.get(kind, {}), outcomes)
    return out


def _document_counts(doc: Mapping[str, Any]) -> dict[str, EndpointCounts]:
    counts: dict[str, EndpointCounts] = {}
    for block in doc.get("endpoints") or ():
        counts = _add_counts(counts, {str(block["endpoint"]): EndpointCounts(
            requests=int(block.get("requests", 0)), successes=int(block.get("successes", 0)),
            codes={str(k): int(n) for k, n in (block.get("status_codes") or {}).items()},
            by_status=failures_by_status(block), by_kind=failures_by_kind(block))})
    return counts


def _add_counts(a: Mapping[str, EndpointCounts], b: Mapping[str, EndpointCounts]
                ) -> dict[str, EndpointCounts]:
    out = dict(a)
    for name, counts in b.items():
        old = out.get(name)
        out[name] = counts if old is None else EndpointCounts(
            requests=old.requests + counts.requests, successes=old.successes + counts.successes,
            codes=_sum(old.codes, counts.codes), by_status=_sum(old.by_status, counts.by_status),
            by_kind=_sum(old.by_kind, counts.by_kind))
    return out


def _sum(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    out = dict(a)
    for key, n in b.items():
        out[key] = out.get(key, 0) + n
    return out


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _quantile_gauge(name: str, doc: str, quantiles: Sequence[tuple[str, str]],
                    figures: Mapping[str, float]) -> GaugeMetricFamily:
    """One gauge labelled by quantile, from the figures of the last second that have one."""
    gauge = GaugeMetricFamily(name, doc, labels=["quantile"])
    for quantile, key in quantiles:
        if key in figures:
            gauge.add_metric([quantile], figures[key])
    return gauge
