"""``[[users]]`` tables (issue 12 section 2): read from a scenario file, then built into the
run's ``Journeys`` and the endpoints its steps are.

Two stages, as for every other key of a scenario file:

- ``read_users`` (called by ``config.scenario``): each table's keys checked and typed into
  a ``config.settings.UserSpec`` (its steps ``EndpointSpec``s, as ``[[endpoints]]``
  tables are), every error one line naming the file and the table
  (``[[users]] 'shopper' step #2``);
- ``build_journeys`` (called by ``commands.inputs`` once the layers are merged): the
  kinds' feeders loaded, every step's templates parsed against its kind's feeder
  columns *and* the values extracted before it, and the steps laid out as the run's
  endpoints: kind 0's ``on_start`` steps, kind 0's steps, kind 1's ``on_start`` ...,
  each a row named ``"<kind>: METHOD path"`` (or ``"<kind>: <name>"``).

What a step may use in a template: a column of its kind's feeder, a built-in (``seq``,
``user``, ``uuid``, ``randint``), or a value extracted by an ``on_start`` step before it
(for an ``on_start`` step) or by any ``on_start`` step or an earlier step (for a step).
A value extracted only by a later step is refused, named so: at run time it would not
exist yet on the first iteration.

A top-level ``data`` / ``--feeder`` is the feeder of the kinds that have no ``data`` of
their own; when every kind has its own, a top-level one would be unused and is refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from loadgen.config import feeder as feeders
from loadgen.config.describe import describe_value
from loadgen.config.journey import Journeys, UserKind
from loadgen.config.model import MAX_DURATION_S, ConfigError, Endpoint, merge_headers
from loadgen.config.settings import EndpointSpec, UserSpec
from loadgen.config.template import EXTRACTED, parse
from loadgen.config.templated import is_templated, load_feeder, template_endpoint

if TYPE_CHECKING:   # scenario imports this module; only its reader's type is needed here
    from loadgen.config.scenario import _Reader

USER_KEYS = ("name", "weight", "think", "data", "refresh_on", "on_start", "steps")
STEP_KEYS = ("method", "path", "headers", "body", "body_file", "body_template_file", "name",
             "extract", "expect", "max_body")
DATA_KEYS = ("file", "mode")

# Unknown keys that difflib would not match, with where they belong.
USER_HINTS = {"think_time": "think", "sleep": "think", "pause": "think", "wait": "think",
              "feeder": "data", "step": "steps", "requests": "steps", "endpoints": "steps",
              "login": "on_start", "setup": "on_start", "start": "on_start",
              "refresh": "refresh_on", "retry_on": "refresh_on", "kind": "name",
              "share": "weight"}
STEP_HINTS = {"data": "body", "data_file": "body_file", "url": "path", "endpoint": "path",
              "header": "headers", "expect_status": "expect", "status": "expect",
              "check": "expect", "checks": "expect", "extract_json": "extract",
              "think": "think in [[users]]", "think_time": "think in [[users]]",
              "weight": "weight in [[users]]", "refresh_on": "refresh_on in [[users]]"}

_THINK = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_THINK_EXAMPLES = 'examples: "200ms", "100ms..300ms", "1s..3s", 0.5'


# -- reading a scenario's [[users]] (config.scenario) ---------------------------------------


def parse_think(value: Any, what: str) -> tuple[float, float]:
    """``think``: ``"200ms"`` (fixed), ``"100ms..300ms"`` (uniform in the range, inclusive),
    or a number of seconds; 0 is no think time.  ``what`` starts every error line."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"{what} must be a duration like \"200ms\" or a range like "
                          f"\"100ms..300ms\", got {describe_value(value)}")
    if not isinstance(value, str):
        seconds = _finite(value)
        if not 0 <= seconds <= MAX_DURATION_S:
            raise ConfigError(f"{what}: {value!r} is not a think time ({_THINK_EXAMPLES})")
        return seconds, seconds
    low_text, sep, high_text = value.partition("..")
    low = _think_part(low_text, value, what)
    high = _think_part(high_text, value, what) if sep else low
    if high < low:
        raise ConfigError(f"{what}: the range {value!r} runs backwards")
    return low, high


