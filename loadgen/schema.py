"""The results document (schema ``loadgen/1``) as types: the one reference for its shape.

Why here, at the top of the package and on the standard library alone: the
document is assembled from parts made in several layers (``stats`` makes the S
blocks, the intervals and the generator verdict, ``engine.cluster`` the nodes,
``output.results`` the whole) and read back by ``output`` and ``commands``;
each of them may import this module without importing the others.

The TypedDicts describe what loadgen writes *today*.  Files written by older
versions lack some keys (``success_latency_ms``, ``failures_by_kind``, the
interval's ``start``/``length_s``/``partial``, phases...) or carry old ones
(``errors``): readers take documents as plain dicts and fall back where the
README says so; ``loadgen.output.validate`` checks the shapes they read.  The
README's "The results document" section describes these types in prose.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

SCHEMA = "loadgen/1"
#: ``loadgen capacity --save``: the search's steps, each with its own results document.
CAPACITY_SCHEMA = "loadgen-capacity/1"

#: The percentiles of every latency block, by name, with the percentile they read.
PERCENTILES = (("p50", 50.0), ("p75", 75.0), ("p90", 90.0), ("p95", 95.0),
               ("p99", 99.0), ("p999", 99.9))
#: The keys of a latency block (``latency_ms``, ``success_latency_ms``, ``service_time_ms``).
LATENCY_KEYS = ("min", "mean", *(name for name, _ in PERCENTILES), "max")
#: The keys of an interval's ``latency_ms``: a second has too few requests for the tails.
INTERVAL_LATENCY_KEYS = ("p50", "p90", "p99", "max")
#: The keys of a phase's figures (``summary.phases_ms``).
PHASE_FIGURES = ("count", "mean", "p50", "p90", "p99", "max")

# The figure dicts in the functional syntax: each is one line per key list above, and
# tests/test_schema.py checks that their keys are exactly those lists.
LatencyMs = TypedDict("LatencyMs", {
    "min": float | None, "mean": float | None, "p50": float | None, "p75": float | None,
    "p90": float | None, "p95": float | None, "p99": float | None, "p999": float | None,
    "max": float | None})
"""min, mean, percentiles and max in ms; all None when nothing was recorded."""

IntervalLatencyMs = TypedDict("IntervalLatencyMs", {
    "p50": float | None, "p90": float | None, "p99": float | None, "max": float | None})

LagMs = TypedDict("LagMs", {"p50": float, "p90": float, "p99": float, "max": float})
"""The generator's send lag (open model) and event-loop lag figures."""

SendLagMs = TypedDict("SendLagMs", {"p50": float, "p99": float})

PhaseFigures = TypedDict("PhaseFigures", {
    "count": int, "mean": float | None, "p50": float | None, "p90": float | None,
    "p99": float | None, "max": float | None})


class Block(TypedDict, total=False):
    """An S block: the ``summary`` (all endpoints) and each of ``endpoints``.

    ``service_time_ms`` only in the open model; ``phases_ms`` only in the summary
    (phases are per worker); ``endpoint`` and ``concurrency`` only in ``endpoints``.
    """

    endpoint: str
    concurrency: int
    requests: int
    successes: int
    failures: int
    success_rate: float
    rps: float
    duration_s: float
    latency_ms: LatencyMs
    success_latency_ms: LatencyMs
    service_time_ms: LatencyMs
    status_codes: dict[str, int]          # every response's status
    failures_by_status: dict[str, int]    # responses outside the success set
    failures_by_kind: dict[str, int]      # no response: connect, timeout, write, read, protocol
    bytes_in: int
    bytes_out: int
    latency_overflow: int
    phases_ms: dict[str, PhaseFigures]    # connect, tls (https), ttfb
    checked: int                          # endpoints with ``expect`` checks: bodies checked
    checks_failed: dict[str, int]         # ... and how often each named check failed


class _IntervalRequired(TypedDict):
    t: float                  # seconds from the run's start to the END of the interval


