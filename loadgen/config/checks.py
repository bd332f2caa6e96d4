"""What a step does with its response: extract values, check it (issue 12, sections 2 and 3).

A scenario step may say::

    extract = { token = "json:access_token", sid = "header:X-Session",
                csrf = 'regex:name="csrf" value="([^"]+)"' }
    expect = { status = [201], body_contains = "order_id", json = { "items[0].id" = "abc" } }
    max_body = "1MiB"

This module turns those tables into ``ResponseRules`` at config time, so a JMESPath
or regex typo is bad input (exit 2, one line) before anything is sent, not a run full
of failed extractions.  The rules are frozen dataclasses that travel in the plan to
worker processes and Dask nodes; compiled JMESPath and regex objects are kept beside
the fields and rebuilt from the source text when unpickled (``__reduce__``), so the
pickle holds only text (a node with another jmespath version recompiles it) and two
equal specs compare equal.

JMESPath expressions compile in ``loadgen.config.jsonpath``.  The worker side is
``loadgen.engine.checks``.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from loadgen.config.describe import describe_value
from loadgen.config.jsonpath import Searcher, compile_jmespath
from loadgen.config.model import ConfigError, parse_status_set

#: How much of a body a step that extracts or checks keeps (the issue's default).
DEFAULT_MAX_BODY = 1 << 20
#: The most a step may keep: each virtual user may hold one body this large at a time.
MAX_MAX_BODY = 64 << 20

EXTRACT_KINDS = ("json", "header", "regex")
EXPECT_KEYS = ("status", "body_contains", "json")
#: Template values loadgen provides itself (issue 12 section 1): an extraction may not hide one.
RESERVED_NAMES = frozenset({"seq", "user", "uuid", "randint"})

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")          # usable as {{ name }} in a template
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")    # RFC 9110 token: a header name
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|KB|MB|k|M)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "KiB": 1 << 10, "k": 1 << 10, "KB": 1000,
               "MiB": 1 << 20, "M": 1 << 20, "MB": 1000 * 1000}


def format_size(n: int) -> str:
    """'1 MiB', '512 KiB', '1000 bytes': how a limit is named in messages and check names."""
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


@dataclass(frozen=True)
class Extraction:
    """``name = "kind:expression"``: one value taken from a response.

    ``expression`` is the text after the prefix, as written: a JMESPath expression, a
    header name (matched case-insensitively) or a regex with exactly one capture group.
    """

    name: str
    kind: str            # "json", "header" or "regex"
    expression: str
    compiled: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind == "json":
            compiled: Any = compile_jmespath(self.expression)
        elif self.kind == "header":   # matched against raw header names, as httptools gives them
            compiled = self.expression.lower().encode("latin-1")
        elif self.kind == "regex":
            compiled = re.compile(self.expression)
        else:
            raise ValueError(f"unknown extraction kind {self.kind!r}")
        object.__setattr__(self, "compiled", compiled)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Extraction, (self.name, self.kind, self.expression))

    @property
    def spec(self) -> str:
        """As written in the file: ``json:items[0].id`` (names it in failure reasons)."""
        return f"{self.kind}:{self.expression}"


@dataclass(frozen=True)
class JsonExpectation:
    """``"expression" = value`` in ``expect.json``: the body's value there must equal it.

    The expected value is kept as canonical JSON text (a field that hashes and pickles
    as text whatever TOML gave: tables, arrays); ``expected`` is that text decoded.
    """

    expression: str
    expected_json: str
    compiled: Searcher = field(init=False, repr=False, compare=False)
    expected: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled", compile_jmespath(self.expression))
        object.__setattr__(self, "expected", json.loads(self.expected_json))

    def __reduce__(self) -> tuple[Any, ...]:
        return (JsonExpectation, (self.expression, self.expected_json))

    @property
    def name(self) -> str:
        """The check's stable name in the report: ``json items[0].id == "abc"``."""
        return f"json {self.expression} == {self.expected_json}"


