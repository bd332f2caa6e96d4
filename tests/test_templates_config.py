"""Templates and feeders in a run's config: options and scenario keys to typed endpoints,
bad input refused before any load (one line, exit 2), the worker's rendered bytes."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from loadgen.commands.inputs import build_config
from loadgen.config.model import ConfigError, plan_workers
from loadgen.config.scenario import parse_scenario
from loadgen.config.settings import Settings
from loadgen.config.templated import MAX_CLUSTER_FEEDER, load_feeder
from tests.helpers import one_line_error, run_in_process


def click_params(args: list[str]) -> dict[str, Any]:
    from loadgen.cli import run

    with run.make_context("run", args) as ctx:
        return dict(ctx.params)


def build(args: list[str], scenario: Settings | None = None) -> Any:
    params = click_params(["--url", "http://127.0.0.1:9", *args])
    params.pop("config_file", None)
    typed = {a[2:].replace("-", "_") for a in args if a.startswith("--")}
    typed = {{"endpoint": "endpoints", "header": "headers"}.get(t, t) for t in typed}
    return build_config(params, scenario, typed)


@pytest.fixture
def rows(tmp_path: Path) -> Path:
    path = tmp_path / "rows.csv"
    path.write_text("id,token\n7,abc\n8,def\n9,ghi\n")
    return path


def test_a_templated_endpoint_is_one_row_named_by_its_template(rows: Path) -> None:
    config = build(["--endpoint", "/api/items/{{ id }}", "--feeder", str(rows)])
    (e,) = config.endpoints
    assert e.name == "GET /api/items/{{ id }}"
    assert e.templates is not None and e.templates.path.columns == ("id",)
    assert config.feeder is not None and len(config.feeder) == 3
    assert config.public()["feeder"] == {"file": str(rows), "mode": "sequential", "rows": 3}


def test_static_endpoints_stay_static(rows: Path) -> None:
    config = build(["--endpoint", "/a", "--header", "X-A: 1", "--data", "{}",
                    "--feeder", str(rows)])
    assert all(e.templates is None for e in config.endpoints)


def test_plans_carry_templates_feeder_and_user_offsets(rows: Path) -> None:
    config = build(["--endpoint", "/i/{{ id }}", "--feeder", str(rows), "--feeder-mode",
                    "per-user", "--workers", "2", "--concurrency", "5"])
    plans = plan_workers(config)
    assert [p.user_offset for p in plans] == [0, 3]
    again = pickle.loads(pickle.dumps(plans[1]))
    assert again.feeder.mode == "per-user" and again.feeder.row(2) == ["9", "ghi"]
    assert again.endpoints[0].templates == config.endpoints[0].templates


@pytest.mark.parametrize(("args", "expected"), [
    (["--endpoint", "/i/{{ idd }}"], "--endpoint: unknown variable 'idd'"),
    (["--endpoint", "/i/{{ id"], "--endpoint: '{{' at character 4"),
    (["--endpoint", "/i/{{ nope }}"], "feeder columns: id, token"),
    (["--header", "X-T: {{ missing }}"], "--header: unknown variable 'missing'"),
    (["--data", '{"a": {{ b }}}'], "--data: unknown variable 'b'"),
    (["--endpoint", "/i/{{ id }}", "--feeder-mode", "random"], None),
])
def test_bad_templates_name_the_option(rows: Path, args: list[str],
                                       expected: str | None) -> None:
    if expected is None:   # a valid one: no error
        build([*args, "--feeder", str(rows)])
        return
    with pytest.raises(ConfigError) as err:
        build([*args, "--feeder", str(rows)])
    assert expected in str(err.value)


def test_a_rendered_path_or_header_must_be_http(tmp_path: Path) -> None:
    feeder = tmp_path / "f.jsonl"
    feeder.write_text('{"id": "a", "h": "x"}\n{"id": "a b", "h": "x\\ny"}\n')
    with pytest.raises(ConfigError, match="--endpoint: .* line 2: .* 'id' contains a space"):
        build(["--endpoint", "/i/{{ id }}", "--feeder", str(feeder)])
    with pytest.raises(ConfigError, match=r"--header: .* line 2: .* column 'h' contains LF"):
        build(["--header", "X-H: {{ h }}", "--feeder", str(feeder)])
    with pytest.raises(ConfigError, match="--endpoint: the rendered path .* a space"):
        build(["--endpoint", "/a b/{{ seq }}"])


def test_feeder_problems(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ConfigError, match="empty"):
        build(["--endpoint", "/i/{{ id }}", "--feeder", str(empty)])
    with pytest.raises(ConfigError, match="cannot read"):
        build(["--feeder", str(tmp_path / "absent.csv")])
    header_only = tmp_path / "h.csv"
    header_only.write_text("id\n")
    with pytest.raises(ConfigError, match="no rows"):
        build(["--feeder", str(header_only)])
    with pytest.raises(ConfigError, match="--feeder-mode needs --feeder"):
        build(["--feeder-mode", "random"])


def test_a_feeder_without_placeholders_is_accepted(rows: Path) -> None:
    """Decided: a feeder no template uses is not an error (a scenario may share one)."""
    assert build(["--feeder", str(rows)]).endpoints[0].templates is None


def test_a_cluster_takes_feeders_up_to_64_mib(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    line = "x" * 1023 + "\n"
    big.write_text("id\n" + line * (MAX_CLUSTER_FEEDER // len(line) + 1))
    assert load_feeder(str(big), None, None) is not None
    with pytest.raises(ConfigError, match="--feeder: .* at most 64 MiB"):
        load_feeder(str(big), None, "tcp://127.0.0.1:8786")


def test_scenario_keys(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("id,name\n1,a\n")
    (tmp_path / "body.tmpl").write_text('{"id": "{{ id }}"}')
    (tmp_path / "raw.json").write_text('{"id": "{{ id }}"}')
    settings = parse_scenario("""
