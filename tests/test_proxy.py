"""Proxies: ``--proxy``, ``--no-proxy`` and HTTP_PROXY / HTTPS_PROXY / NO_PROXY.

The rules are pure functions (loadgen.config.proxy) tested on plain dicts; the runs
go through a real forward proxy on 127.0.0.1 (tests/forwardproxy.py) that
records every request line it is sent, so "the proxy saw every request" is
counted, request line by request line (connections are kept alive).  https
targets are the TLS servers of tests/rawservers.py with a private CA
(tests/tlscerts.py), reached through the proxy's CONNECT tunnels.

conftest.py clears the proxy variables for the whole session; tests here set
them explicitly (``env=``).
"""

from __future__ import annotations

import base64
import os
import pickle
import socket
import ssl
from pathlib import Path
from unittest import mock

import pytest
from forwardproxy import ForwardProxy, basic
from helpers import RefusingPort, loadgen, one_line_error, run_in_process
from rawservers import OK, RawServer, read_request
from tlscerts import Pki

from loadgen.commands.inputs import build_config
from loadgen.config.model import ConfigError, Proxy, Target, plan_workers
from loadgen.config.proxy import (
    DEFAULT_PORT,
    bypassed,
    parse_proxy_url,
    proxy_option,
    redact,
    resolve_proxy,
)
from loadgen.config.scenario import parse_scenario
from loadgen.output.table import proxy_words

HTTP = Target.parse("http://127.0.0.1:5000")
HTTPS = Target.parse("https://127.0.0.1:8443")
P1, P2 = "http://127.0.0.1:3128", "http://127.0.0.1:8080"


def resolve(target: Target = HTTP, given: str | None = None, ignore: bool = False,
            **environ: str) -> Proxy | None:
    return resolve_proxy(target, None if given is None else proxy_option(given), ignore, environ)


# --- which proxy: pure rules ---------------------------------------------------------------


def test_the_option_beats_the_environment_and_empty_means_none() -> None:
    assert resolve(given=P2, http_proxy=P1).url == P2
    assert resolve(given=P2, http_proxy=P1).source == "--proxy"
    assert resolve(given="", http_proxy=P1) is None            # curl -x ''
    assert resolve(given=P2, ignore=True, http_proxy=P1).url == P2   # --no-proxy: env only
    assert resolve(given=P2, NO_PROXY="*").url == P2          # NO_PROXY is for the env's


def test_no_proxy_flag_ignores_every_variable() -> None:
    assert resolve(ignore=True, http_proxy=P1, HTTP_PROXY=P1) is None


@pytest.mark.parametrize("target,environ,expected", [
    (HTTP, {"http_proxy": P1}, ("http_proxy", P1)),
    (HTTP, {"HTTP_PROXY": P1}, ("HTTP_PROXY", P1)),
    (HTTP, {"http_proxy": P1, "HTTP_PROXY": P2}, ("http_proxy", P1)),      # lower case first
    (HTTP, {"http_proxy": "", "HTTP_PROXY": P2}, None),                    # set but empty: none
    (HTTP, {"HTTPS_PROXY": P1}, None),                                     # not for http
    (HTTPS, {"HTTPS_PROXY": P1, "HTTP_PROXY": P2}, ("HTTPS_PROXY", P1)),
    (HTTPS, {"https_proxy": P2, "HTTPS_PROXY": P1}, ("https_proxy", P2)),
    (HTTPS, {"HTTP_PROXY": P1}, None),                                     # not for https
    (HTTP, {"ALL_PROXY": P1, "all_proxy": P1}, None),                      # not read
    # a CGI process: HTTP_PROXY may come from a client's Proxy: header (httpoxy)
    (HTTP, {"HTTP_PROXY": P1, "REQUEST_METHOD": "GET"}, None),
    (HTTP, {"http_proxy": P1, "REQUEST_METHOD": "GET"}, ("http_proxy", P1)),
    (HTTPS, {"HTTPS_PROXY": P1, "REQUEST_METHOD": "GET"}, ("HTTPS_PROXY", P1)),
])
def test_environment_variables(target: Target, environ: dict[str, str],
                               expected: tuple[str, str] | None) -> None:
    proxy = resolve(target, **environ)
    assert (proxy and (proxy.source, proxy.url)) == (expected or None)


