"""What goes on the wire: user headers replace loadgen's defaults, no #fragment, one Host;
and which statuses count as a success (--expect-status, expect_status).

Unit tests on the pure functions first, then runs of the real command line against
servers on 127.0.0.1: a raw server that records every request head, the built-in
target (whose /__stats is the server's own count) and, when installed, a private nginx
with a virtual host.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import loadgen, one_line_error, run_in_process
from nginx import private_nginx
from rawservers import RawServer

from loadgen.commands.inputs import build_config
from loadgen.config.model import (
    DEFAULT_EXPECT_STATUS,
    ConfigError,
    check_headers,
    format_status_set,
    merge_headers,
    normalize_path,
    parse_status_set,
)
from loadgen.config.scenario import parse_scenario
from loadgen.config.settings import EndpointSpec, Settings
from loadgen.engine.client import build_request
from loadgen.engine.preflight import login_headers
from loadgen.stats.metrics import Tally, Totals, summarize

# -- request bytes ------------------------------------------------------------------------


def head_lines(request: bytes) -> list[str]:
    return request.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")


def field_values(request: bytes, name: str) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in head_lines(request)[1:]
            if line.split(":", 1)[0].lower() == name.lower()]


def test_user_host_replaces_the_default_whatever_its_case() -> None:
    for name in ("Host", "host", "HOST"):
        data = build_request("GET", "127.0.0.1:8080", "/a", [(name, "api.example.test")], b"")
        assert field_values(data, "host") == ["api.example.test"]
        assert head_lines(data)[1] == "Host: api.example.test"   # first, as loadgen's own


def test_defaults_stay_when_not_given() -> None:
    data = build_request("GET", "127.0.0.1:8080", "/a", [("X-Env", "ci")], b"")
    assert field_values(data, "host") == ["127.0.0.1:8080"]
    assert field_values(data, "user-agent") == ["loadgen"]
    assert field_values(data, "accept") == ["*/*"]
    assert field_values(data, "x-env") == ["ci"]
    assert field_values(data, "content-length") == []


def test_user_agent_and_accept_replace_defaults() -> None:
    data = build_request("GET", "h", "/", [("user-agent", "k6"), ("ACCEPT", "text/html")], b"")
    assert field_values(data, "user-agent") == ["k6"]
    assert field_values(data, "accept") == ["text/html"]


def test_content_length_written_once() -> None:
    data = build_request("POST", "h", "/", [("content-length", "5")], b"hello")
    assert field_values(data, "content-length") == ["5"]
    assert data.endswith(b"\r\n\r\nhello")
    # a user's Content-Length: 0 on a GET is sent (once), as asked
    data = build_request("GET", "h", "/", [("Content-Length", "0")], b"")
    assert field_values(data, "content-length") == ["0"]


def test_transfer_encoding_never_built() -> None:
    with pytest.raises(ValueError):
        build_request("POST", "h", "/", [("Transfer-Encoding", "chunked")], b"x")


def test_fragment_never_on_the_wire() -> None:
    data = build_request("GET", "h", "/a/b?q=1#section-2", [], b"")
    assert head_lines(data)[0] == "GET /a/b?q=1 HTTP/1.1"


def test_repeatable_fields_kept() -> None:
    data = build_request("GET", "h", "/", [("Cookie", "a=1"), ("Cookie", "b=2")], b"")
    assert field_values(data, "cookie") == ["a=1", "b=2"]


# -- header layers and checks ------------------------------------------------------------


def test_endpoint_headers_replace_run_headers_of_the_same_name() -> None:
    run = (("Host", "a.test"), ("X-Env", "ci"), ("Accept", "text/plain"))
    merged = merge_headers(run, (("host", "b.test"), ("X-Other", "1")))
    assert merged == [("X-Env", "ci"), ("Accept", "text/plain"), ("host", "b.test"),
                      ("X-Other", "1")]
    assert merge_headers(run, ()) == list(run)


@pytest.mark.parametrize("headers,body,message", [
    ([("Content-Length", "3")], b"hello", "does not match the 5-byte body"),
    ([("Content-Length", "x")], b"", "does not match the 0-byte body"),
    ([("Content-Length", "\xb2")], b"ab", "does not match"),   # a Latin-1 digit, not ASCII
    ([("Transfer-Encoding", "chunked")], b"x", "Transfer-Encoding cannot be set"),
    ([("Host", "a"), ("host", "b")], b"", "given twice"),
    ([("Host", "")], b"", "Host is empty"),
])
def test_check_headers_refuses(headers, body, message) -> None:
    with pytest.raises(ConfigError, match=message):
        check_headers(headers, "POST /x", body)


def test_check_headers_accepts_an_agreeing_content_length() -> None:
    check_headers([("Content-Length", "5"), ("Host", "a")], "POST /x", b"hello")


def build(scenario: Settings | None = None, **opts):
    base = {"url": "http://127.0.0.1:9", "endpoints": ("/x",), "headers": (), "concurrency": 1,
            "workers": 1, "timeout": "1s", "insecure": False, "auth": False, "username": "u",
            "password": "p", "login_endpoint": "/login", "token_field": "t", "method": None}
    return build_config({**base, **opts}, scenario)


def test_config_checks_content_length_against_each_body() -> None:
    with pytest.raises(ConfigError, match="--header: 'Content-Length: 2' does not match the "
                                          "5-byte body of POST /x"):
        build(headers=("Content-Length: 2",), data="hello")
    assert build(headers=("Content-Length: 5",), data="hello").endpoints[0].body == b"hello"
    spec = EndpointSpec(method="POST", path="/y", body=b"abc", weight=1.0,
                        headers=(("Content-Length", "4"),))
    with pytest.raises(ConfigError, match="headers of POST /y"):
        build(Settings(endpoint_specs=(spec,)))


def test_login_carries_the_user_host() -> None:
    config = build(headers=("Host: api.example.test", "X-Key: k", "Content-Length: 0",
                            "X-Req: {{ seq }}"))   # per request of the load: not the login's
    assert login_headers(config) == {"Host": "api.example.test", "X-Key": "k",
                                     "Content-Type": "application/json"}


# -- fragments ---------------------------------------------------------------------------


@pytest.mark.parametrize("given,path", [
    ("/a#x", "/a"), ("/a?q=1#x", "/a?q=1"), ("a#", "/a"), ("/#top", "/"), ("/é#ü", "/%C3%A9"),
])
def test_fragment_stripped_from_paths(given, path) -> None:
    assert normalize_path(given) == path


def test_only_a_fragment_is_bad_input() -> None:
    with pytest.raises(ConfigError, match="no path before its #fragment"):
        normalize_path("#top")


def test_endpoint_names_are_the_paths_as_sent() -> None:
    config = build(endpoints=("/a#one", "/a#two", "/b"))
    assert [e.name for e in config.endpoints] == ["GET /a", "GET /b"]


# -- status sets -------------------------------------------------------------------------


@pytest.mark.parametrize("text,canonical", [
    ("200-399", "200-399"), ("200,201,304", "200-201,304"), (" 2xx , 304 ", "200-299,304"),
    ("404", "404"), ("1XX", "100-199"), ("200-200", "200"), ("300-399,200-299", "200-399"),
])
def test_status_sets(text, canonical) -> None:
    assert format_status_set(parse_status_set(text)) == canonical
    assert parse_status_set(canonical) == parse_status_set(text)


@pytest.mark.parametrize("text", ["", ",", "200,", "abc", "99", "1000", "600", "099", "200-600",
                                  "399-200", "2xx-3xx", "6xx", "200 201", "-200", "200-"])
def test_bad_status_lists(text) -> None:
    with pytest.raises(ConfigError, match="^--expect-status: "):
        parse_status_set(text)


def test_default_is_2xx() -> None:
    assert build().endpoints[0].expect_status == DEFAULT_EXPECT_STATUS == frozenset(range(200, 300))
    assert build(expect_status="200-399").endpoints[0].expect_status == frozenset(range(200, 400))


def test_public_config_says_what_counted_as_success() -> None:
    spec = EndpointSpec(method="GET", path="/y", body=b"", weight=1.0, headers=(),
                        expect_status=frozenset({304}))
    other = EndpointSpec(method="GET", path="/z", body=b"", weight=1.0, headers=())
    config = build(Settings(endpoint_specs=(spec, other)), expect_status="201")
    assert config.public()["expect_status"] == {"GET /y": "304", "GET /z": "201"}


def test_scenario_expect_status() -> None:
    out = parse_scenario('expect_status = "200-399"\n'
                         '[[endpoints]]\npath = "/a#frag"\nexpect_status = [200, "3xx"]\n'
                         '[[endpoints]]\npath = "/b"\nexpect_status = 304\n'
                         '[[endpoints]]\npath = "/c"\n')
    assert out.expect_status == parse_status_set("200-399")
    specs = out.endpoint_specs
    assert specs[0].path == "/a"
    assert specs[0].expect_status == frozenset({200, *range(300, 400)})
    assert specs[1].expect_status == frozenset({304})
    assert specs[2].expect_status is None   # the top-level's applies


@pytest.mark.parametrize("text,message", [
    ('expect_status = "200-"', "'expect_status': '200-' is not a status list"),
    ("expect_status = []", "'expect_status' is empty"),
    ("expect_status = true", "'expect_status' must be a status list"),
    ("expect_status = 700", "700 is not an HTTP status"),
    ('[[endpoints]]\npath = "/a"\nexpect_status = [1.5]',
     "item 1 of 'expect_status' in [[endpoints]] #1 must be a status"),
    ('expect = "200"', "did you mean 'expect_status'"),
])
def test_scenario_bad_expect_status(text, message) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_scenario(text, "s.toml")


# -- counting ----------------------------------------------------------------------------


def test_tally_files_latency_by_the_endpoint_success_set() -> None:
    tally = Tally(ok=frozenset({201, 304}))
    for status in (201, 304, 200, 500):
        tally.record(status, 1000, 0, 0)
    assert tally.hist.get_total_count() == 2 and tally.failed.get_total_count() == 2


def test_totals_with_different_success_sets_merge_right() -> None:
    cache, api = Totals(expect=frozenset({304})), Totals()
    wire = {"hist": "", "failed": "", "service": None, "errors": {"timeout": 1},
            "bytes_in": 0, "bytes_out": 0, "overflow": 0}
    cache.add_wire({**wire, "codes": {"304": 7, "200": 2}})
    api.add_wire({**wire, "codes": {"200": 5, "304": 3}})
    second = Totals()   # one second of both endpoints, as the aggregate keeps it
    second.add_wire({**wire, "codes": {"304": 7, "200": 2}}, cache.expect)
    second.add_wire({**wire, "codes": {"200": 5, "304": 3}}, api.expect)
    everything = Totals()
    everything.merge(cache)
    everything.merge(api)
    assert (cache.successes, api.successes) == (7, 5)
    for merged in (everything, second):
        s = summarize(merged, 1.0)
        assert (s["requests"], s["successes"], s["failures"]) == (19, 12, 7)
        assert s["failures_by_status"] == {"200": 2, "304": 3}
        assert s["failures_by_kind"] == {"timeout": 2}


# -- end to end: a raw server that records every request head -------------------------------


class HeadRecorder:
    """Keep-alive HTTP/1.1 server recording each request head; answers the login with a token."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.lock = threading.Lock()
        self.server = RawServer(self.handle)

    def handle(self, server: RawServer, conn: socket.socket) -> None:
        buffer = bytearray()
        while True:
            while b"\r\n\r\n" not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            end = buffer.index(b"\r\n\r\n") + 4
            head = bytes(buffer[:end])
            del buffer[:end]
            length = field_values(head, "content-length")
            need = int(length[0]) if length else 0
            while len(buffer) < need:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            del buffer[:need]
            with self.lock:
                self.heads.append(head)
            server.count()
            body = b'{"access_token": "tok"}' if head.startswith(b"POST /login ") else b"ok"
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


