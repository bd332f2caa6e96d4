"""The central side of a run on a Dask cluster (``loadgen run --cluster ADDRESS``).

One box may not generate enough load; Dask distributed already connects
machines (``dask scheduler`` on one, ``dask worker tcp://SCHEDULER:8786`` on
the others), so loadgen uses it rather than a protocol of its own:

- ``Cluster.connect`` joins the scheduler as a client and asks every Dask
  worker (a *node*) for its host, CPU count and loadgen version.  Anything
  wrong here is bad input: one line, exit 2, nothing sent.
- The plan is made once, for all nodes, after ``connect`` and the login:
  ``plan_workers`` (called by ``commands.run.execute``) with as many workers
  as all nodes run together, so requests, connections and the rate are
  divided exactly (remainders included) and every worker keeps its
  global index, stride and ticket range.  Each node gets its contiguous share.
- ``Cluster.run`` submits one ``loadgen.engine.cluster.node.node_task`` per node, pinned to
  that Dask worker.  Once every node's workers are connected and ready it
  publishes a wall-clock start a little ahead (a ``distributed.Variable``),
  which each node converts to its own monotonic clock, so per-second
  intervals line up across machines (as far as their clocks agree: NTP).
- Every raw worker message comes back through a ``distributed.Queue`` and
  goes into one ``Aggregate`` over all workers of all nodes, exactly as in a
  local run (the n-th message of every worker covers the same second).
- With ``--auth``, each renewed login (``engine.renewal``) goes to the nodes
  through a ``distributed.Variable`` their tasks poll (``node._relay_headers``).
- A node whose task fails, or that is silent for more than
  ``SILENCE_LIMIT_S``, is lost: its workers are marked lost naming the node,
  the other nodes' results are kept, and the run is failed (exit 3).

Imported only for ``--cluster``: local runs never import dask.
"""

from __future__ import annotations

import logging
import pickle
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from loadgen import __version__
from loadgen.config.model import RunConfig, WorkerPlan
from loadgen.engine.cluster.node import NodeJob, node_task, probe
from loadgen.engine.collector import (
    SILENCE_LIMIT_S,
    Collector,
    Headers,
    HeaderSource,
    Outcome,
)
from loadgen.engine.preflight import PreflightError
from loadgen.stats.aggregate import Aggregate

_log = logging.getLogger(__name__)

START_LEAD_S = 0.5     # from publishing the start to the start: a Variable round trip is ~ms
ENDED_GRACE_S = 1.0    # a node's task ended: wait this long for its last queued messages
POLL_S = 0.25
QUEUE_SECONDS = 60     # the message queue holds about this many seconds of every worker's reports


@dataclass
class Node:
    """One Dask worker taking part in the run, and what the coordinator knows of it."""

    address: str
    host: str
    cpus: int
    workers: list[int] = field(default_factory=list)   # global worker indices
    future: Any = None
    last_heard: float = 0.0
    ready: bool = False
    done: bool = False
    lost: str = ""
    start_offset_ms: float | None = None

    @property
    def active(self) -> bool:
        return not self.done and not self.lost


def split_workers(wanted: list[int], cap: int) -> list[int]:
    """Give each node up to its ``wanted`` processes, round-robin, ``cap`` in all.

    More processes than connections (or requests) would leave some idle, so the
    total is capped like a local run's ``--workers``; the round-robin keeps
    nodes as even as their sizes allow.
    """
    counts, total = [0] * len(wanted), min(cap, sum(wanted))
    while sum(counts) < total:
        for i, limit in enumerate(wanted):
            if counts[i] < limit and sum(counts) < total:
                counts[i] += 1
    return counts


