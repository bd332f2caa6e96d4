"""Journeys in a run's config (issue 12 section 2): a scenario's ``[[users]]`` tables to
``Settings.users``, then to ``RunConfig.journeys`` and the step endpoints; ``--iterations``;
``public()``; and every bad input refused before any load (one line, exit 2).

Pure config: no load is sent (bad input ends before the reachability check; valid input
is aimed at a port that refuses connections).
"""

from __future__ import annotations

import json
import math
import pickle
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadgen.commands.inputs import DEFAULT_ITERATIONS, build_config
from loadgen.config.checks import parse_rules
from loadgen.config.journey import Journeys, UserKind
from loadgen.config.model import ConfigError, Endpoint, plan_workers, worker_connections
from loadgen.config.scenario import load_scenario
from loadgen.config.settings import EndpointSpec, Settings, UserSpec
from loadgen.config.template import RequestTemplates, parse
from loadgen.config.users import parse_think
from tests.helpers import RefusingPort, one_line_error, run_in_process

SHOP = """\
url = "http://127.0.0.1:9"

[[users]]
name = "shopper"
weight = 1
think = "100ms..300ms"
data = { file = "users.csv", mode = "per-user" }
refresh_on = [401]

[[users.on_start]]
method = "POST"
path = "/api/auth/login"
headers = { "Content-Type" = "application/json" }
body = '{"username": "{{ username }}", "password": "{{ password }}"}'
extract = { token = "json:access_token" }

[[users.steps]]
path = "/shop/items"
headers = { Authorization = "Bearer {{ token }}" }
extract = { item = "json:items[0].id" }

[[users.steps]]
method = "POST"
path = "/shop/orders"
headers = { Authorization = "Bearer {{ token }}", "Content-Type" = "application/json" }
body = '{"item": "{{ item }}"}'
expect = { status = [201], body_contains = "order_id" }

[[users]]
name = "browser"
weight = 3
think = "200ms"

[[users.steps]]
path = "/shop/items"
name = "list"
"""

CREDENTIALS = "username,password\nalice,s3cret-a\nbob,s3cret-b\n"


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    (tmp_path / "users.csv").write_text(CREDENTIALS)
    path = tmp_path / "shop.toml"
    path.write_text(SHOP)
    return path


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def click_params(args: list[str]) -> dict[str, Any]:
    from loadgen.cli import run

    with run.make_context("run", args) as ctx:
        params = dict(ctx.params)
    params.pop("config_file", None)
    return params


def build(path: Path, args: tuple[str, ...] = ()) -> Any:
    """``loadgen run --config PATH ARGS`` up to its RunConfig (as cli.run does)."""
    typed = {a[2:].replace("-", "_") for a in args if a.startswith("--")}
    typed = {{"endpoint": "endpoints", "header": "headers"}.get(t, t) for t in typed}
    return build_config(click_params(list(args)), load_scenario(str(path)), typed)


def rules(table: dict[str, Any]) -> Any:
    return parse_rules(table, "test")


# -- the scenario layer: [[users]] -> Settings.users --------------------------------------


def test_users_tables_are_typed_user_specs(shop: Path) -> None:
    settings = load_scenario(str(shop))
    folder = str(shop.parent)
    assert settings == Settings(url="http://127.0.0.1:9", users=(
        UserSpec(
            name="shopper",
            on_start=(EndpointSpec(
                "POST", "/api/auth/login",
                b'{"username": "{{ username }}", "password": "{{ password }}"}',
                (("Content-Type", "application/json"),), template_body=True,
                rules=rules({"extract": {"token": "json:access_token"}})),),
            steps=(
                EndpointSpec("GET", "/shop/items", headers=(("Authorization",
                                                              "Bearer {{ token }}"),),
                             rules=rules({"extract": {"item": "json:items[0].id"}})),
                EndpointSpec("POST", "/shop/orders", b'{"item": "{{ item }}"}',
                             (("Authorization", "Bearer {{ token }}"),
                              ("Content-Type", "application/json")), template_body=True,
                             rules=rules({"expect": {"status": [201],
                                                     "body_contains": "order_id"}})),
            ),
            weight=1.0, think=(0.1, 0.3), refresh_on=frozenset({401}),
            data=f"{folder}/users.csv", data_mode="per-user", source=str(shop)),
        UserSpec(name="browser", steps=(EndpointSpec("GET", "/shop/items", name="list"),),
                 weight=3.0, think=(0.2, 0.2), source=str(shop)),
    ))


