"""The worker side of response rules: checks, extractions (issue 12, sections 2 and 3).

These run only for a step that extracts or checks (``ResponseRules`` from
``loadgen.config.checks`` is truthy); every other request keeps the zero-copy drain.
The worker hands over what it has: the status, the headers as httptools delivers them
(``(name, value)`` bytes pairs, names as sent), and the body bytes it kept, or ``None``
when the body was larger than the step's ``max_body`` (it stopped keeping it).

Nothing here puts response content into a failure: check names and extraction reasons
are built from the scenario file only, so they are stable (the report counts them by
name) and an extracted token never reaches the results through an error.

Cookies are in ``loadgen.engine.cookies``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson
from jmespath import exceptions as jmes_errors

from loadgen.config.checks import (
    Expectations,
    Extraction,
    ResponseRules,
    body_contains_name,
    format_size,
)
from loadgen.config.jsonpath import Searcher

Headers = Sequence[tuple[bytes, bytes]]


class ExtractionFailed(Exception):
    """An extraction found nothing usable: the step fails with kind ``extract``;
    ``reason`` (the message) names the extraction and why."""

    @property
    def reason(self) -> str:
        return str(self.args[0])


class _NotJson(Exception):
    pass


class Response:
    """One kept response; the body is decoded (as JSON, as text) at most once, and only
    if a rule needs it, however many extractions and checks read it."""

    __slots__ = ("_doc", "_text", "body", "headers", "max_body", "status")

    def __init__(self, status: int, headers: Headers, body: bytes | None,
                 max_body: int) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.max_body = max_body
        self._doc: Any = _UNSET
        self._text: str | None = None

    def doc(self) -> Any:
        """The body as JSON; ``_NotJson`` if it is not (the caller has checked ``body``)."""
        if self._doc is _UNSET:
            try:
                self._doc = orjson.loads(self.body or b"")
            except orjson.JSONDecodeError:
                self._doc = _exact_json(self.body or b"")
        if self._doc is _NOT_JSON:
            raise _NotJson
        return self._doc

    def search(self, compiled: Searcher) -> Any:
        """``compiled`` searched in the body; ``_NotJson`` if it is not JSON.

        orjson reads an integer beyond 64 bits as a float (123456789012345678901234567890
        -> 1.2345678901234568e+29): a found value holding such a float is searched again
        in the standard library's exact reading.  Only then, so the common case pays
        nothing (a scan of the body for long digit runs cost more than the parse).  A
        filter comparing such numbers inside the expression still compares floats.
        """
        value = compiled.search(self.doc())
        if value is not None and not isinstance(value, str) and _inexact(value):
            exact = _exact_json(self.body or b"")
            if exact is not _NOT_JSON:
                value = compiled.search(exact)
        return value

    def text(self) -> str:
        """The body as text for regexes: UTF-8, undecodable bytes replaced (not refused:
        a pattern usually looks for ASCII in an HTML page of any encoding)."""
        if self._text is None:
            self._text = (self.body or b"").decode("utf-8", "replace")
        return self._text

    def header(self, lower_name: bytes) -> str | None:
        """The first header of that name (case-insensitive), ISO-8859-1 as on the wire."""
        for name, value in self.headers:
            if name.lower() == lower_name:
                return value.decode("latin-1")
        return None


_UNSET: Any = object()
_NOT_JSON: Any = object()


def _exact_json(body: bytes) -> Any:
    """The standard library's reading: exact for any integer; also tried before calling a
    body orjson refuses not JSON (rare, so slow is fine)."""
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):   # UnicodeDecodeError and JSONDecodeError included
        return _NOT_JSON


_INEXACT = float(1 << 63)   # orjson keeps integers in [-2**63, 2**64) exact, floats beyond


def _inexact(value: Any) -> bool:
    """Could orjson have turned an integer in ``value`` into a float?"""
    if isinstance(value, float):
        return abs(value) >= _INEXACT and value.is_integer()
    if isinstance(value, list):
        return any(_inexact(v) for v in value)
    if isinstance(value, dict):
        return any(_inexact(v) for v in value.values())
    return False


def _as_text(value: Any) -> str:
    """An extracted JSON value as a template value: strings as they are, anything else as
    its JSON text (42 -> "42", true -> "true", [1, 2] -> "[1,2]")."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def extract(extractions: Sequence[Extraction], response: Response) -> dict[str, str]:
    """Every extraction's value by name; ``ExtractionFailed`` at the first that fails."""
    values: dict[str, str] = {}
    for e in extractions:
        if e.kind == "header":
            found = response.header(e.compiled)
            if found is None:
                raise ExtractionFailed(f"{e.spec} found no such header")
            values[e.name] = found
            continue
        if response.body is None:
            raise ExtractionFailed(f"{e.spec}: body larger than max_body "
                                   f"{format_size(response.max_body)}: extraction not possible")
        if e.kind == "json":
            try:
                value = response.search(e.compiled)
            except _NotJson:
                raise ExtractionFailed(f"{e.spec}: body is not JSON") from None
            except jmes_errors.JMESPathError:   # a function given the wrong types
                raise ExtractionFailed(f"{e.spec} failed on this body "
                                       "(a function got a value of the wrong type)") from None
            if value is None:
                raise ExtractionFailed(f"{e.spec} found nothing")
            values[e.name] = _as_text(value)
        else:
            m = e.compiled.search(response.text())
            if m is None or m.group(1) is None:
                raise ExtractionFailed(f"{e.spec} found nothing")
            values[e.name] = m.group(1)
    return values


