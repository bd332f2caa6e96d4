"""Scenario files (loadgen/config/scenario.py): loading, validation messages, and robustness."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadgen.config.model import (
    DEFAULT_EXPECT_STATUS,
    ConfigError,
    normalize_path,
    parse_duration,
    parse_header,
    parse_method,
    parse_timeout,
)
from loadgen.config.scenario import (
    AUTH_KEYS,
    ENDPOINT_KEYS,
    STAGE_KEYS,
    TOP_KEYS,
    load_scenario,
    parse_scenario,
)
from loadgen.config.settings import EndpointSpec, Settings
from loadgen.config.stages import StageSpec, parse_stage, parse_user_stage

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
SHIPPED = sorted(CONFIGS.glob("*.toml"))


def write(tmp_path: Path, text: str, name: str = "s.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


def click_params(args: list[str]) -> dict[str, Any]:
    """What Click hands ``run`` for these command-line arguments."""
    from loadgen.cli import run

    with run.make_context("run", args) as ctx:
        return dict(ctx.params)


# -- shipped configs ----------------------------------------------------------------


def test_configs_are_shipped() -> None:
    names = {p.name for p in SHIPPED}
    assert {"health.toml", "dataset-summary.toml", "transcript-admin.toml",
            "transform-save-visualize.toml", "mixed.toml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path) -> None:
    opts = load_scenario(str(path))
    assert opts.url == "http://localhost:5000"
    assert set(opts.said()) <= (set(TOP_KEYS) | set(AUTH_KEYS)
                                | {"endpoint_specs", "feeder", "feeder_mode"})


def test_settings_are_the_file_keys_and_the_run_options() -> None:
    """Each field is a key of the file and the Click parameter it stands for (which option
    typed on the command line wins over it); ``endpoint_specs`` gives way to ``--endpoint``;
    ``users`` ([[users]] journeys) exist only in files."""
    from loadgen.cli import run

    names = set(Settings.__dataclass_fields__)
    feeder = {"feeder", "feeder_mode"}   # the file says them as data = { file, mode }
    assert names == set(TOP_KEYS) | set(AUTH_KEYS) | {"endpoint_specs"} | feeder
    assert names - {"endpoint_specs", "users"} <= {p.name for p in run.params}


@pytest.mark.parametrize("path", [p for p in SHIPPED if "endpoints = [" in p.read_text()],
                         ids=lambda p: p.name)
def test_plain_shipped_configs_build_with_the_cli(path: Path) -> None:
    """Laid under Click's defaults, build_config takes the file's typed values."""
    from dataclasses import replace

    from loadgen.commands.inputs import build_config

    opts = replace(load_scenario(str(path)), thresholds=None)
    config = build_config(click_params([]), opts)
    assert opts.endpoints is not None
    assert [e.path for e in config.endpoints] == list(opts.endpoints)


def test_shipped_examples_say_what_the_seed_did() -> None:
    health = load_scenario(str(CONFIGS / "health.toml"))
    assert (health.endpoints, health.requests, health.concurrency) == (
        ("/api/health",), 100, 10)
    summary = load_scenario(str(CONFIGS / "dataset-summary.toml"))
    assert (summary.endpoints, summary.requests, summary.concurrency) == (
        ("/api/dataset/summary",), 1000, 50)
    admin = load_scenario(str(CONFIGS / "transcript-admin.toml"))
    assert (admin.auth, admin.username, admin.password) == (True, "admin", "admin123")
    assert admin.endpoints == ("/api/analysis/transcript",)
    save = load_scenario(str(CONFIGS / "transform-save-visualize.toml"))
    assert (save.save, save.visualize, save.output_image) == (
        "results.json", True, "performance.png")


def test_mixed_config_is_a_weighted_open_model_mix() -> None:
    mixed = load_scenario(str(CONFIGS / "mixed.toml"))
    assert mixed.rate > 0 and mixed.duration and mixed.thresholds
    specs = {s.path: s for s in mixed.endpoint_specs}
    assert {p: s.weight for p, s in specs.items()} == {
        "/api/health": 5.0, "/api/dataset/summary": 3.0, "/api/dataset/transform": 2.0}
    transform = specs["/api/dataset/transform"]
    assert transform.method == "POST"
    assert transform.body == (CONFIGS / "transform-body.json").read_bytes()
    assert b'"text"' in transform.body


def test_mixed_config_loads_from_another_working_directory(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_scenario(os.path.relpath(CONFIGS / "mixed.toml")).endpoint_specs


# -- round trip: each key means what the same option typed on the command line means -------

#: How each option's command-line text is parsed (build_config's parsers); others are as given.
CLI_PARSERS: dict[str, Any] = {
    "endpoints": lambda paths: tuple(normalize_path(p) for p in paths),
    "duration": parse_duration,
    "timeout": parse_timeout,
    "method": parse_method,
    "headers": lambda texts: tuple(parse_header(t) for t in texts),
    "stages": lambda texts: tuple(parse_stage(t) for t in texts),
    "user_stages": lambda texts: tuple(parse_user_stage(t) for t in texts),
    "login_endpoint": normalize_path,
}

ROUND_TRIP = [
    ('url = "https://example.com:8443/v1"', ["--url", "https://example.com:8443/v1"]),
    ('endpoints = ["/a", "b"]', ["--endpoint", "/a", "--endpoint", "b"]),
    ("requests = 1000", ["--requests", "1000"]),
    ("concurrency = 50", ["--concurrency", "50"]),
    ("workers = 3", ["--workers", "3"]),
    ('duration = "2m"', ["--duration", "2m"]),
    ('timeout = "500ms"', ["--timeout", "500ms"]),
    ('method = "put"', ["--method", "put"]),
    ('headers = ["X-A: 1", "X-B: two words"]',
     ["--header", "X-A: 1", "--header", "X-B: two words"]),
    ('headers = { "X-A" = "1", "X-B" = "two words" }',
     ["--header", "X-A: 1", "--header", "X-B: two words"]),
    ("data = '{\"x\": 1}'", ["--data", '{"x": 1}']),
    ('save = "out.json"', ["--save", "out.json"]),
    ("visualize = true", ["--visualize"]),
    ('output_image = "p.png"', ["--output-image", "p.png"]),
    ("insecure = true", ["--insecure"]),
    ("quiet = true", ["--quiet"]),
    ("rate = 200", ["--rate", "200"]),
    ("rate = 12.5", ["--rate", "12.5"]),
    ('stages = ["30s:100", "1m:2000"]', ["--stage", "30s:100", "--stage", "1m:2000"]),
    ('[[stages]]\nduration = "30s"\nrate = 100\n[[stages]]\nduration = "1m"\nrate = 0',
     ["--stage", "30s:100", "--stage", "1m:0"]),
    ("max_connections = 400", ["--max-connections", "400"]),
    ('user_stages = ["30s:100", "1m:0"]', ["--user-stage", "30s:100", "--user-stage", "1m:0"]),
    ("[auth]", ["--auth"]),
    ("auth = true", ["--auth"]),
    ('[auth]\nusername = "admin"', ["--auth", "--username", "admin"]),
    ('[auth]\npassword = "s3cret"', ["--auth", "--password", "s3cret"]),
    ('[auth]\nlogin_endpoint = "/login"', ["--auth", "--login-endpoint", "/login"]),
    ('[auth]\ntoken_field = "token"', ["--auth", "--token-field", "token"]),
]


@pytest.mark.parametrize(("text", "args"), ROUND_TRIP, ids=[t for t, _ in ROUND_TRIP])
def test_round_trip_matches_click(tmp_path: Path, text: str, args: list[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOADGEN_PASSWORD", raising=False)
    opts = load_scenario(write(tmp_path, text)).said()
    clicked = click_params(args)
    assert opts, "the file sets something"
    for key, value in opts.items():
        expected = CLI_PARSERS.get(key, lambda v: v)(clicked[key])
        assert value == expected, key
        assert type(value) is type(expected), key


def test_user_stages_ramp_from_the_files_concurrency(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, 'url = "http://127.0.0.1:9"\nconcurrency = 3\n'
                           'user_stages = ["2s:6", "1s:0"]')
    config, _, _ = run_with(monkeypatch, "--config", path)
    assert config.user_schedule is not None
    assert [(s.duration_s, s.start_users, s.end_users) for s in config.user_schedule.stages] == [
        (2.0, 3, 6), (1.0, 6, 0)]
    assert (config.concurrency, config.duration_s) == (6, 3.0)
    message = error(tmp_path, 'user_stages = ["2s:many"]')
    assert "item 1 of 'user_stages'" in message and "whole number" in message


def test_auth_false(tmp_path: Path) -> None:
    assert load_scenario(write(tmp_path, "auth = false")) == Settings(auth=False)


def test_thresholds_are_a_list_of_strings(tmp_path: Path) -> None:
    opts = load_scenario(write(tmp_path, 'thresholds = ["p99<200ms", "errors<1%"]'))
    assert opts == Settings(thresholds=("p99<200ms", "errors<1%"))


def test_numeric_durations_are_seconds(tmp_path: Path) -> None:
    text = "duration = 30\ntimeout = 0.5\nstages = [{duration = 2.0, rate = 10}]"
    opts = load_scenario(write(tmp_path, text))
    assert opts == Settings(duration=30.0, timeout=0.5, stages=(StageSpec(2.0, 10.0),))
    assert opts.stages == (parse_stage("2:10"),)


def test_only_the_keys_the_file_sets(tmp_path: Path) -> None:
    assert load_scenario(write(tmp_path, "concurrency = 5")) == Settings(concurrency=5)
    assert load_scenario(write(tmp_path, "concurrency = 5")).said() == {"concurrency": 5}


def test_empty_file_is_valid(tmp_path: Path) -> None:
    assert load_scenario(write(tmp_path, "")) == Settings()
    assert load_scenario(write(tmp_path, "# nothing here\n\n")) == Settings()


def test_data_file_resolves_from_the_scenario_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = write(tmp_path / "sub", 'data_file = "body.bin"')
    assert load_scenario(path) == Settings(data_file=str(tmp_path / "sub" / "body.bin"))
    absolute = tmp_path / "abs.bin"
    path = write(tmp_path / "sub", f'data_file = "{absolute.as_posix()}"')
    assert load_scenario(path) == Settings(data_file=absolute.as_posix())


# -- under the command line: a typed option wins, the file beats Click's defaults ------------


def run_with(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[Any, Any, Any]:
    """``loadgen run ARGS`` as the CLI collects it, stopped where the run would start."""
    from helpers import run_in_process

    import loadgen.commands.run

    seen: list[tuple[Any, Any, Any]] = []
    monkeypatch.setattr(loadgen.commands.run, "run_session",
                        lambda *inputs: seen.append(inputs) or 0)
    run = run_in_process("run", *args)
    assert run.status == 0 and len(seen) == 1, run.stderr
    return seen[0]


MERGED = """
url = "http://127.0.0.1:9"
requests = 50
concurrency = 4
timeout = "2s"
headers = { "X-File" = "f" }
expect_status = "200-399"
save = "file.json"
[auth]
username = "admin"
password = "filepw"
[[endpoints]]
path = "/t"
"""


def test_the_file_beats_clicks_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOADGEN_PASSWORD", raising=False)
    config, login, outputs = run_with(monkeypatch, "--config", write(tmp_path, MERGED))
    assert (config.url, config.requests, config.concurrency, config.timeout_s) == (
        "http://127.0.0.1:9", 50, 4, 2.0)
    assert config.headers == (("X-File", "f"),)
    assert [(e.name, e.expect_status) for e in config.endpoints] == [
        ("GET /t", frozenset(range(200, 400)))]
    assert config.auth and (login.username, login.password) == ("admin", "filepw")
    assert outputs.save == "file.json" and not outputs.quiet


def test_typed_options_win_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGEN_PASSWORD", "envpw")   # an environment variable is typed too
    config, login, outputs = run_with(
        monkeypatch, "--config", write(tmp_path, MERGED), "--requests", "7", "--header",
        "X-Cli: c", "--endpoint", "/cli", "--timeout", "3s", "--username", "u", "--quiet")
    assert (config.requests, config.concurrency, config.timeout_s) == (7, 4, 3.0)
    assert config.headers == (("X-Cli", "c"),)   # --header replaces the file's headers
    # --endpoint replaces the file's [[endpoints]]; the file's expect_status still applies
    assert [(e.name, e.expect_status) for e in config.endpoints] == [
        ("GET /cli", frozenset(range(200, 400)))]
    assert (login.username, login.password) == ("u", "envpw")
    assert outputs.save == "file.json" and outputs.quiet


# -- [[endpoints]] ------------------------------------------------------------------------


def test_endpoint_tables_become_specs(tmp_path: Path) -> None:
    text = """