def _think_part(text: str, whole: str, what: str) -> float:
    m = _THINK.match(text)
    if not m:
        raise ConfigError(f"{what}: {whole!r} is not a think time ({_THINK_EXAMPLES})")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds > MAX_DURATION_S:
        raise ConfigError(f"{what}: {whole!r} is too long (at most a year)")
    return seconds


def _finite(value: float) -> float:
    try:
        number = float(value)
    except OverflowError:
        return math.inf
    return number if math.isfinite(number) else math.inf


def read_users(reader: _Reader, value: Any) -> tuple[UserSpec, ...]:
    """The ``[[users]]`` array of a scenario file, typed; every error names the table."""
    if isinstance(value, dict):
        reader.fail("'users' must be an array of tables: write [[users]], not [users]")
    items = reader.array(value, "'users'")
    if not items:
        reader.fail("'users' is empty (write one [[users]] table per kind of virtual user)")
    kinds: list[UserSpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items, 1):
        reader.expect(item, (dict,), f"item {i} of 'users'", "a table ([[users]])")
        kind = _read_kind(reader, item, i)
        if kind.name in seen:
            reader.fail(f"[[users]] #{i} repeats the name {kind.name!r} ([[users]] "
                        f"#{seen[kind.name]}): each kind needs its own name (it names its rows)")
        seen[kind.name] = i
        kinds.append(kind)
    return tuple(kinds)


def _read_kind(reader: _Reader, table: dict[str, Any], index: int) -> UserSpec:
    reader.check_keys(table, USER_KEYS, f"in [[users]] #{index}", USER_HINTS)
    if "name" not in table:
        reader.fail(f"[[users]] #{index} needs 'name' (it names the kind's rows: "
                    "\"<name>: GET /path\")")
    name = reader.string(table["name"], f"'name' in [[users]] #{index}").strip()
    if any(c < " " or c == "\x7f" for c in name) or ": " in name or name.endswith(":"):
        reader.fail(f"'name' in [[users]] #{index}: {table['name']!r} cannot name a kind "
                    "(no control characters, no ': ')")
    where = f"[[users]] {name!r}"
    weight = reader.positive(table["weight"], f"'weight' in {where}") \
        if "weight" in table else 1.0
    think = (0.0, 0.0)
    if "think" in table:
        try:
            think = parse_think(table["think"], f"'think' in {where}")
        except ConfigError as exc:
            reader.fail(str(exc))
    data, mode = _read_data(reader, table["data"], where) if "data" in table else (None, None)
    on_start = _read_steps(reader, table, "on_start", where, required=False)
    steps = _read_steps(reader, table, "steps", where, required=True)
    _no_repeated_rows(reader, on_start, steps, where)
    refresh_on: frozenset[int] = frozenset()
    if "refresh_on" in table:
        refresh_on = reader.statuses(table["refresh_on"], f"'refresh_on' in {where}")
        if not on_start:
            reader.fail(f"'refresh_on' in {where} re-runs the kind's on_start steps, and it has "
                        "none: add [[users.on_start]] (e.g. the login) or leave refresh_on out")
    return UserSpec(name, steps, on_start, weight, think, refresh_on, data, mode, reader.path)


def _read_data(reader: _Reader, value: Any, where: str) -> tuple[str, str | None]:
    """``data = { file = "users.csv", mode = "per-user" }``: the file from the scenario's folder."""
    label = f"'data' in {where}"
    table = reader.table(value, label)
    reader.check_keys(table, DATA_KEYS, f"in {label}", {"path": "file"})
    if "file" not in table:
        reader.fail(f"{label} needs 'file' (a CSV or JSON Lines feeder)")
    path = reader.resolve(reader.string(table["file"], f"'file' in {label}"))
    mode = None
    if "mode" in table:
        mode = reader.string(table["mode"], f"'mode' in {label}")
        if mode not in feeders.MODES:
            reader.fail(f"'mode' in {label}: {mode!r} is not one of {', '.join(feeders.MODES)}")
    return path, mode