@dataclass(frozen=True)
class Expectations:
    """What a response must be to count as a success (besides the endpoint's status set).

    Checked in this order, the first that fails naming the failure: ``status`` (when
    the status is wrong the body is usually an error page: that is the telling name),
    each ``body_contains`` string, each ``json`` expectation.
    """

    status: frozenset[int] | None = None
    body_contains: tuple[str, ...] = ()
    json: tuple[JsonExpectation, ...] = ()
    needles: tuple[bytes, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:   # searched in the raw body: no decoding per response
        object.__setattr__(self, "needles", tuple(s.encode() for s in self.body_contains))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Expectations, (self.status, self.body_contains, self.json))

    @property
    def needs_body(self) -> bool:
        return bool(self.body_contains or self.json)

    def __bool__(self) -> bool:
        return self.status is not None or self.needs_body


def body_contains_name(text: str) -> str:
    """The stable name of a ``body_contains`` check: ``body_contains "order_id"``."""
    return f"body_contains {json.dumps(text, ensure_ascii=False)}"


@dataclass(frozen=True)
class ResponseRules:
    """Everything a step does with its response; empty for a plain endpoint.

    ``needs_body`` / ``needs_headers`` tell the worker when to keep the body (up to
    ``max_body``) or the headers: every other request keeps the zero-copy drain.  The
    worker's side of the contract (``engine.checks.evaluate``): the headers as httptools
    delivers them, and the body's bytes, or None once it grew past ``max_body`` (then
    stop keeping it, keep draining: the rules that needed it fail, named so).  Cookies
    are the worker's own concern (a journey reads Set-Cookie on every response).
    """

    extract: tuple[Extraction, ...] = ()
    expect: Expectations = Expectations()
    max_body: int = DEFAULT_MAX_BODY

    @property
    def needs_body(self) -> bool:
        return self.expect.needs_body or any(e.kind != "header" for e in self.extract)

    @property
    def needs_headers(self) -> bool:
        return any(e.kind == "header" for e in self.extract)

    def __bool__(self) -> bool:
        return bool(self.extract) or bool(self.expect)


# -- parsing (config time) --------------------------------------------------------------


def parse_extract(value: Any, label: str) -> tuple[Extraction, ...]:
    """An ``extract`` table -> its extractions, in the order written.

    ``label`` names where it is, e.g. "'extract' in [[users.steps]] #2 of shop.toml";
    every ConfigError is ``f"{label}: ..."``.
    """
    if not isinstance(value, dict):
        raise ConfigError(f"{label} must be a table like {{ token = \"json:access_token\" }}, "
                          f"got {describe_value(value)}")
    if not value:
        raise ConfigError(f"{label} is empty")
    return tuple(_extraction(name, spec, label) for name, spec in value.items())


def _extraction(name: str, spec: Any, label: str) -> Extraction:
    if not _NAME.fullmatch(name):
        raise ConfigError(f"{label}: {name!r} cannot be a template name "
                          "(letters, digits and _, not starting with a digit)")
    if name in RESERVED_NAMES:
        raise ConfigError(f"{label}: {name!r} is a value loadgen provides "
                          f"({', '.join(sorted(RESERVED_NAMES))}); choose another name")
    if not isinstance(spec, str):
        raise ConfigError(f"{label}: {name} must be a string like \"json:access_token\", "
                          f"got {describe_value(spec)}")
    where = f"{label}: {name} = {spec!r}"
    kind, sep, expression = spec.partition(":")
    if not sep or kind not in EXTRACT_KINDS:
        raise ConfigError(f"{where} must start with json:, header: or regex:")
    if not expression.strip():
        raise ConfigError(f"{where} has nothing after '{kind}:'")
    if kind == "header":
        expression = expression.strip()
        if not _TOKEN.fullmatch(expression):
            raise ConfigError(f"{where}: {expression!r} is not a valid header name")
    elif kind == "regex":
        try:
            groups = re.compile(expression).groups
        except re.error as exc:
            raise ConfigError(f"{where}: not a valid regular expression "
                              f"({exc.msg} at character {(exc.pos or 0) + 1})") from None
        if groups == 0:
            raise ConfigError(f"{where}: has no capture group; put the value in parentheses, "
                              "as in 'regex:id=(\\w+)'")
        if groups > 1:
            raise ConfigError(f"{where}: has {groups} capture groups; it needs exactly one "
                              "(the value): make the others non-capturing, (?:...)")
    try:
        return Extraction(name, kind, expression)
    except ValueError as exc:   # only JMESPath can still fail here
        raise ConfigError(f"{where}: not a valid JMESPath expression ({exc})") from None