@pytest.mark.parametrize("host,port,no_proxy,expected", [
    ("127.0.0.1", 80, "*", True),
    ("127.0.0.1", 80, " example.com , * ", True),
    ("localhost", 80, "localhost", True),
    ("localhost", 5000, "localhost:5000", True),
    ("localhost", 5001, "localhost:5000", False),
    ("api.example.com", 80, "example.com", True),       # a name covers its subdomains
    ("api.example.com", 80, ".example.com", True),
    ("example.com", 80, ".example.com", True),
    ("notexample.com", 80, "example.com", False),      # on dot boundaries only
    ("example.com.evil", 80, "example.com", False),
    ("127.0.0.1", 80, "127.0.0.1", True),
    ("127.0.0.5", 80, "127.0.0.0/8", True),            # CIDR, as curl 7.86+
    ("127.0.0.1", 80, "10.0.0.0/8,192.168.0.0/16", False),
    ("::1", 80, "::1", True),                          # not mistaken for host ":" port 1
    ("::1", 80, "[::1]", True),
    ("fd00::7", 80, "fd00::/8", True),
    ("::1", 80, "127.0.0.0/8", False),
    ("localhost", 80, "127.0.0.1", False),             # compared as written, never resolved
    ("127.0.0.1", 80, "localhost", False),
    ("127.0.0.1", 80, "0.0.1", False),                 # an address is no domain suffix
    ("127.0.0.1", 80, "", False),
])
def test_no_proxy_matching(host: str, port: int, no_proxy: str, expected: bool) -> None:
    assert bypassed(host, port, no_proxy) is expected


def test_no_proxy_turns_the_environment_proxy_off() -> None:
    assert resolve(http_proxy=P1, NO_PROXY="127.0.0.0/8") is None
    assert resolve(http_proxy=P1, no_proxy="example.com", NO_PROXY="*").url == P1  # lower first
    assert resolve(Target.parse("http://[::1]:5000"), http_proxy=P1, no_proxy="::1") is None


def test_url_forms_default_port_and_credentials() -> None:
    assert parse_proxy_url("127.0.0.1:3128", "--proxy").url == P1        # no scheme: http
    assert parse_proxy_url("http://127.0.0.1", "--proxy").port == DEFAULT_PORT == 1080
    assert parse_proxy_url("HTTP://127.0.0.1:3128/", "--proxy").url == P1
    assert parse_proxy_url("http://[::1]:3128", "--proxy").url == "http://[::1]:3128"
    proxy = parse_proxy_url("http://us%40er:p%3Ass%40w@127.0.0.1:3128", "HTTPS_PROXY")
    assert proxy.authorization == basic("us@er", "p:ss@w")   # percent-decoded, as curl
    assert proxy.url == P1 and "p:ss" not in repr(proxy)
    assert proxy.public() == {"url": P1, "source": "HTTPS_PROXY", "credentials": True}
    assert parse_proxy_url("http://user@127.0.0.1:3128", "--proxy").authorization == \
        "Basic " + base64.b64encode(b"user:").decode()


