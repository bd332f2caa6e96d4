"""``{{ name }}`` templates in paths, header values and bodies, parsed once and checked early.

A template is parsed and validated in the coordinator, before any load, so a
typo is one line and exit 2 rather than a run of 404s; the worker only
compiles the parsed form (``engine.render``).  The syntax is the part of Jinja's
that a request needs (Artillery and Ansible users write ``{{ name }}`` the same way):

- ``{{ name }}`` is a variable: a feeder column, a value extracted from an
  earlier response, ``seq`` (the request's index in the whole run, 0-based),
  ``user`` (the virtual user's index) or ``uuid`` (a random UUID, one per
  request: the same in the path, headers and body of that request).
- ``{{ randint(A, B) }}`` draws an integer in [A, B] (inclusive, integer
  literals); each occurrence draws anew, as a function call would.
- Whitespace inside the braces is optional.  Names are ``[A-Za-z_][A-Za-z0-9_.-]*``
  (so a CSV column ``user-id`` can be used); a column that is not such a name
  cannot be referenced.
- As in Jinja, only ``{{`` opens a placeholder: a lone ``{``, ``}`` or ``}}`` is
  literal text, so JSON bodies need no escaping (``{"a": {"b": {{ id }}}}``
  renders the last ``}}}`` as a placeholder's end then ``}``).
- A literal ``{{`` is written as Jinja writes it: ``{{ '{{' }}`` (a quoted
  string inside the braces is literal text; either quote, no escapes).

Standard library only, like the rest of ``config``.  The result is a frozen,
picklable ``Template`` (literal parts and typed placeholders) that travels in
the worker plan.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from loadgen.config.model import ConfigError

# The kinds of placeholder: where a value comes from.
COLUMN, EXTRACTED, SEQ, USER, UUID, RANDINT = (
    "column", "extracted", "seq", "user", "uuid", "randint")
#: Variables every template knows; ``randint`` is a function, not a variable.
BUILTINS = (SEQ, USER, UUID)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_CALL = re.compile(r"randint\s*\((.*)\)", re.DOTALL)
_INT = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One ``{{ ... }}``: where its value comes from (``kind``) and, for randint, its bounds."""

    kind: str
    name: str          # the column or extracted name; for built-ins the kind itself
    low: int = 0       # randint only: inclusive bounds
    high: int = 0


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: ``literals[0] p[0] literals[1] p[1] ... literals[n]``.

    ``source`` is the text as the user wrote it: the name of a templated endpoint
    row (``GET /items/{{ id }}``) and what error lines quote.
    """

    source: str
    literals: tuple[str, ...]
    placeholders: tuple[Placeholder, ...]

    @property
    def static(self) -> bool:
        """No placeholders: the request can keep its prebuilt bytes."""
        return not self.placeholders

    @property
    def text(self) -> str:
        """The literal text (escapes resolved); the whole value when ``static``."""
        return "".join(self.literals)

    @property
    def names(self) -> tuple[str, ...]:
        """Every variable used, once each, in order of first use (``randint`` included)."""
        return tuple(dict.fromkeys(p.name for p in self.placeholders))

    @property
    def columns(self) -> tuple[str, ...]:
        """The feeder columns used, once each."""
        return tuple(dict.fromkeys(p.name for p in self.placeholders if p.kind == COLUMN))

    @property
    def extracted(self) -> tuple[str, ...]:
        """The extracted values used, once each."""
        return tuple(dict.fromkeys(p.name for p in self.placeholders if p.kind == EXTRACTED))

    def substitute(self, values: Mapping[str, str]) -> str:
        """The text with each placeholder replaced by ``values[name]`` (``randint``: its low
        bound when absent).  The slow, obvious renderer: config-time samples and tests."""
        out = [self.literals[0]]
        for p, lit in zip(self.placeholders, self.literals[1:]):
            out.append(values.get(p.name, str(p.low)) if p.kind == RANDINT else values[p.name])
            out.append(lit)
        return "".join(out)


@dataclass(frozen=True, slots=True)
class RequestTemplates:
    """An endpoint's templated parts, parsed in the coordinator and pickled to workers.

    ``headers`` maps a header value's text (as the user wrote it) to its template:
    the worker merges headers as always (run's, endpoint's, login's, proxy's) and
    looks each value up here, so only values the user wrote are ever templated.
    ``body`` None: the body is sent byte for byte.
    """

    path: Template
    headers: tuple[tuple[str, Template], ...] = ()
    body: Template | None = None


#: Stand-ins for what is only known per request, to render a config-time sample.
SAMPLE_UUID = "00000000-0000-4000-8000-000000000000"


def sample(t: Template, row: Mapping[str, str] | None = None) -> str:
    """``t`` rendered as request 0 of user 0 with ``row`` (e.g. the feeder's first row, as a
    column -> value mapping), for ``check_rendered_path`` / ``check_rendered_header`` before
    any load.  Extracted values, unknown until run time, render as ``x`` (they are checked
    by the worker when extracted); uuid as a fixed UUID; randint as its low bound."""
    values = {SEQ: "0", USER: "0", UUID: SAMPLE_UUID, **(row or {})}
    for name in t.extracted:
        values.setdefault(name, "x")
    return t.substitute(values)


def static(text: str) -> Template:
    """``text`` as a template without placeholders (a value that is never parsed)."""
    return Template(text, (text,), ())


def parse(text: str, where: str, columns: Iterable[str] = (),
          extracted: Iterable[str] = ()) -> Template:
    """Parse ``text``; ``where`` names the option or file in error lines.

    ``columns`` are the feeder's column names, ``extracted`` the names of values
    extracted by earlier steps.  A name that is both (or both a column and a
    built-in) is refused where it is used: which value would be sent is not
    something to guess.
    """
    cols, extr = frozenset(columns), frozenset(extracted)
    literals: list[str] = []
    placeholders: list[Placeholder] = []
    pending = []   # literal text since the last placeholder
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            pending.append(text[pos:])
            break
        pending.append(text[pos:start])
        end = text.find("}}", start + 2)
        if end < 0:
            shown = text[start:start + 24] + ("..." if len(text) > start + 24 else "")
            raise ConfigError(f"{where}: '{{{{' at character {start + 1} ({shown!r}) is never "
                              "closed by '}}'")
        raw = text[start:end + 2]
        quoted = _QUOTED.fullmatch(text[start + 2:end].strip())
        if quoted:
            pending.append(quoted.group(1) if quoted.group(1) is not None else quoted.group(2))
        else:
            literals.append("".join(pending))
            pending = []
            placeholders.append(_placeholder(text[start + 2:end].strip(), raw, where, cols, extr))
        pos = end + 2
    literals.append("".join(pending))
    return Template(text, tuple(literals), tuple(placeholders))


def _placeholder(expr: str, raw: str, where: str, cols: frozenset[str],
                 extr: frozenset[str]) -> Placeholder:
    """The placeholder ``raw`` (whose inside is ``expr``), or the one line saying what is wrong."""
    if not expr:
        raise ConfigError(f"{where}: empty placeholder {raw!r}: write a variable name inside")
    call = _CALL.fullmatch(expr)
    if call:
        return _randint(call.group(1), raw, where)
    if not _NAME.fullmatch(expr):
        hint = (" (as in Jinja, '{{' opens it: write a literal '{' before a placeholder as "
                "{{ '{' }})" if expr.startswith("{") else "")
        raise ConfigError(f"{where}: {raw!r} is not a variable name or randint(A, B){hint}")
    sources = [kind for kind, found in ((COLUMN, expr in cols), (EXTRACTED, expr in extr),
                                        (expr, expr in BUILTINS)) if found]
    if len(sources) > 1:
        what = " and ".join({COLUMN: "a feeder column", EXTRACTED: "an extracted value"}
                            .get(s, "a built-in variable") for s in sources)
        raise ConfigError(f"{where}: {raw!r} is ambiguous: {expr!r} is {what}; rename one")
    if not sources:
        if expr == RANDINT:
            raise ConfigError(f"{where}: {raw!r}: randint needs its bounds: randint(A, B)")
        raise ConfigError(f"{where}: unknown variable {expr!r} in {raw!r} "
                          f"(known: {_known(cols, extr)})")
    return Placeholder(sources[0], expr)


def _randint(args: str, raw: str, where: str) -> Placeholder:
    parts = [a.strip() for a in args.split(",")]
    if len(parts) != 2 or not all(_INT.fullmatch(a) for a in parts):
        raise ConfigError(f"{where}: {raw!r}: randint takes two integer literals, "
                          "randint(A, B)")
    low, high = int(parts[0]), int(parts[1])
    if low > high:
        raise ConfigError(f"{where}: {raw!r}: randint's first bound is above its second "
                          f"({low} > {high})")
    return Placeholder(RANDINT, RANDINT, low, high)


def _known(cols: frozenset[str], extr: frozenset[str]) -> str:
    known = "seq, user, uuid, randint(A, B)"
    known += "; feeder columns: " + (", ".join(sorted(cols)) if cols else "none (no feeder)")
    if extr:
        known += "; extracted: " + ", ".join(sorted(extr))
    return known


# --- Is a rendered value valid HTTP? ------------------------------------------------------
# Checked at config time on a sample (and on every feeder row, see config.feeder) and, for
# values only known at run time (extracted ones), by the worker before it sends: each is one
# regex search, ~0.1-0.2 us.

#: Not allowed in a field value (RFC 9110 §5.5): controls but HTAB (CR, LF, NUL...), DEL, and
#: anything beyond ISO-8859-1 (it cannot be encoded; obs-text 0x80-0xFF is kept, as today).
_HEADER_BAD = re.compile(r"[^\t\x20-\x7e\x80-\xff]")
#: Not allowed in a request target (origin form, RFC 9112 §3.2): spaces, controls, non-ASCII
#: (percent-encode it) and '#' (a fragment never goes on the wire).
_TARGET_BAD = re.compile(r"[^\x21-\x7e]|#")


def header_value_safe(value: str) -> bool:
    """Whether ``value`` can be sent as a header value as it is (the run-time check)."""
    return _HEADER_BAD.search(value) is None


def target_value_safe(value: str) -> bool:
    """Whether ``value`` can be placed in a request target as it is (the run-time check)."""
    return _TARGET_BAD.search(value) is None


def header_flaw(value: str) -> str | None:
    """The first character that cannot go in a header value, named ("CR"), or None."""
    bad = _HEADER_BAD.search(value)
    return None if bad is None else _char(bad.group())


def target_flaw(value: str) -> str | None:
    """The first character that cannot go in a request target, named ("a space"), or None."""
    bad = _TARGET_BAD.search(value)
    return None if bad is None else _char(bad.group())


def header_value_problem(value: str) -> str | None:
    """What makes ``value`` an invalid header value, or None."""
    flaw = header_flaw(value)
    return None if flaw is None else f"contains {flaw}, not allowed in a header"


def path_problem(path: str) -> str | None:
    """What makes the rendered ``path`` an invalid request target, or None."""
    if not path.startswith("/"):
        return f"{path!r} does not start with '/'"
    bad = _TARGET_BAD.search(path)
    if bad is None:
        return None
    hint = " (percent-encode it)" if bad.group() != "#" else ""
    return f"{path!r} contains {_char(bad.group())}, not allowed in a request path{hint}"


def check_rendered_path(path: str, where: str) -> None:
    """Refuse a rendered path (e.g. the sample from the first feeder row) that is not HTTP."""
    problem = path_problem(path)
    if problem:
        raise ConfigError(f"{where}: the rendered path {problem}")


def check_rendered_header(name: str, value: str, where: str) -> None:
    """Refuse a rendered header value that is not HTTP; the value itself is not shown
    (header values may be secrets: tokens, passwords from a per-user feeder)."""
    problem = header_value_problem(value)
    if problem:
        raise ConfigError(f"{where}: the rendered value of header {name!r} {problem}")


def _char(c: str) -> str:
    names = {"\r": "CR", "\n": "LF", "\x00": "NUL", " ": "a space", "#": "'#'", "\t": "a tab"}
    return names.get(c, f"U+{ord(c):04X}")
