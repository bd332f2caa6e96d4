"""Templated endpoints end to end: real runs (worker processes spawned) against the
built-in target, whose ``/api/items/<id>`` records every id it was asked for."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import TargetServer
from tests.helpers import loadgen


def _run(target: TargetServer, tmp_path: Path, *args: str) -> dict:
    target.reset()
    run = loadgen("run", "--url", target.url, "--quiet", *args, save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    assert run.doc is not None
    return run.doc


def test_sequential_feeder_uses_every_row_exactly(target_server: TargetServer,
                                                  tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("id\nr0\nr1\nr2\n")
    doc = _run(target_server, tmp_path, "--endpoint", "/api/items/{{ id }}", "--feeder",
               str(rows), "--requests", "9", "--workers", "2", "--concurrency", "2")
    assert target_server.stats()["ids_seen"] == {"r0": 3, "r1": 3, "r2": 3}
    assert [e["endpoint"] for e in doc["endpoints"]] == ["GET /api/items/{{ id }}"]
    assert doc["endpoints"][0]["requests"] == 9


def test_seq_is_the_global_request_index(target_server: TargetServer, tmp_path: Path) -> None:
    _run(target_server, tmp_path, "--endpoint", "/api/items/{{ seq }}", "--requests", "50",
         "--workers", "2", "--concurrency", "4")
    assert target_server.stats()["ids_seen"] == {str(k): 1 for k in range(50)}


def test_per_user_feeder_gives_each_user_its_row(target_server: TargetServer,
                                                 tmp_path: Path) -> None:
    """Two users (one per worker), two rows: user i always takes row i, so each id is
    asked for exactly as often as its user sent (the tickets split 10 + 10)."""
    rows = tmp_path / "users.jsonl"
    rows.write_text('{"name": "alice"}\n{"name": "bob"}\n')
    _run(target_server, tmp_path, "--endpoint", "/api/items/{{ name }}-{{ user }}",
         "--feeder", str(rows), "--feeder-mode", "per-user", "--requests", "20",
         "--workers", "2", "--concurrency", "2")
    assert target_server.stats()["ids_seen"] == {"alice-0": 10, "bob-1": 10}


def test_a_name_overrides_the_row_and_static_endpoints_stay(target_server: TargetServer,
                                                             tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("id\na\nb\n")
    scenario = tmp_path / "s.toml"
    scenario.write_text(f"""
url = "{target_server.url}"
requests = 8
workers = 1
concurrency = 1
data = {{ file = "rows.csv" }}
[[endpoints]]
path = "/api/items/{{{{ id }}}}"
name = "item"
[[endpoints]]
path = "/api/health"
""")
    doc = _run(target_server, tmp_path, "--config", str(scenario))
    assert {e["endpoint"]: e["requests"] for e in doc["endpoints"]} == {"item": 4,
                                                                    "GET /api/health": 4}
    # the cycle alternates: requests 0, 2, 4, 6 are items, rows k mod 2 -> all "a"
    assert target_server.stats()["ids_seen"] == {"a": 4}


def test_open_model_seq_and_random_rows(target_server: TargetServer, tmp_path: Path) -> None:
    """Open model: request k is k whichever worker sends it; random rows stay in the file."""
    _run(target_server, tmp_path, "--endpoint", "/api/items/{{ seq }}", "--rate", "200",
         "--requests", "30", "--workers", "2", "--concurrency", "2")
    assert target_server.stats()["ids_seen"] == {str(k): 1 for k in range(30)}
    rows = tmp_path / "rows.csv"
    rows.write_text("id\nx\ny\nz\n")
    _run(target_server, tmp_path, "--endpoint", "/api/items/{{ id }}", "--feeder", str(rows),
         "--feeder-mode", "random", "--requests", "30", "--workers", "2")
    seen = target_server.stats()["ids_seen"]
    assert set(seen) <= {"x", "y", "z"} and sum(seen.values()) == 30
