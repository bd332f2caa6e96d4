"""``loadgen run --config``: scenario files drive real runs; typed options win."""

from __future__ import annotations

from pathlib import Path

from helpers import REPO, loadgen, one_line_error, run_in_process


def test_weighted_mix_from_the_shipped_config(target_server, tmp_path: Path) -> None:
    target_server.reset()
    run = loadgen("run", "--config", str(REPO / "configs" / "mixed.toml"), "--url",
                  target_server.url, "--duration", "1s", "--rate", "200",
                  save=tmp_path / "r.json")
    assert run.status == 0, run.stdout + run.stderr
    counts = {e["endpoint"]: e["requests"] for e in run.doc["endpoints"]}
    assert counts == {"GET /api/health": 100, "GET /api/dataset/summary": 60,
                      "POST /api/dataset/transform": 40}
    assert target_server.stats()["methods"] == {"GET": 160, "POST": 40}
    assert [t["threshold"] for t in run.doc["thresholds"]] == ["p99<200ms", "errors<1%"]
    assert run.doc["config"]["url"] == target_server.url
    assert "PASS" in run.stdout


def test_typed_options_override_the_file(target_server, tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text('url = "http://127.0.0.1:1"\nrequests = 500\nconcurrency = 3\n'
                        'endpoints = ["/api/health"]\n')
    run = loadgen("run", "--config", str(scenario), "--url", target_server.url,
                  "--requests", "21", "--workers", "1", save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    assert run.doc["summary"]["requests"] == 21
    assert run.doc["config"]["concurrency"] == 3


def test_failed_threshold_in_file_exits_1(target_server, tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(f'url = "{target_server.url}"\nrequests = 20\n'
                        'thresholds = ["rps>1000000", "p99<10s"]\n')
    run = loadgen("run", "--config", str(scenario), "--workers", "1", save=tmp_path / "r.json")
    assert run.status == 1, run.stdout + run.stderr
    assert [t["passed"] for t in run.doc["thresholds"]] == [False, True]
    assert "FAIL" in run.stdout


def test_config_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("requests = 10\nreqests = 5\n")
    assert "reqests" in one_line_error(run_in_process("run", "--config", str(bad)))
    bad.write_text("requests = \n")
    assert "line 1" in one_line_error(run_in_process("run", "--config", str(bad)))
    one_line_error(run_in_process("run", "--config", str(tmp_path / "missing.toml")))
