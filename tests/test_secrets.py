"""Secrets and TLS: the password and the token never leave loadgen; certificates are checked.

The password reaches loadgen by option, environment or prompt; the login
returns a token the test knows (``token_api``), so every output can be
searched for both: stdout, stderr, results JSON, PNG charts, the capacity
document and chart, ``loadgen report`` output, and the worker processes'
environment.  TLS runs against a self-signed certificate made here.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pty
import select
import shutil
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from forwardproxy import ForwardProxy, basic
from helpers import (
    REPO,
    Run,
    children,
    finish,
    loadgen,
    one_line_error,
    start_loadgen,
    stop,
    wait_for_status,
)
from rawservers import OK, RawServer, RotatingTokens, read_request, token_api

from loadgen.engine.preflight import INSECURE_WARNING

PASSWORD = "pw-9f3a-Secret"
TOKEN = "tok.eyJzdWIiOiJhZG1pbiJ9.Zx81-signature-7c1d"
SECRETS = (PASSWORD, TOKEN, TOKEN.rsplit(".", 1)[-1])


def assert_no_secret(*blobs: str | bytes) -> None:
    for blob in blobs:
        data = blob.encode() if isinstance(blob, str) else blob
        for secret in SECRETS:
            assert secret.encode() not in data, f"{secret!r} leaked"
        assert b"Bearer" not in data


@pytest.fixture
def api():
    with RawServer(token_api(PASSWORD, TOKEN)) as server:
        yield server


AUTH = ("--auth", "--username", "admin", "--endpoint", "/api/secret")


@pytest.mark.parametrize("source", ["option", "environment", "piped prompt"])
def test_password_sources_log_in_and_nothing_leaks(api, tmp_path: Path, source: str) -> None:
    args, env, stdin = list(AUTH), {}, None
    if source == "option":
        args += ["--password", PASSWORD]
    elif source == "environment":
        env = {"LOADGEN_PASSWORD": PASSWORD}
    else:
        args += ["--ask-password"]
        stdin = PASSWORD + "\n"
    save, image = tmp_path / "r.json", tmp_path / "r.png"
    argv = ["run", "--url", api.url, *args, "--requests", "20", "--concurrency", "2",
            "--workers", "1", "--save", str(save), "--output-image", str(image)]
    if stdin is None:   # the option and the environment: the same cli.main, in this process
        proc = loadgen(*argv, env=env)
    else:               # a real pipe on a real process's stdin
        piped = subprocess.run(
            [sys.executable, "-m", "loadgen", *argv],
            check=False, input=stdin, capture_output=True, text=True, timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO), **env})
        proc = Run(piped.returncode, piped.stdout, piped.stderr, None)
    assert proc.status == 0, proc.stderr
    assert api.requests == 20                       # every request carried the token
    assert "Status codes: 200 × 20" in proc.stdout
    assert_no_secret(proc.stdout, proc.stderr, save.read_bytes(), image.read_bytes())
    # and re-rendering the saved run shows nothing either
    for extra in (["--json"], ["--output-image", str(tmp_path / "again.png")]):
        again = loadgen("report", str(save), *extra)
        assert again.status == 0, again.stderr
        assert_no_secret(again.stdout, again.stderr)
    assert_no_secret((tmp_path / "again.png").read_bytes())


def test_renewed_tokens_never_reach_any_output(tmp_path: Path) -> None:
    """Tokens that live 2 s, renewed during a 4 s run: none of them (nor its signature)
    is in stdout, stderr, the results, the chart or the report made from the results."""
    tokens = RotatingTokens(PASSWORD, ttl_s=2)
    save, image = tmp_path / "r.json", tmp_path / "r.png"
    with RawServer(tokens.handler) as server:
        run = loadgen("run", "--url", server.url, *AUTH, "--duration", "4s", "--rate", "50",
                      "--concurrency", "2", "--workers", "2", "--output-image", str(image),
                      save=save, env={"LOADGEN_PASSWORD": PASSWORD})
    assert run.status == 0, run.stdout + run.stderr
    assert len(tokens.issued) >= 3 and run.doc is not None
    assert run.doc["auth"]["logins"] == len(tokens.issued)
    again = loadgen("report", str(save), "--output-image", str(tmp_path / "again.png"))
    assert again.status == 0, again.stderr
    outputs = (run.stdout, run.stderr, save.read_bytes(), image.read_bytes(), again.stdout,
               again.stderr, (tmp_path / "again.png").read_bytes())
    assert_no_secret(*outputs)
    for token in tokens.issued:
        for blob in outputs:
            data = blob.encode() if isinstance(blob, str) else blob
            assert token.encode() not in data
            assert token.rsplit(".", 1)[-1].encode() not in data


def test_capacity_outputs_hold_no_secret(api, tmp_path: Path) -> None:
    save, image = tmp_path / "cap.json", tmp_path / "cap.png"
    run = loadgen("capacity", "--url", api.url, *AUTH, "--slo", "p99<1000ms",
                  "--start-rate", "20", "--max-rate", "20", "--step-duration", "1s",
                  "--concurrency", "2", "--workers", "1", "--save", str(save),
                  "--output-image", str(image), env={"LOADGEN_PASSWORD": PASSWORD})
    assert run.status == 0, run.stdout + run.stderr
    assert api.requests == 20
    assert_no_secret(run.stdout, run.stderr, save.read_bytes(), image.read_bytes())


def test_workers_never_see_the_password(api, tmp_path: Path) -> None:
    """LOADGEN_PASSWORD is dropped before the workers start; they get the token by pipe,
    not in their environment or command line."""
    save = tmp_path / "r.json"
    proc = start_loadgen("run", "--url", api.url, *AUTH, "--rate", "20", "--duration", "2s",
                         "--workers", "2", "--save", str(save),
                         env={"LOADGEN_PASSWORD": PASSWORD})
    try:
        wait_for_status(save, "running")
        spawned = children(proc.pid)
        assert spawned
        for pid in spawned:
            for part in ("environ", "cmdline"):
                assert_no_secret(Path(f"/proc/{pid}/{part}").read_bytes())
        run = finish(proc, save)
    finally:
        stop(proc)
    assert run.status == 0, run.stderr
    assert_no_secret(run.stdout, run.stderr, save.read_bytes())


def test_wrong_password_is_one_line_without_the_password(api) -> None:
    run = loadgen("run", "--url", api.url, *AUTH, "--password", PASSWORD + "-wrong")
    line = one_line_error(run, status=3)
    assert "login failed" in line and "401" in line
    assert PASSWORD not in run.stdout + run.stderr
    assert api.requests == 0


def test_prompt_on_a_terminal_does_not_echo(api, tmp_path: Path) -> None:
    """stdin is a pseudo-terminal: the prompt goes to stderr and the typed password is not
    echoed back (the terminal's ECHO is off while it is read)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "run", "--url", api.url, *AUTH, "--ask-password",
         "--requests", "5", "--workers", "1", "--save", str(tmp_path / "r.json")],
        stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
    os.close(slave)
    echoed = b""
    try:
        prompt = b""
        deadline = time.monotonic() + 30
        while b"Password: " not in prompt:   # the trailing blank is written with ECHO off
            left = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([proc.stderr], [], [], left)
            assert ready, f"no prompt: {prompt!r}"
            chunk = os.read(proc.stderr.fileno(), 1024)
            assert chunk, f"stderr closed: {prompt!r}"
            prompt += chunk
        os.write(master, PASSWORD.encode() + b"\n")
        out, err = proc.communicate(timeout=60)
        while select.select([master], [], [], 0)[0]:
            try:
                data = os.read(master, 4096)
            except OSError:   # EIO: the other side is closed
                break
            if not data:
                break
            echoed += data
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        os.close(master)
    assert proc.returncode == 0, err
    assert api.requests == 5
    assert_no_secret(echoed, out, err)