def _read_steps(reader: _Reader, table: dict[str, Any], key: str, where: str,
                required: bool) -> tuple[EndpointSpec, ...]:
    header = f"[[users.{key}]]"
    if key not in table:
        if required:
            reader.fail(f"{where} has no steps: add {header} tables (what each iteration sends)")
        return ()
    items = table[key]
    if isinstance(items, dict):
        reader.fail(f"'{key}' in {where} must be an array of tables: write {header}, "
                    f"not [users.{key}]")
    items = reader.array(items, f"'{key}' in {where}")
    if not items:
        reader.fail(f"'{key}' in {where} is empty" + (": a kind needs at least one step"
                                                      if required else ""))
    what = "step" if key == "steps" else key
    specs = []
    for i, item in enumerate(items, 1):
        swhere = f"{where} {what} #{i}"
        reader.expect(item, (dict,), swhere, f"a table ({header})")
        specs.append(reader.request(item, swhere, STEP_KEYS, STEP_HINTS, step=True))
    return tuple(specs)


def _no_repeated_rows(reader: _Reader, on_start: tuple[EndpointSpec, ...],
                      steps: tuple[EndpointSpec, ...], where: str) -> None:
    """Each step is a row of the report: two with one name would be one row."""
    seen: dict[str, str] = {}
    for what, specs in (("on_start", on_start), ("step", steps)):
        for i, spec in enumerate(specs, 1):
            row = row_name(spec)
            if row in seen:
                reader.fail(f"{where} {what} #{i} repeats {row!r} ({seen[row]}): each step is "
                            "a row of the report; give one a name = \"...\"")
            seen[row] = f"{what} #{i}"


def row_name(spec: EndpointSpec) -> str:
    """A step's name within its kind: ``name``, or ``METHOD path`` as written."""
    return spec.name or f"{spec.method} {spec.path}"


# -- building the run's journeys (commands.inputs) ------------------------------------------


def build_journeys(kinds: tuple[UserSpec, ...], run_headers: tuple[tuple[str, str], ...],
                   expect_status: frozenset[int], default_feeder: feeders.Feeder | None,
                   cluster: str | None, iterations: int | None
                   ) -> tuple[tuple[Endpoint, ...], Journeys]:
    """The run's endpoints (every kind's steps, ``on_start`` first, kind after kind) and its
    ``Journeys``.  ``default_feeder``: the top-level ``data`` / ``--feeder``, for the kinds
    without ``data`` of their own.  ``expect_status``: the run's success set, a step's
    default (its ``expect.status`` replaces it, as for ``[[endpoints]]``)."""
    if default_feeder is not None and all(k.data is not None for k in kinds):
        raise ConfigError(f"{kinds[0].source}: the top-level data (or --feeder) "
                          f"{default_feeder.name} would be unused: every [[users]] kind has its "
                          "own 'data'; leave it out")
    loaded: dict[tuple[str, str | None], feeders.Feeder] = {}
    endpoints: list[Endpoint] = []
    built: list[UserKind] = []
    for kind in kinds:
        where = f"{kind.source}: [[users]] {kind.name!r}"
        feeder: feeders.Feeder | None = default_feeder
        if kind.data is not None:
            key = (kind.data, kind.data_mode)
            if key not in loaded:
                try:
                    own = load_feeder(kind.data, kind.data_mode, cluster)
                except ConfigError as exc:
                    raise ConfigError(f"{where} data: {exc}") from None
                assert own is not None   # a file was given
                loaded[key] = own
            feeder = loaded[key]
        rows = _kind_rows(kind, where, run_headers, expect_status, feeder)
        first = len(endpoints)
        endpoints.extend(rows)
        start = tuple(range(first, first + len(kind.on_start)))
        steps = tuple(range(first + len(kind.on_start), first + len(rows)))
        for status in sorted(kind.refresh_on):
            for i in steps:
                if status in endpoints[i].expect_status:
                    raise ConfigError(f"{where}: refresh_on {status} is a success of step "
                                      f"{endpoints[i].name!r} (its expect status, or the run's "
                                      "expect_status): it could never trigger a refresh")
        built.append(UserKind(kind.name, kind.weight, kind.think, start, steps,
                              kind.refresh_on, feeder))
    return tuple(endpoints), Journeys(tuple(built), iterations)