@pytest.mark.parametrize("url,needle", [
    ("socks5://127.0.0.1:1080", "SOCKS"),
    ("socks5h://u:secret@127.0.0.1:1080", "SOCKS"),
    ("https://127.0.0.1:3128", "https://"),
    ("ftp://127.0.0.1:21", "must be http"),
    ("http://", "no host"),
    ("http://u:secret@:3128", "no host"),
    ("http://127.0.0.1:0", "port 0"),
    ("http://127.0.0.1:99999", "not a valid proxy URL"),
    ("http://127.0.0.1:port", "not a valid proxy URL"),
    ("http://u:secret@127.0.0.1:3128/proxy", "only http://"),
    ("http://127.0.0.1:3128?x=1", "only http://"),
    ("http://127.0.0.1:3128#x", "only http://"),
    ("http://u:sec ret@127.0.0.1:3128", "white space"),
    ("http://u:secret\n@127.0.0.1:3128", "control"),
])
def test_bad_urls_are_one_message_without_the_password(url: str, needle: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_proxy_url(url, "--proxy")
    message = str(raised.value)
    assert message.startswith("--proxy: ") and needle in message, message
    assert "secret" not in message and "sec ret" not in message
    assert "NO_PROXY" not in message      # the hint is for the environment's proxies


def test_a_bad_environment_proxy_names_its_variable_and_the_way_around() -> None:
    with pytest.raises(ConfigError) as raised:
        resolve(HTTPS, HTTPS_PROXY="socks5://127.0.0.1:1080")
    message = str(raised.value)
    assert message.startswith("HTTPS_PROXY: ") and "--no-proxy" in message \
        and "NO_PROXY" in message, message
    assert resolve(HTTPS, HTTPS_PROXY="socks5://127.0.0.1:1080", NO_PROXY="127.0.0.1") is None


def test_redact() -> None:
    assert redact("http://u:p@h:1") == "http://***@h:1"
    assert redact("u:p@h:1") == "***@h:1"
    assert redact("http://u:p://x@y@h") == "http://***@h"
    assert redact(" http://h:1 ") == "http://h:1"


# --- where the answer goes: plans, results, report, scenario -----------------------------------


def _config(**opts: object) -> object:
    defaults = {"url": "http://127.0.0.1:5000", "endpoints": ["/a"], "auth": False,
                "password": "", "username": "u", "save": None, "output_image": None,
                "requests": 10, "concurrency": 4, "workers": 2, "headers": (),
                "timeout": "5s", "insecure": False, "login_endpoint": "/login",
                "token_field": "t"}
    return build_config({**defaults, **opts})


def test_the_plan_carries_the_proxy_to_every_worker_and_node() -> None:
    """Resolved once, here: workers and cluster nodes unpickle it, their environment unread."""
    from loadgen.engine.cluster.node import NodeJob

    with mock.patch.dict(os.environ, {"HTTP_PROXY": "http://u:pw@127.0.0.1:3128"}):
        config = _config()
    plans = plan_workers(config)
    assert [p.proxy for p in plans] == [config.proxy] * 2
    assert config.proxy.source == "HTTP_PROXY" and config.proxy.authorization == basic("u", "pw")
    job = pickle.loads(pickle.dumps(NodeJob(config, tuple(plans))))   # what Dask ships
    assert job.config.proxy == config.proxy and job.plans[1].proxy == config.proxy
    public = config.public()
    assert public["proxy"] == {"url": P1, "source": "HTTP_PROXY", "credentials": True}
    assert "pw" not in repr(public) and "pw" not in repr(config)
    with mock.patch.dict(os.environ, {"HTTP_PROXY": P1}):
        assert "proxy" not in _config(no_proxy=True).public()   # direct runs: as before


def test_request_bytes_through_a_proxy() -> None:
    """http: absolute form and the credentials in the prebuilt bytes; https: unchanged (the
    CONNECT carries the credentials).  A user's own Proxy-Authorization replaces loadgen's."""
    from loadgen.config.model import merge_headers
    from loadgen.engine.client import build_request, proxy_form

    proxy = parse_proxy_url("http://u:pw@127.0.0.1:3128", "--proxy")
    origin, to_proxy = proxy_form(HTTP, proxy)
    data = build_request("GET", HTTP.host_header, origin + "/a?b=1#c", to_proxy, b"")
    assert data.startswith(b"GET http://127.0.0.1:5000/a?b=1 HTTP/1.1\r\n"
                           b"Host: 127.0.0.1:5000\r\n")
    assert f"\r\nProxy-Authorization: {basic('u', 'pw')}\r\n".encode() in data
    assert proxy_form(HTTPS, proxy) == ("", [])
    assert proxy_form(HTTP, None) == ("", [])
    assert proxy_form(HTTP, parse_proxy_url(P1, "--proxy")) == ("http://127.0.0.1:5000", [])
    mine = merge_headers(to_proxy, [("proxy-authorization", "Bearer x")])
    data = build_request("GET", HTTP.host_header, origin + "/a", mine, b"")
    assert data.lower().count(b"proxy-authorization") == 1 and b"proxy-authorization: Bearer x" in data


def test_report_says_when_a_proxy_carried_the_load() -> None:
    assert proxy_words({"proxy": {"url": P1, "source": "HTTPS_PROXY"}}) == \
        f" via proxy {P1} (from HTTPS_PROXY)"
    assert proxy_words({"url": "http://x"}) == ""        # files from before proxies
    assert proxy_words({"proxy": "garbage"}) == ""
    assert proxy_words({"proxy": {"url": 3}}) == ""


def test_scenario_keys() -> None:
    opts = parse_scenario(f'proxy = "{P1}"\nno_proxy = true\n')
    assert opts.proxy == parse_proxy_url(P1, "--proxy") and opts.no_proxy is True
    assert parse_scenario('proxy = ""\n').proxy is False   # as --proxy '': no proxy
    with pytest.raises(ConfigError) as raised:
        parse_scenario('proxy = "socks5://u:secret@127.0.0.1:1"\n')
    assert "'proxy'" in str(raised.value) and "SOCKS" in str(raised.value)
    assert "secret" not in str(raised.value)


# --- runs through a real proxy -----------------------------------------------------------------


def _gets(proxy: ForwardProxy, origin: str, path: str) -> int:
    return proxy.lines().count(f"GET {origin}{path} HTTP/1.1")


def test_every_request_goes_through_the_proxy(target_server, tmp_path: Path) -> None:
    """--proxy: absolute-form requests on kept-alive connections, the login included."""
    target_server.reset()
    with ForwardProxy() as proxy:
        run = loadgen("run", "--url", target_server.url, "--proxy", proxy.url,
                      "--endpoint", "/api/health", "--endpoint", "/api/dataset/summary",
                      "--requests", "300", "--concurrency", "4", "--workers", "2",
                      "--auth", "--username", "admin", "--password", "admin123", "--quiet",
                      save=tmp_path / "r.json")
        lines = proxy.lines()
    assert run.status == 0, run.stderr
    doc = run.doc
    assert doc["summary"]["requests"] == doc["summary"]["successes"] == 300
    origin = target_server.url
    assert _gets(proxy, origin, "/api/health") == _gets(proxy, origin, "/api/dataset/summary") \
        == 150
    assert lines.count(f"POST {origin}/api/auth/login HTTP/1.1") == 1   # the login too
    assert len(lines) == 301                                            # and nothing else
    paths = target_server.stats()["paths"]
    assert (paths["/api/health"], paths["/api/dataset/summary"]) == (150, 150)
    assert doc["config"]["proxy"] == {"url": proxy.url, "source": "--proxy",
                                      "credentials": False}
    assert f"{origin} via proxy {proxy.url} (from --proxy) |" in run.stdout


def test_http_proxy_variable_is_honoured(target_server, tmp_path: Path) -> None:
    """The issue's case: HTTP_PROXY set, and the proxy saw nothing.  HTTPS_PROXY (a refusing
    port) is for https targets only."""
    target_server.reset()
    with ForwardProxy() as proxy, RefusingPort() as elsewhere:
        run = loadgen("run", "--url", target_server.url, "--requests", "120",
                      "--concurrency", "3", "--workers", "1", "--quiet", save=tmp_path / "r.json",
                      env={"HTTP_PROXY": proxy.url, "HTTPS_PROXY": elsewhere.url})
        lines = proxy.lines()
    assert run.status == 0, run.stderr
    assert run.doc["summary"]["requests"] == 120
    assert lines == [f"GET {target_server.url}/api/health HTTP/1.1"] * 120
    assert run.doc["config"]["proxy"]["source"] == "HTTP_PROXY"
    assert "(from HTTP_PROXY)" in run.stdout


@pytest.mark.parametrize("bypass", [{"env": {"NO_PROXY": "example.com,127.0.0.0/8"}},
                                    {"args": ["--no-proxy"]}], ids=["NO_PROXY", "--no-proxy"])
def test_bypass_sends_nothing_to_the_proxy(target_server, tmp_path: Path,
                                           bypass: dict) -> None:
    target_server.reset()
    with ForwardProxy() as proxy:
        run = loadgen("run", "--url", target_server.url, "--requests", "50", "--workers", "1",
                      "--quiet", *bypass.get("args", []), save=tmp_path / "r.json",
                      env={"http_proxy": proxy.url, **bypass.get("env", {})})
        lines = proxy.lines()
    assert run.status == 0, run.stderr
    assert lines == []
    assert target_server.stats()["requests"] == 50
    assert "proxy" not in run.doc["config"] and "via proxy" not in run.stdout




def _tls(pki: Pki) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    return context


def closes_every(n: int):
    """Keep-alive over TLS, but every n-th response says ``Connection: close`` (and closes)."""
    def handler(server: RawServer, conn: socket.socket) -> None:
        buffer = bytearray()
        for i in range(1, 1_000_000):
            if not read_request(conn, buffer):
                return
            server.count()
            if i % n == 0:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close"
                             b"\r\n\r\nok")
                return
            conn.sendall(OK)
    return handler


