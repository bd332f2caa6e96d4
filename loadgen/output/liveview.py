"""The live view on a terminal: a compact table redrawn in place, once a second.

A one-line progress report says how many requests went out; someone watching a
run wants to see *which* endpoint is slow or failing, whether loadgen keeps the
rate it was asked for, and whether loadgen itself is the limit.  So when stderr
is a terminal, ``run`` shows (with ``rich``, on stderr: stdout carries the
report):

    loadgen  5s / 6s ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╸━━━━━━━━━━━ 83%
    target 300 req/s | achieved 299 req/s | 105 connections
    generator: ok (40% of sends waited for a connection, send lag p99 678 ms, ...)
    endpoint                   req/s   success   p50 ms   p99 ms   failures
    ──────────────────────────────────────────────────────────────────────────────
    GET /api/health             75.0    100.0%     1.66     4.15
    GET /api/dataset/summary    74.0    100.0%      677      693
    GET /status/503             75.0      0.0%     2.84     7.12   503: 300
    GET /delay/3000             75.0      0.0%    2,002    2,004   timeout: 150
    All endpoints                299     55.0%     9.75    2,003   503: 300, timeout: 150

Rates and latencies are the last whole second's (what is happening now);
success and failures are counted since the start (what the report will say).
The view is transient: the final report takes its place.  Off a terminal (CI
logs) ``output.progress`` prints its plain line instead; ``--quiet`` silences
both.  It runs in the coordinator only, fed by ``stats.aggregate.Aggregate``
(its intervals, each endpoint's totals and newest whole second).

The figures (``Frame``) are built apart from their drawing, so each is tested
on its own; rich is imported only when a terminal shows the view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from loadgen.output.progress import seconds_text
from loadgen.output.table import format_number, format_percent
from loadgen.stats.metrics import Totals, percentiles_us
from loadgen.stats.verdict import (
    DEMAND_LIMIT,
    LAG_FLOOR_MS,
    POOL_SHARE,
    STARVED_LIMIT,
    STARVED_WAIT,
    lag_limit_ms,
)

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

    from loadgen.output.sinks import Document, Snapshot
    from loadgen.stats.aggregate import Aggregate, SecondTally

#: At most this many endpoint rows (the busiest); a journey run can have dozens of steps.
MAX_ROWS = 12
#: At most this many failure causes named per row, the commonest first.
MAX_CAUSES = 3


@dataclass(frozen=True)
class LivePlan:
    """What the view knows of the run before it starts, read from ``RunConfig.public()``
    (the document's ``config``: plain values, nothing secret)."""

    total_s: float | None = None          # the run's length when it has one
    requests: int | None = None           # --requests
    iterations: int | None = None         # --iterations of a journey run
    schedule: Sequence[Mapping[str, Any]] = ()   # open model: the target rate's stages
    users: int | None = None              # closed model: --concurrency (constant)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LivePlan:
        schedule = config.get("schedule") or ()
        user_stages = config.get("user_stages") or ()
        total = config.get("duration_s")
        stages = schedule or user_stages
        if total is None and stages and all(s.get("duration_s") is not None for s in stages):
            total = sum(s["duration_s"] for s in stages)
        return cls(total_s=total, requests=config.get("requests"),
                   iterations=config.get("iterations"), schedule=tuple(schedule),
                   users=(config.get("concurrency")
                          if config.get("model") == "closed" and not user_stages else None))


def target_rate(schedule: Sequence[Mapping[str, Any]], start: float, end: float) -> float | None:
    """The schedule's mean rate over ``[start, end)`` seconds (its stages are linear ramps,
    the last may be open-ended); None without a schedule (the closed model)."""
    if not schedule or end <= start:
        return None
    due, t0 = 0.0, 0.0
    for stage in schedule:
        length = stage.get("duration_s")
        r0, r1 = float(stage["start_rate"]), float(stage["end_rate"])
        t1 = float("inf") if length is None else t0 + float(length)
        lo, hi = max(start, t0), min(end, t1)
        if hi > lo:
            slope = 0.0 if length in (None, 0) else (r1 - r0) / float(length)
            # the area under r0 + slope * (t - t0) between lo and hi
            due += (r0 + slope * ((lo + hi) / 2 - t0)) * (hi - lo)
        t0 = t1
    return due / (end - start)


@dataclass(frozen=True)
class Row:
    """One endpoint (or all of them): rates and latency of the last second, counts since
    the start."""

    name: str
    rps: float
    requests: int
    successes: int
    p50_ms: float | None
    p99_ms: float | None
    failures: Mapping[str, int] = field(default_factory=dict)   # by status and kind

    @property
    def failed(self) -> int:
        return self.requests - self.successes


@dataclass(frozen=True)
class Frame:
    """Everything one redraw shows."""

    elapsed_s: float
    rows: Sequence[Row]
    total: Row
    plan: LivePlan = LivePlan()
    target_rps: float | None = None
    users: float | None = None
    connections: int | None = None
    iterations: int | None = None          # journeys: completed since the start
    iterations_rps: float | None = None    # ... in the last second
    generator: str = ""
    hidden_rows: int = 0                   # endpoints left out (MAX_ROWS)


def _causes(totals: Totals) -> dict[str, int]:
    """Failures since the start by status (``503``) and by kind (``timeout``)."""
    causes = {code: n for code, n in totals.failed_codes.items() if n}
    causes.update({kind: n for kind, n in totals.errors.items() if n})
    return causes


def _percentiles(totals: SecondTally | None) -> tuple[float | None, float | None]:
    if totals is None or not totals.hist.get_total_count():
        return None, None
    p50, p99 = percentiles_us(totals.hist, [50.0, 99.0])
    return p50 / 1000.0, p99 / 1000.0


def generator_status(interval: Mapping[str, Any], cpu_peak: float, wait_peak: float,
                     waited_share: float = 0.0) -> str:
    """A live hint of whether loadgen keeps up (the full verdict comes with the report).

    The same rules as ``stats.verdict``, on what is known so far: open model, the last
    second's send lag (intended send time -> bytes written), a backlog when its median
    is above ``LAG_FLOOR_MS``, late when its p99 is above ``lag_limit_ms`` of the
    second's latency p99; lag with material connection waits (``waited_share`` of the
    sends so far) is named as such, as the verdict then blames the pool or the server's
    stall, not the sender; both models, the workers' worst second of CPU (``cpu_peak``)
    and of waiting to run (``wait_peak``: starved by other processes) since the start.
    """
    lag = interval.get("send_lag_ms")
    words, figures = [], []
    if lag:
        p99 = lag.get("p99") or 0.0
        late = ((lag.get("p50") or 0.0) > LAG_FLOOR_MS
                or p99 > lag_limit_ms(interval.get("latency_ms", {}).get("p99")))
        if waited_share >= POOL_SHARE:
            figures.append(f"{waited_share:.0%} of sends waited for a connection")
        if late and waited_share >= POOL_SHARE:
            words.append("sends wait for a free connection")
        elif (lag.get("p50") or 0.0) > LAG_FLOOR_MS:
            words.append("behind schedule")
        elif late:
            words.append("sending late")
        figures.append(f"send lag p99 {format_number(p99, thousands=True)} ms")
    if wait_peak >= STARVED_LIMIT:
        words.append("starved of CPU")
    elif cpu_peak >= DEMAND_LIMIT:
        words.append("CPU-bound")
    figures.append(f"worker CPU peak {cpu_peak:,.0f}%")
    if wait_peak >= STARVED_WAIT:
        figures.append(f"waited to run {wait_peak:,.0f}%")
    return f"{', '.join(words) or 'ok'} ({', '.join(figures)})"


def frame_of(agg: Aggregate, plan: LivePlan) -> Frame | None:
    """The figures of the newest whole second, None before the first one."""
    if not agg.intervals:
        return None
    last = agg.intervals[-1]
    length = agg.last_length or float(last.get("length_s") or 1.0)
    rows = []
    for i, (name, totals) in enumerate(zip(agg.endpoint_names, agg.totals)):
        second = agg.last_endpoints[i] if i < len(agg.last_endpoints) else None
        p50, p99 = _percentiles(second)
        rows.append(Row(name, (second.requests / length) if second and length > 0 else 0.0,
                        totals.requests, totals.successes, p50, p99, _causes(totals)))
    # in the run's order, which stays put from one second to the next; a long list keeps
    # its busiest endpoints
    busiest = set(sorted(range(len(rows)), key=lambda i: -rows[i].requests)[:MAX_ROWS])
    shown = [row for i, row in enumerate(rows) if i in busiest]
    # from the running totals, not by summing every interval: a day-long run has 86,400
    done = sum(row.requests for row in rows)
    ok = sum(row.successes for row in rows)
    causes: dict[str, int] = {}
    for row in rows:
        for cause, n in row.failures.items():
            causes[cause] = causes.get(cause, 0) + n
    total = Row("All endpoints", float(last.get("rps") or 0.0), done, ok,
                last["latency_ms"].get("p50"), last["latency_ms"].get("p99"), causes)
    elapsed = float(last["t"])
    iterations = None
    if agg.journeys is not None:   # completed: successes and failures (cut ones are neither)
        iterations = sum(t.hist.get_total_count() + sum(t.failed_at.values())
                         for t in agg.iterations)
    users = last.get("users")
    return Frame(
        elapsed_s=elapsed, rows=shown, total=total, plan=plan,
        target_rps=target_rate(plan.schedule, elapsed - length, elapsed),
        users=float(users) if users is not None else plan.users,
        connections=sum(w.connections for w in agg.workers) or None,
        iterations=iterations,
        iterations_rps=(last.get("iterations", 0) / length
                        if iterations is not None and length > 0 else None),
        generator=generator_status(
            last, max((w.cpu_percent_max for w in agg.workers), default=0.0),
            max((w.wait_percent_max for w in agg.workers), default=0.0),
            sum(w.waited for w in agg.workers) / done if done else 0.0),
        hidden_rows=len(rows) - len(shown))


def _num(value: float | None) -> str:
    """Plain notation with thousands separators (``3,012``), never ``3e+03``."""
    return format_number(value, thousands=True)


def _failures_text(causes: Mapping[str, int]) -> str:
    ranked = sorted(causes.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{cause}: {n:,}" for cause, n in ranked[:MAX_CAUSES])
    return text + (", ..." if len(ranked) > MAX_CAUSES else "")


def _success(row: Row) -> str:
    if not row.requests:
        return "-"
    return format_percent(row.successes / row.requests, row.requests, row.successes) + "%"


def _progress(frame: Frame) -> tuple[str, float | None]:
    """``12s / 30s`` and the share done (by time, else by requests or iterations)."""
    plan = frame.plan
    text = f"{frame.elapsed_s:,.0f}s"
    if plan.total_s:
        return f"{text} / {seconds_text(plan.total_s)}s", min(1.0, frame.elapsed_s / plan.total_s)
    if plan.iterations and frame.iterations is not None:
        return (f"{text} | {frame.iterations:,} / {plan.iterations:,} iterations",
                min(1.0, frame.iterations / plan.iterations))
    if plan.requests:
        return (f"{text} | {frame.total.requests:,} / {plan.requests:,} requests",
                min(1.0, frame.total.requests / plan.requests))
    return text, None


def status_line(frame: Frame) -> str:
    """Target vs achieved rate, users or connections, iterations.

    A journey run's schedule (open model) counts arrivals of iterations, not requests:
    its target is set against the iterations completed in the second.
    """
    parts = []
    if frame.iterations is not None:
        if frame.target_rps is not None:
            parts.append(f"target {_num(frame.target_rps)} iterations/s")
        parts.append(f"achieved {_num(frame.iterations_rps)} iterations/s "
                     f"({frame.iterations:,} done), {_num(frame.total.rps)} req/s")
    else:
        if frame.target_rps is not None:
            parts.append(f"target {_num(frame.target_rps)} req/s")
        parts.append(f"achieved {_num(frame.total.rps)} req/s")
    if frame.users is not None:
        parts.append(f"{_num(frame.users)} users")
    if frame.connections is not None:
        parts.append(f"{frame.connections:,} connections")
    return " | ".join(parts)


def render(frame: Frame) -> RenderableType:
    """The view for one frame: a header with the bar, the status line, the table."""
    from rich import box
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    elapsed, share = _progress(frame)
    head = Table.grid(padding=(0, 1))
    head.add_column(no_wrap=True)
    head.add_column(ratio=1)
    head.add_column(no_wrap=True, justify="right")
    bar = ProgressBar(total=1.0, completed=share if share is not None else 0.0,
                      pulse=share is None)
    head.add_row(Text("loadgen", style="bold") + Text(f"  {elapsed}"), bar,
                 f"{share:.0%}" if share is not None else "")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("endpoint", no_wrap=True, overflow="ellipsis", max_width=40)
    for name in ("req/s", "success", "p50 ms", "p99 ms"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("failures", overflow="fold")
    for row in frame.rows:
        table.add_row(row.name, _num(row.rps), _success(row), _num(row.p50_ms),
                      _num(row.p99_ms), _failures_text(row.failures),
                      style="red" if row.failed else None)
    if frame.hidden_rows:
        table.add_row(f"(+{frame.hidden_rows:,} more)", "", "", "", "", "", style="dim")
    total = frame.total
    table.add_row(total.name, _num(total.rps), _success(total), _num(total.p50_ms),
                  _num(total.p99_ms), _failures_text(total.failures),
                  style="bold", end_section=True)
    lines: list[RenderableType] = [head, Text(status_line(frame))]
    if frame.generator:
        lines.append(Text(f"generator: {frame.generator}",
                          style="" if frame.generator.startswith("ok") else "yellow"))
    return Group(*lines, table)


class LiveView:
    """``rich.live.Live`` on a terminal stream, redrawn on each per-second update.

    Transient: ``close`` takes the view away, so the final report replaces it.
    ``console`` is for tests (a recording console); by default one on ``stream``.
    """

    def __init__(self, plan: LivePlan, stream: IO[str], console: Console | None = None) -> None:
        from rich.console import Console

        self.plan = plan
        # plain cells: no markup, emoji or number highlighting to parse in every redraw
        self.console = console or Console(file=stream, force_terminal=True, markup=False,
                                          emoji=False, highlight=False)
        self.live: Live | None = None
        self.frames = 0

    def show(self, frame: Frame) -> None:
        from rich.live import Live

        view = render(frame)
        if self.live is None:
            # redrawn on each update, not by a refresh thread; a line written to stderr
            # meanwhile (a warning) goes above the view; stdout is the report's, untouched
            self.live = Live(view, console=self.console, auto_refresh=False, transient=True,
                             redirect_stdout=False)
            self.live.start(refresh=True)
        else:
            self.live.update(view, refresh=True)
        self.frames += 1

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


class LiveSink:
    """The live view as a sink (``output.sinks``): fed by the aggregate of each update."""

    def __init__(self, view: LiveView) -> None:
        self.view = view

    def on_update(self, snapshot: Snapshot) -> None:
        if snapshot.aggregate is None:
            return
        frame = frame_of(snapshot.aggregate, self.view.plan)
        if frame is not None:
            self.view.show(frame)

    def on_finish(self, doc: Document) -> int | None:
        self.end()
        return None

    def end(self) -> None:
        """Also when the run ended without a document (Ctrl-C twice, an error)."""
        self.view.close()
