"""loadgen against real HTTP servers it did not write: gunicorn and uvicorn (the test extra).

The raw servers of tests/rawservers.py say exactly what the wire carries; these say
what servers people run make of it.  Each server runs tests/realapps.py, which writes
what it was handed to a record file before answering (tests/realservers.py starts and
stops them); the servers' own access logs go to files too.  loadgen's counts must equal
that record: every request it counts was served once, none was resent, none went
missing.  Servers start once per module (module-scoped fixtures); each test's paths
begin with its own tag, so tests sharing a server count only their own requests.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httptools
import pytest
from helpers import Run, loadgen, one_line_error

pytest.importorskip("gunicorn", reason="gunicorn (the test extra) is not installed")
pytest.importorskip("uvicorn", reason="uvicorn (the test extra) is not installed")

from realservers import Served, start_gunicorn, start_uvicorn
from tlscerts import Pki

HOST = "api.example.test"


# --- servers, started once ------------------------------------------------------------------


@pytest.fixture(scope="module")
def gthread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """gunicorn, gthread worker: kept-alive connections, as most deployments."""
    server = start_gunicorn(tmp_path_factory.mktemp("gunicorn-gthread"), "gthread")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sync(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """gunicorn, sync worker: one request per connection."""
    server = start_gunicorn(tmp_path_factory.mktemp("gunicorn-sync"), "sync")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def uvicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = start_uvicorn(tmp_path_factory.mktemp("uvicorn"))
    yield server
    server.stop()




def _client_context(pki: Pki, with_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if with_cert:
        context.load_cert_chain(pki.client_cert, pki.client_key)
    return context


@pytest.fixture(scope="module")
def uvicorn_tls(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Served]:
    server = start_uvicorn(tmp_path_factory.mktemp("uvicorn-tls"),
                           tls={"ssl-certfile": str(pki.server_cert),
                                "ssl-keyfile": str(pki.server_key)},
                           probe_context=_client_context(pki, with_cert=False))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def uvicorn_mtls(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Served]:
    """uvicorn that requires a client certificate signed by the private CA."""
    server = start_uvicorn(tmp_path_factory.mktemp("uvicorn-mtls"),
                           tls={"ssl-certfile": str(pki.server_cert),
                                "ssl-keyfile": str(pki.server_key),
                                "ssl-ca-certs": str(pki.ca),
                                "ssl-cert-reqs": str(int(ssl.CERT_REQUIRED))},
                           probe_context=_client_context(pki, with_cert=True))
    yield server
    server.stop()


# --- helpers --------------------------------------------------------------------------------


def run(server: Served, tmp_path: Path, *args: str, requests: int = 200) -> Run:
    """A short closed-model run: one worker, four connections."""
    return loadgen("run", "--url", server.url, "--requests", str(requests), "--concurrency",
                   "4", "--workers", "1", "--quiet", *args, save=tmp_path / "r.json")


def summary_of(result: Run) -> dict[str, Any]:
    assert result.status == 0, (result.status, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.doc is not None
    return result.doc["summary"]


def statuses(records: list[dict[str, Any]]) -> dict[str, int]:
    """The record's statuses in loadgen's ``status_codes`` form (dropped requests left out)."""
    return {str(s): n for s, n in Counter(r["status"] for r in records).items() if s is not None}


def access_statuses(lines: list[str]) -> dict[str, int]:
    """Status codes in access-log lines: gunicorn's ``... STATUS BYTES HOST`` format or
    uvicorn's ``"GET /p HTTP/1.1" STATUS Reason``."""
    found = Counter()
    for line in lines:
        match = re.search(r'HTTP/1\.1" (\d{3})', line) or re.search(r" (\d{3}) -?\d+ ", line)
        assert match, line
        found[match.group(1)] += 1
    return dict(found)


def response_size(port: int, method: str, path: str, headers: str = "",
                  body: bytes = b"") -> tuple[int, bytes]:
    """One request on a fresh kept-alive connection, written at once as loadgen writes
    it: the size of the whole response (head and framed body) and its head -- or the
    first interim response's, if one comes.  The request goes under a path of its own,
    so it never counts for the test's runs."""
    done = []

    class Parser:
        def on_message_complete(self) -> None:
            done.append(True)

    parser = httptools.HttpResponseParser(Parser())
    data = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     f"User-Agent: loadgen\r\nAccept: */*\r\n{headers}\r\n".encode() + body)
        while not done and not (method == "HEAD" and b"\r\n\r\n" in data):
            chunk = sock.recv(65536)
            assert chunk, f"closed after {bytes(data)!r}"
            data += chunk
            if method != "HEAD":
                parser.feed_data(chunk)
    return len(data), bytes(data).split(b"\r\n\r\n", 1)[0]


