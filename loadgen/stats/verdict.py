"""Was loadgen itself the bottleneck?  The generator verdict, from measured evidence.

A load generator that cannot keep up presents its own limit as the
server's.  The evidence, each measured in every worker:

- **send lag** (open model): intended send time -> the moment the request's
  bytes were written.  It includes the dispatcher's timer, the wait for a
  free connection and any reconnect: everything between "due" and "sent".
- **event-loop lag** (both models): how late a timer on an absolute 5 ms
  schedule ran (as jHiccup measures a JVM).  Whatever delays it delays every
  response the worker reads.
- **CPU demand** (both models): CPU time used plus time spent runnable but
  not running (Linux ``/proc/self/schedstat``), per whole second.  CPU time
  alone cannot see starvation: two workers sharing one core each read 50%.
- **connection waits** (open model): sends that found every connection busy
  with none left to open (``--max-connections``).  They are loadgen's limit
  only when the pool is too small for the load (Little's law: target rate x
  mean service time fills most of it); when a server stall kept every
  connection busy, the wait is the stall's, and it is in the corrected
  latency exactly as the users' wait would be.

Timer jitter is not a limit: gevent's timers wake ~0.5 ms late, and on a
busy shared machine a few ms at p99.  So lag counts as evidence only when it
is large both in absolute terms (``LAG_FLOOR_MS``) and relative to the
latency being measured (``LAG_SHARE`` of the service time's p99: then the
corrected percentiles describe loadgen more than the server), or when it
grows as a backlog (the *median* send lag of a whole second above the floor:
jitter moves the tail, a backlog moves the middle).

Pure functions on plain numbers, so the rules have fast unit tests and
``bench/verdict.py`` can measure their error rate on real runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadgen.schema import LagMs

LAG_FLOOR_MS = 10.0      # below this, lag is timer and scheduler jitter
LAG_SHARE = 0.5          # lag p99 above this share of the service time's p99 distorts it
DEMAND_LIMIT = 90.0      # % of one core a worker used or waited for, in some whole second
STARVED_WAIT = 20.0      # % of a second spent runnable but not running: starved, not busy
STARVED_LIMIT = 33.0     # ... this much on its own is a limit: responses waited to be read
BUSY_CPU = 70.0          # a worker this busy while its sends fell behind is the reason
POOL_SHARE = 0.05        # share of sends that waited for a connection: material
POOL_FILL = 0.8          # rate x mean service time above this share of the pool: too small


@dataclass(frozen=True)
class WorkerLoad:
    index: int
    cpu_percent_max: float
    demand_percent_max: float = 0.0      # CPU used + run-queue wait, in its worst second
    demand_cpu_percent: float = 0.0      # ... of which used
    demand_wait_percent: float = 0.0     # ... of which waited to run
    demand_second: int = 0               # 1-based second of the run
    wait_percent_max: float = 0.0        # the most time waiting to run, in one whole second
    wait_second: int = 0


@dataclass(frozen=True)
class Evidence:
    open_model: bool
    send_lag_ms: LagMs | None = None      # p50 p90 p99 max over the run
    lag_p50_by_second: list[float] = field(default_factory=list)
    loop_lag_ms: LagMs | None = None
    service_p99_ms: float | None = None   # open: service time; closed: latency
    workers: list[WorkerLoad] = field(default_factory=list)
    waited: int = 0
    requests: int = 0
    connections: int = 0                  # opened
    max_connections: int | None = None    # the pool's limit, all workers together
    target_rps: float | None = None       # peak of the schedule
    service_mean_ms: float | None = None


def lag_limit_ms(service_p99_ms: float | None) -> float:
    """Lag (p99) above which the corrected latency describes loadgen more than the server."""
    return max(LAG_FLOOR_MS, LAG_SHARE * (service_p99_ms or 0.0))


def judge(ev: Evidence) -> dict[str, Any]:
    """The ``generator`` block of the results: ``limited``, ``reasons`` and the figures."""
    reasons: list[str] = []
    causes: list[str] = []     # one word per reason, for programs: pool lag backlog loop cpu starved
    limit = lag_limit_ms(ev.service_p99_ms)
    service = _ms(ev.service_p99_ms)
    lag = ev.send_lag_ms
    lag_p99 = lag["p99"] if lag else 0.0
    backlog = max(ev.lag_p50_by_second, default=0.0)
    late = ev.open_model and (lag_p99 > limit or backlog > LAG_FLOOR_MS)
    waited_share = ev.waited / ev.requests if ev.requests else 0.0
    needed = (ev.target_rps or 0.0) * (ev.service_mean_ms or 0.0) / 1000.0
    pool = ev.max_connections or ev.connections
    pool_short = bool(pool) and needed >= POOL_FILL * pool
    waits = waited_share >= POOL_SHARE
    for w in ev.workers:
        if w.demand_percent_max >= DEMAND_LIMIT or w.cpu_percent_max >= DEMAND_LIMIT:
            starved = w.demand_wait_percent >= STARVED_WAIT
            causes.append("starved" if starved else "cpu")
            reasons.append(_demand_reason(w))
        elif w.wait_percent_max >= STARVED_LIMIT:
            causes.append("starved")
            reasons.append(f"worker {w.index} was starved of CPU: it waited to run "
                           f"{w.wait_percent_max:.0f}% of second {w.wait_second} (runnable, not "
                           "running), so the responses it read then were read late; give "
                           "loadgen free cores (other processes or workers share its core)")
    busiest = max(ev.workers, key=lambda w: w.cpu_percent_max, default=None)
    if late and not causes and busiest is not None and busiest.cpu_percent_max >= BUSY_CPU:
        causes.append("cpu")
        reasons.append(f"worker {busiest.index} used {busiest.cpu_percent_max:.0f}% of a CPU "
                       f"while its sends fell behind schedule (send lag p99 {_ms(lag_p99)}): "
                       "it could not keep the rate; add --workers or cores")
    waiting = max((max(w.wait_percent_max, w.demand_wait_percent) for w in ev.workers),
                  default=0.0)
    fix = ("give loadgen free cores (a worker waited to run up to "
           f"{waiting:.0f}% of a second)" if waiting >= STARVED_WAIT else "add --workers or cores")
    # a worker short of CPU reads responses late, which keeps connections busy: the pool
    # reason below may then be a consequence, and it says so
    cpu_bound = bool(causes)
    if late and waits and pool_short:
        causes.append("pool")
        reasons.append(
            f"connection pool exhausted: {ev.waited:,} of {ev.requests:,} sends "
            f"({waited_share:.0%}) found all {pool:,} connections busy, so requests queued "
            f"inside loadgen (send lag p99 {_ms(lag_p99)}, service time p99 {service}; "
            f"{ev.target_rps:,.0f} req/s x {_ms(ev.service_mean_ms)} mean service time needs "
            f"~{needed:,.0f} connections); raise --max-connections"
            + (" (this may follow from the CPU limit above)" if cpu_bound else ""))
    elif late and not waits:
        if backlog > LAG_FLOOR_MS:
            causes.append("backlog")
            reasons.append(f"sends fell behind schedule: in some second half of the sends left "
                           f"more than {_ms(backlog)} late (a backlog); {fix}")
        else:
            causes.append("lag")
            reasons.append(f"sends left late: p99 {_ms(lag_p99)} behind schedule, against a "
                           f"service time p99 of {service} (limit {_ms(limit)}); {fix}")
    # late with waits but a pool big enough for the load: the server stalled and held every
    # connection; that wait is the server's and the corrected latency shows it
    loop = ev.loop_lag_ms
    if loop and not late and loop["p99"] > limit and "starved" not in causes:
        causes.append("starved" if waiting >= STARVED_WAIT else "loop")
        reasons.append(f"the event loop ran late: timers p99 {_ms(loop['p99'])} behind, "
                       f"against a latency p99 of {service} (limit {_ms(limit)}); {fix}")
    cpu = max((w.cpu_percent_max for w in ev.workers), default=0.0)
    return {
        "limited": bool(reasons),
        "reasons": reasons,
        "causes": causes,
        "lateness_ms": lag,
        "lag_limit_ms": round(limit, 3),
        "loop_lag_ms": loop,
        "cpu_percent_max": round(cpu, 1),
        "demand_percent_max": round(max((w.demand_percent_max for w in ev.workers),
                                        default=0.0), 1),
        "run_queue_percent_max": round(waiting, 1),
        "waited_for_connection": ev.waited,
        "waited_share": round(waited_share, 4),
        "connections": ev.connections,
        "connections_needed": round(needed, 1) if ev.target_rps else None,
    }


def _demand_reason(w: WorkerLoad) -> str:
    if w.demand_wait_percent >= STARVED_WAIT:
        return (f"worker {w.index} was starved of CPU: in second {w.demand_second} it ran "
                f"{w.demand_cpu_percent:.0f}% and waited to run {w.demand_wait_percent:.0f}% "
                "of the time (other processes share its cores); give loadgen free cores")
    busy = max(w.cpu_percent_max, w.demand_cpu_percent)
    return (f"worker {w.index} used {busy:.0f}% of a CPU (limit {DEMAND_LIMIT:g}%): "
            "add --workers or cores")


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g} ms" if value < 1000 else f"{value:,.0f} ms"
