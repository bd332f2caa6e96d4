"""A cluster node: run this node's share of a centrally made plan, report as JSON lines.

Two halves, both on the machine of one Dask worker:

- ``node_task`` is the Dask task.  It runs in a thread of the Dask worker,
  which cannot host loadgen's workers itself (those monkey-patch gevent; the
  Dask worker runs tornado), so it starts ``python -m loadgen.engine.cluster.node`` and
  relays: the node's stdout lines go to the central coordinator through a
  ``distributed.Queue``; the start time (a ``distributed.Variable``) and a
  stop request (a ``distributed.Event``) go to the node's stdin.
- ``main`` is that subprocess.  It runs loadgen's own ``Coordinator`` on the
  ``WorkerPlan``s it is given (global indices, stride and ticket ranges,
  so counts and the open-model stream stay exact across nodes), starting
  them at a wall-clock time shared by every node, and writes every raw worker
  message as one JSON line.  It exits as soon as its stdin closes: the Dask
  task (or the whole Dask worker) is gone and nobody would read its results.

The protocol is internal and trusted (both ends are loadgen): stdin carries an
8-byte length and a pickled ``NodeJob`` (which may hold the bearer token, so
it is never logged), then JSON control lines ``{"start": WALL}``,
``{"abort": WHY}``, ``{"type": "stop"}`` or ``{"type": "headers", "headers":
[...]}`` (a renewed ``--auth`` login: the token, so never logged either).
stdout carries ``ready``, the workers' ``interval``/``final``/``error``
messages, ``lost`` per lost worker and, last, ``done`` with the node's status
and problems.
"""

from __future__ import annotations

import os
import pickle
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import IO, Any

import orjson

from loadgen import __version__
from loadgen.config.model import RunConfig, WorkerPlan
from loadgen.engine.collector import HeaderInbox
from loadgen.engine.coordinator import Coordinator

# How long a ready node waits for the central coordinator's start (or abort) before giving up.
START_WAIT_S = 120.0
# How often a node's task looks for a renewed --auth login (a distributed.Variable).
HEADERS_POLL_S = 0.25
# The central coordinator drains the bounded message queue several times a second: when it
# stays full this long, nobody is reading (the coordinator was killed) and the node stops.
PUT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class NodeJob:
    """What one node runs: the run's config and this node's plans (with auth headers)."""

    config: RunConfig
    plans: tuple[WorkerPlan, ...]


def probe() -> tuple[str, int, str]:
    """Run on every Dask worker before a run: its host, its CPU count, its loadgen version."""
    import socket

    return socket.gethostname(), os.cpu_count() or 1, __version__


# -- the Dask task ------------------------------------------------------------------------