@pytest.fixture
def recorder():
    rec = HeadRecorder()
    try:
        yield rec
    finally:
        rec.server.close()


def test_one_host_no_fragment_on_the_wire(recorder: HeadRecorder, tmp_path: Path) -> None:
    run = loadgen("run", "--url", recorder.server.url, "--endpoint", "/v1/items?x=1#frag",
                  "--header", "host: api.example.test", "--header", "User-Agent: probe",
                  "--auth", "--login-endpoint", "/login", "--token-field", "access_token",
                  "--requests", "30", "--concurrency", "3", "--workers", "1",
                  save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    heads = recorder.heads
    assert len(heads) == recorder.server.requests == 31          # the login and 30 requests
    login = [h for h in heads if h.startswith(b"POST /login ")]
    assert len(login) == 1 and field_values(login[0], "host") == ["api.example.test"]
    load = [h for h in heads if not h.startswith(b"POST /login ")]
    assert len(load) == 30 == run.doc["summary"]["requests"] == run.doc["summary"]["successes"]
    for head in load:
        assert head_lines(head)[0] == "GET /v1/items?x=1 HTTP/1.1"
        assert field_values(head, "host") == ["api.example.test"]
        assert field_values(head, "user-agent") == ["probe"]
        assert field_values(head, "authorization") == ["Bearer tok"]
    assert [e["endpoint"] for e in run.doc["endpoints"]] == ["GET /v1/items?x=1"]


def test_agreeing_content_length_sent_once(recorder: HeadRecorder, tmp_path: Path) -> None:
    run = loadgen("run", "--url", recorder.server.url, "--endpoint", "/up", "--data", "hello",
                  "--header", "content-length: 5", "--requests", "5", "--concurrency", "1",
                  "--workers", "1", save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    assert len(recorder.heads) == 5 == run.doc["summary"]["successes"]
    for head in recorder.heads:
        assert head_lines(head)[0] == "POST /up HTTP/1.1"
        assert field_values(head, "content-length") == ["5"]


@pytest.mark.parametrize("args,message", [
    (("--data", "hello", "--header", "Content-Length: 4"),
     "--header: 'Content-Length: 4' does not match the 5-byte body of POST /x"),
    (("--data", "hello", "--header", "Transfer-Encoding: chunked"),
     "--header: Transfer-Encoding cannot be set"),
    (("--header", "Host: a.test", "--header", "HOST: b.test"), "--header: HOST given twice"),
    (("--expect-status", "200-600"), "--expect-status: 600 is not an HTTP status"),
    (("--expect-status", "ok"), "--expect-status: 'ok' is not a status list"),
    (("--endpoint", "#top"), "--endpoint: '#top' has no path before its #fragment"),
])
def test_bad_input_sends_nothing(recorder: HeadRecorder, args, message) -> None:
    run = run_in_process("run", "--url", recorder.server.url, "--endpoint", "/x", *args,
                         "--requests", "3")
    assert message in one_line_error(run)
    assert recorder.server.connections == 0 and recorder.heads == []


def test_bad_expect_status_in_a_scenario(recorder: HeadRecorder, tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text('[[endpoints]]\npath = "/x"\nexpect_status = "3xx-"\n')
    run = run_in_process("run", "--url", recorder.server.url, "--config", str(scenario))
    line = one_line_error(run)
    assert "s.toml: 'expect_status' in [[endpoints]] #1: '3xx-' is not a status list" in line
    assert recorder.server.connections == 0


# -- end to end: the built-in target's own counts ------------------------------------------


def test_expect_status_ranges_on_the_builtin_target(target_server, tmp_path: Path) -> None:
    target_server.reset()
    run = loadgen("run", "--url", target_server.url, "--endpoint", "/status/304",
                  "--endpoint", "/status/201", "--expect-status", "200-399",
                  "--requests", "40", "--concurrency", "4", "--workers", "2",
                  save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    summary = run.doc["summary"]
    paths = target_server.stats()["paths"]
    assert paths["/status/304"] == paths["/status/201"] == 20
    assert summary["requests"] == summary["successes"] == 40 and summary["failures"] == 0
    assert summary["status_codes"] == {"201": 20, "304": 20}
    assert summary["failures_by_status"] == {}
    assert summary["success_latency_ms"]["max"] is not None
    assert sum(i["successes"] for i in run.doc["intervals"]) == 40
    assert run.doc["config"]["expect_status"] == {"GET /status/304": "200-399",
                                                  "GET /status/201": "200-399"}


def test_a_201_only_api_fails_on_200(target_server, tmp_path: Path) -> None:
    target_server.reset()
    run = loadgen("run", "--url", target_server.url, "--endpoint", "/status/201",
                  "--endpoint", "/status/200", "--expect-status", "201",
                  "--threshold", "failures<1%", "--requests", "20", "--concurrency", "2",
                  "--workers", "1", save=tmp_path / "r.json")
    assert run.status == 1, run.stderr    # the threshold failed: 200 is not a success here
    summary = run.doc["summary"]
    assert target_server.stats()["requests"] == summary["requests"] == 20
    assert (summary["successes"], summary["failures"]) == (10, 10)
    assert summary["failures_by_status"] == {"200": 10}
    assert sum(i["failures"] for i in run.doc["intervals"]) == 10
    by_name = {e["endpoint"]: e for e in run.doc["endpoints"]}
    assert by_name["GET /status/201"]["success_rate"] == 1.0
    assert by_name["GET /status/200"]["success_rate"] == 0.0
    report = loadgen("report", str(tmp_path / "r.json"))
    assert report.status == 0, report.stderr
    assert "50.0" in report.stdout


def test_scenario_success_set_per_endpoint(target_server, tmp_path: Path) -> None:
    target_server.reset()
    scenario = tmp_path / "s.toml"
    scenario.write_text(f'url = "{target_server.url}"\nrequests = 30\nconcurrency = 3\n'
                        'workers = 1\n'
                        '[[endpoints]]\npath = "/status/304"\nexpect_status = 304\n'
                        '[[endpoints]]\npath = "/status/200"\n'
                        '[[endpoints]]\npath = "/status/404#not-sent"\n'
                        'expect_status = "200-299,404"\n')
    run = loadgen("run", "--config", str(scenario), save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    paths = target_server.stats()["paths"]
    assert (paths["/status/304"], paths["/status/200"], paths["/status/404"]) == (10, 10, 10)
    summary = run.doc["summary"]
    assert summary["requests"] == summary["successes"] == 30, summary
    assert run.doc["config"]["expect_status"] == {
        "GET /status/304": "304", "GET /status/200": "200-299", "GET /status/404": "200-299,404"}


# -- end to end: nginx's virtual hosts -------------------------------------------------------

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format hosts '$host $status "$request"';
    access_log {dir}/access.log hosts;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} default_server;
        server_name _;
        location / {{ return 404 'no such host'; }}
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name api.example.test;
        location / {{ return 200 'vhost'; }}
    }}
}}
"""


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A private nginx on a free port with one virtual host; stopped by its pid."""
    with private_nginx(tmp_path, NGINX_CONF) as found:
        yield found


