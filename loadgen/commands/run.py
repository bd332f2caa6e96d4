"""One ``loadgen run`` from validated config to exit status.

Order matters: reachability (bad input, exit 2) and login (exit 3) come
before any load; results are saved even when the run broke, because partial
numbers from a failed run are still evidence.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from loadgen import errors
from loadgen.config.model import RunConfig
from loadgen.engine.coordinator import Coordinator
from loadgen.engine.preflight import INSECURE_WARNING, PreflightError, check_before_load, login
from loadgen.errors import error_line
from loadgen.output.files import is_stdout, replaceable
from loadgen.output.progress import Progress
from loadgen.output.results import build_document, save_final, write_document
from loadgen.output.table import render_table
from loadgen.schema import ResultsDocument
from loadgen.stats.aggregate import Aggregate
from loadgen.stats.thresholds import Threshold, ThresholdResult, evaluate


def prepare(config: RunConfig, password: str) -> tuple[tuple[str, str], ...]:
    """Reachability, then the login: the extra headers every request carries.

    Raises PreflightError (exit 2 for bad input, 3 for a failed login) before any load.
    """
    check_before_load(config)   # open-file limit, reachability, TLS certificate
    if config.insecure and config.target.scheme == "https":
        click.echo(INSECURE_WARNING, err=True)
    if not config.auth:
        return ()
    return (("Authorization", f"Bearer {login(config, password)}"),)


def execute(config: RunConfig, headers: tuple[tuple[str, str], ...],
            on_second: Callable[[Aggregate, dt.datetime], None] | None = None,
            cluster: Any = None, thresholds: Sequence[Threshold] = ()) -> ResultsDocument:
    """Run the workers once (here, or on ``cluster``'s nodes) and return the results document,
    with ``thresholds`` evaluated in it (``run`` passes its own; a capacity step none)."""
    started = dt.datetime.now(dt.UTC)
    callback = (lambda agg: on_second(agg, started)) if on_second else None
    if cluster is not None:
        outcome = cluster.run(headers, callback)
    else:
        outcome = Coordinator(config, headers, callback).run()
    return build_document(config.public(), outcome.aggregate, outcome.status,
                          outcome.problems, started, nodes=outcome.nodes, thresholds=thresholds)


def run_session(config: RunConfig, opts: dict[str, Any]) -> int:
    cluster = None
    try:
        if config.cluster:
            # here only: local runs never import dask
            from loadgen.engine.cluster.run import Cluster

            cluster = Cluster.connect(config)    # the scheduler first: exit 2 before a login
            config = cluster.config              # now with every node's workers
        headers = prepare(config, opts["password"])
    except PreflightError:
        if cluster is not None:
            cluster.close()
        raise
    progress = Progress(opts.get("quiet", False), config.requests, config.duration_s)
    save = opts["save"]
    # ``--save -`` (or /dev/stdout): stdout carries only the JSON, the report goes to stderr
    to_stdout = bool(save) and is_stdout(save)
    # only a regular file takes the every-second rewrites; a FIFO or device gets one document
    rewrite = bool(save) and not to_stdout and replaceable(save)

    def every_second(agg: Aggregate, started: dt.datetime) -> None:
        progress.update(agg.intervals)
        if rewrite:  # a complete document every second: a killed run still leaves evidence
            try:   # thresholds included, on the numbers so far (provisional: status "running")
                write_document(save, build_document(config.public(), agg, "running", [], started,
                                                    thresholds=config.thresholds))
            except OSError:
                pass  # reported once, by the final save below

    try:
        doc = execute(config, headers, every_second, cluster, config.thresholds)
    finally:
        if cluster is not None:
            cluster.close()
    progress.close()
    verdicts = check_thresholds(config, doc)   # as recorded in doc["thresholds"]
    click.echo(render_table(doc), err=to_stdout)
    if verdicts:
        from loadgen.stats.thresholds import render_thresholds

        click.echo("\n" + render_thresholds(verdicts), err=to_stdout)
    for problem in doc["problems"]:
        click.echo(error_line(problem), err=True)
    if save and not save_final(save, doc, click.echo):
        return errors.BROKEN
    if opts["visualize"] or opts["output_image"]:
        from loadgen.output.charts import draw_summary

        started = dt.datetime.fromisoformat(doc["started_at"])
        path = opts["output_image"] or f"loadgen-{started:%Y%m%d-%H%M%S}.png"
        try:
            click.echo(f"Chart saved to {draw_summary(doc, path)}", err=to_stdout)
        except OSError as exc:
            click.echo(error_line(f"cannot write chart to {path}: {exc.strerror or exc}"), err=True)
            return errors.BROKEN
    sys.stdout.flush()
    status = errors.BY_STATUS[doc["status"]]
    if status == errors.OK and any(not v.passed for v in verdicts):
        return errors.THRESHOLD
    return status


def check_thresholds(config: RunConfig, doc: ResultsDocument) -> list[ThresholdResult]:
    """The thresholds' verdicts on the finished run, for the report and the exit status.

    ``build_document`` already recorded them in the document (``doc["thresholds"]``);
    evaluating is a pure function of the document, so this gives the same verdicts
    with the parsed thresholds the report renders.
    """
    return evaluate(config.thresholds, doc) if config.thresholds else []
