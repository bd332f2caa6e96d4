"""TLS as operators need it: a private CA, client certificates, one context per worker.

Certificates are made here (tests/tlscerts.py: a private CA, a server
certificate for 127.0.0.1 signed by it, a client certificate); the servers are
Python's ssl on 127.0.0.1 port 0 (tests/rawservers.py), which record what the
handshake told them: whether the session was resumed and which client
certificate was shown.  Resumption is also the proof that a worker builds one
SSLContext: OpenSSL resumes a session only on a socket of the context that
made it.  How fast new connections are is measured in bench/tls.py, not here.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from helpers import loadgen, one_line_error
from rawservers import OK, RawServer, read_request, token_api
from tlscerts import Pki

from loadgen.config.model import ConfigError, Target, TlsFiles
from loadgen.config.scenario import parse_scenario
from loadgen.engine.preflight import INSECURE_WARNING, PreflightError, check_reachable
from loadgen.engine.tls import build_context

CLOSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"




def server_context(pki: Pki, require_client: bool = False,
                   maximum: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.maximum_version = maximum
    if require_client:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki.ca)
    return context


class Handshakes:
    """Handlers that answer over TLS and record each connection's handshake."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.resumed = 0
        self.full = 0
        self.clients: set[str] = set()

    def _note(self, conn: ssl.SSLSocket) -> None:
        peer = conn.getpeercert() or {}
        names = {value for rdn in peer.get("subject", ()) for key, value in rdn
                 if key == "commonName"}
        with self.lock:
            if conn.session_reused:
                self.resumed += 1
            else:
                self.full += 1
            self.clients |= names

    def keep_alive(self, server: RawServer, conn: ssl.SSLSocket) -> None:
        self._note(conn)
        buffer = bytearray()
        while read_request(conn, buffer):
            server.count()
            conn.sendall(OK)

    def one_per_connection(self, server: RawServer, conn: ssl.SSLSocket) -> None:
        """``Connection: close`` after every response: each request is a new handshake."""
        if read_request(conn, bytearray()):
            self._note(conn)   # after the first read: the client finished its handshake
            server.count()
            conn.sendall(CLOSE)


# --- the files, checked before any load (unit: the coordinator's check) ---------------------


@pytest.mark.parametrize("files, insecure, expected", [
    ({"cacert": "missing.pem"}, False, "--cacert: cannot read {d}/missing.pem: No such file"),
    ({"cacert": "junk.txt"}, False, "--cacert: {d}/junk.txt holds no PEM certificate"),
    ({"cacert": "empty.pem"}, False, "--cacert: {d}/empty.pem holds no PEM certificate"),
    ({"cacert": "client.key"}, True, "--cacert: {d}/client.key holds no PEM certificate"),
    ({"cert": "client.pem"}, False, "--cert: {d}/client.pem holds no private key (give it"),
    ({"cert": "junk.txt", "key": "client.key"}, False, ("--cert: {d}/junk.txt holds no PEM "
                                                       "certificate")),
    ({"cert": "client.pem", "key": "junk.txt"}, False, ("--key: {d}/junk.txt holds no PEM "
                                                       "private key")),
    ({"cert": "client.pem", "key": "server.key"}, False, ("--key: the private key in "
                                                         "{d}/server.key does not match")),
    ({"cert": "client.pem", "key": "missing.key"}, False, "--key: cannot read {d}/missing.key"),
    ({"cert": "client.pem", "key": "encrypted.key"}, False, ("--key: the private key in "
                                                            "{d}/encrypted.key is encrypted")),
    ({"key": "client.key"}, False, "--key needs --cert"),
])
def test_bad_files_are_named_in_one_line(pki: Pki, files: dict[str, str], insecure: bool,
                                         expected: str) -> None:
    folder = pki.ca.parent
    (folder / "junk.txt").write_text("not a certificate\n")
    (folder / "empty.pem").write_bytes(b"")
    _encrypted_copy(pki.client_key, folder / "encrypted.key")
    tls = TlsFiles(**{k: str(folder / v) for k, v in files.items()})
    with pytest.raises(ConfigError) as caught:
        build_context(tls, insecure)
    message = str(caught.value)
    assert message.startswith(expected.format(d=folder)), message
    assert "\n" not in message