def node_task(address: str, job: bytes, names: dict[str, str]) -> int:
    """Run one node's share in a ``loadgen.engine.cluster.node`` subprocess and relay its messages.

    ``names`` are the run's Dask ``queue`` (messages up), ``start`` (the
    start time down) and ``stop`` (a graceful stop down).  Raises if the node
    process ends without its ``done`` line, so the central coordinator can say why.
    """
    from distributed import Event, Queue, Variable

    messages = Queue(names["queue"])
    start, stop = Variable(names["start"]), Event(names["stop"])
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)}
    proc = subprocess.Popen([sys.executable, "-m", "loadgen.engine.cluster.node"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    tail: deque[str] = deque(maxlen=5)
    threading.Thread(target=_tee, args=(proc.stderr, tail), daemon=True).start()
    lock, finished, done = threading.Lock(), threading.Event(), False
    try:
        _write(proc.stdin, lock, len(job).to_bytes(8, "big") + job)
        threading.Thread(target=_relay_stop, args=(stop, proc.stdin, lock, finished),
                         daemon=True).start()
        if "headers" in names:
            threading.Thread(target=_relay_headers,
                             args=(Variable(names["headers"]), proc.stdin, lock, finished),
                             daemon=True).start()
        for line in proc.stdout:
            try:
                messages.put([address, line.decode()], timeout=PUT_TIMEOUT_S)
            except TimeoutError:
                raise RuntimeError(f"nobody read this node's messages for {PUT_TIMEOUT_S:g}s: "
                                   "the coordinator is gone") from None
            kind = orjson.loads(line).get("type")
            if kind == "ready":
                try:
                    command = start.get(timeout=START_WAIT_S)
                except TimeoutError:
                    command = {"abort": "no start time came from the coordinator"}
                _write(proc.stdin, lock, orjson.dumps(command) + b"\n")
            elif kind == "done":
                done = True
        code = proc.wait()
    finally:
        finished.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with lock:
            proc.stdin.close()
        messages.close()   # the queue goes once neither end holds it
    if not done:
        why = f"the loadgen node process exited with status {code}"
        last = [line for line in tail if line.strip()]
        raise RuntimeError(why + (f": {last[-1].strip()}" if last else ""))
    return code


def _write(stream: IO[bytes], lock: threading.Lock, data: bytes) -> None:
    with lock:
        try:
            stream.write(data)
            stream.flush()
        except (BrokenPipeError, ValueError):
            pass  # the node is gone: its end of the story comes from its exit status


def _relay_stop(stop: Any, stdin: IO[bytes], lock: threading.Lock,
                finished: threading.Event) -> None:
    """Pass the central coordinator's stop (its Ctrl-C) to the node, once."""
    while not finished.is_set():
        try:
            if stop.wait(timeout=1.0):
                _write(stdin, lock, b'{"type":"stop"}\n')
                return
        except Exception:  # noqa: BLE001 - the Dask worker is shutting down: stdin closes
            return


def _relay_headers(headers: Any, stdin: IO[bytes], lock: threading.Lock,
                   finished: threading.Event) -> None:
    """Pass each renewed ``--auth`` login (``{"seq", "headers"}`` in a Variable the central
    coordinator sets) to the node, once per new ``seq``; polled: a renewal leads the
    token's expiry by far more than ``HEADERS_POLL_S`` (``engine.renewal``)."""
    seen = 0
    while not finished.is_set():
        try:
            value = headers.get(timeout=HEADERS_POLL_S)
        except TimeoutError:
            continue   # no renewal yet
        except Exception:  # noqa: BLE001 - the Dask worker is shutting down: stdin closes
            return
        if isinstance(value, dict) and value.get("seq") != seen:
            seen = value["seq"]
            _write(stdin, lock, orjson.dumps({"type": "headers",
                                              "headers": value["headers"]}) + b"\n")
        finished.wait(HEADERS_POLL_S)


def _tee(stderr: IO[bytes], tail: deque[str]) -> None:
    """Show the node's stderr in the Dask worker's log; keep the last lines to explain a death."""
    for raw in stderr:
        line = raw.decode(errors="replace")
        tail.append(line)
        sys.stderr.write(line)


# -- the node process ---------------------------------------------------------------------


class _Node:
    def __init__(self, job: NodeJob, out: IO[bytes]) -> None:
        self.job = job
        self.out = out
        self.commands: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.start_wall = 0.0
        self.first_reports: dict[int, float] = {}   # worker -> wall time of its first interval
        self.sent_problems: list[str] = []
        self.finished = False
        self.inbox = HeaderInbox()   # renewed logins, handed to the workers once started
        self.coordinator = Coordinator(job.config, list(job.plans), start_at=self.start_at,
                                       on_message=self.forward, auth=self.inbox)

    def emit(self, message: dict[str, Any]) -> None:
        self.out.write(orjson.dumps(message) + b"\n")
        self.out.flush()

    def start_at(self) -> float | None:
        """Tell the Dask task we are ready; turn the shared wall-clock start into monotonic."""
        self.emit({"type": "ready"})
        command = self.commands.get()
        if "start" not in command:
            return None
        self.start_wall = command["start"]
        return time.monotonic() + (self.start_wall - time.time())

    def forward(self, message: dict[str, Any]) -> None:
        if message["type"] == "interval" and message["worker"] not in self.first_reports:
            self.first_reports[message["worker"]] = time.time()
        if message["type"] == "lost":
            self.sent_problems.append(message["problem"])
        self.emit(message)

    def listen(self, stdin: IO[bytes]) -> None:
        """Control lines from the Dask task; at EOF it is gone, so stop at once."""
        for line in stdin:
            command = orjson.loads(line)
            if command.get("type") == "stop":
                self.coordinator.stop()
            elif command.get("type") == "headers":
                self.inbox.put(command["headers"])
            else:
                self.commands.put(command)
        if not self.finished:
            self.coordinator.kill_workers()
            os._exit(1)

    def run(self) -> None:
        outcome = self.coordinator.run()
        # The first interval report leaves each worker one second after its own start: how
        # late it arrived measures this node's real start against the shared start time.
        offsets = [(t - self.start_wall - 1.0) * 1000 for t in self.first_reports.values()]
        self.finished = True
        self.emit({"type": "done", "status": outcome.status,
                   "problems": [p for p in outcome.problems if p not in self.sent_problems],
                   "start_offset_ms": round(max(offsets), 3) if offsets else None})


def main() -> None:
    stdin = sys.stdin.buffer
    size = int.from_bytes(stdin.read(8), "big")
    job = pickle.loads(stdin.read(size))
    # The protocol owns the real stdout; anything else printed (by us or a worker) goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    node = _Node(job, out)
    threading.Thread(target=node.listen, args=(stdin,), daemon=True).start()
    node.run()
    os._exit(0)   # not a normal exit: the listening thread holds stdin's lock until EOF


if __name__ == "__main__":
    main()
