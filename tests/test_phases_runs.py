"""``--no-keepalive`` and the phase timings, end to end against real servers on 127.0.0.1.

The servers count the connections they accept (tests/rawservers.py; nginx logs its
connection serial number), so "a new connection for every request" is checked
against what the server saw, and the phases against both:

- ``connect`` counts one per connection loadgen opened: the pool with keep-alive,
  every request without it (the preflight's own connection is not a worker's);
- ``tls`` exists for https only, one per connection, and sessions still resume;
- ``ttfb`` counts one per response and never exceeds the latency it is part of.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from forwardproxy import ForwardProxy
from helpers import loadgen
from nginx import private_nginx
from rawservers import OK, RawServer, read_head
from test_tls import Handshakes, server_context
from tlscerts import Pki


class Heads:
    """A keep-alive server that keeps every request head: it never closes a connection
    itself, so one connection per request can only be loadgen's doing."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.heads: list[bytes] = []

    def __call__(self, server: RawServer, conn: socket.socket) -> None:
        buffer = bytearray()
        while (head := read_head(conn, buffer)) is not None:
            with self.lock:
                self.heads.append(head)
            server.count()
            conn.sendall(OK)


def phases(run: Any) -> dict[str, dict[str, Any]]:
    assert run.status == 0, run.stderr
    assert "Traceback" not in run.stderr
    return run.doc["summary"]["phases_ms"]


def assert_ttfb_within_latency(doc: dict[str, Any]) -> None:
    """Each response's first byte comes before its end, so with one value per request
    the distribution of one lies under the other's, bucket for bucket."""
    ttfb, latency = doc["summary"]["phases_ms"]["ttfb"], doc["summary"]["latency_ms"]
    assert ttfb["count"] == doc["summary"]["requests"]
    for key in ("mean", "p50", "p90", "p99", "max"):
        assert 0 < ttfb[key] <= latency[key], (key, ttfb, latency)


@pytest.mark.parametrize("how", [["--no-keepalive"], ["--header", "Connection: close"]],
                         ids=["no-keepalive", "user-header"])
def test_a_new_connection_for_every_request(tmp_path: Path, how: list[str]) -> None:
    heads = Heads()
    with RawServer(heads) as server:
        run = loadgen("run", "--url", server.url, "--requests", "60", "--concurrency", "3",
                      "--workers", "2", "--quiet", *how, save=tmp_path / "r.json")
        accepted, served = server.connections, server.requests
    found = phases(run)
    assert run.doc["summary"]["status_codes"] == {"200": 60} and served == 60
    assert accepted == 60 + 1   # + the preflight's
    assert found["connect"]["count"] == 60 and "tls" not in found
    assert all(h.lower().count(b"\r\nconnection: close") == 1 for h in heads.heads), heads.heads
    assert run.doc["config"]["keepalive"] is False
    header = next(line for line in run.stdout.splitlines() if line.startswith("Run complete"))
    assert header.endswith("| keep-alive off (a new connection per request)")
    assert "Connect (DNS+TCP)" in run.stdout and "First byte (TTFB)" in run.stdout
    assert_ttfb_within_latency(run.doc)
    # each latency holds its own connect and first byte (sums: the means, within the
    # histograms' 0.1% resolution)
    latency = run.doc["summary"]["latency_ms"]["mean"]
    assert latency >= 0.99 * (found["connect"]["mean"] + found["ttfb"]["mean"]), found


def test_keepalive_connects_once_per_connection(tmp_path: Path) -> None:
    heads = Heads()
    with RawServer(heads) as server:
        run = loadgen("run", "--url", server.url, "--requests", "60", "--concurrency", "3",
                      "--workers", "1", "--quiet", save=tmp_path / "r.json")
        accepted = server.connections
    found = phases(run)
    assert accepted == 3 + 1
    assert found["connect"]["count"] == 3 and "tls" not in found
    assert not any(b"onnection:" in h for h in heads.heads)
    assert run.doc["config"]["keepalive"] is True and "keep-alive" not in run.stdout
    assert_ttfb_within_latency(run.doc)


