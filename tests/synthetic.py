"""Synthetic worker messages and results documents, for fast tests without processes.

The messages have exactly the shape ``loadgen.engine.worker.Worker._send_interval``
sends (tallies built with ``Tally(...).to_wire()``), and the documents are
built from them by the real ``Aggregate`` and ``build_document``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from loadgen.output.results import build_document
from loadgen.stats.aggregate import Aggregate, WorkerState
from loadgen.stats.metrics import IterationTally, Tally, encode_histogram, new_histogram

WALL_START = 1_700_000_000.0   # 2023-11-14T22:13:20Z


def tally(ok: int = 0, status_500: int = 0, timeouts: int = 0, ok_us: int = 2_000,
          timeout_us: int = 1_000_000, open_model: bool = False) -> Tally:
    """One endpoint's interval: ``ok`` 2xx at ~``ok_us``, 500s at 3 ms, transport timeouts."""
    t = Tally(open_model=open_model)
    for i in range(ok):
        t.record(200, ok_us + i, 100, 50)
        if open_model:
            t.record_service(ok_us + i)
    for _ in range(status_500):
        t.record(500, 3_000, 20, 50)
    for _ in range(timeouts):
        t.error("timeout", 50, timeout_us)
    return t


def message(worker: int, elapsed_s: float, endpoints: list[Tally], final: bool = False,
            cpu_s: float = 0.0, run_delay_s: float = 0.0, waited: int = 0,
            connections: int = 4, lateness_us: list[int] | None = None,
            loop_lag_us: list[int] | None = None,
            journeys: list[IterationTally] | None = None) -> dict[str, Any]:
    """A worker message, as ``Worker._send_interval`` builds it (counters are cumulative);
    ``journeys``: a journey run's ``IterationTally`` per kind."""
    def hist(values: list[int] | None) -> str:
        h = new_histogram()
        for v in values or []:
            h.record_value(v)
        return encode_histogram(h)

    sent = {
        "type": "final" if final else "interval",
        "worker": worker,
        "t": elapsed_s,
        "elapsed_s": elapsed_s,
        "cpu_s": cpu_s,
        "run_delay_s": run_delay_s,
        "reconnects": 0,
        "connections": connections,
        "waited": waited,
        "lateness": hist(lateness_us),
        "loop_lag": hist(loop_lag_us),
        "endpoints": [t.to_wire() for t in endpoints],
    }
    if journeys is not None:
        sent["journeys"] = [t.to_wire() for t in journeys]
    return sent


def iterations(ok_us: Sequence[int] = (), failed: Sequence[tuple[int, int]] = (),
               cut: int = 0) -> IterationTally:
    """One kind's interval: successful iterations taking ``ok_us``, failures ``(step, us)``."""
    t = IterationTally()
    for us in ok_us:
        t.success(us)
    for step, us in failed:
        t.failure(step, us)
    for _ in range(cut):
        t.cut_short()
    return t


def new_aggregate(workers: int = 2, endpoints: tuple[str, ...] = ("GET /a",)) -> Aggregate:
    agg = Aggregate(list(endpoints), [WorkerState(i) for i in range(workers)])
    agg.wall_start = WALL_START
    return agg


def iso(offset_s: float) -> str:
    return dt.datetime.fromtimestamp(WALL_START + offset_s, dt.UTC).isoformat(
        timespec="milliseconds")