# --- proxy credentials -------------------------------------------------------------------------

PROXY_PASSWORD = "px-41c7-Secret"


@pytest.mark.parametrize("where", ["option", "environment"])
def test_proxy_credentials_reach_the_proxy_and_nothing_else(api, tmp_path: Path,
                                                            where: str) -> None:
    """``http://user:password@proxy``: every request (the login too) carries
    Proxy-Authorization: Basic; the password, and the Basic value that encodes it, are
    nowhere in stdout, stderr, the results, the chart or a re-rendered report."""
    authorization = basic("loadgen", PROXY_PASSWORD)
    with ForwardProxy(require=authorization) as proxy:
        url = f"http://loadgen:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}"
        args, env = (["--proxy", url], {}) if where == "option" else ([], {"http_proxy": url})
        save, image = tmp_path / "r.json", tmp_path / "r.png"
        run = loadgen("run", "--url", api.url, *AUTH, "--password", PASSWORD, *args,
                      "--requests", "20", "--concurrency", "2", "--workers", "1", "--quiet",
                      "--output-image", str(image), save=save, env=env)
        seen = proxy.lines()
    assert run.status == 0, run.stderr
    assert api.requests == 20 and len(seen) == 21          # the requests and the login
    assert proxy.authorizations() == {authorization}
    leaks = (PROXY_PASSWORD.encode(), authorization.split()[1].encode())
    again = loadgen("report", str(save))
    assert "via proxy" in again.stdout
    for blob in (run.stdout, run.stderr, save.read_bytes(), image.read_bytes(),
                 again.stdout, again.stderr):
        data = blob.encode() if isinstance(blob, str) else blob
        assert not any(leak in data for leak in leaks)
    assert_no_secret(run.stdout, run.stderr, save.read_bytes())
    assert run.doc["config"]["proxy"]["credentials"] is True


