"""Spawn the worker processes, start them together, merge what they send, stop them.

The run's steps (ready, start, collect, Ctrl-C, lost workers, status) are
``engine.collector``'s, shared with a cluster run.  No statistics here (that
is ``aggregate``) and no gevent: the coordinator never monkey-patches.  It survives a dead or silent worker: the others'
data is kept and the run is marked failed, naming the worker and why.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

import orjson

from loadgen.config.model import RunConfig, WorkerPlan
from loadgen.engine.collector import SILENCE_LIMIT_S, Collector, Headers, HeaderSource, Outcome
from loadgen.engine.process import process_main
from loadgen.stats.aggregate import Aggregate

START_DELAY_S = 0.05


class _Handle:
    def __init__(self, index: int, process: Any, conn: Connection) -> None:
        self.index = index
        self.process = process
        self.conn = conn
        self.last_heard = time.monotonic()
        self.open = True


class Coordinator(Collector):
    """Runs worker processes on this machine.

    It runs the ``plans`` it is given (``config.model.plan_workers``, made once
    per run) through ``Collector``'s steps; this class is only the transport:
    one spawned process and one pipe per worker.  On a cluster node
    (``loadgen.engine.cluster.node``) the plans are that node's share of a plan
    made centrally (global worker indices); it asks ``start_at`` for the
    monotonic start time once its workers are ready (the node converts a
    wall-clock start shared by all nodes), and passes every raw worker message,
    plus a ``lost`` event per lost worker, to ``on_message`` so the central
    coordinator can merge them.
    """

    def __init__(self, config: RunConfig, plans: list[WorkerPlan],
                 on_interval: Callable[[Aggregate], None] | None = None, *,
                 start_at: Callable[[], float | None] | None = None,
                 on_message: Callable[[dict[str, Any]], None] | None = None,
                 auth: HeaderSource | None = None) -> None:
        super().__init__(config, on_interval, auth)
        self.plans = plans
        self.start_at = start_at
        self.on_message = on_message
        self.handles: list[_Handle] = []
        self._waiting: dict[Connection, _Handle] = {}

    def run(self) -> Outcome:
        """The whole run (``Collector.collect``): it returns once every worker is done or lost."""
        return self.collect(self.plans)

    def kill_workers(self) -> None:
        """Kill every worker process at once (the node's parent is gone: nobody will listen)."""
        for h in list(self.handles):
            if h.process.is_alive():
                h.process.kill()

    # -- the transport: one process and one pipe per worker -----------------------------------

    def _launch(self, plans: list[WorkerPlan]) -> None:
        ctx = mp.get_context("spawn")
        for plan in plans:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=process_main, args=(child, plan),
                               name=f"loadgen-worker-{plan.index}", daemon=True)
            proc.start()
            child.close()
            self.handles.append(_Handle(plan.index, proc, parent))
        self._waiting = {h.conn: h for h in self.handles}

    def _all_ready(self) -> bool:
        return not self._waiting

    def _not_ready_problem(self) -> str:
        return "workers did not become ready in time"

    def _poll_ready(self, agg: Aggregate) -> bool:
        waiting = self._waiting
        for conn in wait(list(waiting), timeout=0.2):
            h = waiting.pop(conn)  # type: ignore[call-overload]  # wait() returns its input
            message = self._receive(h)
            if message is not None and message.get("type") == "error":
                self.problems.append(f"worker {h.index} failed: {message['message']}")
                self._lose(h, agg, reported=True)
                return False
            if message is None or message.get("type") != "ready":
                self._lose(h, agg)
                return False
        return True

    def _start(self, agg: Aggregate) -> bool:
        at = self.start_at() if self.start_at else time.monotonic() + START_DELAY_S
        if at is None:
            self.problems.append("the start was called off")
            return False
        agg.wall_start = time.time() + (at - time.monotonic())
        for h in self.handles:
            self._send(h, {"type": "start", "at": at})
        return True

    def _active(self) -> bool:
        return any(h.open for h in self.handles)

    def _send_headers(self, headers: Headers) -> None:
        for h in self.handles:
            if h.open:
                self._send(h, {"type": "headers", "headers": headers})

    def _send_stop(self) -> None:
        for h in self.handles:
            self._send(h, {"type": "stop"})

    def _poll(self, agg: Aggregate) -> None:
        live = {h.conn: h for h in self.handles if h.open}
        for conn in wait(list(live), timeout=0.25):
            h = live[conn]  # type: ignore[index]  # wait() returns its input
            message = self._receive(h)
            if message is not None and self.on_message:
                self.on_message(message)
            if message is None:
                self._lose(h, agg)
            elif message["type"] in ("interval", "final"):
                if message["type"] == "final":
                    h.open = False
                self._merge(agg, message)
            elif message["type"] == "error":
                self.problems.append(f"worker {h.index} failed: {message['message']}")
                self._lose(h, agg, reported=True)

    def _check_lost(self, agg: Aggregate, now: float) -> None:
        for h in self.handles:
            if h.open and now - h.last_heard > SILENCE_LIMIT_S:
                h.process.kill()
                self._lose(h, agg, why=f"silent for more than {SILENCE_LIMIT_S:g}s; killed")

    def _release(self, started: bool) -> None:
        for h in self.handles:
            if h.process.is_alive():
                h.process.kill()
            h.process.join(2)

    def _send(self, h: _Handle, message: dict[str, Any]) -> None:
        try:
            h.conn.send_bytes(orjson.dumps(message))
        except OSError:
            pass  # its death is noticed by the collect loop

    def _receive(self, h: _Handle) -> dict[str, Any] | None:
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