def parse_expect(value: Any, label: str) -> Expectations:
    """An ``expect`` table -> ``Expectations``; ConfigError ``f"{label}: ..."``."""
    if not isinstance(value, dict):
        raise ConfigError(f"{label} must be a table like {{ status = [201] }}, "
                          f"got {describe_value(value)}")
    if not value:
        raise ConfigError(f"{label} is empty")
    for key in value:
        if key not in EXPECT_KEYS:
            close = difflib.get_close_matches(key, EXPECT_KEYS, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{label}: unknown key {key!r}{hint}; "
                              f"known: {', '.join(EXPECT_KEYS)}")
    status = _statuses(value["status"], f"{label}: 'status'") if "status" in value else None
    contains: tuple[str, ...] = ()
    if "body_contains" in value:
        contains = _strings(value["body_contains"], f"{label}: 'body_contains'")
    checks: tuple[JsonExpectation, ...] = ()
    if "json" in value:
        checks = _json_checks(value["json"], f"{label}: 'json'")
    return Expectations(status, contains, checks)


def _statuses(value: Any, where: str) -> frozenset[int]:
    """As the scenario file's expect_status: a status, a list as --expect-status takes
    it ("200-299", "2xx"), or an array of either; parsed by the same parser."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ConfigError(f"{where} is empty")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise ConfigError(f"{where} must be a status, a status list like \"200-299\", "
                              f"or an array of them, got {describe_value(item)}")
    return parse_status_set(",".join(str(item) for item in items), where)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ConfigError(f"{where} is empty")
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{where} must be a string or an array of strings, "
                              f"got {describe_value(item)}")
        if not item:
            raise ConfigError(f"{where}: an empty string is in every body")
    return tuple(items)


def _json_checks(value: Any, where: str) -> tuple[JsonExpectation, ...]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table like {{ \"items[0].id\" = \"abc\" }}, "
                          f"got {describe_value(value)}")
    if not value:
        raise ConfigError(f"{where} is empty")
    checks = []
    for expression, expected in value.items():
        try:
            text = json.dumps(expected, ensure_ascii=False, sort_keys=True,
                              separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError):   # a TOML date or time, nan, inf: not in any JSON body
            raise ConfigError(f"{where}: the value for {expression!r} must be a JSON value "
                              f"(string, number, boolean, array, table), got "
                              f"{describe_value(expected)}") from None
        try:
            checks.append(JsonExpectation(expression, text))
        except ValueError as exc:
            raise ConfigError(f"{where}: {expression!r} is not a valid JMESPath expression "
                              f"({exc})") from None
    return tuple(checks)


def parse_max_body(value: Any, label: str) -> int:
    """``max_body``: bytes as an integer, or "512KiB", "1MiB", "2MB"; at most 64 MiB."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{label} must be a size like \"1MiB\" or a number of bytes, "
                          f"got {describe_value(value)}")
    m = _SIZE.match(str(value))
    if not m:
        raise ConfigError(f"{label}: {value!r} is not a size (examples: 65536, 512KiB, 1MiB)")
    size = int(m.group(1)) * _SIZE_UNITS[m.group(2)]
    if size < 1:
        raise ConfigError(f"{label} must be at least 1 byte, got {value!r}")
    if size > MAX_MAX_BODY:
        raise ConfigError(f"{label}: {value!r} is more than {format_size(MAX_MAX_BODY)} "
                          "(each virtual user may hold a body this large)")
    return size


def parse_rules(table: dict[str, Any], where: str) -> ResponseRules:
    """The ``extract``, ``expect`` and ``max_body`` keys of a step or endpoint table.

    ``where`` names the table, e.g. "[[users.steps]] #2 of shop.toml"; each key's
    errors start "'extract' in <where>: ...".  Other keys are the caller's.
    """
    extract = parse_extract(table["extract"], f"'extract' in {where}") \
        if "extract" in table else ()
    expect = parse_expect(table["expect"], f"'expect' in {where}") \
        if "expect" in table else Expectations()
    max_body = parse_max_body(table["max_body"], f"'max_body' in {where}") \
        if "max_body" in table else DEFAULT_MAX_BODY
    return ResponseRules(extract, expect, max_body)