@pytest.mark.serial
def test_open_model_without_keepalive(tmp_path: Path) -> None:
    """The send lag leaves out the connect made for the request (it is the server's
    kernel's time), so a new connection per request does not make loadgen look late."""
    with RawServer(Heads()) as server:
        run = loadgen("run", "--url", server.url, "--rate", "50", "--duration", "1s",
                      "--concurrency", "2", "--workers", "1", "--no-keepalive", "--quiet",
                      save=tmp_path / "r.json")
        accepted = server.connections
    found = phases(run)
    assert run.doc["summary"]["requests"] == 50 and accepted == 50 + 1
    assert found["connect"]["count"] == 50
    assert found["ttfb"]["count"] == 50
    assert run.doc["generator_limited"] is False, run.doc["generator"]


# --- https -------------------------------------------------------------------------------------




@pytest.mark.parametrize("keepalive", [True, False], ids=["keepalive", "no-keepalive"])
def test_tls_phase_per_connection_and_sessions_resume(pki: Pki, tmp_path: Path,
                                                      keepalive: bool) -> None:
    shakes = Handshakes()
    requests, concurrency = 40, 2
    with RawServer(shakes.keep_alive, tls=server_context(pki)) as server:
        run = loadgen("run", "--url", server.url, "--requests", str(requests),
                      "--concurrency", str(concurrency), "--workers", "1", "--quiet",
                      "--cacert", str(pki.ca), *([] if keepalive else ["--no-keepalive"]),
                      save=tmp_path / "r.json")
        accepted = server.connections
    found = phases(run)
    opened = concurrency if keepalive else requests
    assert accepted == opened + 1
    assert found["connect"]["count"] == found["tls"]["count"] == opened
    assert found["tls"]["p50"] > 0
    assert "TLS handshake" in run.stdout
    assert_ttfb_within_latency(run.doc)
    if not keepalive:   # a new connection per request still resumes the worker's session
        assert shakes.resumed >= requests - concurrency, (shakes.full, shakes.resumed)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_phases_through_a_proxy(pki: Pki, tmp_path: Path, scheme: str) -> None:
    """Through a proxy, connect is to the proxy (plus the CONNECT for https), then the TLS
    handshake with the target inside the tunnel: both still one per connection opened."""
    tls = server_context(pki) if scheme == "https" else None
    with RawServer(Heads(), tls=tls) as server, ForwardProxy() as proxy:
        run = loadgen("run", "--url", server.url, "--requests", "30", "--concurrency", "2",
                      "--workers", "1", "--no-keepalive", "--cacert", str(pki.ca), "--quiet",
                      "--proxy", proxy.url, save=tmp_path / "r.json")
        lines = proxy.lines()
    found = phases(run)
    assert run.doc["summary"]["status_codes"] == {"200": 30}
    assert found["connect"]["count"] == 30
    if scheme == "https":
        assert found["tls"]["count"] == 30
        assert sum(line.startswith("CONNECT ") for line in lines) == 30 + 1   # + preflight's
    else:
        assert "tls" not in found and len(lines) == 30
    assert_ttfb_within_latency(run.doc)


# --- nginx ---------------------------------------------------------------------------------------

NGINX_CONF = """\
daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    log_format counts '$connection $connection_requests $status';
    access_log {dir}/access.log counts;
    keepalive_requests 1000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok"; }}
    }}
}}
"""


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with private_nginx(tmp_path / "nginx", NGINX_CONF) as found:
        yield found


def test_nginx_sees_one_connection_per_request(nginx, tmp_path: Path) -> None:
    """nginx's own serial numbers: with --no-keepalive each request is the first and only
    one on its connection; with keep-alive, the pool's connections carry them all."""
    url, log = nginx
    off = loadgen("run", "--url", url, "--endpoint", "/x", "--requests", "80", "--concurrency",
                  "4", "--workers", "1", "--no-keepalive", "--quiet", save=tmp_path / "off.json")
    off_lines = [line.split() for line in log.read_text().splitlines()]
    on = loadgen("run", "--url", url, "--endpoint", "/x", "--requests", "80", "--concurrency",
                 "4", "--workers", "1", "--quiet", save=tmp_path / "on.json")
    on_lines = [line.split() for line in log.read_text().splitlines()][len(off_lines):]
    assert phases(off)["connect"]["count"] == 80
    assert len(off_lines) == 80 and {n for _, n, _ in off_lines} == {"1"}
    assert len({c for c, _, _ in off_lines}) == 80
    assert phases(on)["connect"]["count"] == 4
    assert len(on_lines) == 80 and len({c for c, _, _ in on_lines}) == 4
    assert {s for _, _, s in off_lines + on_lines} == {"200"}
    for run in (off, on):
        assert_ttfb_within_latency(run.doc)