def test_https_through_connect_tunnels_with_credentials(pki: Pki, tmp_path: Path) -> None:
    """Every connection is a CONNECT carrying the credentials, reconnects included (the
    server closes every 5th response), then TLS with the target, verified by --cacert."""
    secret = "tunnel-pw"
    with RawServer(closes_every(5), tls=_tls(pki)) as server, \
            ForwardProxy(require=basic("loadgen", secret)) as proxy:
        run = loadgen("run", "--url", server.url, "--requests", "60", "--concurrency", "3",
                      "--workers", "1", "--cacert", str(pki.ca), "--quiet",
                      save=tmp_path / "r.json",
                      env={"HTTPS_PROXY": f"http://loadgen:{secret}@127.0.0.1:{proxy.port}"})
        lines, served, connections = proxy.lines(), server.requests, server.connections
    assert run.status == 0, run.stderr
    assert run.doc["summary"]["status_codes"] == {"200": 60} and served == 60
    authority = server.url.removeprefix("https://")
    assert all(line.startswith(f"CONNECT {authority} HTTP/1.") for line in lines), lines
    assert proxy.authorizations() == {basic("loadgen", secret)}
    # every connection the server saw came through a tunnel: preflight, 3 + 11 reconnects
    assert len(lines) == connections >= 1 + 60 // 5
    assert run.doc["config"]["proxy"] == {"url": proxy.url, "source": "HTTPS_PROXY",
                                          "credentials": True}
    assert secret not in run.stdout + run.stderr + (tmp_path / "r.json").read_text()