url = "http://127.0.0.1:9"
data = { file = "rows.csv", mode = "per-user" }
headers = { "X-Seq" = "{{ seq }}" }
[[endpoints]]
path = "/items/{{ id }}"
name = "item"
[[endpoints]]
path = "/a"
method = "POST"
body_template_file = "body.tmpl"
[[endpoints]]
path = "/b"
method = "POST"
body_file = "raw.json"
""", str(tmp_path / "s.toml"), str(tmp_path))
    assert settings.feeder == str(tmp_path / "rows.csv") and settings.feeder_mode == "per-user"
    config = build([], settings)
    item, templated, raw = config.endpoints
    assert item.name == "item" and item.templates.path.columns == ("id",)
    assert templated.templates.body is not None and templated.templates.body.columns == ("id",)
    assert raw.templates.body is None   # body_file: byte for byte (the header is templated)
    assert config.feeder.mode == "per-user"
    with pytest.raises(ConfigError, match="'mode' in 'data'"):
        parse_scenario('data = { file = "x.csv", mode = "all" }', "s.toml")
    with pytest.raises(ConfigError, match="unknown key 'path' in 'data'"):
        parse_scenario('data = { path = "x.csv" }', "s.toml")


_RENDER = """
from gevent import monkey
monkey.patch_all()
import os, pickle, socket, sys
from loadgen.engine.channel import Channel
from loadgen.engine.worker import Worker
plan = pickle.loads(sys.stdin.buffer.read())
a, b = socket.socketpair()
worker = Worker(plan, Channel(os.dup(a.fileno())))
makers = worker.makers
out = [worker.requests[e] or makers[e](4, 6) for e in range(len(plan.endpoints))]
worker.replace_headers([("X-Renewed", "yes")])   # --auth's renewal: rebuilt in place
renewed = [worker.requests[e] or makers[e](4, 6) for e in range(len(plan.endpoints))]
sys.stdout.buffer.write(pickle.dumps((out, [m is None for m in makers], renewed)))
"""


def worker_bytes(plan: Any) -> tuple[list[bytes], list[bool], list[bytes]]:
    """Each endpoint's bytes as the worker makes them for request 4 of user 6, whether it
    has no maker, and its bytes after a renewed login's header (a fresh, monkey-patched
    interpreter: the pytest process never imports gevent's patches)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _RENDER], input=pickle.dumps(plan),
                          capture_output=True, check=True, timeout=60)
    result: tuple[list[bytes], list[bool], list[bytes]] = pickle.loads(done.stdout)
    return result


def test_worker_renders_templated_bytes(rows: Path) -> None:
    """The worker's makers: sequential rows by global index, the user's index, headers;
    a static endpoint keeps its prebuilt bytes (no maker)."""
    config = build(["--endpoint", "/i/{{ id }}", "--header", "X-Static: {no}",
                    "--feeder", str(rows)])
    plan = plan_workers(config)[0]
    e = config.endpoints[0]
    from dataclasses import replace

    from loadgen.config.templated import template_endpoints

    static_e = replace(e, path="/static", templates=None)
    token = replace(e, path="/t", templates=None,
                    headers=(("Authorization", "Bearer {{ token }}"), ("X-User", "u{{ user }}")))
    (token,) = template_endpoints((token,), (), config.feeder, cli=True)
    plan = replace(plan, endpoints=(e, static_e, token), cycle=(0, 1, 2))
    (item, static, auth), no_maker, renewed = worker_bytes(plan)
    assert no_maker == [False, True, False]
    assert static.startswith(b"GET /static HTTP/1.1\r\n") and b"X-Static: {no}" in static
    assert item.startswith(b"GET /i/8 HTTP/1.1\r\n")   # request 4 of 3 rows: row 1
    assert auth.startswith(b"GET /t HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer def\r\n" in auth and b"\r\nX-User: u6\r\n" in auth
    assert all(b"\r\nX-Renewed: yes\r\n" in r for r in renewed)
    assert renewed[2].startswith(b"GET /t HTTP/1.1\r\n") and b"Bearer def" in renewed[2]


def test_bad_input_exits_2_before_any_load(tmp_path: Path, rows: Path) -> None:
    """Nothing listens on the URL's port: a run that got past the config would say so."""
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    for args, expected in (
            (["--endpoint", "/i/{{ idd }}", "--feeder", str(rows)], "unknown variable 'idd'"),
            (["--endpoint", "/i/{{ nope }}"], "unknown variable 'nope'"),
            (["--endpoint", "/i/{{ id"], "is never closed"),
            (["--endpoint", "/i/{{ id }}", "--feeder", str(empty)], "the file is empty")):
        line = one_line_error(run_in_process("run", "--url", "http://127.0.0.1:9", *args))
        assert expected in line, line