@pytest.mark.parametrize(("value", "expected"), [
    ("200ms", (0.2, 0.2)),
    ("100ms..300ms", (0.1, 0.3)),
    (" 1s .. 2.5s ", (1.0, 2.5)),
    ("0", (0.0, 0.0)),
    ("0s..1s", (0.0, 1.0)),
    ("2", (2.0, 2.0)),
    (0, (0.0, 0.0)),
    (0.5, (0.5, 0.5)),
    ("1m", (60.0, 60.0)),
])
def test_think_times(value: Any, expected: tuple[float, float]) -> None:
    assert parse_think(value, "think") == pytest.approx(expected)


@pytest.mark.parametrize(("value", "needle"), [
    ("soon", "is not a think time"),
    ("300ms..100ms", "runs backwards"),
    ("1s..", "is not a think time"),
    ("..1s", "is not a think time"),
    ("1s..2s..3s", "is not a think time"),
    (-1, "is not a think time"),
    (float("nan"), "is not a think time"),
    (float("inf"), "is not a think time"),
    (True, "must be a duration"),
    ([1, 2], "must be a duration"),
    ("9999h", "too long"),
])
def test_bad_think_times(value: Any, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_think(value, "think")


# -- the run's config: Journeys and the step endpoints ------------------------------------


def test_journeys_and_step_endpoints_are_exact(shop: Path) -> None:
    config = build(shop)
    columns = ("username", "password")
    login_body = '{"username": "{{ username }}", "password": "{{ password }}"}'
    auth = "Bearer {{ token }}"
    json_type = ("Content-Type", "application/json")
    expected = (
        Endpoint("POST", "/api/auth/login", login_body.encode(), (json_type,),
                 label="shopper: POST /api/auth/login", template_body=True,
                 rules=rules({"extract": {"token": "json:access_token"}}),
                 templates=RequestTemplates(parse("/api/auth/login", "t"), (),
                                            parse(login_body, "t", columns))),
        Endpoint("GET", "/shop/items", headers=(("Authorization", auth),),
                 label="shopper: GET /shop/items",
                 rules=rules({"extract": {"item": "json:items[0].id"}}),
                 templates=RequestTemplates(parse("/shop/items", "t"),
                                            ((auth, parse(auth, "t", (), ["token"])),))),
        Endpoint("POST", "/shop/orders", b'{"item": "{{ item }}"}',
                 (("Authorization", auth), json_type), expect_status=frozenset({201}),
                 label="shopper: POST /shop/orders", template_body=True,
                 rules=rules({"expect": {"body_contains": "order_id"}}),
                 templates=RequestTemplates(
                     parse("/shop/orders", "t"),
                     ((auth, parse(auth, "t", (), ["token", "item"])),),
                     parse('{"item": "{{ item }}"}', "t", (), ["token", "item"]))),
        Endpoint("GET", "/shop/items", label="browser: list"),
    )
    assert config.endpoints == expected
    assert [e.name for e in config.endpoints] == [
        "shopper: POST /api/auth/login", "shopper: GET /shop/items",
        "shopper: POST /shop/orders", "browser: list"]
    journeys = config.journeys
    assert isinstance(journeys, Journeys)
    assert journeys.iterations == DEFAULT_ITERATIONS and config.requests is None
    shopper, browser = journeys.kinds
    assert replace(shopper, feeder=None) == UserKind(
        "shopper", 1.0, (0.1, 0.3), on_start=(0,), steps=(1, 2),
        refresh_on=frozenset({401}))
    assert browser == UserKind("browser", 3.0, (0.2, 0.2), on_start=(), steps=(3,))
    assert shopper.feeder.columns == columns and shopper.feeder.mode == "per-user"
    assert len(shopper.feeder) == 2
    assert config.feeder is None   # each kind carries its own
    assert [journeys.kind_of(u) for u in range(8)].count(0) == 2   # weights 1:3


def test_an_extracted_value_in_a_template_is_an_extracted_placeholder(shop: Path) -> None:
    config = build(shop)
    order = config.endpoints[2].templates
    assert order.body.extracted == ("item",) and order.body.columns == ()
    assert config.endpoints[0].templates.body.columns == ("username", "password")


def test_endpoints_come_kind_by_kind_on_start_first(tmp_path: Path) -> None:
    path = write(tmp_path, """
[[users]]
name = "a"
[[users.steps]]
path = "/a1"
[[users.on_start]]
path = "/a0"
[[users]]
name = "b"
[[users.on_start]]
path = "/b0"
[[users.on_start]]
path = "/b1"
[[users.steps]]
path = "/b2"
[[users.steps]]
path = "/b3"
""")
    config = build(path)
    assert [e.name for e in config.endpoints] == [
        "a: GET /a0", "a: GET /a1", "b: GET /b0", "b: GET /b1", "b: GET /b2", "b: GET /b3"]
    a, b = config.journeys.kinds
    assert (a.on_start, a.steps, b.on_start, b.steps) == ((0,), (1,), (2, 3), (4, 5))
    assert all(e.templates is None and e.rules is None for e in config.endpoints)


def test_iterations_option_and_key(shop: Path, tmp_path: Path) -> None:
    assert build(shop, ("--iterations", "7")).journeys.iterations == 7
    keyed = write(tmp_path, "iterations = 12\n" + SHOP, "keyed.toml")
    assert build(keyed).journeys.iterations == 12
    assert build(keyed, ("--iterations", "3")).journeys.iterations == 3   # typed wins
    timed = build(shop, ("--duration", "5s"))
    assert timed.journeys.iterations is None and timed.duration_s == 5.0
    assert build(shop, ("--rate", "10", "--duration", "2s")).journeys.iterations is None


def test_workers_follow_iterations_and_plans_split_them(shop: Path) -> None:
    config = build(shop, ("--iterations", "3", "--workers", "8", "--concurrency", "8"))
    assert config.workers == 3
    plans = plan_workers(config)
    assert [p.tickets for p in plans] == [1, 1, 1]
    assert sum(p.connections for p in plans) == 8
    again = pickle.loads(pickle.dumps(plans[2]))
    def without_feeders(j: Journeys) -> Journeys:   # a Feeder compares by identity
        return replace(j, kinds=tuple(replace(k, feeder=None) for k in j.kinds))

    assert without_feeders(again.journeys) == without_feeders(config.journeys)
    assert again.journeys.cycle == config.journeys.cycle
    assert again.journeys.kinds[0].feeder.row(1) == ["bob", "s3cret-b"]


def test_open_model_workers_hold_a_user_of_each_kind(shop: Path) -> None:
    config = build(shop, ("--rate", "10", "--duration", "2s", "--workers", "8",
                          "--concurrency", "4", "--max-connections", "5"))
    assert config.workers == 2   # 5 // 2 kinds: each worker's share holds one of each
    assert all(most >= 2 for _, most in worker_connections(config))


def test_a_top_level_feeder_is_the_default_of_kinds_without_data(tmp_path: Path) -> None:
    (tmp_path / "ids.csv").write_text("id\n1\n2\n3\n")
    (tmp_path / "users.csv").write_text(CREDENTIALS)
    path = write(tmp_path, """
data = { file = "ids.csv", mode = "random" }
[[users]]
name = "reader"
[[users.steps]]
path = "/items/{{ id }}"
[[users]]
name = "member"
data = { file = "users.csv" }
[[users.steps]]
path = "/users/{{ username }}"
""")
    config = build(path)
    reader, member = config.journeys.kinds
    assert (reader.feeder.columns, reader.feeder.mode) == (("id",), "random")
    assert (member.feeder.columns, member.feeder.mode) == (("username", "password"),
                                                           "sequential")
    assert config.feeder is None and "feeder" not in config.public()
    # --feeder on the command line is the default too
    (tmp_path / "other.csv").write_text("id\n9\n")
    typed = build(path, ("--feeder", str(tmp_path / "other.csv")))
    assert typed.journeys.kinds[0].feeder.row(0) == ["9"]
    assert typed.journeys.kinds[1].feeder.columns == ("username", "password")


def test_run_headers_and_expect_status_reach_the_steps(shop: Path) -> None:
    config = build(shop, ("--header", "X-Env: test", "--expect-status", "200-399"))
    assert config.headers == (("X-Env", "test"),)
    login, _items, orders, _ = config.endpoints
    assert login.expect_status == frozenset(range(200, 400))
    assert orders.expect_status == frozenset({201})   # its expect.status wins


def test_public_has_journeys_only_for_journey_runs(shop: Path, tmp_path: Path) -> None:
    config = build(shop, ("--iterations", "5", "--header", "X-Key: top-secret"))
    public = config.public()
    assert public["iterations"] == 5 and public["requests"] is None
    assert public["journeys"] == [
        {"name": "shopper", "weight": 1.0, "think_s": [0.1, 0.3],
         "on_start": ["shopper: POST /api/auth/login"],
         "steps": ["shopper: GET /shop/items", "shopper: POST /shop/orders"],
         "refresh_on": [401],
         "feeder": {"file": str(shop.parent / "users.csv"), "mode": "per-user", "rows": 2}},
        {"name": "browser", "weight": 3.0, "think_s": [0.2, 0.2], "on_start": [],
         "steps": ["browser: list"], "refresh_on": [], "feeder": None},
    ]
    text = repr(public)
    for secret in ("s3cret-a", "s3cret-b", "alice", "top-secret", "application/json"):
        assert secret not in text
    plain = write(tmp_path, 'endpoints = ["/a"]\n', "plain.toml")
    endpoint_run = build(plain).public()
    assert "journeys" not in endpoint_run and "iterations" not in endpoint_run


def test_thresholds_name_step_rows(shop: Path) -> None:
    config = build(shop, ("--threshold", "shopper: POST /shop/orders: p99<500ms",
                          "--threshold", "browser: list: failures<1%"))
    assert [t.endpoint for t in config.thresholds] == ["shopper: POST /shop/orders",
                                                      "browser: list"]


def test_a_valid_journey_config_goes_on_to_the_reachability_check(shop: Path) -> None:
    with RefusingPort() as port:
        run = run_in_process("run", "--config", str(shop), "--url", port.url,
                             "--iterations", "2")
    assert "cannot reach" in one_line_error(run), run.stderr


# -- bad input: one line, exit 2, through the command line ---------------------------------

ONE_STEP = '[[users]]\nname = "u"\n[[users.steps]]\npath = "/a"\n'
LOGIN = """
[[users]]
name = "shopper"
[[users.on_start]]
method = "POST"
path = "/login"
extract = { token = "json:access_token" }
"""

BAD_FILES = [
    # the [[users]] table
    ('[[users]]\nname = "u"\nthink_time = "1s"\n[[users.steps]]\npath = "/a"\n',
     "unknown key 'think_time' in [[users]] #1 (did you mean 'think'?)"),
    ('[[users]]\nnmae = "u"\n', "unknown key 'nmae' in [[users]] #1 (did you mean 'name'?)"),
    ('[[users]]\nweight = 1\n[[users.steps]]\npath = "/a"\n', "[[users]] #1 needs 'name'"),
    ('[[users]]\nname = " "\n', "'name' in [[users]] #1 must not be empty"),
    ('[[users]]\nname = "a: b"\n[[users.steps]]\npath = "/a"\n', "cannot name a kind"),
    ('[[users]]\nname = "u"\n', "[[users]] 'u' has no steps"),
    ('[[users]]\nname = "u"\nsteps = []\n', "'steps' in [[users]] 'u' is empty"),
    ('[[users]]\nname = "u"\n[users.steps]\npath = "/a"\n', "must be an array of tables"),
    ('users = []\n', "'users' is empty"),
    ('users = "shopper"\n', "'users' must be an array"),
    ('[users]\nname = "u"\n', "'users' must be an array of tables: write [[users]], not [users]"),
    (ONE_STEP + ONE_STEP, "[[users]] #2 repeats the name 'u' ([[users]] #1)"),
    (ONE_STEP.replace('name = "u"', 'name = "u"\nweight = 0'),
     "'weight' in [[users]] 'u' must be a finite number greater than zero"),
    (ONE_STEP.replace('name = "u"', 'name = "u"\nweight = -2'), "'weight' in [[users]] 'u'"),
    (ONE_STEP.replace('name = "u"', 'name = "u"\nthink = "soon"'),
     "'think' in [[users]] 'u': 'soon' is not a think time"),
    (ONE_STEP.replace('name = "u"', 'name = "u"\nthink = "3s..1s"'), "runs backwards"),
    (ONE_STEP.replace('name = "u"', 'name = "u"\nrefresh_on = [401]'),
     "'refresh_on' in [[users]] 'u' re-runs the kind's on_start steps, and it has none"),
    (LOGIN.replace('name = "shopper"', 'name = "shopper"\nrefresh_on = "abc"')
     + '[[users.steps]]\npath = "/a"\n', "'refresh_on' in [[users]] 'shopper': 'abc' is not"),
    (LOGIN + 'refresh_on = [401]\n[[users.steps]]\npath = "/a"\n',   # TOML: the step's key
     ("unknown key 'refresh_on' in [[users]] 'shopper' on_start #1 (did you mean "
     "'refresh_on in [[users]]'?)")),
    (ONE_STEP.replace('name = "u"', 'name = "u"\ndata = { file = "nope.csv" }'),
     "[[users]] 'u' data: feeder"),
    (ONE_STEP.replace('name = "u"', 'name = "u"\ndata = { path = "x.csv" }'),
     "unknown key 'path' in 'data' in [[users]] 'u' (did you mean 'file'?)"),
    (ONE_STEP.replace('name = "u"', 'name = "u"\ndata = { file = "x.csv", mode = "each" }'),
     "'mode' in 'data' in [[users]] 'u': 'each' is not one of"),
    # a step
    ('[[users]]\nname = "u"\n[[users.steps]]\nurl = "/a"\n',
     "unknown key 'url' in [[users]] 'u' step #1 (did you mean 'path'?)"),
    ('[[users]]\nname = "u"\n[[users.steps]]\npath = "/a"\nexpect_status = [201]\n',
     "unknown key 'expect_status' in [[users]] 'u' step #1 (did you mean 'expect'?)"),
    ('[[users]]\nname = "u"\n[[users.steps]]\npath = "/a"\nweight = 2\n',
     "(did you mean 'weight in [[users]]'?)"),
    ('[[users]]\nname = "u"\n[[users.steps]]\npath = "/a"\n[[users.steps]]\nmethod = "GET"\n',
     "[[users]] 'u' step #2 needs 'path'"),
    ('[[users]]\nname = "u"\n[[users.on_start]]\nmethod = "POST"\n[[users.steps]]\npath = "/a"\n',
     "[[users]] 'u' on_start #1 needs 'path'"),
    (ONE_STEP + '[[users.steps]]\npath = "/a"\n',
     "[[users]] 'u' step #2 repeats 'GET /a' (step #1)"),
    (ONE_STEP + '[[users.steps]]\npath = "/b"\nbody = "x"\nbody_file = "y"\n',
     "'body' and 'body_file' cannot be used together"),
    (ONE_STEP + '[[users.steps]]\npath = "/b"\nextract = { seq = "json:a" }\n',
     "'extract' in [[users]] 'u' step #2: 'seq' is a value loadgen provides"),
    (ONE_STEP + '[[users.steps]]\npath = "/b"\nextract = { t = "xml:a" }\n',
     "must start with json:, header: or regex:"),
    (ONE_STEP + '[[users.steps]]\npath = "/b"\nexpect = { stauts = 200 }\n',
     "(did you mean 'status'?)"),
    (ONE_STEP + '[[users.steps]]\npath = "/b"\nmax_body = "1KiB"\n',
     "'max_body' in [[users]] 'u' step #2 needs a body to keep"),
    (ONE_STEP + '[[users.steps]]\npath = "/b"\nmethod = "GE T"\n', "is not an HTTP method"),
    (ONE_STEP + '[[users.steps]]\npath = "/b"\nheaders = { "Bad Name" = "x" }\n',
     "is not a valid header name"),
    # templates: unknown names, values extracted later or by the step itself
    (ONE_STEP + '[[users.steps]]\npath = "/b/{{ nope }}"\n',
     "[[users]] 'u' step #2: path: unknown variable 'nope'"),
    (LOGIN + '[[users.steps]]\npath = "/a/{{ item }}"\n'
             '[[users.steps]]\npath = "/b"\nextract = { item = "json:id" }\n',
     ("[[users]] 'shopper' step #1: path: '{{ item }}' is extracted by step #2, which runs "
     "after this step")),
    (LOGIN + '[[users.steps]]\npath = "/a"\nextract = { item = "json:id" }\n'
             'headers = { X-Item = "{{ item }}" }\n',
     ("[[users]] 'shopper' step #1: header 'X-Item': '{{ item }}' is extracted by this step "
     "from its own response")),
    (('[[users]]\nname = "s"\n[[users.on_start]]\npath = "/a/{{ token }}"\n'
     '[[users.on_start]]\npath = "/login"\nextract = { token = "json:t" }\n'
     '[[users.steps]]\npath = "/x"\n'),
     "[[users]] 's' on_start #1: path: '{{ token }}' is extracted by on_start #2"),
    (('[[users]]\nname = "s"\n[[users.on_start]]\npath = "/a/{{ item }}"\n'
     '[[users.steps]]\npath = "/x"\nextract = { item = "json:t" }\n'),
     "[[users]] 's' on_start #1: path: '{{ item }}' is extracted by step #1"),
    (LOGIN + '[[users.steps]]\npath = "/a"\nbody = "{{ token"\n',
     "[[users]] 'shopper' step #1: body: '{{' at character 1"),
    (('[[users]]\nname = "a"\n[[users.on_start]]\npath = "/login"\n'
     'extract = { token = "json:t" }\n[[users.steps]]\npath = "/x"\n'
     '[[users]]\nname = "b"\n[[users.steps]]\npath = "/y/{{ token }}"\n'),
     "[[users]] 'b' step #1: path: unknown variable 'token'"),   # kinds do not share values
    # mixing [[users]] with plain endpoints, requests, method, data
    ('endpoints = ["/x"]\n' + ONE_STEP, "[[users]] and 'endpoints' cannot be combined"),
    ('requests = 10\n' + ONE_STEP, ("'requests' counts requests; with [[users]] a run counts "
                                   "iterations: use 'iterations'")),
    ('method = "POST"\n' + ONE_STEP, "'method' at the top level applies to plain endpoints"),
    ('data = "x"\n' + ONE_STEP, "'data' at the top level applies to plain endpoints"),
    ('data_file = "x"\n' + ONE_STEP, "'data_file' at the top level applies"),
    ('iterations = 5\nendpoints = ["/x"]\n', ("'iterations' counts journey iterations: it "
                                             "needs [[users]]")),
    ('iterations = 0\n' + ONE_STEP, "'iterations' must be 1 or more"),
]


@pytest.fixture(scope="module")
def refusing() -> Any:
    with RefusingPort() as port:
        yield port


def bad_run(refusing: RefusingPort, *args: str) -> str:
    run = run_in_process("run", "--url", refusing.url, *args)
    line = one_line_error(run)
    assert run.stdout == ""
    assert "cannot reach" not in line   # refused as input, before any connection
    return line


@pytest.mark.parametrize(("text", "needle"), BAD_FILES)
def test_bad_users_file_is_one_line_exit_2(tmp_path: Path, refusing: RefusingPort,
                                            text: str, needle: str) -> None:
    path = write(tmp_path, text)
    line = bad_run(refusing, "--config", str(path))
    assert line.startswith(f"loadgen: {path}: "), line
    assert needle in line, line


@pytest.mark.parametrize(("args", "needle"), [
    (["--iterations", "5"], "--iterations counts journey iterations: it needs [[users]]"),
    (["--iterations", "0"], "--iterations"),
    (["--config", "{shop}", "--requests", "5"], "--requests counts requests; a journey run"),
    (["--config", "{shop}", "--endpoint", "/x"], ("--endpoint cannot be combined with the "
                                                  "[[users]] of")),
    (["--config", "{shop}", "--method", "PUT"], "--method applies to plain endpoints"),
    (["--config", "{shop}", "--data", "x"], "--data applies to plain endpoints"),
    (["--config", "{shop}", "--data-file", "x"], "--data-file applies to plain endpoints"),
    (["--config", "{shop}", "--rate", "5"], "--rate needs --duration or --iterations"),
    (["--config", "{shop}", "--rate", "5", "--iterations", "3", "--concurrency", "1"],
     "--max-connections 1 cannot hold one virtual user of each of the 2 [[users]] kinds"),
    (["--config", "{shop}", "--concurrency", "1"],
     "[[users]] 'shopper' gets none of the 1 virtual users"),
    (["--config", "{shop}", "--expect-status", "200-499"],
     "refresh_on 401 is a success of step 'shopper: GET /shop/items'"),
    (["--config", "{shop}", "--threshold", "shopper: GET /nope: p99<1s"],
     "no endpoint 'shopper: GET /nope'"),
    (["--config", "{shop}", "--header", "X-T: {{ nope }}"],
     "[[users]] 'shopper' on_start #1: --header 'X-T': unknown variable 'nope'"),
    (["--config", "{shop}", "--header", "Content-Length: 5"], "Content-Length"),
    (["--config", "{both}", "--feeder", "{csv}"],
     "would be unused: every [[users]] kind has its own 'data'"),
    (["--config", "{shop}", "--feeder-mode", "random"], "--feeder-mode needs --feeder"),
])
def test_bad_journey_options_are_one_line_exit_2(shop: Path, tmp_path: Path,
                                                  refusing: RefusingPort, args: list[str],
                                                  needle: str) -> None:
    both = write(tmp_path, SHOP.replace('name = "browser"',
                                        'name = "browser"\ndata = { file = "users.csv" }'),
                 "both.toml")
    names = {"shop": str(shop), "both": str(both), "csv": str(shop.parent / "users.csv")}
    line = bad_run(refusing, *(a.format(**names) if a.startswith("{") else a for a in args))
    assert needle in line, line


def test_an_extracted_name_that_is_a_feeder_column_is_refused(tmp_path: Path,
                                                             refusing: RefusingPort) -> None:
    (tmp_path / "users.csv").write_text(CREDENTIALS)
    path = write(tmp_path, """
[[users]]
name = "u"
data = { file = "users.csv" }
[[users.on_start]]
path = "/login"
extract = { username = "json:name" }
[[users.steps]]
path = "/a"
""")
    line = bad_run(refusing, "--config", str(path))
    assert "[[users]] 'u' on_start #1: extract 'username' is also a column of feeder" in line


def test_a_bad_kind_feeder_names_the_kind(tmp_path: Path, refusing: RefusingPort) -> None:
    (tmp_path / "empty.csv").write_text("")
    path = write(tmp_path, ONE_STEP.replace('name = "u"',
                                            'name = "u"\ndata = { file = "empty.csv" }'))
    line = bad_run(refusing, "--config", str(path))
    assert f"{path}: [[users]] 'u' data: feeder" in line and "empty" in line


def test_a_feeder_column_a_step_puts_in_its_path_is_checked(tmp_path: Path,
                                                            refusing: RefusingPort) -> None:
    (tmp_path / "ids.csv").write_text("id\nok\nhas space\n")
    path = write(tmp_path, ONE_STEP.replace('name = "u"',
                                            'name = "u"\ndata = { file = "ids.csv" }')
                 + '[[users.steps]]\npath = "/i/{{ id }}"\n')
    line = bad_run(refusing, "--config", str(path))
    assert "[[users]] 'u' step #2: path: feeder" in line and "line 3" in line


def test_the_shipped_shop_journey_builds() -> None:
    from tests.helpers import REPO

    config = build(REPO / "configs" / "shop-journey.toml")
    assert [e.name for e in config.endpoints] == [
        "shopper: POST /api/auth/login", "shopper: GET /shop/items",
        "shopper: POST /shop/orders"]
    (kind,) = config.journeys.kinds
    assert (kind.on_start, kind.steps, kind.refresh_on) == ((0,), (1, 2), frozenset({401}))
    assert kind.feeder.mode == "per-user" and len(kind.feeder) == 10
    assert kind.feeder.row(0) == ["shopper1", "shopper1-pass"]
    assert (config.journeys.iterations, config.concurrency) == (200, 10)


# -- robustness: any [[users]] document is a config or one ConfigError line --------------

_texts = st.text(max_size=10) | st.sampled_from(
    ["/a", "/a/{{ token }}", "/b/{{ username }}", "{{ item }}", "{{ nope }}", "{{ x", "POST",
     "json:access_token", "header:X-T", "regex:id=(\\w+)", "regex:(a)(b)", "200ms",
     "100ms..300ms", "3s..1s", "users.csv", "body.json", "per-user", "list", "", "a: b"])
_scalars = st.booleans() | st.integers(min_value=-5, max_value=600) | st.floats() | _texts
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(_texts, inner, max_size=3), max_leaves=6)


