"""One ``loadgen run`` from validated config to exit status.

Order matters: reachability (bad input, exit 2) and login (exit 3) come
before any load; results are saved even when the run broke, because partial
numbers from a failed run are still evidence.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import click

from loadgen.aggregate import Aggregate
from loadgen.config import RunConfig
from loadgen.coordinator import Coordinator
from loadgen.progress import Progress
from loadgen.preflight import PreflightError, check_reachable, login
from loadgen.report import render_table
from loadgen.results import build_document, write_document

EXIT_STATUS = {"complete": 0, "interrupted": 130, "failed": 3}


def run_session(config: RunConfig, opts: dict[str, Any]) -> int:
    try:
        check_reachable(config.target, config.timeout_s)
        headers: tuple[tuple[str, str], ...] = ()
        if config.auth:
            token = login(config, opts["password"])
            headers = (("Authorization", f"Bearer {token}"),)
    except PreflightError as exc:
        click.echo(f"loadgen: {exc}", err=True)
        return exc.status
    started = dt.datetime.now(dt.timezone.utc)
    progress = Progress(opts.get("quiet", False), config.requests, config.duration_s)
    save = opts["save"]

    def every_second(agg: Aggregate) -> None:
        progress.update(agg.intervals)
        if save:  # a complete document every second: a killed run still leaves evidence
            try:
                write_document(save, build_document(config.public(), agg, "running", [], started))
            except OSError:
                pass  # reported once, by the final save below

    outcome = Coordinator(config, headers, every_second).run()
    progress.close()
    doc = build_document(config.public(), outcome.aggregate, outcome.status,
                         outcome.problems, started)
    click.echo(render_table(doc))
    for problem in outcome.problems:
        click.echo(f"loadgen: {problem}", err=True)
    if opts["save"]:
        try:
            write_document(opts["save"], doc)
        except OSError as exc:
            click.echo(f"loadgen: cannot save results to {opts['save']}: {exc.strerror}", err=True)
            return 3
        click.echo(f"Results saved to {opts['save']}")
    if opts["visualize"] or opts["output_image"]:
        from loadgen.charts import draw_summary

        path = opts["output_image"] or f"loadgen-{started:%Y%m%d-%H%M%S}.png"
        click.echo(f"Chart saved to {draw_summary(doc, path)}")
    sys.stdout.flush()
    return EXIT_STATUS[outcome.status]