# --- Host ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gthread", "uvicorn"])
def test_host_header_replaces_the_default(request: pytest.FixtureRequest, tmp_path: Path,
                                          name: str) -> None:
    """``--header 'Host: ...'`` is the one Host the server sees: gunicorn answers a second
    Host with 400 (a singleton field), and uvicorn's app sees every Host line there was."""
    server: Served = request.getfixturevalue(name)
    summary = summary_of(run(server, tmp_path, "--endpoint", "/host/get",
                             "--header", f"Host: {HOST}"))
    records = server.records("host")
    assert summary["requests"] == len(records) == 200
    assert summary["status_codes"] == statuses(records) == {"200": 200}
    assert summary["failures_by_kind"] == {}
    assert {tuple(r["hosts"]) for r in records} == {(HOST,)}
    lines = server.access_lines("host", 200)
    assert access_statuses(lines) == {"200": 200}
    if name == "gthread":   # gunicorn logs the Host it saw (%({host}i)s)
        assert all(line.endswith(f" {HOST}") for line in lines), lines[:3]


# --- a request read, then dropped -----------------------------------------------------------


def test_request_read_then_dropped_is_a_read_failure_never_resent(gthread: Served,
                                                                  tmp_path: Path) -> None:
    """gunicorn (gthread, keep-alive) hands every 3rd POST on a connection to an app that
    reads it in full and shuts the socket without answering.  gunicorn's access log
    cannot be the reference here (it logs the status the app set, which never went out),
    so the app's record is: loadgen's requests are exactly what the app was handed, and
    each dropped one is a ``read`` failure, never sent again."""
    result = run(gthread, tmp_path, "--endpoint", "/drop/drop", "--method", "POST",
                 "--data", "payload=" + "x" * 100, requests=150)
    summary = summary_of(result)
    records = gthread.records("drop")
    dropped = sum(r["status"] is None for r in records)
    assert summary["requests"] == len(records) == 150   # a resend would be one record more
    assert dropped >= 150 // 3 - 4   # every 3rd on each connection (4 of them)
    assert summary["failures_by_kind"] == {"read": dropped}
    assert summary["status_codes"] == statuses(records) == {"200": 150 - dropped}
    assert all(r["method"] == "POST" and r["body"] == 108 for r in records)


# --- Expect: 100-continue -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sync", "uvicorn"])
def test_expect_100_continue_ends_with_the_final_status(request: pytest.FixtureRequest,
                                                        tmp_path: Path, name: str) -> None:
    """loadgen sends the body with the head (it does not wait for 100 Continue, as RFC
    9110 allows); both servers still answer 100 first, then the final status: gunicorn as
    soon as it has parsed the head, uvicorn when the app first asks for the body.  The
    first check proves the 100 is really on the wire for a request written that way."""
    server: Served = request.getfixturevalue(name)
    _, head = response_size(server.port, "POST", "/wire/upload",
                            "Expect: 100-continue\r\nContent-Length: 5\r\n", b"hello")
    assert head == b"HTTP/1.1 100 Continue", head

    body = tmp_path / "body.bin"
    body.write_bytes(b"b" * 100_000)
    summary = summary_of(run(server, tmp_path, "--endpoint", "/expect/upload", "--method",
                             "POST", "--data-file", str(body),
                             "--header", "Expect: 100-continue", requests=100))
    records = server.records("expect")
    assert summary["status_codes"] == statuses(records) == {"200": 100}
    assert summary["requests"] == len(records) == 100 and summary["failures"] == 0
    assert {(r["expect"], r["body"]) for r in records} == {("100-continue", 100_000)}
    assert access_statuses(server.access_lines("expect", 100)) == {"200": 100}


# --- an answer before the upload is over ----------------------------------------------------