def _toml_value(value: Any) -> str:
    """A value as TOML text (JSON's string escapes are TOML's; nan and inf are TOML's too)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


_names = st.sampled_from(["token", "item", "username", "seq", "x y"]) | st.text(max_size=4)
_step = st.fixed_dictionaries(
    {"path": st.sampled_from(["/a", "/a/{{ token }}", "/b/{{ username }}", "/c/{{ item }}"])
     | _texts},
    optional={"method": _texts, "headers": st.dictionaries(_texts, _texts, max_size=2) | _values,
              "body": _texts, "body_file": _texts, "name": _texts,
              "extract": st.dictionaries(_names, _texts, max_size=2) | _values,
              "expect": st.fixed_dictionaries({}, optional={"status": _values,
                                                            "body_contains": _values})
              | _values,
              "max_body": _values})
_kind = st.fixed_dictionaries(
    {"name": st.sampled_from(["a", "b"]) | _texts, "steps": st.lists(_step, max_size=3)},
    optional={"on_start": st.lists(_step, max_size=2), "weight": _values, "think": _values,
              "refresh_on": st.just([401]) | _values,
              "data": st.just({"file": "users.csv", "mode": "per-user"}) | _values})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_kind, max_size=3), st.sampled_from([(), ("--iterations", "3"),
                                                     ("--rate", "5", "--duration", "1s")]))
def test_arbitrary_users_documents_are_a_config_or_a_config_error(
        kinds: list[dict[str, Any]], args: tuple[str, ...]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "users.csv").write_text(CREDENTIALS)
        Path(folder, "body.json").write_text("{}")
        path = Path(folder, "s.toml")
        path.write_text(f"users = {_toml_value(kinds)}\n", encoding="utf-8")
        try:
            config = build(path, args)
        except ConfigError as exc:
            assert str(exc) and "\n" not in str(exc)
        else:
            assert len(config.endpoints) == sum(
                len(k.on_start) + len(k.steps) for k in config.journeys.kinds)
