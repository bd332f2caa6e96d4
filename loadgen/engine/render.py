"""Templated requests on the worker: a parsed request compiled once into one Python function.

A static endpoint keeps the bytes ``wire.build_request`` made once (``compile_request``
returns them as they are, so it never comes here).  A templated one is first turned
into ``str.format`` strings, one for the head and one for the body, whose fields
index the request's values: ``{0[i]}`` column ``i`` of the feeder row, ``{1}`` seq,
``{2}`` user, ``{3[name]}`` an extracted value, ``{4}`` the request's uuid,
``{5[j]}`` its j-th randint draw, ``{6}`` the body's length.  Those strings are
then compiled into a function of f-strings (``str.format`` re-parses its format on
every call: 4.2 against 1.0 us for a typical request in bench/templates.py); ``bench/templates.py``
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
import re
import string
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from loadgen.config.template import (
    COLUMN,
    EXTRACTED,
    RANDINT,
    SEQ,
    USER,
    UUID,
    Template,
    static,
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
    ``render`` is the compiled function itself (no method binding per call);
    ``render_format`` is the same request through ``str.format``, the reference
    the compiled one is tested against.
    """

    __slots__ = ("body", "body_format", "head_empty", "head_full", "randints", "render", "rng",
                 "uses_uuid")

    def __init__(self, method: str, host_header: str, path: Template,
                 headers: Sequence[tuple[str, Template]], body: Template | bytes,
                 columns: Sequence[str] = (), close: bool = False, prefix: str = "",
                 rng: random.Random | None = None) -> None:
        self.randints: list[tuple[int, int]] = []
        fields = _Fields(columns, self.randints)
        plain = [(_escape(name), fields.format(t)) for name, t in headers]
        lines = head_lines(_escape(method), _escape(host_header),
                           _escape(prefix) + fields.format(path), plain, close)
        head = "\r\n".join(lines) + "\r\n"
        self.body = b""            # the body when it is not templated
        self.body_format: str | None = None
        if not isinstance(body, Template):
            self.body = body
        elif body.static:
            self.body = body.text.encode()
        else:
            self.body_format = fields.format(body)
        # Content-Length: always when the method or a header asks, or the body cannot be
        # empty; else (a body made only of placeholders) only when it renders non-empty.
        certain = (always_has_length(method, plain) or bool(self.body)
                   or (isinstance(body, Template) and any(body.literals)))
        self.head_full = head + "Content-Length: {6}\r\n\r\n"
        self.head_empty = self.head_full if certain else head + "\r\n"
        self.uses_uuid = fields.uuid
        self.rng = rng or random.Random()
        self.render = _compile(self)

    def render_format(self, seq: int, user: int, row: Sequence[str] | None = None,
                      extracted: Mapping[str, str] = _NO_VALUES) -> bytes:
        """The request's bytes through ``str.format`` (the reference; ~3x slower)."""
        u = new_uuid(self.rng) if self.uses_uuid else None
        r = [self.rng.randint(a, b) for a, b in self.randints]
        if self.body_format is None:
            body = self.body
        else:
            body = self.body_format.format(row, seq, user, extracted, u, r).encode()
        head = self.head_full if body else self.head_empty
        return head.format(row, seq, user, extracted, u, r, len(body)).encode("latin-1") + body