headers = { "X-Global" = "g" }
[[endpoints]]
path = "api/health"
[[endpoints]]
path = "/api/dataset/transform"
method = "post"
weight = 2.5
headers = { "Content-Type" = "application/json" }
body = '{"text": "hi"}'
[[endpoints]]
path = "/upload"
method = "PUT"
headers = ["X-A: 1", "X-B: 2"]
"""
    opts = load_scenario(write(tmp_path, text))
    assert opts.headers == (("X-Global", "g"),)
    assert opts.endpoints is None
    assert opts.endpoint_specs == (
        EndpointSpec(method="GET", path="/api/health", body=b"", headers=(), weight=1.0),
        EndpointSpec(method="POST", path="/api/dataset/transform", body=b'{"text": "hi"}',
                     headers=(("Content-Type", "application/json"),), weight=2.5),
        EndpointSpec(method="PUT", path="/upload", body=b"",
                     headers=(("X-A", "1"), ("X-B", "2")), weight=1.0),
    )


def test_endpoint_specs_build_endpoints(tmp_path: Path) -> None:
    """A spec is exactly an Endpoint once the run's statuses are known."""
    from loadgen.config.model import Endpoint

    path = write(tmp_path, '[[endpoints]]\npath = "/x"\nbody = "b"')
    spec = load_scenario(path).endpoint_specs[0]
    assert spec.endpoint(DEFAULT_EXPECT_STATUS) == Endpoint("POST", "/x", b"b", (), 1.0)


