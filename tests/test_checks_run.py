"""Response checks (``expect``) on plain endpoints, end to end: real runs (worker
processes spawned) against the built-in target, whose ``/api/health`` answers 200
``{"status":"ok"}``."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import TargetServer
from tests.helpers import loadgen, one_line_error

GOOD_AND_MISSING = """
[[endpoints]]
path = "/api/health"
name = "good"
expect = { status = [200], body_contains = "ok", json = { "status" = "ok" } }
[[endpoints]]
path = "/api/health"
name = "missing"
expect = { body_contains = ["ok", "nope"] }
"""
ENDPOINTS = GOOD_AND_MISSING + """
[[endpoints]]
path = "/api/health"
name = "wrong json"
expect = { json = { "status" = "down" } }
[[endpoints]]
path = "/api/health"
name = "plain"
"""


def _scenario(tmp_path: Path, target: TargetServer, endpoints: str, extra: str = "") -> Path:
    path = tmp_path / "s.toml"
    path.write_text(f'url = "{target.url}"\n{extra}\n{endpoints}')
    return path


def _rows(doc: dict) -> dict[str, dict]:
    return {row["endpoint"]: row for row in doc["endpoints"]}


def test_failed_checks_are_counted_exactly_per_row_and_per_check(
        target_server: TargetServer, tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, target_server, ENDPOINTS)
    target_server.reset()
    run = loadgen("run", "--config", str(scenario), "--requests", "40", "--workers", "2",
                  "--concurrency", "4", save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    rows = _rows(run.doc)
    good, missing, wrong, plain = (rows[n] for n in ("good", "missing", "wrong json", "plain"))
    assert good["successes"] == 10 and good["checked"] == 10 and good["checks_failed"] == {}
    assert missing["successes"] == 0 and missing["failures_by_kind"] == {"check": 10}
    assert missing["checks_failed"] == {'body_contains "nope"': 10}
    assert wrong["failures_by_kind"] == {"check": 10}
    assert wrong["checks_failed"] == {'json status == "down"': 10}
    assert plain["successes"] == 10 and "checked" not in plain
    summary = run.doc["summary"]
    assert summary["requests"] == 40 and summary["failures"] == 20
    assert summary["checked"] == 30 and summary["failures_by_kind"] == {"check": 20}
    assert target_server.stats()["paths"]["/api/health"] == 40   # the server saw each one
    assert "by kind: check × 20" in run.stdout


def test_expect_status_is_the_success_set(target_server: TargetServer, tmp_path: Path) -> None:
    """``expect.status`` replaces the endpoint's success set: a 200 where 201 is expected
    is a failure by status, as with expect_status, and its body is not checked."""
    scenario = _scenario(tmp_path, target_server, """
[[endpoints]]
path = "/api/health"
expect = { status = [201], body_contains = "ok" }
""")
    run = loadgen("run", "--config", str(scenario), "--requests", "6", "--workers", "1",
                  "--concurrency", "2", save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    row = run.doc["endpoints"][0]
    assert row["failures_by_status"] == {"200": 6} and row["failures_by_kind"] == {}
    assert "checked" not in row
    assert run.doc["config"]["expect_status"] == {"GET /api/health": "201"}


def test_a_body_over_max_body_fails_its_check_by_name(target_server: TargetServer,
                                                      tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, target_server, """