def _kind_rows(kind: UserSpec, where: str, run_headers: tuple[tuple[str, str], ...],
               expect_status: frozenset[int], feeder: feeders.Feeder | None
               ) -> list[Endpoint]:
    """One kind's steps as endpoints (on_start first), their templates parsed: each may use
    the values extracted before it (see the module's docstring)."""
    columns = set(feeder.columns) if feeder is not None else set()
    later: dict[str, str] = {}   # every name the kind extracts -> where first
    for what, specs in (("on_start", kind.on_start), ("step", kind.steps)):
        for i, spec in enumerate(specs, 1):
            for name in _extracts(spec):
                later.setdefault(name, f"{what} #{i}")
                if name in columns:
                    raise ConfigError(f"{where} {what} #{i}: extract {name!r} is also a column "
                                      f"of feeder {feeder.name if feeder else ''}: rename one "
                                      "(a template could not say which it means)")
    rows: list[Endpoint] = []
    known: list[str] = []   # extracted so far, in order
    for what, specs in (("on_start", kind.on_start), ("step", kind.steps)):
        for i, spec in enumerate(specs, 1):
            swhere = f"{where} {what} #{i}"
            e = replace(spec, name=f"{kind.name}: {row_name(spec)}").endpoint(expect_status)
            rows.append(_templated(e, run_headers, feeder, swhere, known, later,
                                   f"{what} #{i}"))
            known.extend(n for n in _extracts(spec) if n not in known)
    return rows


def _templated(e: Endpoint, run_headers: tuple[tuple[str, str], ...],
               feeder: feeders.Feeder | None, where: str, known: list[str],
               later: dict[str, str], here: str) -> Endpoint:
    """``e`` with its templates parsed; a name extracted only by a later step (or by this
    step itself) is refused as such, not as an unknown name."""
    def name_part(part: str) -> str:
        return f"{where}: {part}"

    try:
        return template_endpoint(e, run_headers, feeder, name_part, known)
    except ConfigError:
        _explain_later(e, run_headers, feeder, where, known, later, here)
        raise


def _explain_later(e: Endpoint, run_headers: tuple[tuple[str, str], ...],
                   feeder: feeders.Feeder | None, where: str, known: list[str],
                   later: dict[str, str], here: str) -> None:
    """If the first part of ``e`` that fails to parse (path, headers, body: the order
    ``template_endpoint`` parses them) parses once every name the kind extracts is known,
    its error was a value used before it is extracted: raise that, naming the step that
    extracts it.  Otherwise the original error stands."""
    columns = feeder.columns if feeder is not None else ()
    own = {name.lower() for name, _ in e.headers}
    parts = [("path", e.path)]
    parts += [(f"header {n!r}" if n.lower() in own else f"--header {n!r}", v)
              for n, v in merge_headers(run_headers, e.headers) if is_templated(v)]
    if e.template_body and b"{{" in e.body:
        parts.append(("body", e.body.decode("utf-8", "replace")))
    for part, text in parts:
        try:
            parse(text, where, columns, known)
            continue
        except ConfigError:
            pass
        try:
            t = parse(text, where, columns, list(later))
        except ConfigError:
            return   # some other problem: the original error stands
        for p in t.placeholders:
            if p.kind != EXTRACTED or p.name in known:
                continue
            if later[p.name] == here:
                raise ConfigError(f"{where}: {part}: '{{{{ {p.name} }}}}' is extracted by "
                                  "this step from its own response: only the steps after it "
                                  "can use it") from None
            raise ConfigError(f"{where}: {part}: '{{{{ {p.name} }}}}' is extracted by "
                              f"{later[p.name]}, which runs after this step: a step can use "
                              "only values extracted by on_start steps and the steps before "
                              "it") from None
        return


def _extracts(spec: EndpointSpec) -> Iterable[str]:
    return [x.name for x in spec.rules.extract] if spec.rules is not None else []