class Interval(_IntervalRequired, total=False):
    """One second of the run, merged across workers (old files: t, requests, errors, rps,
    latency_ms)."""

    start: str | None         # ISO-8601 UTC wall clock of the interval's start, with ms
    length_s: float
    partial: bool             # a last interval shorter than a whole second
    requests: int
    successes: int
    failures: int
    rps: float                # requests / length_s
    latency_ms: IntervalLatencyMs
    send_lag_ms: SendLagMs    # open model only
    users: float              # --user-stage only: mean active users over the second (time-weighted)
    iterations: int           # journeys only: iterations completed in the second (ok + failed)
    server: ServerSample      # --monitor-pid / --monitor-url only: the server in that second


class ProcessSample(TypedDict):
    """``--monitor-pid``: the process tree in one second (None when its sample failed)."""

    cpu_percent: float | None     # CPU time / wall time, summed over the tree: 100 = one core
    rss_bytes: int                # summed over the tree (forked workers' shared pages count twice)
    threads: int
    fds: int                      # open file descriptors (files, sockets, pipes)
    connections: int              # inet sockets
    processes: int                # the process and its children


class HostSample(TypedDict):
    """``--monitor-url``: a node exporter's host in one second (None when its sample failed)."""

    cpu_percent: float | None     # busy share of every CPU (not idle, not iowait): 100 = all
    cpus: int
    memory_used_bytes: int | None     # MemTotal - MemAvailable
    memory_used_percent: float | None
    load1: float | None
    net_rx_bytes_per_s: float | None  # every device but lo
    net_tx_bytes_per_s: float | None


class ServerSample(TypedDict, total=False):
    """An interval's ``server``: one key per monitored source; None: that sample failed."""

    process: ProcessSample | None
    host: HostSample | None


class _SourceCounts(TypedDict):
    samples: int                  # seconds sampled
    failed: int                   # seconds whose sample failed
    failures: dict[str, int]      # why, by reason (at most five reasons)


class ProcessSummary(_SourceCounts):
    pid: int
    name: str
    cpu_count: int                # the machine's cores: cpu_percent can reach 100 x this
    cpu_percent_max: float | None
    cpu_percent_mean: float | None
    rss_bytes_max: int | None
    threads_max: int | None
    fds_max: int | None
    connections_max: int | None
    processes_max: int | None


class HostSummary(_SourceCounts):
    url: str                      # without user, password or query
    cpus: int | None
    cpu_percent_max: float | None
    cpu_percent_mean: float | None
    memory_used_bytes_max: int | None
    memory_used_percent_max: float | None
    load1_max: float | None
    net_rx_bytes_per_s_max: float | None
    net_tx_bytes_per_s_max: float | None


class ServerSummary(TypedDict, total=False):
    """The document's ``server`` (only with ``--monitor-*``): each source's peaks and counts."""

    process: ProcessSummary
    host: HostSummary


class Generator(TypedDict, total=False):
    """Whether loadgen itself was the limit: the figures behind ``generator_limited``."""

    reasons: list[str]
    causes: list[str]         # causes[i] names reasons[i]: pool, backlog, lag, loop, cpu, starved
    lateness_ms: LagMs | None     # open model: intended send time -> bytes written
    lag_limit_ms: float | None
    loop_lag_ms: LagMs | None
    cpu_percent_max: float
    demand_percent_max: float
    run_queue_percent_max: float
    waited_for_connection: int
    waited_share: float
    connections: int
    connections_needed: int | None


class Worker(TypedDict):
    index: int
    requests: int
    cpu_s: float
    elapsed_s: float
    cpu_percent_max: float
    connections: int
    reconnects: int
    lost: str | None


class Node(TypedDict):
    """A ``--cluster`` run: what each Dask node did."""

    address: str
    host: str
    workers: int
    worker_indices: list[int]
    requests: int
    lost: str | None
    start_offset_ms: float | None