def test_a_body_makes_the_default_method_post(tmp_path: Path) -> None:
    path = write(tmp_path, '[[endpoints]]\npath = "/x"\nbody = "{}"\n'
                           '[[endpoints]]\npath = "/y"\nbody = ""')
    specs = load_scenario(path).endpoint_specs
    assert [s.method for s in specs] == ["POST", "GET"]


def test_strings_among_tables_are_paths(tmp_path: Path) -> None:
    specs = load_scenario(write(tmp_path, 'endpoints = ["/a", { path = "/b", weight = 2 }]'))
    assert [(s.path, s.weight) for s in specs.endpoint_specs] == [("/a", 1.0), ("/b", 2.0)]


def test_body_file_is_relative_to_the_scenario_folder(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "scenarios"
    (folder / "bodies").mkdir(parents=True)
    (folder / "bodies" / "b.json").write_bytes(b'{"k": "\xc3\xa9"}\x00')
    path = write(folder, '[[endpoints]]\npath = "/x"\nbody_file = "bodies/b.json"')
    monkeypatch.chdir(tmp_path)  # elsewhere: the name must not resolve from the working directory
    spec = load_scenario(os.path.relpath(path)).endpoint_specs[0]
    assert spec.body == b'{"k": "\xc3\xa9"}\x00'
    assert spec.method == "POST"


def test_body_file_absolute(tmp_path: Path) -> None:
    body = tmp_path / "elsewhere.txt"
    body.write_bytes(b"abc")
    (tmp_path / "d").mkdir()
    path = write(tmp_path / "d", f'[[endpoints]]\npath = "/x"\nbody_file = "{body.as_posix()}"')
    assert load_scenario(path).endpoint_specs[0].body == b"abc"


def test_unreadable_body_file(tmp_path: Path) -> None:
    message = error(tmp_path, '[[endpoints]]\npath = "/x"\nbody_file = "missing.json"')
    assert "'body_file' in [[endpoints]] #1" in message
    assert "cannot read" in message and "missing.json" in message
    (tmp_path / "dir").mkdir()
    message = error(tmp_path, '[[endpoints]]\npath = "/x"\nbody_file = "dir"')
    assert "cannot read" in message and "not a regular file" in message


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_body_file_fifo_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    assert "not a regular file" in error(tmp_path, '[[endpoints]]\npath = "/x"\nbody_file = "fifo"')


def test_body_and_body_file_together(tmp_path: Path) -> None:
    message = error(tmp_path, '[[endpoints]]\npath = "/x"\nbody = "a"\nbody_file = "b"')
    assert "'body' and 'body_file'" in message


@pytest.mark.parametrize(("weight", "expected"), [
    ("0", "greater than zero"), ("-1", "greater than zero"), ("-0.5", "greater than zero"),
    ("inf", "greater than zero"), ("nan", "greater than zero"),
    ('"3"', "must be a number"), ("true", "must be a number"), ("[1]", "must be a number"),
])
def test_bad_weights(tmp_path: Path, weight: str, expected: str) -> None:
    message = error(tmp_path, '[[endpoints]]\npath = "/a"\n'
                              f'[[endpoints]]\npath = "/b"\nweight = {weight}')
    assert "'weight' in [[endpoints]] #2" in message
    assert expected in message


def test_good_weights(tmp_path: Path) -> None:
    text = ('[[endpoints]]\npath = "/a"\nweight = 3\n[[endpoints]]\npath = "/b"\nweight = 0.25\n'
            '[[endpoints]]\npath = "/c"')
    specs = load_scenario(write(tmp_path, text)).endpoint_specs
    assert [s.weight for s in specs] == [3.0, 0.25, 1.0]
    assert all(type(s.weight) is float for s in specs)


def test_huge_integer_weight_is_refused_not_crashed(tmp_path: Path) -> None:
    message = error(tmp_path, f'[[endpoints]]\npath = "/a"\nweight = {10**400}')
    assert "'weight'" in message


def test_endpoint_needs_a_path(tmp_path: Path) -> None:
    assert "[[endpoints]] #1 needs 'path'" in error(tmp_path, '[[endpoints]]\nweight = 2')


def test_repeated_endpoint(tmp_path: Path) -> None:
    message = error(tmp_path, '[[endpoints]]\npath = "/a"\n'
                              '[[endpoints]]\npath = "a"\nmethod = "get"')
    assert "[[endpoints]] #2 repeats 'GET /a' (#1)" in message
    # The same path with another method is another endpoint.
    text = '[[endpoints]]\npath = "/a"\n[[endpoints]]\npath = "/a"\nmethod = "POST"'
    assert len(load_scenario(write(tmp_path, text)).endpoint_specs) == 2


@pytest.mark.parametrize("key", ["method", "data", "data_file"])
def test_top_level_body_options_do_not_mix_with_tables(tmp_path: Path, key: str) -> None:
    message = error(tmp_path, f'{key} = "x"\n[[endpoints]]\npath = "/a"')
    assert f"'{key}' at the top level" in message and "[[endpoints]]" in message


def test_empty_endpoints(tmp_path: Path) -> None:
    assert "'endpoints' is empty" in error(tmp_path, "endpoints = []")


# -- errors: syntax, unknown keys, types, values ----------------------------------------------


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read scenario file: No such file"):
        load_scenario(str(missing))
    with pytest.raises(ConfigError, match="cannot read scenario file"):
        load_scenario(str(tmp_path))


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_bytes(b'url = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_scenario(str(path))


@pytest.mark.parametrize(("text", "line"), [
    ('url = "http://x"\nrequests = \n', 2),
    ('url = "http://x"\nconcurrency = 5\nworkers 2\n', 3),
    ('requests = 1\nrequests = 2\n', 2),
    ('[auth]\nusername = "a"\n[auth]\n', 3),
    ('endpoints = ["/a",\n  "/b"\n  "/c"]\n', 3),
])
def test_syntax_error_names_the_line(tmp_path: Path, text: str, line: int) -> None:
    message = error(tmp_path, text)
    assert "invalid TOML" in message
    assert f"line {line}" in message


@pytest.mark.parametrize(("text", "key", "where", "suggestion"), [
    ("reqests = 5", "reqests", "at the top level", "requests"),
    ("concurency = 5", "concurency", "at the top level", "concurrency"),
    ('output-image = "x.png"', "output-image", "at the top level", "output_image"),
    ('max-connections = 4', "max-connections", "at the top level", "max_connections"),
    ("[auth]\nusrname = 'a'", "usrname", "in [auth]", "username"),
    ("[auth]\nuser = 'a'", "user", "in [auth]", "username"),
    ("[[endpoints]]\npath = '/a'\nwieght = 2", "wieght", "in [[endpoints]] #1", "weight"),
    ("[[endpoints]]\npath = '/a'\n[[endpoints]]\npath = '/b'\ndata = 'x'",
     "data", "in [[endpoints]] #2", "body"),
    ("[[stages]]\nduration = '1s'\nrat = 2", "rat", "in [[stages]] #1", "rate"),
    ("username = 'admin'", "username", "at the top level", "[auth] username"),
    ("body = 'x'", "body", "at the top level", "data"),
])
def test_unknown_key_is_named_with_a_suggestion(tmp_path: Path, text: str, key: str, where: str,
                                                suggestion: str) -> None:
    message = error(tmp_path, text)
    assert f"unknown key {key!r} {where}" in message
    assert f"did you mean '{suggestion}'?" in message


def test_unknown_key_without_a_close_match(tmp_path: Path) -> None:
    message = error(tmp_path, "zzzzzz = 1")
    assert message.endswith("unknown key 'zzzzzz' at the top level")


def test_unknown_table(tmp_path: Path) -> None:
    assert "unknown key 'run' at the top level" in error(tmp_path, "[run]\nrequests = 5")


@pytest.mark.parametrize(("text", "expected"), [
    ('requests = "1000"', "'requests' must be an integer, got the string '1000'"),
    ("requests = 10.0", "'requests' must be an integer, got the float 10.0"),
    ("requests = true", "'requests' must be an integer, got true (a boolean)"),
    ("concurrency = [1]", "'concurrency' must be an integer, got an array"),
    ("workers = { n = 1 }", "'workers' must be an integer, got a table"),
    ("max_connections = 1979-05-27", "'max_connections' must be an integer, got a date/time"),
    ("url = 5", "'url' must be a string, got the integer 5"),
    ("visualize = 'yes'", "'visualize' must be true or false, got the string 'yes'"),
    ("insecure = 1", "'insecure' must be true or false"),
    ("quiet = 'true'", "'quiet' must be true or false"),
    ("save = true", "'save' must be a string"),
    ("output_image = 1", "'output_image' must be a string"),
    ("data = 1", "'data' must be a string"),
    ("data_file = []", "'data_file' must be a string"),
    ("method = 1", "'method' must be a string"),
    ('duration = true', "'duration' must be a duration string like \"30s\" or a number"),
    ('timeout = ["1s"]', "'timeout' must be a duration string"),
    ('rate = "100"', "'rate' must be a number, got the string '100'"),
    ("headers = 'X-A: 1'", "'headers' must be a table like"),
    ("headers = [1]", "item 1 of 'headers' must be a string"),
    ('headers = { "X-A" = 1 }', "the value of 'X-A' in 'headers' must be a string"),
    ('stages = "30s:100"', "'stages' must be an array"),
    ("stages = [5]", "[[stages]] #1 must be a table"),
    ("[[stages]]\nduration = '1s'\nrate = '5'", "'rate' in [[stages]] #1 must be a number"),
    ('thresholds = "p99<200ms"', "'thresholds' must be an array"),
    ("thresholds = ['p99<1s', 5]", "item 2 of 'thresholds' must be a string"),
    ("endpoints = '/a'", "'endpoints' must be an array"),
    ("endpoints = ['/a', 5]", "item 2 of 'endpoints' must be a path string or a table"),
    ("auth = 'yes'", "'auth' must be a table ([auth]) or true/false"),
    ("[auth]\nusername = 1", "'username' in [auth] must be a string"),
    ("[auth]\npassword = false", "'password' in [auth] must be a string"),
    ("[[endpoints]]\npath = 1", "'path' in [[endpoints]] #1 must be a string"),
    ("[[endpoints]]\npath = '/a'\nmethod = ['GET']",
     "'method' in [[endpoints]] #1 must be a string"),
    ("[[endpoints]]\npath = '/a'\nbody = { a = 1 }", "'body' in [[endpoints]] #1 must be a string"),
    ("[[endpoints]]\npath = '/a'\nbody_file = 1",
     "'body_file' in [[endpoints]] #1 must be a string"),
    ("[[endpoints]]\npath = '/a'\nheaders = 'X: 1'",
     "'headers' in [[endpoints]] #1 must be a table"),
])
def test_wrong_type_names_the_key_and_type(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error(tmp_path, text)


@pytest.mark.parametrize(("text", "expected"), [
    # The command line's own messages, with the key in place of the option.
    ('url = "ftp://x"', "'url': scheme must be http or https, got 'ftp://x'"),
    ('url = "http://"', "'url': 'http://' has no host"),
    ('url = ""', "'url' must not be empty"),
    ('duration = "soon"', "'duration': 'soon' is not a duration (examples: 30s, 2m, 500ms)"),
    ('timeout = "0s"', "'timeout': must be greater than zero, got '0s'"),
    ('timeout = "0.5ms"', "'timeout': '0.5ms' is shorter than 1ms"),
    ("timeout = 0.0005", "'timeout': '0.0005' is shorter than 1ms"),
    ("duration = -5", "'duration': '-5' is not a duration"),
    ('method = "GE T"', "'method': 'GE T' is not an HTTP method"),
    ('headers = ["nocolon"]', "'headers': 'nocolon' is not of the form 'Name: value'"),
    ('headers = { "Bad Name" = "x" }', "'headers': 'Bad Name' is not a valid header name"),
    ('headers = { "X-A:b" = "x" }', "'headers': 'X-A:b' is not a valid header name"),
    ('headers = { "X-A" = "a\\r\\nInjected: 1" }',
     "'headers': the value of 'X-A' contains a line break"),
    ('stages = ["30s"]', "item 1 of 'stages': '30s' is not DURATION:RATE (e.g. 30s:100)"),
    ('stages = ["30s:fast"]', "item 1 of 'stages': 'fast' in '30s:fast' is not a rate"),
    ("[[stages]]\nduration = '30s'\nrate = -1", "[[stages]] #1: rate must be zero or more"),
    ("[[stages]]\nduration = 'x'\nrate = 1", "'duration' in [[stages]] #1: 'x' is not a duration"),
    ("[[stages]]\nrate = 1", "[[stages]] #1 needs 'duration'"),
    ("[[stages]]\nduration = '1s'", "[[stages]] #1 needs 'rate'"),
    ("rate = 0", "'rate' must be a finite number greater than zero"),
    ("rate = -2.5", "'rate' must be a finite number greater than zero"),
    ("rate = inf", "'rate' must be a finite number greater than zero"),
    ("requests = 0", "'requests' must be 1 or more, got 0"),
    ("concurrency = -3", "'concurrency' must be 1 or more, got -3"),
    ('endpoints = ["/a b"]', "'endpoints': '/a b' contains white space"),
    ('endpoints = [" "]', "'endpoints': empty path"),
    ("[[endpoints]]\npath = ''", "'path' in [[endpoints]] #1 must not be empty"),
    ("[[endpoints]]\npath = '/a'\nmethod = 'G T'",
     "'method' in [[endpoints]] #1: 'G T' is not an HTTP method"),
    ("[[endpoints]]\npath = '/a'\nheaders = ['x']",
     "'headers' in [[endpoints]] #1: 'x' is not of the form"),
    ("[auth]\nlogin_endpoint = '/log in'",
     "'login_endpoint' in [auth]: '/log in' contains white space"),
    ("[auth]\ntoken_field = ''", "'token_field' in [auth] must not be empty"),
])
def test_bad_values_reuse_the_cli_messages(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error(tmp_path, text)


def test_parse_scenario_without_a_file() -> None:
    assert parse_scenario('requests = 5', "inline") == Settings(requests=5)
    with pytest.raises(ConfigError, match=r"^inline: unknown key 'x'"):
        parse_scenario("x = 1", "inline")


# -- robustness: any input is a dict or a ConfigError ----------------------------------------


def _toml_string(text: str) -> str:
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{_toml_string(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


_texts = st.text(max_size=12) | st.sampled_from(
    ["30s", "0s", "2m", "500ms", "30s:100", "1m:0", "x:1", "/api/health", "a b", "GET", "X-A: 1",
     "X: a\r\nb: c", "body.json", "", "http://localhost:5000", "ftp://x", "http://[::1]:0"])
_scalars = (st.booleans() | st.integers(min_value=-10, max_value=10**6)
            | st.integers() | st.floats() | _texts)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(_texts, inner, max_size=3), max_leaves=8)
_keys = lambda known: st.sampled_from(known) | st.text(min_size=1, max_size=8)
_endpoint = st.dictionaries(_keys(ENDPOINT_KEYS), _values, max_size=5)
_stage = st.dictionaries(_keys(STAGE_KEYS), _values, max_size=3)
_documents = st.dictionaries(
    _keys(TOP_KEYS),
    _values | st.lists(_endpoint | _texts, max_size=3) | st.lists(_stage | _texts, max_size=3)
    | st.dictionaries(_keys(AUTH_KEYS), _values, max_size=4),
    max_size=6)


def _load_text(text: str) -> Any:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "s.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        with open(os.path.join(folder, "body.json"), "wb") as f:
            f.write(b"{}")
        return load_scenario(path)


def _dict_or_config_error(load: Any, arg: Any) -> None:
    try:
        result = load(arg)
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert isinstance(result, Settings)
        assert set(result.said()) <= set(TOP_KEYS) | set(AUTH_KEYS) | {"endpoint_specs"}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_arbitrary_text_is_a_dict_or_a_config_error(text: str) -> None:
    _dict_or_config_error(lambda t: parse_scenario(t, "s.toml"), text)


@settings(max_examples=100, deadline=None)
@given(st.binary())
def test_arbitrary_bytes_are_a_dict_or_a_config_error(data: bytes) -> None:
    def load(raw: bytes) -> Any:
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "s.toml")
            with open(path, "wb") as f:
                f.write(raw)
            return load_scenario(path)

    _dict_or_config_error(load, data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents)
def test_arbitrary_documents_are_a_dict_or_a_config_error(doc: dict[str, Any]) -> None:
    """Well-formed TOML with the known keys and values of every type: exercises validation."""
    lines = []
    for key, value in doc.items():
        lines.append(f"{_toml_string(key)} = {_toml_value(value)}")
    _dict_or_config_error(_load_text, "\n".join(lines))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([
    'url = "http://localhost:5000"', "requests = 10", "concurrency = 0", 'duration = "1s"',
    "rate = 5", "[auth]", 'username = "a"', "[[endpoints]]", 'path = "/a"', 'path = "/b"',
    "weight = 0", "weight = 2", 'body_file = "body.json"', 'body_file = "nope"', 'body = "x"',
    "[[stages]]", 'duration = "2s"', "rate = 3", 'method = "POST"', 'endpoints = ["/x"]',
    'headers = { "X-A" = "1" }', "[run]", "x = [", ""]), max_size=12))
def test_arbitrary_line_mixes_are_a_dict_or_a_config_error(lines: list[str]) -> None:
    _dict_or_config_error(_load_text, "\n".join(lines))