@pytest.mark.parametrize("name", ["gthread", "uvicorn"])
def test_early_answer_to_a_large_upload_is_counted(request: pytest.FixtureRequest,
                                                   tmp_path: Path, name: str) -> None:
    """A 5 MB POST to an app that answers 418 without reading the body: loadgen counts
    the 418, as curl does.

    Which servers make this well-defined: uvicorn (httptools) keeps reading the rest of
    the upload and discards it, and gunicorn's gthread worker discards it before it reads
    the next request on the kept-alive connection, so in both the upload completes and
    the connection stays usable.  gunicorn's sync worker instead closes after its answer
    (util.close_graceful: FIN, then at most 64 KiB or 2 s drained) with most of the
    upload unread, so the kernel resets the connection; whether a client can still read
    an answer that a reset overtakes is up to its TCP stack (RFC 9112 §9.6), so that
    configuration is not used here (tests/test_framing.py covers the reset with a raw
    server)."""
    server: Served = request.getfixturevalue(name)
    body = tmp_path / "upload.bin"
    body.write_bytes(b"u" * (5 << 20))
    summary = summary_of(run(server, tmp_path, "--endpoint", "/early/early", "--method",
                             "POST", "--data-file", str(body), requests=12))
    records = server.records("early")
    assert summary["requests"] == len(records) == 12
    assert summary["status_codes"] == statuses(records) == {"418": 12}
    assert summary["failures_by_status"] == {"418": 12}
    assert summary["failures_by_kind"] == {}
    assert access_statuses(server.access_lines("early", 12)) == {"418": 12}


# --- #fragment --------------------------------------------------------------------------------


def test_fragment_never_reaches_the_server(gthread: Served, tmp_path: Path) -> None:
    result = run(gthread, tmp_path, "--endpoint", "/frag/get?q=1#section-2", requests=40)
    summary = summary_of(result)
    records = gthread.records("frag")
    assert summary["requests"] == len(records) == 40
    assert summary["status_codes"] == {"200": 40}
    assert {(r["path"], r["query"]) for r in records} == {("/frag/get", "q=1")}
    assert [e["endpoint"] for e in result.doc["endpoints"]] == ["GET /frag/get?q=1"]
    lines = gthread.access_lines("frag", 40)
    assert len(lines) == 40 and not any("#" in line for line in lines)


# --- --expect-status ------------------------------------------------------------------------


@pytest.mark.parametrize("tag, path, expect, successes", [
    ("created", "/created/status/201", ["--expect-status", "201"], True),
    ("cached", "/cached/status/304", ["--expect-status", "200-399"], True),
    ("default304", "/default304/status/304", [], False),   # default 2xx: a 304 is a failure
])
def test_expect_status_decides_success(gthread: Served, tmp_path: Path, tag: str, path: str,
                                       expect: list[str], successes: bool) -> None:
    summary = summary_of(run(gthread, tmp_path, "--endpoint", path, *expect, requests=100))
    records = gthread.records(tag)
    status = path.rsplit("/", 1)[1]
    assert summary["requests"] == len(records) == 100
    assert summary["status_codes"] == statuses(records) == {status: 100}
    assert access_statuses(gthread.access_lines(tag, 100)) == {status: 100}
    if successes:
        assert summary["success_rate"] == 1.0 and summary["failures_by_status"] == {}
    else:
        assert summary["successes"] == 0 and summary["failures_by_status"] == {status: 100}


def test_success_table_caption_names_the_expected_statuses(gthread: Served,
                                                           tmp_path: Path) -> None:
    """With some failures the report adds a successes-only table; under ``--expect-status
    201`` it holds the 201s, and its caption must say so, not "(2xx)"."""
    result = run(gthread, tmp_path, "--endpoint", "/caption/status/201", "--endpoint",
                 "/caption/status/500", "--expect-status", "201", requests=40)
    summary = summary_of(result)
    records = gthread.records("caption")
    assert summary["status_codes"] == statuses(records) == {"201": 20, "500": 20}
    assert summary["successes"] == 20 and summary["failures_by_status"] == {"500": 20}
    lines = result.stdout.splitlines()
    assert "Latency of successful requests only (expected statuses: 201):" in lines
    assert "(2xx)" not in result.stdout


# --- HEAD, 204, chunked -----------------------------------------------------------------------


def test_head_is_a_head_without_a_body(gthread: Served, tmp_path: Path) -> None:
    """The head announces the GET's Content-Length; loadgen must read the head alone
    (bytes_in = the requests x the head's size), never wait for a body."""
    size, head = response_size(gthread.port, "HEAD", "/wire/get")
    assert b"Content-Length: " in head and size == len(head) + 4
    summary = summary_of(run(gthread, tmp_path, "--endpoint", "/head/get",
                             "--method", "HEAD", requests=100))
    records = gthread.records("head")
    assert summary["requests"] == len(records) == 100
    assert {r["method"] for r in records} == {"HEAD"}
    assert summary["status_codes"] == statuses(records) == {"200": 100}
    assert summary["bytes_in"] == 100 * size   # "/head/get" and "/wire/get": same length
    assert access_statuses(gthread.access_lines("head", 100)) == {"200": 100}


