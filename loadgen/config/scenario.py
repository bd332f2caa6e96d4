"""Scenario files: a TOML file that says everything ``loadgen run`` options can.

``loadgen run --config FILE`` reads FILE; options typed on the command line win
over the file.  Example (every key is optional; an empty file is valid)::

    # configs/example.toml
    url = "http://localhost:5000"
    requests = 1000               # total requests (exact)
    duration = "30s"              # run time; with requests, whichever ends first
    concurrency = 50              # total connections
    workers = 2                   # worker processes
    timeout = "10s"               # per-request timeout
    insecure = false              # true: do not verify TLS certificates
    no_keepalive = false          # true: a new connection for every request
    # cacert = "ca.pem"           # trust this CA bundle (PEM) instead of the system's
    # cert = "client.pem"         # client certificate (mTLS); key = "client.key" if apart
    quiet = false                 # true: no live progress on stderr
    thresholds = ["p99<200ms", "failures<1%"]
    save = "results.json"         # results document (JSON)
    visualize = true              # draw the charts
    output_image = "performance.png"
    headers = { "X-Env" = "staging" }   # or ["X-Env: staging"]; sent on every request
    expect_status = "200-399"     # statuses that count as a success (default "200-299")
    # cluster = "tcp://10.0.0.5:8786"   # instead of `workers`: run on a Dask scheduler's workers
    # workers_per_node = 8              # with cluster: processes per node (default: its CPUs)
    # proxy = "http://127.0.0.1:3128"   # every request through this HTTP proxy ("" for none)
    # no_proxy = true                   # ignore HTTP_PROXY / HTTPS_PROXY / NO_PROXY

    # Open model (instead of the closed model above): a constant rate ...
    rate = 200                    # requests per second in total, bounded by duration/requests
    max_connections = 400         # connections may grow to this when all are busy
    # ... and/or stages, ramping linearly from the previous rate (the first from `rate`, or 0):
    [[stages]]
    duration = "30s"
    rate = 100                    # or: stages = ["30s:100", "1m:2000", "30s:0"]
    # Or ramp the closed model's users (as --user-stage; the first from `concurrency`, or 0):
    # user_stages = ["30s:100", "1m:100", "30s:0"]

    [auth]                        # present => log in first (auth = true alone uses the defaults)
    username = "admin"
    password = "admin123"         # or leave it out and set LOADGEN_PASSWORD
    login_endpoint = "/api/auth/login"
    token_field = "access_token"

    # What to request: either plain paths, sharing the top-level method/data/data_file ...
    #   endpoints = ["/api/health", "/api/dataset/summary"]
    #   method = "POST"
    #   data = '{"text": "hi"}'     # or data_file = "body.json"
    # ... or one table per endpoint, each complete by itself, with a weight in the mix:
    [[endpoints]]
    path = "/api/dataset/transform"
    method = "POST"               # default: GET, or POST when there is a body
    weight = 3                    # share of requests, relative to the others (default 1)
    headers = { "Content-Type" = "application/json" }
    body = '{"text": "hello"}'    # or body_file = "transform-body.json"
    expect_status = [200, 201]    # this endpoint's successes (default: the top-level's)

    # Or journeys instead of endpoints: kinds of virtual users, each with its login and
    # steps (keys and rules in ``config.users``; the README's "User journeys"):
    # iterations = 200            # journeys: total iterations, exact (instead of requests)
    # [[users]]
    # name = "shopper"
    # [[users.steps]]
    # path = "/shop/items"

Rules:

- Key names are the ``loadgen run`` option names with ``_`` for ``-``
  (``output_image``, ``max_connections``...); ``endpoints``, ``headers``,
  ``stages`` and ``thresholds`` are arrays.  Durations are strings like
  ``"30s"``, ``"2m"``, ``"500ms"`` or a number of seconds.
- Files the scenario reads (``data_file``, ``body_file``, ``cacert``, ``cert``,
  ``key``) are relative to the
  scenario file's folder; files it writes (``save``, ``output_image``) are
  relative to the current directory, as on the command line.
- ``[[endpoints]]`` tables and top-level ``method``/``data``/``data_file``
  cannot be combined (each table says its own method and body); top-level
  ``headers`` go on every request either way.  In an ``endpoints`` array, a
  plain string next to tables is short for ``{ path = "..." }``.  A method and
  path may appear only once (it names the endpoint's row in the report).
- ``expect_status`` is a string as ``--expect-status`` takes it
  (``"200-399"``, ``"200,201,304"``, ``"2xx"``), an integer, or an array of
  integers and such strings.  An endpoint's own ``expect_status`` replaces the
  top-level one (or ``--expect-status``) for that endpoint; an endpoint's
  ``headers`` replace top-level headers (and ``--header``) of the same name.
- Anything wrong is one line naming the file and the key: a TOML syntax error
  (with its line and column), an unknown key (with the close match), a wrong
  type, or a bad value (the same message as the command-line option).

``load_scenario(path)`` returns a ``config.settings.Settings``: the values the
file sets, typed as ``build_config`` uses them (durations in seconds, ``stages``
as ``StageSpec``, ``headers`` as ``(name, value)`` pairs, ``expect_status`` as a
frozenset, a plain ``endpoints`` array as normalized paths, ``[[endpoints]]``
tables as ``endpoint_specs``: ``EndpointSpec``, ``[[users]]`` tables as ``users``:
``UserSpec``), None for the keys it leaves out.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import stat
import tomllib
from collections.abc import Callable
from functools import partial
from typing import Any, NoReturn, TypeVar

from loadgen.config.checks import parse_rules
from loadgen.config.describe import describe_value
from loadgen.config.feeder import MODES
from loadgen.config.model import (
    ConfigError,
    Target,
    header_value,
    normalize_path,
    parse_duration,
    parse_header,
    parse_method,
    parse_status_set,
    parse_timeout,
)
from loadgen.config.proxy import proxy_option
from loadgen.config.settings import EndpointSpec, Settings
from loadgen.config.stages import StageSpec, check_stage_rate, parse_stage, parse_user_stage
from loadgen.config.templated import templated_path
from loadgen.config.users import read_users

T = TypeVar("T")
V = TypeVar("V")

TOP_KEYS = (
    "url", "endpoints", "requests", "concurrency", "auth", "save", "visualize", "output_image",
    "workers", "duration", "method", "headers", "data", "data_file", "timeout", "insecure",
    "rate", "stages", "max_connections", "quiet", "thresholds", "cluster", "workers_per_node",
    "cacert", "cert", "key", "expect_status", "proxy", "no_proxy", "no_keepalive",
    "user_stages", "users", "iterations",
)
AUTH_KEYS = ("username", "password", "login_endpoint", "token_field")
ENDPOINT_KEYS = ("path", "method", "weight", "headers", "body", "body_file",
                 "body_template_file", "expect_status", "name", "expect", "max_body")
DATA_KEYS = ("file", "mode")
STAGE_KEYS = ("duration", "rate")
MAX_SCENARIO_BYTES = 16 << 20

# Unknown keys that difflib would not match, with where they belong.
_HINTS = {
    "top": {"body": "data", "body_file": "data_file",
            "username": "[auth] username", "password": "[auth] password",
            "login_endpoint": "[auth] login_endpoint", "token_field": "[auth] token_field",
            "user": "[auth] username", "connections": "concurrency", "processes": "workers",
            "rps": "rate", "stage": "stages", "header": "headers", "endpoint": "endpoints",
            "threshold": "thresholds", "verify": "insecure", "output": "save",
            "ca_cert": "cacert", "ca": "cacert", "client_cert": "cert", "client_key": "key",
            "expect": "expect_status", "success_status": "expect_status",
            "status": "expect_status", "keepalive": "no_keepalive",
            "keep_alive": "no_keepalive", "disable_keepalive": "no_keepalive"},
    "endpoints": {"data": "body", "data_file": "body_file", "url": "path", "endpoint": "path",
                  "header": "headers", "status": "expect_status",
                  "check": "expect", "checks": "expect"},
    "auth": {"user": "username", "login": "login_endpoint", "token": "token_field"},
    "stages": {"target": "rate", "time": "duration"},
}
_OPTION_PREFIX = re.compile(r"^--[a-z][a-z-]*: ")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token, as config.py


def load_scenario(path: str) -> Settings:
    """Read and validate a scenario file (format in this module's docstring).

    Returns the typed values the file sets (a ``Settings``: None for the keys it
    does not).  Raises ``ConfigError`` (one line) for anything wrong with the file.
    """
    try:
        if stat.S_ISCHR(os.stat(path).st_mode):   # /dev/zero, /dev/urandom: endless
            raise ConfigError(f"{path}: cannot read scenario file: not a regular file")
        with open(path, "rb") as f:
            raw = f.read(MAX_SCENARIO_BYTES + 1)
    except (OSError, ValueError) as exc:   # ValueError: a NUL byte in the name
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{path}: cannot read scenario file: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    if len(raw) > MAX_SCENARIO_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_SCENARIO_BYTES >> 20} MiB: "
                          "not a scenario file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse_scenario(text, path, base_dir=os.path.dirname(path))


def parse_scenario(text: str, path: str = "<scenario>", base_dir: str = "") -> Settings:
    """``load_scenario`` on text already read; relative file names resolve from ``base_dir``."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except (ValueError, RecursionError) as exc:  # e.g. nesting too deep for the parser
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return _Reader(path, base_dir).top(doc)


class _Reader:
    """Validates one parsed document; every error names the file and the key."""

    def __init__(self, path: str, base_dir: str) -> None:
        self.path = path
        self.base_dir = base_dir

    # -- errors ---------------------------------------------------------------

    def fail(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.path}: {message}")

    def check_keys(self, table: dict[str, Any], allowed: tuple[str, ...], where: str,
                   hints: dict[str, str]) -> None:
        for key in table:
            if key in allowed:
                continue
            suggestion = hints.get(key) or hints.get(key.replace("-", "_"))
            if suggestion is None:
                close = difflib.get_close_matches(key.replace("-", "_"), allowed, n=1, cutoff=0.6)
                suggestion = close[0] if close else None
            hint = f" (did you mean '{suggestion}'?)" if suggestion else ""
            self.fail(f"unknown key {key!r} {where}{hint}")

    def reuse(self, parser: Callable[[V], T], value: V, label: str) -> T:
        """Run a command-line parser; on error, its message with the key instead of the option."""
        try:
            return parser(value)
        except ConfigError as exc:
            self.fail(f"{label}: {_OPTION_PREFIX.sub('', str(exc))}")

    # -- typed getters ----------------------------------------------------------

    def expect(self, value: Any, kinds: tuple[type, ...], label: str, expected: str) -> None:
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            self.fail(f"{label} must be {expected}, got {describe_value(value)}")

    def string(self, value: Any, label: str, empty_ok: bool = False) -> str:
        self.expect(value, (str,), label, "a string")
        if not empty_ok and not value.strip():
            self.fail(f"{label} must not be empty")
        return value

    def boolean(self, value: Any, label: str) -> bool:
        self.expect(value, (bool,), label, "true or false")
        return value

    def count(self, value: Any, label: str) -> int:
        self.expect(value, (int,), label, "an integer")
        if value < 1:
            self.fail(f"{label} must be 1 or more, got {value}")
        return value

    def positive(self, value: Any, label: str) -> float:
        self.expect(value, (int, float), label, "a number")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number) or number <= 0:
            self.fail(f"{label} must be a finite number greater than zero, got {describe_value(value)}")
        return number

    def duration_text(self, value: Any, label: str) -> str:
        """A duration as written: "30s", "2m", "500ms", or a number of seconds as text."""
        self.expect(value, (str, int, float), label, 'a duration string like "30s" or a number')
        return value if isinstance(value, str) else _number_text(value)

    def duration(self, value: Any, label: str) -> float:
        """A duration in seconds, from "30s", "2m", "500ms", or a number of seconds."""
        return parse_duration(self.duration_text(value, label), f"{self.path}: {label}")

    def array(self, value: Any, label: str) -> list[Any]:
        self.expect(value, (list,), label, "an array")
        return value

    def table(self, value: Any, label: str) -> dict[str, Any]:
        self.expect(value, (dict,), label, "a table")
        return value

    def headers(self, value: Any, label: str) -> tuple[tuple[str, str], ...]:
        """A table {"Name" = "value"} or an array of "Name: value" strings."""
        self.expect(value, (dict, list), label,
                    'a table like { "X-Env" = "staging" } or an array of "Name: value" strings')
        if isinstance(value, list):
            return tuple(self.reuse(parse_header, self.string(item, f"item {i} of {label}"), label)
                         for i, item in enumerate(value, 1))
        parsed = []
        for name, item in value.items():
            if not _HEADER_NAME.fullmatch(name):
                self.fail(f"{label}: {name!r} is not a valid header name")
            item = self.string(item, f"the value of {name!r} in {label}", empty_ok=True)
            parsed.append((name, self.reuse(partial(header_value, name), item, label)))
        return tuple(parsed)

    def statuses(self, value: Any, label: str) -> frozenset[int]:
        """A status list as --expect-status takes it, a status, or an array of either."""
        self.expect(value, (str, int, list), label,
                    'a status list like "200-399", a status, or an array of them')
        items = value if isinstance(value, list) else [value]
        if not items:
            self.fail(f"{label} is empty")
        for i, item in enumerate(items, 1):
            self.expect(item, (str, int), f"item {i} of {label}", "a status or a status list")
        return self.reuse(parse_status_set, ",".join(str(item) for item in items), label)

    def read_file(self, value: Any, label: str) -> bytes:
        name = self.resolve(self.string(value, label))
        try:
            if not stat.S_ISREG(os.stat(name).st_mode):  # a FIFO or device would block or never end
                self.fail(f"{label}: cannot read {name}: not a regular file")
            with open(name, "rb") as f:
                return f.read()
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
            self.fail(f"{label}: cannot read {name}: {getattr(exc, 'strerror', None) or exc}")

    def resolve(self, name: str) -> str:
        return os.path.join(self.base_dir, os.path.expanduser(name))

    # -- the document -------------------------------------------------------------

    def top(self, doc: dict[str, Any]) -> Settings:
        self.check_keys(doc, TOP_KEYS, "at the top level", _HINTS["top"])
        out: dict[str, Any] = {}
        for key, value in doc.items():
            label = f"'{key}'"
            if key == "url":
                out[key] = self.string(value, label)
                self.reuse(Target.parse, value, label)
            elif key in ("requests", "concurrency", "workers", "max_connections",
                         "workers_per_node", "iterations"):
                out[key] = self.count(value, label)
            elif key == "duration":
                out[key] = self.duration(value, label)
            elif key == "timeout":   # also at least 1 ms, as --timeout
                out[key] = self.reuse(parse_timeout, self.duration_text(value, label), label)
            elif key in ("visualize", "insecure", "quiet", "no_proxy", "no_keepalive"):
                out[key] = self.boolean(value, label)
            elif key in ("save", "output_image", "cluster"):
                out[key] = self.string(value, label)
            elif key in ("data_file", "cacert", "cert", "key"):   # read later, checked then
                out[key] = self.resolve(self.string(value, label))
            elif key == "proxy":   # '' is no proxy, as --proxy ''
                out[key] = self.reuse(proxy_option, self.string(value, label, empty_ok=True),
                                      label)
            elif key == "data" and isinstance(value, dict):   # a feeder: { file, mode }
                out.update(self.feeder(value))
            elif key == "data":
                out[key] = self.string(value, label, empty_ok=True)
            elif key == "method":
                out[key] = self.reuse(parse_method, self.string(value, label), label)
            elif key == "rate":
                out[key] = self.positive(value, label)
            elif key == "headers":
                out[key] = self.headers(value, label)
            elif key == "expect_status":
                out[key] = self.statuses(value, label)
            elif key == "stages":
                out[key] = tuple(self.stage(item, i) for i, item in
                                 enumerate(self.array(value, label), 1))
            elif key == "user_stages":   # "DURATION:USERS" strings, as --user-stage
                out[key] = tuple(
                    self.reuse(parse_user_stage, self.string(item, f"item {i} of {label}"),
                               f"item {i} of {label}")
                    for i, item in enumerate(self.array(value, label), 1))
            elif key == "thresholds":   # parsed with the run's endpoints known (build_config)
                out[key] = tuple(self.string(item, f"item {i} of {label}")
                                 for i, item in enumerate(self.array(value, label), 1))
            elif key == "auth":
                out.update(self.auth(value))
            elif key == "endpoints":
                out.update(self.endpoints(value))
            elif key == "users":
                out[key] = read_users(self, value)
        if "endpoint_specs" in out:
            clash = [k for k in ("method", "data", "data_file") if k in doc
                     and not (k == "data" and isinstance(doc[k], dict))]
            if clash:
                self.fail(f"'{clash[0]}' at the top level applies to plain endpoint paths; "
                          "with [[endpoints]] tables, set it in each table")
        self.journey_clashes(doc)
        return Settings(**out)

    def journey_clashes(self, doc: dict[str, Any]) -> None:
        """``[[users]]`` say what to request, step by step: keys that say it for plain
        endpoints cannot be combined with them; ``iterations`` counts their iterations."""
        if "users" not in doc:
            if "iterations" in doc:
                self.fail("'iterations' counts journey iterations: it needs [[users]] "
                          "(for endpoints, use 'requests')")
            return
        if "endpoints" in doc:
            self.fail("[[users]] and 'endpoints' cannot be combined: a journey's steps "
                      "([[users.steps]]) say what to request")
        if "requests" in doc:
            self.fail("'requests' counts requests; with [[users]] a run counts iterations: "
                      "use 'iterations'")
        clash = [k for k in ("method", "data", "data_file") if k in doc
                 and not (k == "data" and isinstance(doc[k], dict))]
        if clash:
            self.fail(f"'{clash[0]}' at the top level applies to plain endpoints; with "
                      "[[users]], set it in each step")

    def feeder(self, value: dict[str, Any]) -> dict[str, Any]:
        """``data = { file = "rows.csv", mode = "sequential" }``: the file from this folder."""
        self.check_keys(value, DATA_KEYS, "in 'data'", {"path": "file"})
        if "file" not in value:
            self.fail("'data' needs 'file' (a CSV or JSON Lines feeder)")
        out: dict[str, Any] = {"feeder": self.resolve(self.string(value["file"],
                                                                  "'file' in 'data'"))}
        if "mode" in value:
            mode = self.string(value["mode"], "'mode' in 'data'")
            if mode not in MODES:
                self.fail(f"'mode' in 'data': {mode!r} is not one of {', '.join(MODES)}")
            out["feeder_mode"] = mode
        return out

    def auth(self, value: Any) -> dict[str, Any]:
        self.expect(value, (dict, bool), "'auth'", "a table ([auth]) or true/false")
        if isinstance(value, bool):
            return {"auth": value}
        self.check_keys(value, AUTH_KEYS, "in [auth]", _HINTS["auth"])
        out: dict[str, Any] = {"auth": True}
        for key, item in value.items():
            label = f"'{key}' in [auth]"
            out[key] = self.string(item, label, empty_ok=key == "password")
            if key == "login_endpoint":
                out[key] = self.reuse(normalize_path, item, label)
        return out

    def stage(self, value: Any, index: int) -> StageSpec:
        where = f"[[stages]] #{index}"
        self.expect(value, (dict, str), where, 'a table { duration = "30s", rate = 100 } '
                                                'or a "DURATION:RATE" string')
        if isinstance(value, str):
            return self.reuse(parse_stage, value, f"item {index} of 'stages'")
        self.check_keys(value, STAGE_KEYS, f"in {where}", _HINTS["stages"])
        for key in STAGE_KEYS:
            if key not in value:
                self.fail(f"{where} needs '{key}'")
        label = f"'duration' in {where}"
        seconds = self.duration(value["duration"], label)
        rate = value["rate"]
        self.expect(rate, (int, float), f"'rate' in {where}", "a number")
        shown = f"{self.duration_text(value['duration'], label)}:{_number_text(rate)}"
        try:
            number = float(rate)
        except OverflowError:   # an integer beyond any float: as the text would parse
            number = math.inf if rate > 0 else -math.inf
        return StageSpec(seconds, self.reuse(lambda r: check_stage_rate(r, shown), number, where))

    def endpoints(self, value: Any) -> dict[str, Any]:
        items = self.array(value, "'endpoints'")
        if not items:
            self.fail("'endpoints' is empty (leave it out for the default, /api/health)")
        for i, item in enumerate(items, 1):
            self.expect(item, (str, dict), f"item {i} of 'endpoints'",
                        "a path string or a table (see [[endpoints]])")
        if all(isinstance(item, str) for item in items):
            return {"endpoints": tuple(self.endpoint_path(item, "'endpoints'")
                                       for item in items)}
        specs: list[EndpointSpec] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(items, 1):
            spec = self.endpoint({"path": item} if isinstance(item, str) else item, i)
            name = spec.name or f"{spec.method} {spec.path}"
            if name in seen:
                self.fail(f"[[endpoints]] #{i} repeats {name!r} (#{seen[name]}): "
                          "each method and path may appear once")
            seen[name] = i
            specs.append(spec)
        return {"endpoint_specs": tuple(specs)}

    def endpoint(self, table: dict[str, Any], index: int) -> EndpointSpec:
        return self.request(table, f"[[endpoints]] #{index}", ENDPOINT_KEYS,
                            _HINTS["endpoints"])

    def request(self, table: dict[str, Any], where: str, keys: tuple[str, ...],
                hints: dict[str, str], step: bool = False) -> EndpointSpec:
        """An ``[[endpoints]]`` table, or (``step``) a journey's step: the same keys mean the
        same, a step also ``extract``s (``keys`` says which a table may have)."""
        self.check_keys(table, keys, f"in {where}", hints)
        if "path" not in table:
            self.fail(f"{where} needs 'path'")
        label = f"'path' in {where}"
        path = self.endpoint_path(self.string(table["path"], label), label)
        bodies = [k for k in ("body", "body_file", "body_template_file") if k in table]
        if len(bodies) > 1:
            self.fail(f"{where}: '{bodies[0]}' and '{bodies[1]}' cannot be used together")
        body = b""
        if "body" in table:
            body = self.string(table["body"], f"'body' in {where}", empty_ok=True).encode()
        elif "body_file" in table:
            body = self.read_file(table["body_file"], f"'body_file' in {where}")
        elif "body_template_file" in table:
            body = self.read_file(table["body_template_file"], f"'body_template_file' in {where}")
        name = ""
        if "name" in table:
            name = self.string(table["name"], f"'name' in {where}").strip()
            if not name or any(c < " " or c == "\x7f" for c in name):
                self.fail(f"'name' in {where}: {table['name']!r} is not a row name")
        if "method" in table:
            label = f"'method' in {where}"
            method = self.reuse(parse_method, self.string(table["method"], label), label)
        else:
            method = "POST" if body else "GET"
        weight = 1.0
        if "weight" in table:   # [[endpoints]] only: a step's kind has the weight
            weight = self.positive(table["weight"], f"'weight' in {where}")
        headers: tuple[tuple[str, str], ...] = ()
        if "headers" in table:
            headers = self.headers(table["headers"], f"'headers' in {where}")
        expect_status = None   # the top-level's (or --expect-status) applies
        if "expect_status" in table:
            expect_status = self.statuses(table["expect_status"], f"'expect_status' in {where}")
        rules = None   # ``extract`` / ``expect`` / ``max_body`` (issue 12 sections 2, 3)
        given: dict[str, Any] = {k: table[k] for k in ("extract", "expect", "max_body")
                                 if k in table}
        if given:
            try:
                rules = parse_rules(given, where)
            except ConfigError as exc:
                self.fail(str(exc))
            if step and "max_body" in table and not rules.needs_body:
                self.fail(f"'max_body' in {where} needs a body to keep: 'expect' with "
                          "body_contains or json, or a json: or regex: extraction")
            if not step and not rules.expect:
                self.fail(f"'max_body' in {where} needs 'expect' with body checks")
        return EndpointSpec(method, path, body, headers, weight, expect_status, name,
                            template_body=b"{{" in body and not "body_file" in table,
                            rules=rules)

    def endpoint_path(self, value: str, label: str) -> str:
        """A path; one holding ``{{`` is kept as written (checked once parsed)."""
        templated = self.reuse(partial(templated_path, what=label), value, label)
        return templated or self.reuse(normalize_path, value, label)


def _number_text(value: float) -> str:
    """A TOML number as the command line would have spelled it: 30, 0.5, 1500."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)