def test_a_refused_connect_is_bad_input_before_any_load(pki: Pki) -> None:
    with RawServer(closes_every(5), tls=_tls(pki)) as server, \
            ForwardProxy(connects_allowed=0) as proxy:
        line = one_line_error(loadgen("run", "--url", server.url, "--requests", "10",
                                      "--cacert", str(pki.ca), env={"https_proxy": proxy.url}))
        served = server.connections
    assert f"proxy {proxy.url} (from https_proxy) refused CONNECT" in line, line
    assert "407 Proxy Authentication Required" in line and "http://user:password@" in line
    assert "--no-proxy" in line
    assert served == 0


def test_connects_refused_during_the_run_are_connect_failures(pki: Pki, tmp_path: Path) -> None:
    """The preflight's CONNECT is granted, every later one refused: each request is a
    ``connect`` failure (none reached the server), and the run still ends normally."""
    with RawServer(closes_every(5), tls=_tls(pki)) as server, \
            ForwardProxy(connects_allowed=1, refusal=b"403 Forbidden") as proxy:
        run = loadgen("run", "--url", server.url, "--requests", "30", "--concurrency", "2",
                      "--workers", "1", "--cacert", str(pki.ca), "--proxy", proxy.url, "--quiet",
                      save=tmp_path / "r.json")
        served = server.requests
    assert run.status == 0, run.stderr
    summary = run.doc["summary"]
    assert summary["failures_by_kind"] == {"connect": 30} and summary["successes"] == 0
    assert served == 0


