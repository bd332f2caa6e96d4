"""``loadgen capacity`` on the terminal: steps as they finish, the answer, JSON and chart.

The search itself is ``capacity.search``; this module runs its steps with
the same engine as ``loadgen run`` and saves after every step, so an
interrupted search still leaves every finished step on disk.  Ctrl-C during
a step ends the search there: the steps done are saved with status
"interrupted" and the exit status is 130, as for ``loadgen run``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from loadgen import __version__, errors
from loadgen.commands.inputs import CapacitySettings, Credentials, Outputs
from loadgen.commands.run import announce, execute, open_metrics, prepare
from loadgen.config.model import RunConfig
from loadgen.engine.monitor import open_monitor
from loadgen.engine.schedule import build_schedule
from loadgen.errors import one_line
from loadgen.output.progress import Progress
from loadgen.output.sinks import (
    ChartSink,
    JsonFileSink,
    Sink,
    Snapshot,
    document_files,
    draw_capacity,
    echo,
    finish,
    live_or_plain,
    started_name,
    stdout_taken,
    update,
)
from loadgen.output.table import format_number
from loadgen.schema import CAPACITY_SCHEMA, CapacityDocument
from loadgen.stats.capacity import Search, Step, search
from loadgen.stats.failures import percent_text
from loadgen.stats.thresholds import evaluate, format_actual

if TYPE_CHECKING:
    from loadgen.output.metrics_endpoint import MetricsSink


class _Interrupted(Exception):
    """Ctrl-C ended a step: stop the search here, whatever its rules would do next."""


def step_config(base: RunConfig, rate: float, step_s: float) -> RunConfig:
    """One step of the search: ``base`` as a constant ``rate`` for ``step_s`` seconds."""
    return replace(base, schedule=build_schedule(rate, [], step_s), duration_s=step_s,
                   requests=None)


def capacity_command(config: RunConfig, credentials: Credentials, outputs: Outputs,
                     settings: CapacitySettings) -> int:
    """Pre-flight, the search step by step, then the verdict and each chosen output.

    ``--metrics-port`` serves the whole search (its counters carry on from step to
    step) and stops when the command is over.
    """
    # a bad --monitor-pid / --monitor-url: exit 2 before anything else
    monitor = open_monitor(outputs.monitor_pid, outputs.monitor_url)
    metrics = open_metrics(outputs, config)
    try:
        return _capacity(config, credentials, outputs, settings, metrics, monitor)
    finally:
        if metrics is not None:
            metrics.close()


def _capacity(config: RunConfig, credentials: Credentials, outputs: Outputs,
              settings: CapacitySettings, metrics: MetricsSink | None, monitor: Any) -> int:
    auth = prepare(config, credentials.password)
    announce(metrics)
    # ``--save -`` (or /dev/stdout): stdout carries only the JSON, the rest goes to stderr
    say = echo(stdout_taken(outputs.save))
    sinks: list[Sink] = []
    if metrics is not None:   # silent; its final totals first
        sinks.append(metrics)
    if outputs.save:   # a FIFO or device gets one document at the end, not one per step
        sinks.append(JsonFileSink(outputs.save, say))
    if outputs.charts:
        sinks.append(ChartSink(draw_capacity, outputs.image, started_name("loadgen-capacity"),
                               say))
    sinks.extend(document_files(outputs.html, outputs.csv, outputs.junit, say))

    started = dt.datetime.now(dt.UTC)
    slos = ", ".join(t.text for t in config.thresholds)
    via = f" via proxy {config.proxy.describe()}" if config.proxy else ""
    say(f"Capacity search on {config.url}{via}: SLOs {slos}; {settings.step_s:g}s steps from "
        f"{settings.start_rate:g} req/s (at most {settings.max_rate:g})")
    steps: list[Step] = []

    def run_step(step_config: RunConfig) -> Mapping[str, Any]:
        progress = live_or_plain(Progress(outputs.quiet, None, step_config.duration_s),
                                 step_config.public(), erase=True)
        live: list[Sink] = [progress]
        if metrics is not None:   # this step's rate is the target now
            metrics.stages = step_config.schedule.describe() if step_config.schedule else None
            live.append(metrics)
        try:
            return execute(step_config, auth,
                           lambda agg, *_: update(live, Snapshot(agg.intervals, dict,
                                                                 aggregate=agg)),
                           monitor=monitor)
        finally:
            progress.end()   # the step's line takes the live line's place

    def on_step(step: Step) -> None:
        steps.append(step)
        say(_step_line(len(steps), step))
        # every finished step on disk: an interrupted search still leaves them
        update(sinks, Snapshot([], lambda: _document(config, Search(steps=steps), started,
                                                     "running")))
        if step.doc["status"] == "interrupted":
            raise _Interrupted

    try:
        found = search(lambda rate: run_step(step_config(config, rate, settings.step_s)),
                       lambda doc: _slo_failures(config, doc), settings.start_rate,
                       settings.max_rate, settings.precision, on_step)
        found.steps = steps
        status = "complete"
    except (_Interrupted, KeyboardInterrupt):   # a second Ctrl-C, or one between steps
        found = _interrupted(steps)
        status = "interrupted"
    say("")
    say(("!! " if found.generator_limited else "") + found.verdict)
    broken = finish(sinks, _document(config, found, started, status))
    if broken is not None:
        return broken
    if status == "interrupted":
        return errors.INTERRUPTED
    if found.generator_limited or (found.steps and found.steps[-1].doc["status"] != "complete"):
        return errors.BROKEN
    return errors.OK if found.capacity is not None else errors.THRESHOLD


def _interrupted(steps: list[Step]) -> Search:
    """The search as far as it got when Ctrl-C came: the highest rate that held is a floor."""
    held = [s.rate for s in steps if s.passed]
    capacity = max(held) if held else None
    if steps and steps[-1].doc["status"] == "interrupted":
        where = f"during step {len(steps)} ({steps[-1].rate:g} req/s)"
    elif steps:
        where = f"after step {len(steps)}"
    else:
        where = "before the first step ended"
    so_far = (f"the SLOs held up to {capacity:g} req/s so far; the capacity may be higher"
              if capacity is not None else "no step had held the SLOs yet")
    return Search(steps=list(steps), capacity=capacity, verdict=f"interrupted {where}: {so_far}",
                  # a step cut short says little about loadgen's own limit
                  generator_limited=any(s.generator_limited for s in steps
                                        if s.doc["status"] != "interrupted"))


def _slo_failures(config: RunConfig, doc: Mapping[str, Any]) -> list[str]:
    return [f"{v.threshold.text} (actual {format_actual(v.threshold.metric, v.actual)})"
            for v in evaluate(config.thresholds, doc) if not v.passed]


def _step_line(n: int, step: Step) -> str:
    p99 = f"{format_number(step.p99_ms, thousands=True)} ms" if step.p99_ms is not None else "-"
    status = step.doc.get("status", "complete")
    if status == "interrupted":
        verdict = "INTERRUPTED"
    elif step.generator_limited and not step.note:
        verdict = "GENERATOR LIMITED"
    elif step.passed:
        verdict = "held" + (" (loadgen strained: see the step's generator reasons)"
                            if step.generator_limited else "")
    else:
        reasons = list(step.failures)
        if status != "complete":   # say why even when no SLO failed: the run itself broke
            problems = step.doc.get("problems") or []
            reasons.insert(0, f"the run {status}"
                           + (f" ({one_line(problems[0])})" if problems else ""))
        if step.note:
            reasons.append(step.note)
        verdict = "FAILED: " + "; ".join(reasons or ["the step did not hold"])
    return (f"step {n:2d}: {step.rate:>10,.1f} req/s -> achieved {step.achieved_rps:>10,.1f}, "
            f"p99 {p99}, failures {percent_text(step.failure_share)}  {verdict}")


def _document(config: RunConfig, found: Search, started: dt.datetime,
              status: str) -> CapacityDocument:
    return {
        "schema": CAPACITY_SCHEMA,
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
