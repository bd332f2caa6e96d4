"""Where a run's outputs go, checked before any load is sent.

A results path in a folder that does not exist used to be found out after the
run (exit 3, the numbers lost).  Each check raises ConfigError with the one
line the CLI prints (exit 2).  What may be replaced, and how, is
``output.files``'s rule; these checks apply it to the names the user gave.
"""

from __future__ import annotations

import os
import stat

from loadgen.config.model import ConfigError
from loadgen.output.files import STDOUT, is_stdout, replaceable


def check_output(path: str | None, option: str, stdout_ok: bool = True) -> None:
    """``path`` can take what loadgen will write there; None: not asked for.

    A regular file (or a new one) needs a writable folder: it is replaced
    atomically beside the real file, symlinks followed.  A FIFO or a device
    is written directly, so it only needs to be writable itself.  ``-`` is
    stdout where ``stdout_ok``.
    """
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
    check_output(save, "--save")
    check_output(image, "--output-image", stdout_ok=False)
    if save and image and is_stdout(save) and is_stdout(image):
        raise ConfigError("--save and --output-image both go to stdout: "
                          "the JSON and the PNG cannot share it")


def check_csv_prefix(prefix: str | None, option: str = "--csv") -> None:
    """``--csv PREFIX``: both files it writes can be written, and each is (or will be) a
    regular file -- a CSV goes to a file a spreadsheet opens, never to a FIFO or device."""
    from loadgen.output.csvfiles import csv_paths  # the CSV module only when asked for

    if prefix is None:
        return
    if not prefix.strip():
        raise ConfigError(f"{option}: empty prefix")
    for path in csv_paths(prefix):
        check_output(path, option, stdout_ok=False)
        if not replaceable(path):
            raise ConfigError(f"{option}: {path} is not a regular file")