def test_a_bad_proxy_url_never_shows_its_password(api) -> None:
    line = one_line_error(loadgen("run", "--url", api.url, "--requests", "5",
                                  env={"http_proxy": f"http://u:{PROXY_PASSWORD}@127.0.0.1:0"}))
    assert "port 0" in line and PROXY_PASSWORD not in line
    assert api.requests == 0


# --- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem).

    Made with the ``cryptography`` package when it is installed, else with the
    ``openssl`` command; without either, the TLS tests are skipped.
    """
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    try:
        _certificate_with_cryptography(cert_path, key_path)
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor the openssl command")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                        "-keyout", str(key_path), "-out", str(cert_path),
                        "-subj", "/CN=loadgen test",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-addext", "basicConstraints=critical,CA:TRUE"],
                       check=True, capture_output=True, timeout=60)
    return cert_path, key_path


def _certificate_with_cryptography(cert_path: Path, key_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loadgen test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))


@pytest.fixture
def tls_context(certificate) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def keep_alive_ok(server: RawServer, conn) -> None:
    buffer = bytearray()
    while read_request(conn, buffer):
        server.count()
        conn.sendall(OK)


def test_self_signed_certificate_is_refused_before_any_load(tls_context) -> None:
    with RawServer(keep_alive_ok, tls=tls_context) as server:
        run = loadgen("run", "--url", server.url, "--requests", "10")
        served = server.requests
    line = one_line_error(run)
    assert "certificate" in line and "failed verification" in line and "--insecure" in line
    assert served == 0


def test_insecure_skips_verification_and_says_so_once(tls_context, tmp_path: Path) -> None:
    with RawServer(keep_alive_ok, tls=tls_context) as server:
        run = loadgen("run", "--url", server.url, "--requests", "30", "--concurrency", "3",
                      "--workers", "1", "--insecure", "--quiet", save=tmp_path / "r.json")
        served = server.requests
    assert run.status == 0, run.stderr
    assert run.stderr.splitlines() == [INSECURE_WARNING]
    assert run.doc["summary"]["status_codes"] == {"200": 30} and served == 30
    assert run.doc["config"]["insecure"] is True


def test_insecure_login_over_tls_prints_only_the_warning(certificate, tmp_path: Path) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    with RawServer(token_api(PASSWORD, TOKEN), tls=context) as server:
        run = loadgen("run", "--url", server.url, *AUTH, "--password", PASSWORD, "--insecure",
                      "--requests", "10", "--workers", "1", "--quiet", save=tmp_path / "r.json")
        served = server.requests
    assert run.status == 0, run.stderr
    assert run.stderr.splitlines() == [INSECURE_WARNING]   # no urllib3 warning block
    assert served == 10
    assert_no_secret(run.stdout, run.stderr, (tmp_path / "r.json").read_bytes())


def test_trusted_certificate_is_verified_and_used(certificate, tls_context,
                                                  tmp_path: Path) -> None:
    """Verification is on, and works: trust the certificate (SSL_CERT_FILE) and it passes."""
    with RawServer(keep_alive_ok, tls=tls_context) as server:
        run = loadgen("run", "--url", server.url, "--requests", "10", "--workers", "1", "--quiet",
                      save=tmp_path / "r.json", env={"SSL_CERT_FILE": str(certificate[0])})
    assert run.status == 0, run.stderr
    assert run.stderr == ""
    assert run.doc["summary"]["status_codes"] == {"200": 10}


def answers_anything_with_400(server: RawServer, conn) -> None:
    """A plain-HTTP server's reply to a TLS ClientHello."""
    if conn.recv(4096):
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def test_plain_http_server_behind_an_https_url(tmp_path: Path) -> None:
    with RawServer(answers_anything_with_400) as server:
        url = server.url.replace("http://", "https://")
        for extra in ([], ["--insecure"]):
            line = one_line_error(loadgen("run", "--url", url, "--requests", "3", *extra))
            assert "TLS handshake" in line, line
        assert server.requests == 0



def test_https_url_to_a_server_that_never_answers(tmp_path: Path) -> None:
    from rawservers import silent

    with RawServer(silent) as server:
        run = loadgen("run", "--url", server.url.replace("http://", "https://"),
                      "--timeout", "300ms")
    assert "TLS handshake" in one_line_error(run) and "timed out" in run.stderr
