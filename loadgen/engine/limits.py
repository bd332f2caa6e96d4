"""Open-file limits: raised as far as the system allows, and checked before any load.

Every connection is a file descriptor, and the default soft limit (often
1024) is far below what ``--concurrency 10000`` needs.  The coordinator and
each worker raise their soft RLIMIT_NOFILE to the hard limit at start; if the
connections of one worker process still do not fit, the run is refused before
anything is sent (exit 2) instead of failing with EMFILE halfway through.

Standard library only: worker processes call this before monkey-patching.
"""

from __future__ import annotations

import resource

#: Descriptors a worker uses besides its connections: the interpreter, its pipe,
#: gevent's loop, DNS and TLS, with room to spare.
FD_OVERHEAD = 64


def raise_open_files() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    candidates = [hard]
    if hard == resource.RLIM_INFINITY:   # the kernel caps descriptors at fs.nr_open anyway
        candidates = [_nr_open(), 1 << 20, 65536]
    for target in candidates:
        if target <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            continue
    return soft


def _nr_open() -> int:
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1 << 20


def open_files_problem(connections: list[tuple[int, int]]) -> str | None:
    """Why the busiest worker's connections do not fit the open-file limit, or None.

    ``connections`` are each worker's (connections, most connections), as
    ``config.model.worker_connections`` splits them; the limit is raised first, so the
    answer is about the hard limit, which only an administrator (or ``ulimit -Hn``) can move.
    """
    if not connections:
        return None
    limit = raise_open_files()
    busiest = max(max(pair) for pair in connections)
    need = busiest + FD_OVERHEAD
    if need <= limit:
        return None
    return (f"too many connections for the open-file limit: a worker process would hold "
            f"{busiest:,} connections (about {need:,} files) but the limit is {limit:,} "
            f"(ulimit -n); use more --workers, fewer connections, or raise the hard limit")
