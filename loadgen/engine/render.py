"""Templated requests on the worker: a parsed request compiled once into two format strings.

A static endpoint keeps the bytes ``wire.build_request`` made once (``compile_request``
returns them as they are, so it never comes here).  A templated one is compiled
into a ``str.format`` string for the head and one for the body, whose fields index
the request's values: ``{0[i]}`` column ``i`` of the feeder row, ``{1}`` seq,
``{2}`` user, ``{3[name]}`` an extracted value, ``{4}`` the request's uuid,
``{5[j]}`` its j-th randint draw, ``{6}`` the body's length.  One ``format`` call
does in C what a loop over parts would do in bytecode; ``bench/templates.py``
measures it against returning prebuilt bytes (issue 12's budget: +3 us a request).

The head is made by ``wire.head_lines`` from the format strings themselves, so a
templated request has exactly the static one's header order, defaults and
Content-Length rule (tests/test_template_unit.py holds it to build_request byte
for byte).  Values are inserted as they are: feeder values were checked for the
path and headers they go to when the feeder was read (``Feeder.check_use``), and
extracted values must be checked by the caller (``config.template.header_value_safe``,
``target_value_safe``) before they are passed in.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from loadgen.config.template import (
    COLUMN,
    EXTRACTED,
    RANDINT,
    SEQ,
    USER,
    UUID,
    Template,
)
from loadgen.engine.wire import always_has_length, build_request, head_lines

_NO_VALUES: Mapping[str, str] = {}


def _escape(text: str) -> str:
    """Literal text inside a format string."""
    return text.replace("{", "{{").replace("}", "}}")


class RequestRenderer:
    """One templated request: ``render(seq, user, row, extracted)`` -> its bytes.

    ``columns`` are the feeder's columns (a row is a list in that order); ``rng``
    draws the uuids and randints (seed it per worker for reproducible runs).
    """

    __slots__ = ("_body", "_body_fmt", "_head_empty", "_head_full", "_randints", "_rng",
                 "_uses_uuid")

    def __init__(self, method: str, host_header: str, path: Template,
                 headers: Sequence[tuple[str, Template]], body: Template | bytes,
                 columns: Sequence[str] = (), close: bool = False, prefix: str = "",
                 rng: random.Random | None = None) -> None:
        self._randints: list[tuple[int, int]] = []
        self._uses_uuid = False
        fields = _Fields(columns, self._randints)
        plain = [(_escape(name), fields.format(t)) for name, t in headers]
        lines = head_lines(_escape(method), _escape(host_header),
                           _escape(prefix) + fields.format(path), plain, close)
        head = "\r\n".join(lines) + "\r\n"
        if isinstance(body, Template):
            self._body = b""
            self._body_fmt: str | None = fields.format(body) if not body.static else None
            if body.static:
                self._body = body.text.encode()
        else:
            self._body, self._body_fmt = body, None
        # Content-Length: always when the method or a header asks, or the body cannot be
        # empty; else (a body made only of placeholders) only when it renders non-empty.
        certain = (always_has_length(method, plain) or bool(self._body)
                   or (isinstance(body, Template) and any(body.literals)))
        self._head_full = head + "Content-Length: {6}\r\n\r\n"
        self._head_empty = self._head_full if certain else head + "\r\n"
        self._uses_uuid = fields.uuid
        self._rng = rng or random.Random()

    def render(self, seq: int, user: int, row: Sequence[str] | None = None,
               extracted: Mapping[str, str] = _NO_VALUES) -> bytes:
        """The request's bytes for request ``seq`` of virtual user ``user``."""
        u = self._new_uuid() if self._uses_uuid else None
        r = [self._rng.randint(a, b) for a, b in self._randints] if self._randints else None
        if self._body_fmt is None:
            body = self._body
        else:
            body = self._body_fmt.format(row, seq, user, extracted, u, r).encode()
        head = self._head_full if body else self._head_empty
        return head.format(row, seq, user, extracted, u, r, len(body)).encode("latin-1") + body

    def _new_uuid(self) -> str:
        """A version-4 UUID from the worker's generator (not for secrets: ids for requests)."""
        h = "%032x" % (self._rng.getrandbits(128) & _UUID_CLEAR | _UUID_SET)
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# version 4 (bits 76-79) and the RFC 4122 variant (bits 62-63), as uuid.uuid4() sets them
_UUID_CLEAR = ~((0xF << 76) | (0x3 << 62))
_UUID_SET = (0x4 << 76) | (0x2 << 62)


class _Fields:
    """Turns templates into format strings; collects what the request draws (uuid, randints)."""

    def __init__(self, columns: Sequence[str], randints: list[tuple[int, int]]) -> None:
        self.index = {name: i for i, name in enumerate(columns)}
        self.randints = randints
        self.uuid = False

    def format(self, t: Template) -> str:
        out = [_escape(t.literals[0])]
        for p, literal in zip(t.placeholders, t.literals[1:]):
            out.append(self._field(p.kind, p.name, p.low, p.high))
            out.append(_escape(literal))
        return "".join(out)

    def _field(self, kind: str, name: str, low: int, high: int) -> str:
        if kind == COLUMN:
            return f"{{0[{self.index[name]}]}}"
        if kind == SEQ:
            return "{1}"
        if kind == USER:
            return "{2}"
        if kind == EXTRACTED:
            return f"{{3[{name}]}}"
        if kind == UUID:
            self.uuid = True
            return "{4}"
        if kind == RANDINT:
            self.randints.append((low, high))
            return f"{{5[{len(self.randints) - 1}]}}"
        raise ValueError(f"unknown placeholder kind {kind!r}")


def compile_request(method: str, host_header: str, path: Template,
                    headers: Sequence[tuple[str, Template]], body: Template | bytes,
                    columns: Sequence[str] = (), close: bool = False, prefix: str = "",
                    rng: random.Random | None = None) -> bytes | RequestRenderer:
    """The request's prebuilt bytes when nothing in it is templated, else its renderer.

    The worker keeps today's path for the bytes (``type(r) is bytes``) and calls
    ``render`` only for a renderer: static endpoints pay nothing for templates.
    """
    templates = [path, *(t for _, t in headers)] + ([body] if isinstance(body, Template) else [])
    if all(t.static for t in templates):
        raw = body.text.encode() if isinstance(body, Template) else body
        return build_request(method, host_header, prefix + path.text,
                             [(n, t.text) for n, t in headers], raw, close)
    return RequestRenderer(method, host_header, path, headers, body, columns, close, prefix,
                           rng)
