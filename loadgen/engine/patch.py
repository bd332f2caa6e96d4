"""gevent's ``monkey.patch_all``, with its plugin lookups read once.

``patch_all`` announces about 25 events, and for each one gevent asks
``importlib.metadata`` for the plugins of that event's entry-point group.  Each
ask reads the metadata of every installed distribution, so in a full
environment (dask, matplotlib, jupyter, ...) patching cost 0.2 s of CPU: a
third of a worker process's start-up, paid by every worker of every run and by
the built-in target.  Reading all entry points once and selecting each group
from that one read gives gevent the same plugins.

Nothing here is imported at module level: the coordinator imports the worker's
entry point (``engine.process``) and must never load gevent.
"""

from __future__ import annotations

from typing import Any


def patch_all() -> None:
    """``gevent.monkey.patch_all()``; call it first thing in a process that runs gevent."""
    from importlib import metadata

    from gevent import monkey

    every = metadata.entry_points()
    lookup = metadata.entry_points

    def entry_points(**params: Any) -> Any:   # gevent always passes group=
        return every.select(**params)

    metadata.entry_points = entry_points
    try:
        monkey.patch_all()
    finally:
        metadata.entry_points = lookup