def new_uuid(rng: random.Random) -> str:
    """A version-4 UUID from the worker's generator (ids for requests, not secrets)."""
    h = "%032x" % (rng.getrandbits(128) & _UUID_CLEAR | _UUID_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _compile(r: RequestRenderer) -> Callable[..., bytes]:
    """``r``'s format strings as one Python function of f-strings.

    ``str.format`` parses its format string on every call; an f-string is parsed
    once, by the compiler (4.2 against 1.0 us a request in bench/templates.py).  No user text
    is ever part of the generated source: literal parts are closure variables
    ``_c0, _c1, ...`` and the only expressions are ``row[<int>]``, ``seq``, ``user``,
    ``ext[<repr of a validated name>]``, ``u``, ``r<int>`` and ``len(body)``.
    """
    consts: list[object] = []
    lines = ["    def render(seq, user, row=None, ext=_c0):"]
    consts.append(_NO_VALUES)
    if r.uses_uuid:
        consts.append(r.rng)
        lines.append(f"        u = _new_uuid(_c{len(consts) - 1})")
    if r.randints:
        consts.append(r.rng.randint)
        for j, (low, high) in enumerate(r.randints):
            lines.append(f"        r{j} = _c{len(consts) - 1}({low:d}, {high:d})")
    if r.body_format is None:
        consts.append(r.body)
        lines.append(f"        body = _c{len(consts) - 1}")
    else:
        lines.append(f"        body = {_fstring(r.body_format, consts)}.encode()")
    full = f"{_fstring(r.head_full, consts)}.encode('latin-1') + body"
    if r.head_empty is r.head_full:
        lines.append(f"        return {full}")
    else:
        lines.append(f"        if body:\n            return {full}")
        lines.append(f"        return {_fstring(r.head_empty, consts)}.encode('latin-1')")
    names = ", ".join(f"_c{i}" for i in range(len(consts)))
    source = f"def factory({names}):\n" + "\n".join(lines) + "\n    return render\n"
    namespace: dict[str, Any] = {"_new_uuid": new_uuid}
    exec(compile(source, "<loadgen.engine.render>", "exec"), namespace)  # noqa: S102
    render: Callable[..., bytes] = namespace["factory"](*consts)
    return render


#: A format field of _Fields -> the Python expression the compiled function uses for it.
_FIELD = re.compile(r"0\[(\d+)\]|([1246])|3\[([A-Za-z_][A-Za-z0-9_.-]*)\]|5\[(\d+)\]")
_SIMPLE = {"1": "seq", "2": "user", "4": "u", "6": "len(body)"}


def _fstring(fmt: str, consts: list[object]) -> str:
    """The f-string source equal to ``fmt.format(...)``, its literal parts as closure names."""
    out = []
    for literal, field, _spec, _conv in string.Formatter().parse(fmt):
        if literal:
            consts.append(literal)
            out.append(f"{{_c{len(consts) - 1}}}")
        if field is not None:
            m = _FIELD.fullmatch(field)
            if m is None:
                raise ValueError(f"unexpected format field {field!r}")
            column, simple, name, draw = m.groups()
            out.append("{" + (f"row[{int(column)}]" if column is not None
                              else _SIMPLE[simple] if simple is not None
                              else f"ext[{name!r}]" if name is not None
                              else f"r{int(draw)}") + "}")
    return 'f"' + "".join(out) + '"'


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
            if name not in self.index:   # config parsed the template with other columns
                raise ValueError(f"column {name!r} is not one of the feeder's {list(self.index)}")
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


def compile_endpoint(method: str, host_header: str, templates: Any, body: bytes,
                     headers: Sequence[tuple[str, str]], columns: Sequence[str] = (),
                     close: bool = False, prefix: str = "",
                     rng: random.Random | None = None) -> tuple[bytes | RequestRenderer, bool]:
    """A templated endpoint (``Endpoint.templates``, a ``config.template.RequestTemplates``)
    with its merged ``headers`` compiled once: ``(bytes or renderer, uses_row)``.

    Each header value is looked up among the values the user wrote as templates, so only
    those are ever templated (a login's or proxy's value never is).  ``uses_row``: whether
    the request takes a feeder row (else the caller need not pick one).  The serve loop's
    endpoints and the journey steps (engine.journey) both compile through here.
    """
    values = dict(templates.headers)
    made = compile_request(method, host_header, templates.path,
                           [(n, values.get(v) or static(v)) for n, v in headers],
                           templates.body if templates.body is not None else body, columns,
                           close=close, prefix=prefix, rng=rng)
    uses_row = any(p.columns for p in (templates.path, *(v for _, v in templates.headers))) or (
        templates.body is not None and bool(templates.body.columns))
    return made, uses_row