def test_204_and_chunked_responses_are_framed_right(gthread: Served, tmp_path: Path) -> None:
    """A 204 has no body and no Content-Length; /stream is chunked (no Content-Length).
    Each response must end where its framing says -- a byte too few and the connection
    waits for the next response forever (timeouts), a byte too many and it is out of
    step (failures) -- so counts and bytes_in must both come out exact."""
    empty, empty_head = response_size(gthread.port, "GET", "/wire/status/204")
    chunked, chunked_head = response_size(gthread.port, "GET", "/wire/stream/20")
    assert b"Content-Length" not in empty_head and empty == len(empty_head) + 4
    assert b"Transfer-Encoding: chunked" in chunked_head
    assert b"Content-Length" not in chunked_head

    result = run(gthread, tmp_path, "--endpoint", "/frame/status/204", "--endpoint",
                 "/frame/stream/20", requests=200)
    summary = summary_of(result)
    records = gthread.records("frame")
    assert summary["requests"] == len(records) == 200 and summary["failures"] == 0
    per_endpoint = {e["endpoint"]: e["status_codes"] for e in result.doc["endpoints"]}
    assert per_endpoint == {"GET /frame/status/204": {"204": 100},
                            "GET /frame/stream/20": {"200": 100}}
    assert statuses(records) == {"204": 100, "200": 100}
    assert summary["bytes_in"] == 100 * empty + 100 * chunked   # same path lengths as /wire
    assert access_statuses(gthread.access_lines("frame", 200)) == {"204": 100, "200": 100}
    assert sum(w["reconnects"] for w in result.doc["workers"]) == 0   # kept alive throughout


# --- TLS against uvicorn ----------------------------------------------------------------------


def test_private_ca_with_cacert(uvicorn_tls: Served, pki: Pki, tmp_path: Path) -> None:
    summary = summary_of(run(uvicorn_tls, tmp_path, "--endpoint", "/tls/get",
                             "--cacert", str(pki.ca), requests=100))
    records = uvicorn_tls.records("tls")
    assert summary["requests"] == len(records) == 100
    assert summary["status_codes"] == statuses(records) == {"200": 100}
    assert {r["scheme"] for r in records} == {"https"}
    assert access_statuses(uvicorn_tls.access_lines("tls", 100)) == {"200": 100}


def test_private_ca_without_cacert_is_refused_before_any_load(uvicorn_tls: Served,
                                                              tmp_path: Path) -> None:
    """The system's CAs do not know the private CA: one line, exit 2, no request served
    (loadgen's preflight handshake finds it, rather than a run of ``connect`` failures)."""
    line = one_line_error(run(uvicorn_tls, tmp_path, "--endpoint", "/noca/get"))
    assert "failed verification" in line, line
    assert uvicorn_tls.records("noca") == []
    assert uvicorn_tls.access_lines("noca", 0, limit_s=0) == []


def test_client_certificate_reaches_uvicorn(uvicorn_mtls: Served, pki: Pki,
                                            tmp_path: Path) -> None:
    summary = summary_of(run(uvicorn_mtls, tmp_path, "--endpoint", "/mtls/get",
                             "--cacert", str(pki.ca), "--cert", str(pki.client_cert),
                             "--key", str(pki.client_key), requests=100))
    records = uvicorn_mtls.records("mtls")
    assert summary["requests"] == len(records) == 100
    assert summary["status_codes"] == statuses(records) == {"200": 100}
    assert access_statuses(uvicorn_mtls.access_lines("mtls", 100)) == {"200": 100}


def test_without_the_client_certificate_uvicorn_refuses(uvicorn_mtls: Served, pki: Pki,
                                                        tmp_path: Path) -> None:
    """uvicorn (asyncio's TLS) refuses a missing client certificate by closing the
    connection right after the TLS 1.3 handshake, without an alert.  loadgen's preflight
    reads that close as the refusal: one line, exit 2, nothing served.

    The preflight waits two handshake times (20 ms at least) for the close; on a machine
    so loaded that uvicorn is not scheduled within it, the run goes ahead, and then every
    request must be a ``read`` failure that the server never served -- checked too, so
    the test holds either way (tests/test_tls.py tests the preflight itself)."""
    result = run(uvicorn_mtls, tmp_path, "--endpoint", "/nocert/get", "--cacert", str(pki.ca),
                 requests=20)
    if result.status == 0:   # the close came after the preflight's wait
        summary = summary_of(result)
        assert summary["failures_by_kind"] == {"read": 20} and summary["status_codes"] == {}
    else:
        line = one_line_error(result)
        assert "closed right after the handshake, without an alert" in line, line
        assert "does it require a client certificate (--cert/--key)?" in line, line
    assert uvicorn_mtls.records("nocert") == []
    assert uvicorn_mtls.access_lines("nocert", 0, limit_s=0) == []
