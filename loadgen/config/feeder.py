"""Feeders: rows of data (CSV or JSON Lines) that fill a template's ``{{ column }}`` placeholders.

A feeder is read and validated once, in the coordinator (bad input is one line
naming the file and line, before any load), and travels to every worker process
and Dask node inside the worker plan.  So it is stored compactly: a 1,000,000-row
file must cost a worker at most about twice its size (issue 12), and Python
objects per value (~50 bytes of header for every str) would cost several times
that.  The rows are one UTF-8 ``bytes`` blob, fields separated by NUL, plus an
``array`` of row offsets; a row is split out when a request takes it (one slice,
one decode, one split: well under a microsecond).  Pickling it is two buffer copies.

Which row a request takes is the mode's rule, a pure function of indices the
worker already has, so it is exact whatever the split across workers and nodes:

- ``sequential``: request ``k`` (its index in the whole run) takes row ``k mod N``;
- ``per-user``: virtual user ``i`` takes row ``i mod N`` (per-user credentials);
- ``random``: uniform, from a generator seeded per worker (reproducible runs).

Values are strings.  In JSON Lines, a string value is taken as it is and any other
scalar as its JSON text (``7``, ``1.5``, ``true``, ``null``), so ``{"n": {{ n }}}``
stays valid JSON.  Blank lines are skipped in both formats.  A value may not
contain NUL (the separator; no header or path may carry it either).
"""

from __future__ import annotations

import csv
import json
import os
import random
import stat
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from loadgen.config.model import ConfigError
from loadgen.config.template import header_flaw, target_flaw

SEQUENTIAL, RANDOM, PER_USER = "sequential", "random", "per-user"
MODES = (SEQUENTIAL, RANDOM, PER_USER)

_SEP = "\x00"
_SEP_B = b"\x00"
#: The bytes config.template allows in a request target (visible ASCII but ``#``), plus NUL
#: (the field separator).  Deleting them from a row's UTF-8 leaves something exactly when one
#: of its values could not go into a path (and, as a target refuses every character a header
#: refuses, into a header).  ``bytes.translate`` does it at memory speed: a regular expression
#: took 17 us per 1 KiB row, 1.2 s of a 64 MiB feeder's load.
_ROW_TARGET_FIT = bytes([0x00, 0x21, 0x22, *range(0x24, 0x7F)])

#: A row picker: (request index in the run, virtual user index) -> the row's values.
Picker = Callable[[int, int], list[str]]


@dataclass(frozen=True, eq=False)
class Feeder:
    """A feeder's rows, compact and picklable; ``name`` is the file as the user gave it.

    ``unfit`` records, per column, the first line whose value could not be sent in a
    request path (``"path"``) or a header (``"header"``), with the reason; the config
    refuses a template that puts such a column there (``check_use``), so the worker
    never has to check feeder values.
    """

    name: str
    columns: tuple[str, ...]
    blob: bytes = field(repr=False)
    offsets: array = field(repr=False)   # row k is blob[offsets[k]:offsets[k + 1]]
    mode: str = SEQUENTIAL
    unfit: tuple[tuple[str, str, int, str], ...] = ()   # (column, "path"|"header", line, why)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def nbytes(self) -> int:
        """What the rows cost in memory (and in a pickled plan), in bytes."""
        return len(self.blob) + self.offsets.itemsize * len(self.offsets)

    def row(self, k: int) -> list[str]:
        """Row ``k`` (0-based) as its values, in column order."""
        return self.blob[self.offsets[k]:self.offsets[k + 1]].decode().split(_SEP)

    def with_mode(self, mode: str) -> Feeder:
        """This feeder with ``mode``; ConfigError naming the choices if it is not one."""
        if mode not in MODES:
            raise ConfigError(f"feeder {self.name}: mode {mode!r} is not one of "
                              f"{', '.join(MODES)}")
        return Feeder(self.name, self.columns, self.blob, self.offsets, mode, self.unfit)

    def picker(self, worker: int = 0, seed: int | str = 0) -> Picker:
        """The worker's row picker: ``pick(seq, user)`` -> the row the mode gives.

        ``worker`` and ``seed`` seed the ``random`` mode only: each worker draws its own
        reproducible sequence.  One closure per mode, the row fetch inlined: this runs
        once per templated request.
        """
        blob, offsets, n = self.blob, self.offsets, len(self)
        if self.mode == RANDOM:
            draw = random.Random(f"{seed}:{worker}").randrange

            def pick(seq: int, user: int) -> list[str]:
                k = draw(n)
                return blob[offsets[k]:offsets[k + 1]].decode().split(_SEP)
        elif self.mode == PER_USER:
            def pick(seq: int, user: int) -> list[str]:
                k = user % n
                return blob[offsets[k]:offsets[k + 1]].decode().split(_SEP)
        else:
            def pick(seq: int, user: int) -> list[str]:
                k = seq % n
                return blob[offsets[k]:offsets[k + 1]].decode().split(_SEP)
        return pick

    def check_use(self, columns: Iterable[str], place: str, where: str) -> None:
        """Refuse ``columns`` in ``place`` (``"path"`` or ``"header"``) if a value of one
        cannot go there; ``where`` names the template's option or file."""
        wanted = set(columns)
        for column, kind, line, why in self.unfit:
            if kind == place and column in wanted:
                raise ConfigError(f"{where}: feeder {self.name} line {line}: the value of "
                                  f"column {column!r} {why}, not allowed in a {place}")