class Cluster(Collector):
    """A connected Dask client, the nodes that take part, and the run's global config.

    The run's steps are ``Collector``'s, as for a local run; this class is only
    the transport (Dask tasks, a queue, a variable and an event).
    """

    def __init__(self, config: RunConfig, client: Any, nodes: list[Node]) -> None:
        super().__init__(config)
        self.client = client
        self.nodes = nodes
        self.messages: Any = None      # the run's Dask Queue, Variable and Event (``_launch``)
        self.start: Any = None
        self.stop_event: Any = None
        self.headers: Any = None
        self._headers_sent = 0
        self._present: set[str] = set()
        self._next_check = 0.0

    @classmethod
    def connect(cls, config: RunConfig) -> Cluster:
        """Join the scheduler and plan the nodes; PreflightError (exit 2) if that fails."""
        assert config.cluster
        address = config.cluster
        from distributed import Client

        _quiet_dask_logs()
        try:
            client = Client(address, timeout=config.timeout_s, set_as_default=False)
        except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, ValueError...: all exit 2
            raise PreflightError(f"cannot connect to the Dask scheduler at {address}: "
                                 f"{_reason(exc)}", 2) from None
        try:
            found = client.run(probe, on_error="return")
            nodes = cls._nodes(found, address)
        except BaseException:
            client.close()
            raise
        per_node = [config.workers_per_node or max(1, n.cpus // _sharing(n, nodes))
                    for n in nodes]
        counts = split_workers(per_node, _most_workers(config))
        nodes = [n for n, c in zip(nodes, counts) if c]
        counts = [c for c in counts if c]
        config = replace(config, workers=sum(counts))
        first = 0
        for node, count in zip(nodes, counts):
            node.workers = list(range(first, first + count))
            first += count
        return cls(config, client, nodes)

    @staticmethod
    def _nodes(found: dict[str, Any], address: str) -> list[Node]:
        if not found:
            raise PreflightError(f"the Dask scheduler at {address} has no workers: start "
                                 f"`dask worker {address}` on the load machines", 2)
        nodes = []
        for worker, answer in sorted(found.items()):
            if isinstance(answer, BaseException):
                raise PreflightError(f"Dask worker {worker} cannot run loadgen "
                                     f"(install loadgen[cluster] there): {_reason(answer)}", 2)
            host, cpus, version = answer
            if version != __version__:
                raise PreflightError(f"Dask worker {worker} has loadgen {version}, this is "
                                     f"{__version__}: install the same version everywhere", 2)
            nodes.append(Node(worker, host, cpus))
        return nodes

    def close(self) -> None:
        # closing after the scheduler died: nothing left to release
        _quietly(lambda: self.client.close(timeout=5), "closing the Dask client")

    # -- the run ----------------------------------------------------------------------------

    def run(self, plans: list[WorkerPlan],
            on_interval: Callable[[Aggregate], None] | None = None,
            auth: HeaderSource | None = None) -> Outcome:
        """Run ``plans`` (made once for ``self.config``, with every node's workers) on the
        nodes and merge what they send, as ``Coordinator.run`` does."""
        self.on_interval = on_interval
        self.auth = auth
        return self.collect(plans)

    # -- the transport: a Dask task per node, a queue up, a variable and an event down --------

    def _launch(self, plans: list[WorkerPlan]) -> None:
        from distributed import Event, Queue, Variable

        config, client = self.config, self.client
        run_id = uuid.uuid4().hex
        names = {"queue": f"loadgen-{run_id}-messages", "start": f"loadgen-{run_id}-start",
                 "stop": f"loadgen-{run_id}-stop", "headers": f"loadgen-{run_id}-headers"}
        # bounded: if this process is killed, nodes find the queue full and stop (loadgen.engine.cluster.node)
        self.messages = Queue(names["queue"], client=client,
                              maxsize=QUEUE_SECONDS * max(len(plans), 10))
        self.start = Variable(names["start"], client=client)
        self.stop_event = Event(names["stop"], client=client)
        self.headers = Variable(names["headers"], client=client)   # renewed --auth logins
        self._headers_sent = 0
        self._present = {n.address for n in self.nodes}
        self._next_check = 0.0
        for i, node in enumerate(self.nodes):
            job = NodeJob(config, tuple(plans[w] for w in node.workers))
            node.future = client.submit(
                node_task, node.address, pickle.dumps(job), names, key=f"loadgen-{run_id}-{i}",
                workers=[node.address], allow_other_workers=False, retries=0, pure=False)

    def _all_ready(self) -> bool:
        return all(node.ready for node in self.nodes)

    def _not_ready_problem(self) -> str:
        slow = [n.address for n in self.nodes if not n.ready]
        return f"nodes did not become ready in time: {', '.join(slow)}"

    def _poll_ready(self, agg: Aggregate) -> bool:
        for address, message in self._receive():
            node = self._node(address)
            if message["type"] == "ready":
                node.ready = True
                continue
            self._handle(node, message, agg)
            if node.done:   # ended before the start: its problems say why
                return False
        for node in self.nodes:
            if node.future.status == "error":
                self.problems.append(f"node {node.address} failed: "
                                     f"{_reason(node.future.exception())}")
                return False
        return True

    def _start(self, agg: Aggregate) -> bool:
        start_wall = time.time() + START_LEAD_S
        agg.wall_start = start_wall
        self.start.set({"start": start_wall})
        for node in self.nodes:   # silence is counted from the start on
            node.last_heard = time.monotonic() + START_LEAD_S
        return True

    def _call_off(self) -> None:
        self.start.set({"abort": "the run was called off"})

    def _active(self) -> bool:
        return any(node.active for node in self.nodes)

    def _send_stop(self) -> None:
        self.stop_event.set()

    def _send_headers(self, headers: Headers) -> None:
        """A renewed login for every node: each node's task polls the Variable."""
        self._headers_sent += 1
        self.headers.set({"seq": self._headers_sent, "headers": [list(h) for h in headers]})

    def _poll(self, agg: Aggregate) -> None:
        for address, message in self._receive():
            node = self._node(address)
            if node.lost:
                continue   # a lost node's late words would count some of its work twice
            node.last_heard = max(node.last_heard, time.monotonic())
            self._handle(node, message, agg)

    def _check_lost(self, agg: Aggregate, now: float) -> None:
        if now >= self._next_check:   # a dead machine's Dask worker leaves at once: no 5 s wait
            self._present, self._next_check = set(self.client.nthreads()), now + 1.0
        for node in self.nodes:
            if not node.active:
                continue
            silent = now - node.last_heard
            if node.address not in self._present and silent > ENDED_GRACE_S:
                self._lose(node, agg, "its Dask worker left the cluster")
            elif node.future.done() and silent > ENDED_GRACE_S:
                error = node.future.exception() if node.future.status == "error" else None
                why = _reason(error) if error else "its task ended without a final report"
                self._lose(node, agg, why)
            elif silent > SILENCE_LIMIT_S:
                self._lose(node, agg, f"no message for more than {SILENCE_LIMIT_S:g}s")

    def _transport_failed(self, agg: Aggregate, exc: OSError) -> None:
        """The scheduler went away: keep what arrived."""
        for node in self.nodes:
            if node.active:
                self._lose(node, agg, f"lost the Dask scheduler ({type(exc).__name__})")

    def _release(self, started: bool) -> None:
        """Leave the scheduler as it was: nodes still running stop, the run's names go."""
        def release() -> None:
            if any(node.active for node in self.nodes):
                self.stop_event.set()   # nobody will merge their results any more
            if started:      # (an aborted run's late nodes still need to read the abort)
                self.start.delete()
            if self._headers_sent:
                self.headers.delete()   # the token leaves the scheduler with the run
            self.messages.close()

        _quietly(release, "releasing the run's names on the scheduler")   # it may be gone

    def _handle(self, node: Node, message: dict[str, Any], agg: Aggregate) -> None:
        kind = message["type"]
        if kind in ("interval", "final"):
            self._merge(agg, message)
        elif kind == "lost":
            agg.lose(message["worker"], message["why"])
            self.problems.append(f"node {node.address}: {message['problem']}")
        elif kind == "done":
            node.done = True
            node.start_offset_ms = message.get("start_offset_ms")
            self.problems += [f"node {node.address}: {p}" for p in message["problems"]]
            if message["status"] == "interrupted" and not self.interrupts:
                self.problems.append(f"node {node.address} was interrupted on its machine")

    def _receive(self) -> list[tuple[str, dict[str, Any]]]:
        """Whatever the nodes sent: wait up to POLL_S for one, then take all that are queued."""
        try:
            items = [self.messages.get(timeout=POLL_S)]
        except TimeoutError:
            return []
        items += self.messages.get(batch=True)
        return [(address, orjson.loads(line)) for address, line in items]

    def _node(self, address: str) -> Node:
        return next(n for n in self.nodes if n.address == address)

    def _lose(self, node: Node, agg: Aggregate, why: str) -> None:
        node.lost = why
        for index in node.workers:
            state = agg.workers[index]
            if not state.done and not state.lost:
                agg.lose(index, f"node {node.address} lost: {why}")
        self.problems.append(f"node {node.address} lost: {why}")
        # never rerun its share elsewhere or later
        _quietly(node.future.cancel, f"cancelling node {node.address}'s task")

    def _describe(self, agg: Aggregate) -> list[dict[str, Any]] | None:
        return [{"address": n.address, "host": n.host, "workers": len(n.workers),
                 "worker_indices": n.workers,
                 "requests": sum(agg.workers[i].requests for i in n.workers),
                 "lost": n.lost or None, "start_offset_ms": n.start_offset_ms}
                for n in self.nodes]


def _quietly(action: Callable[[], object], what: str) -> None:
    """Tear-down against a scheduler that may be gone: a failure is logged (at debug
    level) and never raised, since it runs in ``finally`` blocks and must not cost a
    run its results; Dask raises many types here (comm closed, timeouts, runtime)."""
    try:
        action()
    except Exception:  # noqa: BLE001 - see the docstring
        _log.debug("%s failed", what, exc_info=True)


def _quiet_dask_logs() -> None:
    """loadgen says what went wrong in one line of its own; Dask's tracebacks would bury it."""
    names = [n for n in list(logging.root.manager.loggerDict) if n.split(".")[0] == "distributed"]
    for name in ["distributed", *names]:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _sharing(node: Node, nodes: list[Node]) -> int:
    """How many Dask workers share this node's host (and so its CPUs)."""
    return sum(1 for n in nodes if n.host == node.host)


def _reason(exc: BaseException | None) -> str:
    text = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _most_workers(config: RunConfig) -> int:
    """The most worker processes the run can use, as ``commands.inputs`` caps a local run:
    no more than its users (or requests); with journeys, no more than its iterations, and in
    the open model few enough that each worker's pool holds a user of every kind."""
    journeys = config.journeys
    if journeys is None:
        return min(config.concurrency, config.requests or config.concurrency)
    cap = (config.max_connections // len(journeys.kinds) if config.schedule is not None
           else config.concurrency)
    return max(1, min(cap, journeys.iterations or cap))
