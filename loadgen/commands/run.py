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
from typing import Any

import click

from loadgen import errors
from loadgen.config.model import RunConfig, plan_workers
from loadgen.config.options import Credentials, Outputs
from loadgen.engine.coordinator import Coordinator
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
            on_second: Callable[[Aggregate, dt.datetime], None] | None = None,
            cluster: Any = None, thresholds: Sequence[Threshold] = ()) -> ResultsDocument:
    """Run the workers once (here, or on ``cluster``'s nodes) and return the results document,
    with ``thresholds`` evaluated in it (``run`` passes its own; a capacity step none).

    The run is planned here, once: the login's header reaches the workers through
    their plans, and each renewed one through the collect loop (``auth``).  A
    cluster's ``config`` already has every node's workers.
    """
    started = dt.datetime.now(dt.UTC)
    callback = (lambda agg: on_second(agg, started)) if on_second else None
    if auth is not None:
        auth.renew_if_due()   # a capacity step may start when the token is due
    plans = plan_workers(config, auth.headers() if auth is not None else ())
    # the renewal thread runs while the load does, and stops before the document is
    # built: its counts are final (a capacity search restarts it for each step)
    with auth if auth is not None else contextlib.nullcontext():
        if cluster is not None:
            outcome = cluster.run(plans, callback, auth)
        else:
            outcome = Coordinator(config, plans, callback, auth=auth).run()
    return build_document(config.public(), outcome.aggregate, outcome.status,
                          outcome.problems, started, nodes=outcome.nodes, thresholds=thresholds,
                          auth=auth.summary() if auth is not None else None)


def run_session(config: RunConfig, credentials: Credentials, outputs: Outputs) -> int:
    """Pre-flight, the load, then each chosen output in turn; the exit status."""
    cluster = None
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
    thresholds = ThresholdsSink(config, echo(stdout_taken(outputs.save)))
    sinks = run_sinks(config, outputs, thresholds)

    def every_second(agg: Aggregate, started: dt.datetime) -> None:
        # thresholds included, on the numbers so far (provisional: status "running")
        update(sinks, Snapshot(agg.intervals, lambda: build_document(
            config.public(), agg, "running", [], started, thresholds=config.thresholds,
            auth=auth.summary() if auth is not None else None), aggregate=agg))

    try:
        doc = execute(config, auth, every_second, cluster, config.thresholds)
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


def run_sinks(config: RunConfig, outputs: Outputs, thresholds: Sink) -> list[Sink]:
    """A run's outputs, in the order they appear: the live view (a table on a terminal,
    else a plain line), the table, the thresholds, the problems, the JSON file, the chart.

    ``--save -`` (or /dev/stdout): stdout carries only the JSON, the report goes to stderr.
    """
    say = echo(stdout_taken(outputs.save))
    iterations = config.journeys.iterations if config.journeys is not None else None
    progress = Progress(outputs.quiet, config.requests, config.duration_s, iterations=iterations)
    sinks: list[Sink] = [live_or_plain(progress, config.public()),
                         TextSink(render_table, say), thresholds, ProblemsSink()]
    if outputs.save:
        sinks.append(JsonFileSink(outputs.save, say))
    if outputs.charts:
        sinks.append(ChartSink(draw_summary, outputs.image, started_name("loadgen"), say))
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