[[endpoints]]
path = "/api/health"
expect = { body_contains = "ok" }
max_body = 4
""")
    run = loadgen("run", "--config", str(scenario), "--requests", "5", "--workers", "1",
                  "--concurrency", "1", save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    row = run.doc["endpoints"][0]
    assert row["checks_failed"] == {'body_contains "ok" (body over max_body 4 bytes)': 5}


def test_bad_expect_is_bad_input(target_server: TargetServer, tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, target_server, """
[[endpoints]]
path = "/api/health"
expect = { body_contain = "ok" }
""")
    line = one_line_error(loadgen("run", "--config", str(scenario)))
    assert "'expect' in [[endpoints]] #1" in line and "did you mean 'body_contains'" in line
    scenario.write_text(f'url = "{target_server.url}"\n[[endpoints]]\npath = "/api/health"\n'
                        'expect = { json = { "items[" = 1 } }\n')
    line = one_line_error(loadgen("run", "--config", str(scenario)))
    assert "not a valid JMESPath expression" in line
    scenario.write_text(f'url = "{target_server.url}"\n[[endpoints]]\npath = "/api/health"\n'
                        'max_body = "1KiB"\n')
    line = one_line_error(loadgen("run", "--config", str(scenario)))
    assert "'max_body' in [[endpoints]] #1 needs 'expect' with body checks" in line
    scenario.write_text(f'url = "{target_server.url}"\n[[endpoints]]\npath = "/api/health"\n'
                        'checks = { body_contains = "ok" }\n')
    assert "did you mean 'expect'" in one_line_error(loadgen("run", "--config", str(scenario)))


def test_a_checks_threshold_fails_the_run(target_server: TargetServer, tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, target_server, GOOD_AND_MISSING)
    run = loadgen("run", "--config", str(scenario), "--requests", "20", "--workers", "1",
                  "--concurrency", "2", "--threshold", "checks>=99%",
                  "--threshold", "good: checks>=100%", save=tmp_path / "r.json")
    assert run.status == 1, run.stderr
    assert [(t["threshold"], t["actual"], t["passed"]) for t in run.doc["thresholds"]] == [
        ("checks>=99%", 0.5, False), ("good: checks>=100%", 1.0, True)]
    assert ('Checks failed: 10 of 20 checked responses (50.00%) — missing: '
            'body_contains "nope" × 10') in run.stdout


def test_checks_on_the_shop_with_a_jmespath_function(target_server: TargetServer,
                                                     tmp_path: Path) -> None:
    """The shop's listing passes a JMESPath check (a function, a nested field); an order of
    an item never shown answers 404: a failure by status (``expect.status`` is [201]),
    exactly as many as the server refused, and its body is not checked."""
    from loadgen.target.shop import ITEMS_PER_LISTING

    scenario = _scenario(tmp_path, target_server, f"""
[[endpoints]]
path = "/shop/items"
expect = {{ body_contains = '"price"', json = {{ "length(items)" = {ITEMS_PER_LISTING} }} }}
[[endpoints]]
method = "POST"
path = "/shop/orders"
headers = {{ "Content-Type" = "application/json" }}
body = '{{"item": "never-shown"}}'
expect = {{ status = [201], body_contains = "order_id" }}
""")
    target_server.reset()
    run = loadgen("run", "--config", str(scenario), "--auth", "--requests", "30",
                  "--workers", "2", "--concurrency", "2", save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    rows = _rows(run.doc)
    items, orders = rows["GET /shop/items"], rows["POST /shop/orders"]
    assert items["successes"] == items["checked"] == 15 and items["checks_failed"] == {}
    assert orders["failures_by_status"] == {"404": 15} and "checked" not in orders
    stats = target_server.stats()
    assert stats["orders"]["not_shown"] == 15 and stats["shop"]["listings"] == 15


def test_checks_in_the_open_model(target_server: TargetServer, tmp_path: Path) -> None:
    """``--rate``: the same counts; the checked endpoint's service times are recorded too."""
    scenario = _scenario(tmp_path, target_server, GOOD_AND_MISSING)
    run = loadgen("run", "--config", str(scenario), "--requests", "40", "--rate", "200",
                  "--workers", "1", "--concurrency", "2", save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    rows = _rows(run.doc)
    assert rows["good"]["successes"] == rows["good"]["checked"] == 20
    assert rows["missing"]["checks_failed"] == {'body_contains "nope"': 20}
    assert rows["missing"]["service_time_ms"]["max"] is not None