def failed_check(expect: Expectations, response: Response) -> str | None:
    """None if the response passes every expectation, else the failed check's stable name:
    ``status``, ``body_contains "order_id"``, ``json items[0].id == "abc"``; a body check
    that could not look adds why: ``... (body over max_body 1 MiB)``, ``(body is not JSON)``."""
    if expect.status is not None and response.status not in expect.status:
        return "status"
    if not expect.needs_body:
        return None
    body = response.body
    if body is None:
        first = (body_contains_name(expect.body_contains[0]) if expect.body_contains
                 else expect.json[0].name)
        return f"{first} (body over max_body {format_size(response.max_body)})"
    for text, needle in zip(expect.body_contains, expect.needles):
        if needle not in body:
            return body_contains_name(text)
    for check in expect.json:
        try:
            found = response.search(check.compiled)
        except _NotJson:
            return f"{check.name} (body is not JSON)"
        except jmes_errors.JMESPathError:
            return check.name
        if not same_json(found, check.expected):
            return check.name
    return None


def same_json(a: Any, b: Any) -> bool:
    """Equality as JSON means it: 1 == 1.0, but true is not 1 (Python says it is)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list):
        return (isinstance(b, list) and len(a) == len(b)
                and all(same_json(x, y) for x, y in zip(a, b)))
    if isinstance(a, dict):
        return (isinstance(b, dict) and a.keys() == b.keys()
                and all(same_json(a[k], b[k]) for k in a))
    if isinstance(a, (int, float)):
        return isinstance(b, (int, float)) and a == b
    return type(a) is type(b) and a == b   # strings, null


class Outcome(NamedTuple):
    """What a step's response came to: ``kind`` None (a success, ``values`` extracted),
    ``"check"`` (``detail``: the failed check's name) or ``"extract"`` (``detail``: why)."""

    values: dict[str, str]
    kind: str | None = None
    detail: str | None = None


def evaluate(rules: ResponseRules, status: int, headers: Headers,
             body: bytes | None) -> Outcome:
    """Checks first, then extractions: a wrong status is reported as the failed check it
    is, not as the extraction it then also breaks."""
    response = Response(status, headers, body, rules.max_body)
    if rules.expect:
        failed = failed_check(rules.expect, response)
        if failed is not None:
            return Outcome({}, "check", failed)
    if not rules.extract:
        return Outcome({})
    try:
        return Outcome(extract(rules.extract, response))
    except ExtractionFailed as exc:
        return Outcome({}, "extract", exc.reason)