def test_a_refused_connect_names_the_proxy_and_its_answer() -> None:
    """What a connect failure says (RequestError.detail), from the worker's own connection."""
    from loadgen.engine.client import CONNECT, Connection, RequestError, make_pool

    with ForwardProxy(connects_allowed=0) as proxy:
        pool = make_pool("https", "127.0.0.1", 9, 1, 5.0, True, None,
                         Proxy("127.0.0.1", proxy.port, "--proxy"))
        conn = Connection(pool, 5.0)
        for _ in range(2):   # a reconnect asks for the tunnel again
            with pytest.raises(RequestError) as raised:
                conn.open()
            assert raised.value.kind == CONNECT
            assert raised.value.detail == ("through the proxy: Tunnel connection failed: "
                                           "407 Proxy Authentication Required")
        assert proxy.lines() == ["CONNECT 127.0.0.1:9 HTTP/1.0"] * 2


def test_proxy_connections_keep_nagle_off() -> None:
    """urllib3 turns Nagle back on behind a proxy; a load generator's writes must not wait."""
    from loadgen.engine.client import Connection, make_pool

    with ForwardProxy() as proxy:
        pool = make_pool("http", "127.0.0.1", 9, 1, 5.0, False, None,
                         Proxy("127.0.0.1", proxy.port, "--proxy"))
        conn = Connection(pool, 5.0)
        conn.open()
        try:
            assert conn.sock.getpeername()[1] == proxy.port
            assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        finally:
            conn.release()


# --- bad proxies: one line, exit 2, nothing sent -----------------------------------------------


def test_an_unreachable_proxy_is_one_line(target_server) -> None:
    target_server.reset()
    with RefusingPort() as port:
        line = one_line_error(run_in_process("run", "--url", target_server.url,
                                             "--proxy", port.url))
        with mock.patch.dict(os.environ, {"HTTP_PROXY": port.url}):
            from_env = one_line_error(run_in_process("run", "--url", target_server.url))
    assert line.startswith(f"loadgen: cannot reach proxy {port.url} (from --proxy): "), line
    assert "(from HTTP_PROXY)" in from_env and "--no-proxy" in from_env, from_env
    assert target_server.stats()["requests"] == 0


def test_a_bad_proxy_url_is_one_line(target_server) -> None:
    target_server.reset()
    line = one_line_error(loadgen("run", "--url", target_server.url,
                                  "--proxy", "socks5://127.0.0.1:1080"))
    assert line.startswith("loadgen: --proxy: ") and "SOCKS" in line
    with mock.patch.dict(os.environ, {"http_proxy": "http://u:secret@127.0.0.1:3128/x"}):
        from_env = one_line_error(run_in_process("run", "--url", target_server.url))
    assert from_env.startswith("loadgen: http_proxy: ") and "secret" not in from_env
    assert target_server.stats()["requests"] == 0
