"""Input read from the system before any load is sent: a body file, a password.

A ``--data-file /dev/zero`` used to read forever.  Each function here raises
ConfigError with the one line the CLI prints (exit 2).  The password prompt
lives here too: it is input, and it must never echo.  (Where outputs go is
checked by ``output.paths``.)
"""

from __future__ import annotations

import os
import stat
import sys

from loadgen.config.model import ConfigError

MAX_BODY_BYTES = 64 << 20   # a request body is held in memory by every worker


def read_body_file(path: str, option: str) -> bytes:
    """A request body from a regular file of at most MAX_BODY_BYTES."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):   # /dev/zero, a FIFO or stdin would never end
            raise ConfigError(f"{option}: cannot read {path}: not a regular file")
        if info.st_size > MAX_BODY_BYTES:
            raise ConfigError(f"{option}: {path} is larger than {MAX_BODY_BYTES >> 20} MiB")
        with open(path, "rb") as f:
            body = f.read(MAX_BODY_BYTES + 1)   # st_size can lie (/proc files say 0)
    except (OSError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{option}: cannot read {path!r}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    if len(body) > MAX_BODY_BYTES:
        raise ConfigError(f"{option}: {path} is larger than {MAX_BODY_BYTES >> 20} MiB")
    return body


def ask_password() -> str:
    """``--ask-password``: prompt on the terminal without echo, or read one line from stdin.

    The prompt goes to stderr so that stdout stays the report.  Piped input
    (``printf '%s\\n' "$PW" | loadgen run --auth --ask-password``) is read
    without a prompt.
    """
    import click

    if sys.stdin is not None and sys.stdin.isatty():
        # Ctrl-C or end of input at the prompt is click's Abort: "aborted", exit 130
        password = click.prompt("Password", hide_input=True, err=True, default="",
                                show_default=False)
    else:
        line = sys.stdin.readline() if sys.stdin is not None else ""
        if not line:
            raise ConfigError("--ask-password: stdin ended before a password line")
        password = line.rstrip("\r\n")
    if not password:
        raise ConfigError("--ask-password: the password is empty")
    return password
