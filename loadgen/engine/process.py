"""Entry point of a worker process (started with the ``spawn`` method).

The coordinator imports this module to name the process target, so it must
not import gevent, sockets or urllib3 at module level: the coordinator never
monkey-patches.  The child patches first thing, before anything imports
urllib3 (its pool queue must be gevent's), then runs the gevent loop.
"""

from __future__ import annotations

import os
import signal
import sys
from multiprocessing.connection import Connection

from loadgen.config.model import WorkerPlan
from loadgen.engine.limits import raise_open_files


def process_main(conn: Connection, plan: WorkerPlan) -> None:
    # Ctrl-C reaches the whole process group; only the coordinator acts on it
    # (it tells workers to stop, so in-flight requests finish and get counted).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_open_files()   # inherited from the coordinator locally; a cluster node may differ
    if "urllib3" in sys.modules:  # pragma: no cover - a packaging mistake, not a user error
        raise RuntimeError("urllib3 was imported before gevent patched the worker")
    from loadgen.engine.patch import patch_all

    patch_all()
    from loadgen.engine.worker import run_worker

    try:
        run_worker(plan, conn.fileno())
    finally:
        sys.stdout.flush()
        os._exit(0)  # skip interpreter teardown: the coordinator already has every result
