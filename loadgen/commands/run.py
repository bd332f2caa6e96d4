"""One ``loadgen run`` from validated config to exit status.

Order matters: reachability (bad input, exit 2) and login (exit 3) come
before any load; results are saved even when the run broke, because partial
numbers from a failed run are still evidence.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click

from loadgen import errors
from loadgen.commands.inputs import Credentials, Outputs
from loadgen.config.model import RunConfig, plan_workers
from loadgen.engine.coordinator import Coordinator
from loadgen.engine.monitor import Monitor, Sampler, open_monitor
from loadgen.engine.preflight import INSECURE_WARNING, PreflightError, check_before_load, login
from loadgen.engine.renewal import Renewal
from loadgen.output.progress import Progress
from loadgen.output.results import build_document
from loadgen.output.sinks import (
    ChartSink,
    JsonFileSink,
    ProblemsSink,
    Sink,
    Snapshot,
    TextSink,
    document_files,
    draw_summary,
    echo,
    end_progress,
    finish,
    live_or_plain,
    started_name,
    stdout_taken,
    update,
)
from loadgen.output.table import render_table
from loadgen.schema import ResultsDocument
from loadgen.stats.aggregate import Aggregate
from loadgen.stats.thresholds import Threshold, ThresholdResult, evaluate

if TYPE_CHECKING:
    from loadgen.output.metrics_endpoint import MetricsSink


def prepare(config: RunConfig, password: str) -> Renewal | None:
    """Reachability, then the login: the renewal that keeps it fresh (None without --auth).

    Raises PreflightError (exit 2 for bad input, 3 for a failed login) before any load.
    The password stays here, in the login the renewal calls again (``engine.renewal``);
    the caller starts and stops its thread around the load.
    """
    check_before_load(config)   # open-file limit, reachability, TLS certificate
    if config.insecure and config.target.scheme == "https":
        click.echo(INSECURE_WARNING, err=True)
    if not config.auth:
        return None
    return Renewal(lambda: login(config, password), login(config, password))


def execute(config: RunConfig, auth: Renewal | None,
            on_second: Callable[[Aggregate, dt.datetime, Sampler | None], None] | None = None,
            cluster: Any = None, thresholds: Sequence[Threshold] = (),
            monitor: Monitor | None = None) -> ResultsDocument:
    """Run the workers once (here, or on ``cluster``'s nodes) and return the results document,
    with ``thresholds`` evaluated in it (``run`` passes its own; a capacity step none).

    ``monitor`` (``--monitor-*``): a sampling session runs in a thread of this process
    from the workers' start to the end of the load, on the run's seconds; its samples
    join the intervals and its summary the document (``on_second`` gets it too).

    The run is planned here, once: the login's header reaches the workers through
    their plans, and each renewed one through the collect loop (``auth``).  A
    cluster's ``config`` already has every node's workers.
    """
    started = dt.datetime.now(dt.UTC)
    sampler = monitor.session() if monitor is not None else None
    callback = (lambda agg: on_second(agg, started, sampler)) if on_second else None
    if auth is not None:
        auth.renew_if_due()   # a capacity step may start when the token is due
    plans = plan_workers(config, auth.headers() if auth is not None else ())
    # the renewal thread runs while the load does, and stops before the document is
    # built: its counts are final (a capacity search restarts it for each step)
    with auth if auth is not None else contextlib.nullcontext():
        collector = cluster if cluster is not None else Coordinator(config, plans, callback,
                                                                     auth=auth)
        if sampler is not None:   # sampling starts with the workers, on the run's seconds
            collector.on_start = sampler.begin
        try:
            if cluster is not None:
                outcome = cluster.run(plans, callback, auth)
            else:
                outcome = collector.run()
        except BaseException:
            if sampler is not None:
                sampler.stop()
            raise
        if sampler is not None:   # the last partial second sampled as the aggregate keeps it
            sampler.stop(outcome.aggregate.duration_s)
    return build_document(config.public(), outcome.aggregate, outcome.status,
                          outcome.problems, started, nodes=outcome.nodes, thresholds=thresholds,
                          auth=auth.summary() if auth is not None else None,
                          server=server_record(sampler))


def server_record(sampler: Sampler | None) -> Any:
    """``build_document``'s ``server``: the samples by second and their summary (or None)."""
    return (sampler.samples(), sampler.summary()) if sampler is not None else None


def run_session(config: RunConfig, credentials: Credentials, outputs: Outputs) -> int:
    """Pre-flight, the load, then each chosen output in turn; the exit status.

    ``--metrics-port`` listens first (a port in use is bad input before any load)
    and stops when the command is over, whatever the outcome.
    """
    metrics = open_metrics(outputs, config)
    try:
        return _run_session(config, credentials, outputs, metrics)
    finally:
        if metrics is not None:
            metrics.close()


def open_metrics(outputs: Outputs, config: RunConfig) -> MetricsSink | None:
    """The ``--metrics-port`` endpoint, listening now, or None (its address is printed by
    ``announce`` once the pre-flight passed: bad input stays one line)."""
    if outputs.metrics_port is None:
        return None
    from loadgen.output.metrics_endpoint import MetricsSink

    closed = config.schedule is None and config.user_schedule is None
    metrics = MetricsSink(outputs.metrics_host, outputs.metrics_port,
                          stages=config.schedule.describe() if config.schedule else None,
                          users=config.concurrency if closed else None)
    return metrics


def announce(metrics: MetricsSink | None) -> None:
    """Where the metrics are served, on stderr (``--metrics-port 0`` picks the port)."""
    if metrics is not None:
        click.echo(f"Metrics at {metrics.url}", err=True)


def _run_session(config: RunConfig, credentials: Credentials, outputs: Outputs,
                 metrics: MetricsSink | None) -> int:
    cluster = None
    # a bad --monitor-pid / --monitor-url: exit 2 before anything else
    monitor = open_monitor(outputs.monitor_pid, outputs.monitor_url)
    try:
        if config.cluster:
            # here only: local runs never import dask
            from loadgen.engine.cluster.run import Cluster

            cluster = Cluster.connect(config)    # the scheduler first: exit 2 before a login
            config = cluster.config              # now with every node's workers
        auth = prepare(config, credentials.password)
    except PreflightError:
        if cluster is not None:
            cluster.close()
        raise
    announce(metrics)
    thresholds = ThresholdsSink(config, echo(stdout_taken(outputs.save)))
    sinks = run_sinks(config, outputs, thresholds, metrics)

    def every_second(agg: Aggregate, started: dt.datetime, sampler: Sampler | None) -> None:
        # thresholds included, on the numbers so far (provisional: status "running")
        update(sinks, Snapshot(agg.intervals, lambda: build_document(
            config.public(), agg, "running", [], started, thresholds=config.thresholds,
            auth=auth.summary() if auth is not None else None,
            server=server_record(sampler)), aggregate=agg))

    try:
        doc = execute(config, auth, every_second, cluster, config.thresholds, monitor)
    except BaseException:
        end_progress(sinks)   # a live view must give the terminal back (its cursor)
        raise
    finally:
        if cluster is not None:
            cluster.close()
    status = finish(sinks, doc)
    if status is not None:
        return status
    sys.stdout.flush()
    status = errors.BY_STATUS[doc["status"]]
    if status == errors.OK and thresholds.failed:
        return errors.THRESHOLD
    return status


def run_sinks(config: RunConfig, outputs: Outputs, thresholds: Sink,
              metrics: Sink | None = None) -> list[Sink]:
    """A run's outputs, in the order they appear: the live view (a table on a terminal,
    else a plain line), the table, the thresholds, the problems, the JSON file, the chart.
    ``metrics`` (``--metrics-port``, silent) goes first: its final values are served while
    the others write.

    ``--save -`` (or /dev/stdout): stdout carries only the JSON, the report goes to stderr.
    """
    say = echo(stdout_taken(outputs.save))
    iterations = config.journeys.iterations if config.journeys is not None else None
    progress = Progress(outputs.quiet, config.requests, config.duration_s, iterations=iterations)
    sinks: list[Sink] = [live_or_plain(progress, config.public()),
                         TextSink(render_table, say), thresholds, ProblemsSink()]
    if metrics is not None:
        sinks.insert(0, metrics)
    if outputs.save:
        sinks.append(JsonFileSink(outputs.save, say))
    if outputs.charts:
        sinks.append(ChartSink(draw_summary, outputs.image, started_name("loadgen"), say))
    sinks.extend(document_files(outputs.html, outputs.csv, outputs.junit, say))
    return sinks


class ThresholdsSink:
    """Prints the thresholds' PASS/FAIL lines (the document already holds them: the
    builder evaluated them); ``failed`` decides exit status 1."""

    def __init__(self, config: RunConfig, say: Callable[[str], None]) -> None:
        self.config = config
        self.say = say
        self.failed = False

    def on_update(self, snapshot: Snapshot) -> None:
        pass

    def on_finish(self, doc: Mapping[str, Any]) -> int | None:
        verdicts = check_thresholds(self.config, doc)
        self.failed = any(not v.passed for v in verdicts)
        if verdicts:
            from loadgen.stats.thresholds import render_thresholds

            self.say("\n" + render_thresholds(verdicts))
        return None


def check_thresholds(config: RunConfig, doc: Mapping[str, Any]) -> list[ThresholdResult]:
    """The thresholds' verdicts on the finished run, for the report and the exit status.

    ``build_document`` already recorded them in the document (``doc["thresholds"]``);
    evaluating is a pure function of the document, so this gives the same verdicts
    with the parsed thresholds the report renders.
    """
    return evaluate(config.thresholds, doc) if config.thresholds else []