def _encrypted_copy(key: Path, target: Path) -> None:
    """The key under a passphrase: loadgen must refuse it, never prompt for the passphrase."""
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:   # make_pki worked, so the openssl command is there
        subprocess.run(["openssl", "pkey", "-in", str(key), "-aes256", "-passout", "pass:x",
                        "-out", str(target)], check=True, capture_output=True, timeout=60)
        return
    loaded = serialization.load_pem_private_key(key.read_bytes(), None)
    target.write_bytes(loaded.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase")))


def test_good_files_build_a_verifying_context(pki: Pki) -> None:
    context = build_context(TlsFiles(str(pki.ca), str(pki.client_both)), insecure=False)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == \
        [((("commonName", "loadgen test ca"),),)]   # --cacert replaces the system bundle
    insecure = build_context(TlsFiles(str(pki.ca)), insecure=True)
    assert insecure.verify_mode == ssl.CERT_NONE and not insecure.check_hostname


def test_scenario_files_are_relative_to_the_scenario(tmp_path: Path) -> None:
    opts = parse_scenario('cacert = "tls/ca.pem"\ncert = "c.pem"\nkey = "~/c.key"\n',
                          base_dir=str(tmp_path))
    assert opts.cacert == str(tmp_path / "tls" / "ca.pem")
    assert opts.cert == str(tmp_path / "c.pem")
    assert opts.key == str(Path("~/c.key").expanduser())


def test_a_bad_file_is_exit_2_before_any_load(pki: Pki) -> None:
    with RawServer(Handshakes().keep_alive, tls=server_context(pki)) as server:
        line = one_line_error(loadgen("run", "--url", server.url, "--requests", "5",
                                      "--cert", str(pki.client_cert),
                                      "--key", str(pki.server_key)))
        assert server.connections == 0
    assert "does not match" in line


# --- against real TLS servers ----------------------------------------------------------------


def test_cacert_trusts_a_private_ca(pki: Pki, tmp_path: Path) -> None:
    shakes = Handshakes()
    with RawServer(shakes.keep_alive, tls=server_context(pki)) as server:
        run = loadgen("run", "--url", server.url, "--requests", "20", "--concurrency", "2",
                      "--workers", "1", "--cacert", str(pki.ca), "--quiet",
                      save=tmp_path / "r.json")
        served = server.requests
    assert run.status == 0, run.stderr
    assert run.stderr == ""
    assert run.doc["summary"]["status_codes"] == {"200": 20} and served == 20
    assert run.doc["config"]["tls"] == {"cacert": True, "client_certificate": False}
    assert str(pki.ca) not in (tmp_path / "r.json").read_text()


def test_a_wrong_ca_is_refused_in_one_line(pki: Pki) -> None:
    with RawServer(Handshakes().keep_alive, tls=server_context(pki)) as server:
        line = one_line_error(loadgen("run", "--url", server.url, "--requests", "5",
                                      "--cacert", str(pki.other_ca)))
        served = server.requests
    assert "failed verification" in line and "unable to get local issuer" in line, line
    assert served == 0


def test_ssl_cert_file_is_honoured_and_cacert_wins(pki: Pki) -> None:
    """SSL_CERT_FILE is read by the explicit context too; --cacert replaces it, as in curl."""
    with RawServer(Handshakes().keep_alive, tls=server_context(pki)) as server:
        trusted = loadgen("run", "--url", server.url, "--requests", "5", "--workers", "1",
                          "--quiet", env={"SSL_CERT_FILE": str(pki.ca)})
        replaced = loadgen("run", "--url", server.url, "--requests", "5", "--quiet",
                           "--cacert", str(pki.other_ca), env={"SSL_CERT_FILE": str(pki.ca)})
    assert trusted.status == 0, trusted.stderr
    assert "failed verification" in one_line_error(replaced)


def test_ssl_cert_dir_is_honoured(pki: Pki, tmp_path: Path) -> None:
    """A hashed directory (as c_rehash makes) in SSL_CERT_DIR is trusted, with an empty file."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command names the file by its subject hash")
    subject_hash = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(pki.ca)],
                                  check=True, capture_output=True, text=True,
                                  timeout=60).stdout.strip()
    (tmp_path / f"{subject_hash}.0").write_bytes(pki.ca.read_bytes())
    (tmp_path / "empty.pem").write_bytes(b"")
    env = {"SSL_CERT_DIR": str(tmp_path), "SSL_CERT_FILE": str(tmp_path / "empty.pem")}
    with RawServer(Handshakes().keep_alive, tls=server_context(pki)) as server:
        trusted = loadgen("run", "--url", server.url, "--requests", "5", "--workers", "1",
                          "--quiet", env=env)
        (tmp_path / f"{subject_hash}.0").unlink()
        untrusted = loadgen("run", "--url", server.url, "--requests", "5", "--quiet", env=env)
    assert trusted.status == 0, trusted.stderr
    assert "failed verification" in one_line_error(untrusted)


@pytest.mark.parametrize("key_apart", [True, False], ids=["cert-and-key", "one-file"])
def test_client_certificate_reaches_a_server_that_requires_one(pki: Pki, tmp_path: Path,
                                                               key_apart: bool) -> None:
    shakes = Handshakes()
    cert = ["--cert", str(pki.client_cert), "--key", str(pki.client_key)] if key_apart \
        else ["--cert", str(pki.client_both)]
    with RawServer(shakes.keep_alive, tls=server_context(pki, require_client=True)) as server:
        run = loadgen("run", "--url", server.url, "--requests", "20", "--concurrency", "2",
                      "--workers", "1", "--cacert", str(pki.ca), *cert, "--quiet",
                      save=tmp_path / "r.json")
        served = server.requests
    assert run.status == 0, run.stderr
    assert run.doc["summary"]["status_codes"] == {"200": 20} and served == 20
    assert shakes.clients == {"loadgen test client"}
    assert run.doc["config"]["tls"]["client_certificate"] is True


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_without_the_client_certificate_it_is_bad_input(pki: Pki,
                                                        version: ssl.TLSVersion) -> None:
    """Refused before any load, in one line: TLS 1.2 in the handshake, TLS 1.3 by its alert.

    (In TLS 1.3 the client's handshake succeeds; the refusal comes one round trip
    later, which the preflight waits for -- otherwise every request would fail.)
    """
    context = server_context(pki, require_client=True, maximum=version)
    with RawServer(Handshakes().keep_alive, tls=context) as server:
        line = one_line_error(loadgen("run", "--url", server.url, "--requests", "5",
                                      "--cacert", str(pki.ca)))
        served = server.requests
    assert "TLS handshake" in line and "failed" in line, line
    if version == ssl.TLSVersion.TLSv1_3:
        assert "client certificate (--cert/--key)" in line, line
    assert served == 0


def closes_after_handshake(server: RawServer, conn: ssl.SSLSocket) -> None:
    """What asyncio's TLS (uvicorn) does to a client without the required certificate:
    no alert, the connection just closes once the handshake is over."""


@pytest.mark.parametrize("with_cert", [False, True])
def test_a_close_without_an_alert_is_a_refusal(pki: Pki, with_cert: bool) -> None:
    """The preflight (unit: check_reachable) reads a close right after a TLS 1.3 handshake,
    before any request, as the refusal it is; without this a run against uvicorn
    requiring a client certificate was all ``read`` failures."""
    files = TlsFiles(str(pki.ca), str(pki.client_both) if with_cert else None)
    context = server_context(pki, maximum=ssl.TLSVersion.TLSv1_3)
    with RawServer(closes_after_handshake, tls=context) as server, \
            pytest.raises(PreflightError) as caught:
        check_reachable(Target.parse(server.url), 5.0, tls=files)
    message = str(caught.value)
    assert caught.value.status == 2
    assert "closed right after the handshake, without an alert" in message, message
    assert ("refused the client certificate" in message) == with_cert, message
    assert ("does it require a client certificate (--cert/--key)?" in message) != with_cert


def test_a_silent_server_passes_the_preflight(pki: Pki) -> None:
    """The other side of the test above: a server that waits for the request passes."""
    with RawServer(Handshakes().keep_alive, tls=server_context(pki)) as server:
        check_reachable(Target.parse(server.url), 5.0, tls=TlsFiles(str(pki.ca)))


def test_login_verifies_with_the_same_settings(pki: Pki, tmp_path: Path) -> None:
    context = server_context(pki, require_client=True)
    with RawServer(token_api("pw", "tok.en.sig"), tls=context) as server:
        run = loadgen("run", "--url", server.url, "--auth", "--username", "admin",
                      "--password", "pw", "--requests", "5", "--workers", "1", "--quiet",
                      "--cacert", str(pki.ca), "--cert", str(pki.client_both),
                      save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    assert run.doc["summary"]["status_codes"] == {"200": 5}


@pytest.mark.parametrize("trust", ["cacert", "insecure"])
def test_new_connections_resume_the_tls_session(pki: Pki, tmp_path: Path, trust: str) -> None:
    """A new connection per request: every handshake after a worker's first ones resumes.

    Resumption needs the session of an earlier connection *and* the context that
    made it, so this also shows the worker did not build a context per connect.
    """
    shakes = Handshakes()
    requests, concurrency = 60, 2
    option = ["--cacert", str(pki.ca)] if trust == "cacert" else ["--insecure"]
    with RawServer(shakes.one_per_connection, tls=server_context(pki)) as server:
        run = loadgen("run", "--url", server.url, "--requests", str(requests), "--workers", "1",
                      "--concurrency", str(concurrency), "--quiet", *option,
                      save=tmp_path / "r.json")
        served = server.requests
    assert run.status == 0, run.stderr
    assert run.stderr in ("", INSECURE_WARNING + "\n")
    assert run.doc["summary"]["status_codes"] == {"200": requests} and served == requests
    # the first connection of each of the worker's connections is a full handshake
    assert shakes.full <= concurrency, (shakes.full, shakes.resumed)
    assert shakes.resumed >= requests - concurrency


def test_scenario_file_gives_the_ca_and_client_certificate(pki: Pki, tmp_path: Path) -> None:
    folder = tmp_path / "scenario"
    folder.mkdir()
    for source in (pki.ca, pki.client_cert, pki.client_key):
        (folder / source.name).write_bytes(source.read_bytes())
    scenario = folder / "run.toml"
    scenario.write_text('requests = 6\nworkers = 1\nquiet = true\ncacert = "ca.pem"\n'
                        'cert = "client.pem"\nkey = "client.key"\n')
    shakes = Handshakes()
    with RawServer(shakes.keep_alive, tls=server_context(pki, require_client=True)) as server:
        run = loadgen("run", "--url", server.url, "--config", str(scenario),
                      save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    assert run.doc["summary"]["status_codes"] == {"200": 6}
    assert shakes.clients == {"loadgen test client"}