def access_log(path: Path) -> Counter[str]:
    return Counter(" ".join(line.split()[:2]) for line in path.read_text().splitlines())


def test_host_header_reaches_the_nginx_virtual_host(nginx, tmp_path: Path) -> None:
    url, log = nginx
    run = loadgen("run", "--url", url, "--endpoint", "/anything#frag",
                  "--header", "Host: api.example.test", "--requests", "50",
                  "--concurrency", "5", "--workers", "2", save=tmp_path / "vhost.json")
    assert run.status == 0, run.stderr
    summary = run.doc["summary"]
    assert summary["requests"] == summary["successes"] == 50
    assert summary["status_codes"] == {"200": 50}
    assert access_log(log) == Counter({"api.example.test 200": 50})
    assert '"GET /anything HTTP/1.1"' in log.read_text()   # no fragment reached nginx


def test_without_host_nginx_answers_from_its_default_server(nginx, tmp_path: Path) -> None:
    url, log = nginx
    run = loadgen("run", "--url", url, "--endpoint", "/anything", "--requests", "20",
                  "--concurrency", "2", "--workers", "1", "--expect-status", "404",
                  save=tmp_path / "default.json")
    assert run.status == 0, run.stderr
    summary = run.doc["summary"]
    assert summary["status_codes"] == {"404": 20} and summary["successes"] == 20
    assert access_log(log) == Counter({"127.0.0.1 404": 20})