def synthetic_run(ok: int = 30, status_500: int = 1, timeouts: int = 1, seconds: int = 2,
                  tail_s: float = 0.5, open_model: bool = False, wall_start: float = WALL_START,
                  causes_cpu: bool = False) -> dict[str, Any]:
    """A results document for a two-worker run: ``seconds`` whole seconds then a partial one.

    Each worker sends ``ok`` 2xx, ``status_500`` 500s and ``timeouts`` transport timeouts
    (at 1 s) per whole second, and ``ok`` // 2 2xx in its last ``tail_s``.  With
    ``causes_cpu`` worker 0 used a whole core in second 1 (a generator-limited run).
    """
    agg = Aggregate(["GET /a"], [WorkerState(0), WorkerState(1)])
    agg.wall_start = wall_start
    for k in range(1, seconds + 1):
        for w in (0, 1):
            cpu = (0.95 if causes_cpu and w == 0 else 0.2) * k
            agg.add(message(w, k + 0.0004, [tally(ok, status_500, timeouts,
                                                  open_model=open_model)],
                            cpu_s=cpu, waited=k, lateness_us=[300, 400] if open_model else None))
    for w in (0, 1):
        agg.add(message(w, seconds + tail_s, [tally(ok // 2, open_model=open_model)], final=True,
                        cpu_s=seconds, waited=seconds))
    agg.finish()
    config: dict[str, Any] = {"model": "open" if open_model else "closed", "concurrency": 4}
    if open_model:
        config["schedule"] = [{"duration_s": seconds + tail_s, "start_rate": 2.0 * ok,
                               "end_rate": 2.0 * ok}]
        config["max_connections"] = 8
    started = dt.datetime.fromtimestamp(wall_start, dt.UTC)
    return build_document(config, agg, "complete", [], started)


#: The rows of ``journey_run``: kind "shopper" logs in once, then lists and orders;
#: kind "browser" only lists.  Their steps are ordinary endpoint rows.
JOURNEY_ROWS = ("shopper: POST /api/auth/login", "shopper: GET /shop/items",
                "shopper: POST /shop/orders", "browser: GET /shop/items")


def journey_kinds() -> Any:
    """``RunConfig.journeys`` of ``journey_run``: shopper (weight 2) and browser (weight 1)."""
    from loadgen.config.journey import Journeys, UserKind

    return Journeys((UserKind("shopper", weight=2.0, on_start=(0,), steps=(1, 2)),
                     UserKind("browser", weight=1.0, steps=(3,))))


def journey_run(seconds: int = 2, open_model: bool = False) -> dict[str, Any]:
    """A results document of a two-worker journey run: ``seconds`` whole seconds, then
    a half second in which every worker's last iteration is cut.

    Per worker and whole second: the shopper kind completes 10 iterations (9 at
    30..38 ms, one failed at its order step after 12 ms), the browser kind 5 (at
    4 ms); the steps' rows get the matching requests (one login per worker at first).
    """
    agg = Aggregate(list(JOURNEY_ROWS), [WorkerState(0), WorkerState(1)],
                    journeys=journey_kinds())
    agg.wall_start = WALL_START
    for k in range(1, seconds + 1):
        for w in (0, 1):
            rows = [tally(ok=1 if k == 1 else 0, open_model=open_model),
                    tally(ok=10, open_model=open_model),
                    tally(ok=9, status_500=1, open_model=open_model),
                    tally(ok=5, open_model=open_model)]
            kinds = [iterations([30_000 + 1_000 * i for i in range(9)], [(2, 12_000)]),
                     iterations([4_000] * 5)]
            agg.add(message(w, k + 0.0004, rows, journeys=kinds))
    for w in (0, 1):
        rows = [tally(open_model=open_model), tally(ok=1, open_model=open_model),
                tally(open_model=open_model), tally(open_model=open_model)]
        agg.add(message(w, seconds + 0.5, rows, final=True,
                        journeys=[iterations(cut=1), iterations()]))
    agg.finish()
    config: dict[str, Any] = {"model": "open" if open_model else "closed", "concurrency": 4,
                              "url": "http://127.0.0.1:8080"}
    started = dt.datetime.fromtimestamp(WALL_START, dt.UTC)
    return build_document(config, agg, "complete", [], started)


def endpoints_run(names: Sequence[str], seconds: int = 3) -> dict[str, Any]:
    """A one-worker run of several endpoints: endpoint ``i`` sends ``5 * (i + 1)`` 2xx per
    whole second at ``1 + i`` ms (the last one ``k`` times slower in second ``k``), then a
    half second in which only the first is busy (the others idle: left out of it)."""
    agg = new_aggregate(workers=1, endpoints=tuple(names))
    last = len(names) - 1
    for k in range(1, seconds + 1):
        agg.add(message(0, k + 0.0004, [
            tally(ok=5 * (i + 1), ok_us=1_000 * (i + 1) * (k if i == last else 1))
            for i in range(len(names))]))
    agg.add(message(0, seconds + 0.5, [tally(ok=2 if i == 0 else 0) for i in range(len(names))],
                    final=True))
    agg.finish()
    started = dt.datetime.fromtimestamp(WALL_START, dt.UTC)
    return build_document({"model": "closed", "concurrency": 4, "url": "http://127.0.0.1:8080",
                           "endpoints": list(names)}, agg, "complete", [], started)


def monitored(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` as ``--monitor-pid`` and ``--monitor-url`` leave it: the process tree's CPU
    climbs to 100% (one core) in the last whole second, the host's second sample failed."""
    from loadgen.output.results import with_server

    whole = [i for i in doc["intervals"] if not i.get("partial")]
    samples: dict[int, Any] = {}
    for k in range(1, len(whole) + 1):
        cpu = 100.0 * k / len(whole)
        samples[k] = {
            "process": {"cpu_percent": cpu, "rss_bytes": (40 + 10 * k) * 2**20, "threads": 4,
                        "fds": 12, "connections": 5, "processes": 2},
            "host": None if k == 2 else {
                "cpu_percent": cpu / 4, "cpus": 4, "memory_used_bytes": 3 * 2**30,
                "memory_used_percent": 37.5, "load1": 1.5, "net_rx_bytes_per_s": 2048.0,
                "net_tx_bytes_per_s": 1024.0}}
    doc["intervals"] = with_server(doc["intervals"], samples)
    n = len(samples)
    doc["server"] = {
        "process": {"pid": 4321, "name": "gunicorn", "cpu_count": 2, "samples": n, "failed": 0,
                    "failures": {}, "cpu_percent_max": 100.0,
                    "cpu_percent_mean": 100.0 * (n + 1) / (2 * n),
                    "rss_bytes_max": (40 + 10 * n) * 2**20, "threads_max": 4, "fds_max": 12,
                    "connections_max": 5, "processes_max": 2},
        "host": {"url": "http://10.0.0.5:9100/metrics", "cpus": 4, "samples": n - 1, "failed": 1,
                 "failures": {"cannot read the metrics URL: timed out": 1},
                 "cpu_percent_max": 25.0, "cpu_percent_mean": 20.0,
                 "memory_used_bytes_max": 3 * 2**30, "memory_used_percent_max": 37.5,
                 "load1_max": 1.5, "net_rx_bytes_per_s_max": 2048.0,
                 "net_tx_bytes_per_s_max": 1024.0},
    }
    return doc
