"""loadgen's exit statuses and its one exception tree.

Scripts and CI branch on the exit status, so each error carries its own, and
only ``loadgen.cli`` turns an error into the one ``loadgen: ...`` line on
stderr and the exit.  Standard library only: every layer may raise these.
"""

from __future__ import annotations

OK = 0            # the run completed and every threshold held
THRESHOLD = 1     # a threshold (or, for capacity, the SLOs at the start rate) failed
INPUT = 2         # bad input: one line on stderr, nothing sent
BROKEN = 3        # the run itself broke; partial results are still saved
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)

BY_STATUS = {"complete": OK, "interrupted": INTERRUPTED, "failed": BROKEN}


class LoadgenError(Exception):
    """An error the user sees as one line on stderr, then exit ``status``.

    The message is that line, without the ``loadgen:`` prefix.  A subclass fixes
    the status; ``status=`` overrides it where one kind of error has two outcomes
    (a pre-flight problem is bad input, a failed login a broken run).
    """

    status: int = BROKEN

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class InputError(LoadgenError):
    """Bad input (options, files, a target that cannot be reached): exit 2, nothing sent."""

    status = INPUT


class BrokenRun(LoadgenError):
    """The run itself broke (a failed login, a lost worker, a save that failed): exit 3."""

    status = BROKEN


def one_line(message: str) -> str:
    """``message`` as one printable line: line breaks (\\n, \\r, \\x1e, \\u2028...),
    terminal escapes and bytes that were not UTF-8 in what the user typed are shown
    escaped, so an error is always exactly one line on stderr."""
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in message)


def error_line(message: str) -> str:
    """The line loadgen prints for an error or a problem: ``loadgen: <one line>``."""
    return f"loadgen: {one_line(message)}"