class AuthSummary(TypedDict):
    """``--auth``: how many logins the run made (the first one included) and why.

    ``failed`` logins left the run on the token it had; ``problems`` names them
    (distinct messages, at most five).  Absent from runs without ``--auth`` and
    from files written before logins were renewed.
    """

    logins: int
    renewed_before_expiry: int
    renewed_after_401: int
    failed: int
    problems: list[str]


class ThresholdResult(TypedDict):
    """One ``--threshold`` checked against the document's numbers.

    In a save of a run still going (``status`` "running") it is provisional: the
    numbers so far, which the end of the run may still change.
    """

    threshold: str            # as the user wrote it
    actual: float | None      # None when the run has no data for it (yet)
    passed: bool


class IterationFigures(TypedDict):
    """A user kind's iterations (one pass through its steps), over the whole run.

    ``total`` = ``successes`` + ``failures`` + ``cut`` (iterations the run's end, or a
    leaving user, interrupted: neither).  ``per_second``: completed iterations
    (successes + failures) per second under load.  ``latency_ms``: the successful
    iterations' time, first send (open model: the arrival's intended time) to last
    response, think time left out.  ``failed_at``: failed iterations by the row name of
    the step that failed, most frequent first.
    """

    total: int
    successes: int
    failures: int
    cut: int
    per_second: float
    latency_ms: LatencyMs
    latency_overflow: int
    failed_at: dict[str, int]


class Journey(TypedDict):
    """One ``[[users]]`` kind of a journey run: its rows (``endpoints`` entries, named
    ``"<kind>: METHOD path"``) and its iterations."""

    name: str
    weight: float
    on_start: list[str]       # row names, once per virtual user
    steps: list[str]          # row names, in order, every iteration
    iterations: IterationFigures


class _DocumentRequired(TypedDict):
    schema: str
    tool: str
    status: str               # complete, interrupted, failed; "running" while still going
    problems: list[str]
    started_at: str
    config: dict[str, object]     # RunConfig.public(): nothing secret
    summary: Block
    endpoints: list[Block]
    model: str                # "closed" or "open"
    generator_limited: bool
    generator: Generator
    histograms: dict[str, str]    # HDR, base64, microseconds: every request, by endpoint
    histogram_unit: str
    workers: list[Worker]
    intervals: list[Interval]


class ResultsDocument(_DocumentRequired, total=False):
    """What ``loadgen run --save`` writes, complete at every save."""

    success_histograms: dict[str, str]    # the successes alone
    service_histograms: dict[str, str]    # open model only ("" for an empty one)
    phase_histograms: dict[str, str]      # connect, tls, ttfb
    thresholds: list[ThresholdResult]     # only when --threshold was given
    nodes: list[Node]                     # --cluster only
    auth: AuthSummary                     # --auth only
    server: ServerSummary                 # --monitor-pid / --monitor-url only
    journeys: list[Journey]               # journey runs ([[users]]) only, in their kinds' order
    journey_histograms: dict[str, str]    # ... the successful iterations' times, by kind name
    # combined repeats (bench/compare-configs, loadgen.stats.combine)
    combined_from: int
    combined_runs: list[dict[str, object]]


class CapacityStep(TypedDict):
    """One step of ``loadgen capacity``: a constant rate, judged against the SLOs."""

    rate: float
    passed: bool
    achieved_rps: float
    p99_ms: float | None
    failure_share: float          # requests that did not succeed / requests
    slo_failures: list[str]       # the SLOs it missed, with the actual figure
    generator_limited: bool
    note: str | None              # why a generator-limited step still counts
    result: Mapping[str, Any]     # the step's own results document (a ResultsDocument)


class CapacityDocument(TypedDict):
    """What ``loadgen capacity --save`` writes (schema ``loadgen-capacity/1``), after every
    step ("status" "running") and at the end."""

    schema: str
    tool: str
    status: str
    started_at: str
    config: dict[str, object]
    slos: list[str]
    capacity_rps: float | None    # the highest rate that held; None if none did
    verdict: str
    generator_limited: bool
    steps: list[CapacityStep]
