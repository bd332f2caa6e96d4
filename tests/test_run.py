"""End-to-end runs of ``loadgen run`` against real servers on 127.0.0.1."""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram
from helpers import Run, loadgen, one_line_error
from rawservers import RawServer, close_delimited, closes_every, malformed, silent, truncated

PASSWORD = "admin123"
LATENCY_KEYS = {"min", "mean", "p50", "p75", "p90", "p95", "p99", "p999", "max"}
SUMMARY_KEYS = {"requests", "successes", "failures", "success_rate", "rps", "duration_s",
                "latency_ms", "success_latency_ms", "status_codes", "failures_by_status",
                "failures_by_kind"}


@pytest.mark.parametrize("requests,workers,concurrency", [
    (1, 1, 1), (101, 2, 7), (997, 2, 13), (50, 2, 50), (10, 2, 3)])
def test_count_is_exact(target_server, tmp_path: Path, requests: int, workers: int,
                        concurrency: int) -> None:
    target_server.reset()
    run = loadgen("run", "--url", target_server.url, "--requests", str(requests),
                  "--workers", str(workers), "--concurrency", str(concurrency),
                  save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    assert run.doc["summary"]["requests"] == requests
    assert run.doc["summary"]["successes"] == requests
    assert target_server.stats()["requests"] == requests
    assert sum(w["requests"] for w in run.doc["workers"]) == requests


def test_endpoints_share_requests_evenly(target_server, tmp_path: Path) -> None:
    target_server.reset()
    run = loadgen("run", "--url", target_server.url, "--endpoint", "/api/health",
                  "--endpoint", "/api/dataset/summary", "--endpoint", "/bytes/10",
                  "--requests", "101", "--concurrency", "5", "--workers", "2",
                  save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    counts = {e["endpoint"]: e["requests"] for e in run.doc["endpoints"]}
    assert counts == {"GET /api/health": 34, "GET /api/dataset/summary": 34, "GET /bytes/10": 33}
    paths = target_server.stats()["paths"]
    assert (paths["/api/health"], paths["/api/dataset/summary"], paths["/bytes/10"]) == (34, 34, 33)
    for line in ("GET /api/health", "GET /api/dataset/summary", "All endpoints"):
        assert line in run.stdout


def test_percentiles_follow_a_known_delay(target_server, tmp_path: Path) -> None:
    run = loadgen("run", "--url", target_server.url, "--endpoint", "/delay/25",
                  "--requests", "80", "--concurrency", "8", "--workers", "2",
                  save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    lat = run.doc["summary"]["latency_ms"]
    assert 25.0 <= lat["min"] <= lat["p50"] <= lat["p99"] <= lat["max"]
    assert lat["p50"] < 45.0, lat
    # 8 connections each waiting 25 ms: at most 320 req/s
    assert run.doc["summary"]["rps"] < 330


def test_histogram_in_json_reproduces_the_percentiles(target_server, tmp_path: Path) -> None:
    run = loadgen("run", "--url", target_server.url, "--endpoint", "/delay/5",
                  "--requests", "60", "--concurrency", "4", "--workers", "1",
                  save=tmp_path / "r.json")
    encoded = run.doc["histograms"]["GET /delay/5"]
    hist = HdrHistogram.decode(encoded)
    assert hist.get_total_count() == 60
    assert hist.get_value_at_percentile(99) / 1000 == run.doc["endpoints"][0]["latency_ms"]["p99"]
    zlib.decompress(base64.b64decode(encoded)[8:])  # a real compressed HDR payload


def test_duration_alone_runs_for_that_long(target_server, tmp_path: Path) -> None:
    run = loadgen("run", "--url", target_server.url, "--duration", "2s", "--concurrency", "4",
                  "--workers", "1", save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    summary = run.doc["summary"]
    assert 1.9 <= summary["duration_s"] <= 2.5
    assert summary["requests"] > 100
    assert [round(i["t"]) for i in run.doc["intervals"]][:2] == [1, 2]


def test_requests_end_before_duration(target_server, tmp_path: Path) -> None:
    target_server.reset()
    run = loadgen("run", "--url", target_server.url, "--duration", "30s", "--requests", "77",
                  save=tmp_path / "r.json")
    assert run.doc["summary"]["requests"] == 77 == target_server.stats()["requests"]
    assert run.doc["summary"]["duration_s"] < 10


@dataclass
class AuthRun:
    run: Run
    image: Path
    save: Path


@pytest.fixture(scope="module")
def auth_run(target_server, tmp_path_factory: pytest.TempPathFactory) -> AuthRun:
    """One logged-in run with a custom header and a chart, read by three tests (the token,
    the secrets in every output, the chart): one worker, the split is not what they check."""
    folder = tmp_path_factory.mktemp("auth-run")
    image, save = folder / "c.png", folder / "r.json"
    run = loadgen("run", "--url", target_server.url, "--endpoint", "/api/analysis/transcript",
                  "--auth", "--username", "admin", "--password", PASSWORD,
                  "--header", "X-Trace: visible-value", "--requests", "20", "--workers", "1",
                  "--visualize", "--output-image", str(image), save=save)
    return AuthRun(run, image, save)


def test_auth_sends_the_token(auth_run: AuthRun) -> None:
    run = auth_run.run
    assert run.status == 0, run.stderr
    assert run.doc["summary"]["status_codes"] == {"200": 20}


def test_auth_password_from_environment(target_server, tmp_path: Path) -> None:
    run = loadgen("run", "--url", target_server.url, "--endpoint", "/api/analysis/transcript",
                  "--auth", "--username", "admin", "--requests", "5", "--workers", "1",
                  save=tmp_path / "r.json", env={"LOADGEN_PASSWORD": "admin123"})
    assert run.doc["summary"]["status_codes"] == {"200": 5}


def test_non_admin_token_is_forbidden_and_counted(target_server, tmp_path: Path) -> None:
    run = loadgen("run", "--url", target_server.url, "--endpoint", "/api/analysis/transcript",
                  "--auth", "--requests", "7", "--workers", "1", save=tmp_path / "r.json")
    assert run.status == 0
    assert run.doc["summary"]["status_codes"] == {"403": 7}
    assert run.doc["summary"]["success_rate"] == 0.0


def test_wrong_password_sends_no_load(target_server, tmp_path: Path) -> None:
    target_server.reset()
    run = loadgen("run", "--url", target_server.url, "--endpoint", "/api/analysis/transcript",
                  "--auth", "--username", "admin", "--password", "wrong",
                  save=tmp_path / "r.json")
    line = one_line_error(run, status=3)
    assert "login failed" in line and "wrong" not in line
    assert target_server.stats()["paths"].get("/api/analysis/transcript", 0) == 0
    assert run.doc is None


def test_no_secret_in_any_output(target_server, auth_run: AuthRun) -> None:
    import orjson
    import urllib3

    password = PASSWORD
    response = urllib3.PoolManager().request(
        "POST", target_server.url + "/api/auth/login",
        body=orjson.dumps({"username": "admin", "password": password}))
    token = orjson.loads(response.data)["access_token"]
    run = auth_run.run
    assert run.status == 0, run.stderr
    outputs = [run.stdout, run.stderr, auth_run.save.read_text()]
    signature = token.split(".")[2]
    for text in outputs:
        assert password not in text
        assert signature not in text and "Bearer" not in text
        assert "visible-value" not in text
    assert password.encode() not in auth_run.image.read_bytes()


def test_post_with_body(target_server, tmp_path: Path) -> None:
    target_server.reset()
    body = tmp_path / "body.json"
    body.write_bytes(b'{"text": "hello"}')
    run = loadgen("run", "--url", target_server.url, "--endpoint", "/api/dataset/transform",
                  "--data-file", str(body), "--requests", "31", "--concurrency", "3",
                  "--workers", "1", save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    assert run.doc["endpoints"][0]["endpoint"] == "POST /api/dataset/transform"
    assert run.doc["summary"]["status_codes"] == {"200": 31}
    assert run.doc["summary"]["bytes_out"] > 31 * len(body.read_bytes())
    assert target_server.stats()["methods"] == {"POST": 31}


def test_chunked_responses_are_drained(target_server, tmp_path: Path) -> None:
    run = loadgen("run", "--url", target_server.url, "--endpoint", "/chunked/20000",
                  "--requests", "40", "--concurrency", "4", "--workers", "1",
                  save=tmp_path / "r.json")
    summary = run.doc["summary"]
    assert summary["status_codes"] == {"200": 40}
    assert summary["bytes_in"] > 40 * 20000


def test_head_responses_have_no_body(target_server, tmp_path: Path) -> None:
    target_server.reset()
    run = loadgen("run", "--url", target_server.url, "--endpoint", "/bytes/50000",
                  "--method", "HEAD", "--requests", "30", "--concurrency", "3",
                  "--timeout", "3s", "--workers", "1", save=tmp_path / "r.json")
    summary = run.doc["summary"]
    assert summary["status_codes"] == {"200": 30}, summary
    assert summary["bytes_in"] < 30 * 1000
    assert target_server.stats()["requests"] == 30


def test_204_and_error_statuses(target_server, tmp_path: Path) -> None:
    run = loadgen("run", "--url", target_server.url, "--endpoint", "/status/204",
                  "--endpoint", "/status/503", "--requests", "20", "--concurrency", "2",
                  "--workers", "1", save=tmp_path / "r.json")
    summary = run.doc["summary"]
    assert summary["status_codes"] == {"204": 10, "503": 10}
    assert summary["successes"] == 10 and summary["failures"] == 10
    assert "503" in run.stdout


def test_server_closing_each_connection(target_server, tmp_path: Path) -> None:
    target_server.reset()
    run = loadgen("run", "--url", target_server.url, "--endpoint", "/close",
                  "--requests", "45", "--concurrency", "3", "--workers", "1",
                  save=tmp_path / "r.json")
    assert run.doc["summary"]["status_codes"] == {"200": 45}
    assert target_server.stats()["requests"] == 45


def test_silently_closed_keepalive_is_reopened_and_counted_once(tmp_path: Path) -> None:
    with RawServer(closes_every(3)) as server:
        run = loadgen("run", "--url", server.url, "--requests", "61", "--concurrency", "4",
                      "--workers", "2", save=tmp_path / "r.json")
        assert run.doc["summary"]["status_codes"] == {"200": 61}
        assert server.requests == 61
        assert sum(w["reconnects"] for w in run.doc["workers"]) >= 61 // 3 - 4


def test_close_delimited_body(tmp_path: Path) -> None:
    with RawServer(close_delimited) as server:
        run = loadgen("run", "--url", server.url, "--requests", "23", "--concurrency", "2",
                      "--workers", "1", save=tmp_path / "r.json")
    summary = run.doc["summary"]
    assert summary["status_codes"] == {"200": 23}
    assert summary["bytes_in"] >= 23 * 3000


@pytest.mark.parametrize("handler,kind", [(malformed, "protocol"), (truncated, "read")])
def test_broken_responses_are_errors(tmp_path: Path, handler, kind: str) -> None:
    with RawServer(handler) as server:
        run = loadgen("run", "--url", server.url, "--requests", "12", "--concurrency", "2",
                      "--workers", "1", save=tmp_path / "r.json")
    assert run.status == 0
    summary = run.doc["summary"]
    assert summary["failures_by_kind"] == {kind: 12}
    assert summary["successes"] == 0 and summary["requests"] == 12
    assert kind in run.stdout


def test_timeouts_are_counted(tmp_path: Path) -> None:
    with RawServer(silent) as server:
        run = loadgen("run", "--url", server.url, "--requests", "4", "--concurrency", "2",
                      "--timeout", "300ms", "--workers", "1", save=tmp_path / "r.json")
    summary = run.doc["summary"]
    assert summary["failures_by_kind"] == {"timeout": 4}
    # a timeout is in the distribution at its elapsed time, never below the timeout
    assert summary["latency_ms"]["min"] >= 300 and summary["latency_ms"]["max"] < 400, summary
    assert summary["success_latency_ms"]["p50"] is None


def test_json_schema(target_server, tmp_path: Path) -> None:
    run = loadgen("run", "--url", target_server.url, "--endpoint", "/api/health",
                  "--endpoint", "/status/500", "--requests", "10", "--workers", "1",
                  save=tmp_path / "r.json")
    doc = run.doc
    assert doc["status"] == "complete"
    assert doc["schema"] == "loadgen/1"
    config = doc["config"]
    assert config["url"] == target_server.url and config["requests"] == 10
    for summary in [doc["summary"], *doc["endpoints"]]:
        assert SUMMARY_KEYS <= summary.keys()
        assert set(summary["latency_ms"]) == LATENCY_KEYS
        assert 0.0 <= summary["success_rate"] <= 1.0
    assert [e["endpoint"] for e in doc["endpoints"]] == ["GET /api/health", "GET /status/500"]
    assert set(doc["histograms"]) == {"GET /api/health", "GET /status/500"}
    assert doc["summary"]["success_rate"] == 0.5


def test_chart_is_a_real_png(auth_run: AuthRun) -> None:
    image, run = auth_run.image, auth_run.run
    assert run.status == 0, run.stderr
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(image) in run.stdout


def test_demo_runs_against_the_builtin_target(tmp_path: Path) -> None:
    # the demo's ramp then hold, made short (its default is 9 s at up to 400 req/s)
    run = loadgen("demo", "--duration", "1.5", "--rate", "40", "--save", str(tmp_path / "d.json"),
                  "--output-image", str(tmp_path / "d.png"), "--html", str(tmp_path / "d.html"))
    assert run.status == 0, run.stderr
    assert "All endpoints" in run.stdout
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"
    page = (tmp_path / "d.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "/api/dataset/summary" in page
    import orjson
    doc = orjson.loads((tmp_path / "d.json").read_bytes())
    assert doc["config"]["model"] == "open"
    assert doc["config"]["schedule"] == [
        {"duration_s": 0.5, "start_rate": 0.0, "end_rate": 40.0},
        {"duration_s": 1.0, "start_rate": 40.0, "end_rate": 40.0}]
    # every request the schedule made due: 10 on the ramp, 40 in the hold
    assert doc["summary"]["requests"] == 50 and doc["summary"]["successes"] == 50
