"""Checks of user input that touch the system, made before any load is sent.

A results path in a folder that does not exist used to be found out after
the run (exit 3, the numbers lost); a ``--data-file /dev/zero`` read forever.
Each function here raises ConfigError with the one line the CLI prints
(exit 2).  The password prompt lives here too: it is input, and it must
never echo.
"""

from __future__ import annotations

import os
import stat
import sys

from loadgen.config.model import ConfigError

MAX_BODY_BYTES = 64 << 20   # a request body is held in memory by every worker


def check_output(path: str | None, option: str, stdout_ok: bool = True) -> None:
    """``path`` can take what loadgen will write there; None: not asked for.

    A regular file (or a new one) needs a writable folder: it is replaced
    atomically beside the real file, symlinks followed.  A FIFO or a device
    is written directly, so it only needs to be writable itself.  ``-`` is
    stdout where ``stdout_ok``.
    """
    from loadgen.output.files import STDOUT, replaceable

    if path is None:
        return
    if path == STDOUT:
        if stdout_ok:
            return
        raise ConfigError(f"{option}: '-' (stdout) is not supported here: name a file")
    if not path.strip():
        raise ConfigError(f"{option}: empty file name")
    try:
        info = os.stat(path)   # follows symlinks: what matters is what they point to
    except FileNotFoundError:
        info = None
    except (OSError, ValueError) as exc:   # ValueError: a NUL byte in the name
        raise ConfigError(f"{option}: cannot use {path!r}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{option}: {path} is a directory")
    if info is not None and stat.S_ISSOCK(info.st_mode):
        raise ConfigError(f"{option}: {path} is a socket, not a file")
    if info is not None and not replaceable(path):   # a FIFO, a device: written in place
        if not os.access(path, os.W_OK):
            raise ConfigError(f"{option}: cannot write {path}: no permission")
        return
    folder = os.path.dirname(os.path.realpath(path))
    if not os.path.isdir(folder):
        raise ConfigError(f"{option}: cannot write {path}: folder {folder} does not exist")
    # Results are replaced atomically (a temporary file in the same folder, then a rename),
    # so the folder must be writable even when the file itself exists.
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{option}: cannot write {path}: no permission to write in {folder}")


def check_outputs(save: str | None, image: str | None) -> None:
    """``--save`` and ``--output-image`` together: each usable, and not both on stdout."""
    from loadgen.output.files import is_stdout

    check_output(save, "--save")
    check_output(image, "--output-image", stdout_ok=False)
    if save and image and is_stdout(save) and is_stdout(image):
        raise ConfigError("--save and --output-image both go to stdout: "
                          "the JSON and the PNG cannot share it")


def check_csv_prefix(prefix: str | None, option: str = "--csv") -> None:
    """``--csv PREFIX``: both files it writes can be written, and each is (or will be) a
    regular file -- a CSV goes to a file a spreadsheet opens, never to a FIFO or device."""
    from loadgen.output.csvfiles import csv_paths
    from loadgen.output.files import replaceable

    if prefix is None:
        return
    if not prefix.strip():
        raise ConfigError(f"{option}: empty prefix")
    for path in csv_paths(prefix):
        check_output(path, option, stdout_ok=False)
        if not replaceable(path):
            raise ConfigError(f"{option}: {path} is not a regular file")


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
