"""``loadgen capacity`` on the terminal: steps as they finish, the answer, JSON and chart.

The search itself is ``capacity.search``; this module runs its steps with
the same engine as ``loadgen run`` and saves after every step, so an
interrupted search still leaves every finished step on disk.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from loadgen import __version__, exitcodes
from loadgen.capacity import Search, Step, search
from loadgen.config import RunConfig
from loadgen.failures import percent_text
from loadgen.guards import one_line
from loadgen.preflight import PreflightError
from loadgen.results import write_document
from loadgen.session import execute, prepare
from loadgen.thresholds import evaluate, format_actual

SCHEMA = "loadgen-capacity/1"


def capacity_command(config: RunConfig, opts: dict[str, Any], step_s: float) -> int:
    try:
        headers = prepare(config, opts["password"])
    except PreflightError as exc:
        click.echo(f"loadgen: {one_line(str(exc))}", err=True)
        return exc.status
    started = dt.datetime.now(dt.timezone.utc)
    slos = ", ".join(t.text for t in config.thresholds)
    click.echo(f"Capacity search on {config.url}: SLOs {slos}; {step_s:g}s steps from "
               f"{opts['start_rate']:g} req/s (at most {opts['max_rate']:g})")
    result = Search()

    def on_step(step: Step) -> None:
        result.steps.append(step)
        click.echo(_step_line(len(result.steps), step))
        if opts["save"]:
            write_document(opts["save"], _document(config, result, started, "running"))

    found = search(config, lambda c: execute(c, headers), lambda doc: _slo_failures(config, doc),
                   opts["start_rate"], opts["max_rate"], step_s, opts["precision"], on_step)
    found.steps = result.steps
    click.echo("")
    click.echo(("!! " if found.generator_limited else "") + found.verdict)
    doc = _document(config, found, started, "complete")
    if opts["save"]:
        write_document(opts["save"], doc)
        click.echo(f"Results saved to {opts['save']}")
    if opts["visualize"] or opts["output_image"]:
        from loadgen.charts import draw_capacity

        path = opts["output_image"] or f"loadgen-capacity-{started:%Y%m%d-%H%M%S}.png"
        click.echo(f"Chart saved to {draw_capacity(doc, path)}")
    if found.generator_limited or (found.steps and found.steps[-1].doc["status"] != "complete"):
        return exitcodes.BROKEN
    return exitcodes.OK if found.capacity is not None else exitcodes.THRESHOLD


def _slo_failures(config: RunConfig, doc: dict[str, Any]) -> list[str]:
    return [f"{v.threshold.text} (actual {format_actual(v.threshold.metric, v.actual)})"
            for v in evaluate(config.thresholds, doc) if not v.passed]


def _step_line(n: int, step: Step) -> str:
    p99 = f"{step.p99_ms:.3g} ms" if step.p99_ms is not None else "-"
    verdict = "held" if step.passed else "FAILED: " + "; ".join(step.failures)
    if step.generator_limited:
        verdict = "GENERATOR LIMITED"
    return (f"step {n:2d}: {step.rate:>10,.1f} req/s -> achieved {step.achieved_rps:>10,.1f}, "
            f"p99 {p99}, failures {percent_text(step.failure_share)}  {verdict}")


def _document(config: RunConfig, found: Search, started: dt.datetime,
              status: str) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "tool": f"loadgen {__version__}",
        "status": status,
        "started_at": started.isoformat(timespec="milliseconds"),
        "config": config.public(),
        "slos": [t.text for t in config.thresholds],
        "capacity_rps": found.capacity,
        "verdict": found.verdict,
        "generator_limited": found.generator_limited,
        "steps": [step.public() for step in found.steps],
    }