def from_rows(name: str, columns: Sequence[str], rows: Iterable[Sequence[str]],
              mode: str = SEQUENTIAL, first_line: int = 2) -> Feeder:
    """A feeder from rows already read (each a sequence of str, one per column).

    ``first_line`` is the file line of the first row, for error lines (CSV: 2, after
    the header).  Also the constructor for tests and inline data.
    """
    _check_columns(name, columns)
    build = _Builder(name, tuple(columns))
    for i, values in enumerate(rows):
        build.add(values, first_line + i)
    return build.done(mode)


def load(path: str, mode: str = SEQUENTIAL) -> Feeder:
    """Read the feeder file ``path``: CSV with a header row, or JSON Lines.

    The format is the extension's (``.csv``; ``.jsonl``, ``.ndjson``) or else the
    content's (a first non-blank character ``{`` is JSON Lines).  Every problem is a
    ConfigError: one line naming the file (and the line, where there is one).
    """
    text = _read(path)
    ext = os.path.splitext(path)[1].lower()
    if ext in (".jsonl", ".ndjson") or (ext != ".csv" and text.lstrip().startswith("{")):
        return _load_jsonl(path, text).with_mode(mode)
    return _load_csv(path, text).with_mode(mode)


def _read(path: str) -> str:
    """The file's text (UTF-8, a BOM tolerated), or the one line saying why not."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"feeder {path}: not a regular file")
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"feeder {path}: cannot read it: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"feeder {path} line {line}: not UTF-8 text") from None
    if not text.strip():
        raise ConfigError(f"feeder {path}: the file is empty")
    nul = text.find(_SEP)
    if nul >= 0:
        raise ConfigError(f"feeder {path} line {text.count(chr(10), 0, nul) + 1}: "
                          "contains a NUL character")
    return text


def _load_csv(path: str, text: str) -> Feeder:
    reader = csv.reader(_lines(text), strict=True)
    try:
        header = next(reader)
        while not header:                      # blank lines before the header
            header = next(reader)
        columns = tuple(header)
        _check_columns(path, columns, reader.line_num)
        build = _Builder(path, columns)
        line = reader.line_num + 1
        for values in reader:
            if values:
                if len(values) != len(columns):
                    raise ConfigError(f"feeder {path} line {line}: {_fields(len(values))}, "
                                      f"the header has {len(columns)}")
                build.add(values, line)
            line = reader.line_num + 1
    except csv.Error as exc:
        raise ConfigError(f"feeder {path} line {reader.line_num}: not valid CSV: {exc}") from None
    return build.done(SEQUENTIAL)


def _lines(text: str) -> Iterator[str]:
    """``text``'s lines, ends kept, split on LF only: what csv.reader wants (it handles CR
    itself).  Not io.StringIO (a copy of the file at 4 bytes a character) and not
    str.splitlines (it also splits on form feeds, \\x1c-\\x1e, U+2028..., inside values)."""
    start, end = 0, text.find("\n")
    while end >= 0:
        yield text[start:end + 1]
        start, end = end + 1, text.find("\n", end + 1)
    if start < len(text):
        yield text[start:]


def _load_jsonl(path: str, text: str) -> Feeder:
    build: _Builder | None = None
    for number, raw in enumerate(text.split("\n"), 1):
        if not raw.strip():
            continue
        try:
            pairs = json.loads(raw, object_pairs_hook=_Pairs)
        except ValueError as exc:
            raise ConfigError(f"feeder {path} line {number}: not JSON: {exc}") from None
        if not isinstance(pairs, _Pairs):
            raise ConfigError(f"feeder {path} line {number}: not a JSON object "
                              "(JSON Lines feeders have one flat object a line)")
        names = [k for k, _ in pairs]
        if build is None:
            _check_columns(path, names, number)
            build = _Builder(path, tuple(names))
        elif len(names) != len(set(names)) or set(names) != set(build.columns):
            raise ConfigError(f"feeder {path} line {number}: keys {sorted(set(names))} differ "
                              f"from line 1's {sorted(build.columns)}")
        values = dict(pairs)
        build.add([_scalar(path, number, k, values[k]) for k in build.columns], number)
    if build is None:   # only blank lines: _read already refused that
        raise ConfigError(f"feeder {path}: the file is empty")
    return build.done(SEQUENTIAL)


class _Pairs(list[tuple[str, object]]):
    """A JSON object as its (key, value) pairs: duplicate keys stay visible, and an object
    is told apart from an array."""


def _scalar(path: str, line: int, key: str, value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):   # an array, or an object (as _Pairs)
        raise ConfigError(f"feeder {path} line {line}: the value of {key!r} is not a scalar "
                          "(no objects or arrays)")
    return json.dumps(value)


def _fields(n: int) -> str:
    return f"{n} field" if n == 1 else f"{n} fields"


def _check_columns(path: str, columns: Sequence[str], line: int = 1) -> None:
    seen: set[str] = set()
    for i, name in enumerate(columns, 1):
        if not name.strip():
            raise ConfigError(f"feeder {path} line {line}: column {i} has no name")
        if name in seen:
            raise ConfigError(f"feeder {path} line {line}: column {name!r} appears twice")
        seen.add(name)


class _Builder:
    """Appends rows to the blob, records offsets and which columns are unfit where."""

    def __init__(self, name: str, columns: tuple[str, ...]) -> None:
        self.name, self.columns = name, columns
        self.blob = bytearray()
        self.offsets = array("Q", [0])
        self.unfit: dict[tuple[str, str], tuple[int, str]] = {}

    def add(self, values: Sequence[str], line: int) -> None:
        joined = _SEP.join(values)
        if len(values) != len(self.columns):
            raise ConfigError(f"feeder {self.name} line {line}: {_fields(len(values))}, "
                              f"expected {len(self.columns)}")
        if _SEP in joined and joined.count(_SEP) != len(values) - 1:
            raise ConfigError(f"feeder {self.name} line {line}: contains a NUL character")
        encoded = joined.encode()
        if encoded.translate(None, _ROW_TARGET_FIT):   # rare: find which values, and why
            self._note(values, line)
        self.blob += encoded
        self.offsets.append(len(self.blob))

    def _note(self, values: Sequence[str], line: int) -> None:
        for column, value in zip(self.columns, values):
            for place, flaw in (("path", target_flaw(value)), ("header", header_flaw(value))):
                if flaw and (column, place) not in self.unfit:
                    self.unfit[(column, place)] = (line, f"contains {flaw}")

    def done(self, mode: str) -> Feeder:
        if len(self.offsets) == 1:
            raise ConfigError(f"feeder {self.name}: no rows (only a header)")
        offsets = self.offsets
        if offsets[-1] < 1 << 32:             # halve the offsets' memory for files < 4 GiB
            offsets = array("I", offsets)
        unfit = tuple((c, p, line, why) for (c, p), (line, why) in self.unfit.items())
        return Feeder(self.name, self.columns, bytes(self.blob), offsets, SEQUENTIAL,
                      unfit).with_mode(mode)
