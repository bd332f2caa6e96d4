"""Write bytes to a destination the user named, without destroying what is not ours.

Every file loadgen writes (results, capacity documents, charts) goes through
``write_bytes``.  A regular file (or a name that does not exist yet) is
replaced atomically: a temporary file beside the *real* file, then a rename,
so a reader never sees half a document and a killed run leaves the previous
one whole.  But a rename replaces whatever sits at the name: run as root,
``--save /dev/stdout`` once turned the device symlink into a JSON file.  So:

* a symlink is followed; the rename happens beside the file it points to and
  the link stays a link (a dangling link: the file it names is created);
* a FIFO, a character or block device (``/dev/null``, a terminal, the pipe
  behind ``/dev/stdout``) is opened and written directly, once -- never
  replaced.  A FIFO nobody reads is an error at once rather than a hang;
* ``-`` is stdout.

``replaceable`` tells callers whether a destination can take the periodic
"running" rewrites: writing a FIFO or a terminal every second would be a
stream of documents, not a file that is always whole.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import sys
import tempfile

STDOUT = "-"

_UMASK = os.umask(0o022)
os.umask(_UMASK)   # read once: os.umask can only be read by setting it


def is_stdout(path: str) -> bool:
    """``path`` is ``-``, or names the file loadgen's stdout already goes to (``/dev/stdout``).

    Callers treat both alike: the document goes to stdout and the human report
    moves to stderr, so that ``--save /dev/stdout | jq`` reads pure JSON.
    """
    if path == STDOUT:
        return True
    try:
        return os.path.samestat(os.stat(path), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError, AttributeError):   # no stdout, a closed one, a NUL in path
        return False


def replaceable(path: str) -> bool:
    """True when ``path`` is (or would be created as) a regular file that a rename may replace."""
    if path == STDOUT:
        return False
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return True
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(info.st_mode) and _real_file(path, info) is not None


def write_bytes(path: str, data: bytes) -> None:
    """Put ``data`` at ``path``: stdout, a direct write, or an atomic replace (see module doc).

    Raises OSError (``strerror`` is the line to show); nothing is left behind on failure.
    """
    if path == STDOUT:
        _write_stdout(data)
        return
    try:
        info = os.stat(path)   # follows every link, /proc/self/fd/N included
    except FileNotFoundError:
        info = None
    if info is None:
        _replace(os.path.realpath(path), data)   # absent, or a dangling link: create its target
    elif stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory", path)
    elif stat.S_ISREG(info.st_mode) and (real := _real_file(path, info)) is not None:
        _replace(real, data)
    else:
        _write_direct(path, info, data)


def _real_file(path: str, info: os.stat_result) -> str | None:
    """The real path of the regular file ``path`` names, or None when it has no usable name.

    ``/proc/self/fd/1`` for a shell's ``> out.json`` resolves to that file; for
    a deleted or otherwise unnamed file the resolved name is not the same file,
    and renaming over it would hit something else.
    """
    real = os.path.realpath(path)
    try:
        return real if os.path.samestat(info, os.stat(real)) else None
    except OSError:
        return None


def _replace(real: str, data: bytes) -> None:
    """Temporary file in the real file's folder, then a rename: the file is always whole."""
    fd, tmp = tempfile.mkstemp(prefix=".loadgen-", suffix=".tmp", dir=os.path.dirname(real))
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)   # mkstemp's 0600 would surprise whoever shares results
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, real)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _write_direct(path: str, info: os.stat_result, data: bytes) -> None:
    """Open without creating or truncating and write everything once.

    O_NONBLOCK only for the open: a FIFO without a reader then fails with ENXIO
    instead of blocking forever; the writes themselves block, so a slow reader
    gets every byte.
    """
    if stat.S_ISSOCK(info.st_mode):
        raise OSError(errno.ENXIO, "is a socket, not a file", path)
    flags = os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    if stat.S_ISREG(info.st_mode):
        flags |= os.O_APPEND   # an unnamed regular file (a redirect): add, never overwrite
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ENXIO and stat.S_ISFIFO(info.st_mode):
            raise OSError(errno.ENXIO, "no process is reading from this FIFO", path) from None
        raise
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _write_stdout(data: bytes) -> None:
    """The document on stdout after whatever text is already there, ending with a newline."""
    out = sys.stdout
    data = data if data.endswith(b"\n") else data + b"\n"
    try:
        out.flush()
        binary = getattr(out, "buffer", None)
        if binary is None:   # a text-only stream (an embedding program's, a test's)
            out.write(data.decode("utf-8", "surrogateescape"))
            out.flush()
        else:
            binary.write(data)
            binary.flush()
    except BrokenPipeError:
        # the reader left (``| head``): point stdout at /dev/null so the interpreter's
        # own flush at exit does not print a second error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
        raise
