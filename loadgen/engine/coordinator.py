"""Spawn the worker processes, start them together, merge what they send, stop them.

No statistics here (that is ``aggregate``) and no gevent: the coordinator
never monkey-patches.  It survives a dead or silent worker: the others'
data is kept and the run is marked failed, naming the worker and why.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import orjson

from loadgen.config.model import RunConfig, WorkerPlan, plan_workers
from loadgen.engine.process import process_main
from loadgen.stats.aggregate import Aggregate, WorkerState

READY_TIMEOUT_S = 30.0
# A worker reports every interval; one silent for longer than this is stuck and is killed.
# bench/intervals.py stretches the interval (LOADGEN_INTERVAL_S) and the limit with it.
SILENCE_LIMIT_S = 5.0 + max(0.0, float(os.environ.get("LOADGEN_INTERVAL_S", "1")) - 1.0)
START_DELAY_S = 0.05


@dataclass
class Outcome:
    status: str                   # complete | interrupted | failed
    aggregate: Aggregate
    problems: list[str]
    nodes: list[dict[str, Any]] | None = None   # a cluster run: what each node did


def run_status(agg: Aggregate, problems: list[str], interrupts: int, hard_stop: bool) -> str:
    """complete, interrupted or failed; a hard stop is named among the problems."""
    if problems or any(w.lost for w in agg.workers):
        return "failed"
    if not interrupts:
        return "complete"
    if hard_stop:
        problems.append("stopped at once by a second Ctrl-C: in-flight requests "
                        "and each worker's last partial second are not counted")
    return "interrupted"


class _Handle:
    def __init__(self, index: int, process: Any, conn: Connection) -> None:
        self.index = index
        self.process = process
        self.conn = conn
        self.last_heard = time.monotonic()
        self.open = True


class Coordinator:
    """Runs worker processes on this machine.

    Locally it plans the whole run itself.  On a cluster node (``loadgen.engine.cluster.node``)
    it is handed that node's share of a plan made centrally (``plans``, with
    global worker indices), asks ``start_at`` for the monotonic start time once
    its workers are ready (the node converts a wall-clock start shared by all
    nodes), and passes every raw worker message, plus a ``lost`` event per
    lost worker, to ``on_message`` so the central coordinator can merge them.
    """

    def __init__(self, config: RunConfig, headers: tuple[tuple[str, str], ...] = (),
                 on_interval: Callable[[Aggregate], None] | None = None, *,
                 plans: list[WorkerPlan] | None = None,
                 start_at: Callable[[], float | None] | None = None,
                 on_message: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.config = config
        self.extra_headers = headers
        self.on_interval = on_interval
        self.plans = plans
        self.start_at = start_at
        self.on_message = on_message
        self.interrupts = 0
        self.hard_stop = False
        self.problems: list[str] = []
        self.handles: list[_Handle] = []

    def stop(self) -> None:
        """Stop as a first Ctrl-C does: in-flight requests finish and are counted."""
        self.interrupts = max(self.interrupts, 1)

    def kill_workers(self) -> None:
        """Kill every worker process at once (the node's parent is gone: nobody will listen)."""
        for h in list(self.handles):
            if h.process.is_alive():
                h.process.kill()

    def run(self) -> Outcome:
        plans = self.plans
        if plans is None:
            plans = plan_workers(self.config)
            if self.extra_headers:
                plans = [_with_headers(p, self.extra_headers) for p in plans]
        names = [e.name for e in self.config.endpoints]
        agg = Aggregate(names, [WorkerState(p.index) for p in plans],
                        [e.expect_status for e in self.config.endpoints])
        ctx = mp.get_context("spawn")
        handles = self.handles
        for plan in plans:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=process_main, args=(child, plan),
                               name=f"loadgen-worker-{plan.index}", daemon=True)
            proc.start()
            child.close()
            handles.append(_Handle(plan.index, proc, parent))
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            if self._await_ready(handles, agg):
                at = self.start_at() if self.start_at else time.monotonic() + START_DELAY_S
                if at is None:
                    self.problems.append("the start was called off")
                else:
                    agg.wall_start = time.time() + (at - time.monotonic())
                    for h in handles:
                        self._send(h, {"type": "start", "at": at})
                    self._collect(handles, agg)
        finally:
            signal.signal(signal.SIGINT, previous)
            for h in handles:
                if h.process.is_alive():
                    h.process.kill()
                h.process.join(2)
        agg.finish()
        status = run_status(agg, self.problems, self.interrupts, self.hard_stop)
        return Outcome(status, agg, self.problems)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.interrupts += 1

    def _send(self, h: _Handle, message: dict[str, Any]) -> None:
        try:
            h.conn.send_bytes(orjson.dumps(message))
        except OSError:
            pass  # its death is noticed by the collect loop

    def _await_ready(self, handles: list[_Handle], agg: Aggregate) -> bool:
        waiting = {h.conn: h for h in handles}
        deadline = time.monotonic() + READY_TIMEOUT_S + self.config.timeout_s
        while waiting:
            if self.interrupts:
                return False
            if time.monotonic() > deadline:
                self.problems.append("workers did not become ready in time")
                return False
            for conn in wait(list(waiting), timeout=0.2):
                h = waiting.pop(conn)  # type: ignore[call-overload]  # wait() returns its input
                message = self._receive(h, agg)
                if message is not None and message.get("type") == "error":
                    self.problems.append(f"worker {h.index} failed: {message['message']}")
                    self._lose(h, agg, reported=True)
                    return False
                if message is None or message.get("type") != "ready":
                    self._lose(h, agg)
                    return False
        return True

    def _collect(self, handles: list[_Handle], agg: Aggregate) -> None:
        stop_sent = False
        while any(h.open for h in handles):
            if self.interrupts and not stop_sent:
                for h in handles:
                    self._send(h, {"type": "stop"})
                stop_sent = True
            if self.interrupts > 1:
                self.hard_stop = True   # second Ctrl-C: keep what was merged, wait for nothing
                return
            live = {h.conn: h for h in handles if h.open}
            for conn in wait(list(live), timeout=0.25):
                h = live[conn]  # type: ignore[index]  # wait() returns its input
                message = self._receive(h, agg)
                if message is not None and self.on_message:
                    self.on_message(message)
                if message is None:
                    self._lose(h, agg)
                elif message["type"] in ("interval", "final"):
                    seconds = len(agg.intervals)
                    agg.add(message)
                    if message["type"] == "final":
                        h.open = False
                    if self.on_interval and len(agg.intervals) > seconds:
                        self.on_interval(agg)   # once per merged second, not per message
                elif message["type"] == "error":
                    self.problems.append(f"worker {h.index} failed: {message['message']}")
                    self._lose(h, agg, reported=True)
            now = time.monotonic()
            for h in handles:
                if h.open and now - h.last_heard > SILENCE_LIMIT_S:
                    h.process.kill()
                    self._lose(h, agg, why=f"silent for more than {SILENCE_LIMIT_S:g}s; killed")

    def _receive(self, h: _Handle, agg: Aggregate) -> dict[str, Any] | None:
        try:
            data = h.conn.recv_bytes()
        except (EOFError, OSError):
            return None
        h.last_heard = time.monotonic()
        return orjson.loads(data)

    def _lose(self, h: _Handle, agg: Aggregate, why: str = "", reported: bool = False) -> None:
        h.open = False
        if not why:
            h.process.join(1)
            code = h.process.exitcode
            if code is not None and code < 0:
                why = f"killed by {signal.Signals(-code).name}"
            else:
                why = f"exited with status {code}" if code is not None else "stopped answering"
        agg.lose(h.index, why)
        if not reported:
            self.problems.append(f"worker {h.index} (pid {h.process.pid}) lost: {why}")
        if self.on_message:   # reported or not, the last problem is this worker's
            self.on_message({"type": "lost", "worker": h.index, "why": why,
                             "problem": self.problems[-1]})


def _with_headers(plan: Any, headers: tuple[tuple[str, str], ...]) -> Any:
    from dataclasses import replace

    return replace(plan, headers=(*plan.headers, *headers))
