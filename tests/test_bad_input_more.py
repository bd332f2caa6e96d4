"""The bad-input battery: every mistake is one line on stderr, exit 2, no traceback, no load.

Most cases run ``loadgen.cli.main`` in this process (``run_in_process``: the
same code as the command, without an interpreter start per case); a few go
through a real subprocess, for argv bytes that are not UTF-8.  Input that is
valid is aimed at a port that refuses connections, so it ends in "cannot
reach" (exit 2) before any load: the property tests rely on that.
"""

from __future__ import annotations

import os
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import REPO, RefusingPort, Run, one_line_error, run_in_process
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def refusing() -> Any:
    with RefusingPort() as port:
        yield port


def assert_bad_input(run: Run) -> str:
    line = one_line_error(run)
    assert run.stdout == "", run.stdout
    return line


# --- run: options -----------------------------------------------------------------------------


@pytest.mark.parametrize("args,needle", [
    # wrong types
    (["--requests", "ten"], "--requests"),
    (["--concurrency", "1.5"], "--concurrency"),
    (["--workers", "two"], "--workers"),
    (["--rate", "fast", "--duration", "1s"], "--rate"),
    (["--max-connections", "many", "--rate", "1", "--duration", "1s"], "--max-connections"),
    (["--timeout", "soon"], "--timeout"),
    (["--duration", "5x"], "--duration"),
    (["--stage", "1s:lots"], "rate"),
    # out of range
    (["--requests", "0"], "--requests"),
    (["--concurrency", "-1"], "--concurrency"),
    (["--workers", "100000"], "--workers"),
    (["--rate", "inf", "--duration", "1s"], "--rate"),
    (["--rate", "nan", "--duration", "1s"], "--rate"),
    (["--rate", "1e12", "--duration", "1s"], "--rate"),
    (["--stage", "1s:1e12"], "--stage"),
    (["--timeout", "0.0001s"], "--timeout"),
    (["--timeout", "99999999h"], "--timeout"),
    (["--duration", "9" * 400], "--duration"),
    (["--concurrency", "10000000000"], "open-file limit"),
    (["--rate", "10", "--duration", "1s", "--max-connections", "10000000000"], "open-file limit"),
    # empty strings
    (["--url", ""], "--url"),
    (["--endpoint", ""], "--endpoint"),
    (["--method", ""], "--method"),
    (["--header", ""], "--header"),
    (["--save", ""], "--save"),
    (["--output-image", " "], "--output-image"),
    (["--data-file", ""], "--data-file"),
    (["--login-endpoint", ""], "--login-endpoint"),
    (["--threshold", ""], "threshold"),
    (["--stage", ""], "--stage"),
    # bad text
    (["--endpoint", "/a\x01b"], "--endpoint"),
    (["--header", "X-Name: \u65e5\u672c"], "ISO-8859-1"),
    (["--header", "X-Name: a\x07b"], "control"),
    (["--method", "G\u00c9T"], "--method"),
    (["--threshold", "p99<fast"], "threshold"),
    # URLs: schemes, ports, hosts
    (["--url", "ftp://127.0.0.1/"], "scheme"),
    (["--url", "file:///etc/passwd"], "scheme"),
    (["--url", "javascript:alert(1)"], "scheme"),
    (["--url", "127.0.0.1:5000"], "scheme"),
    (["--url", "http://"], "no host"),
    (["--url", "http://:8080"], "no host"),
    (["--url", "http://127.0.0.1:99999"], "--url"),
    (["--url", "http://127.0.0.1:-1"], "--url"),
    (["--url", "http://127.0.0.1:http"], "--url"),
    (["--url", "http://127.0.0.1:0"], "port 0"),
    (["--url", "http://[::1"], "--url"),
    (["--url", "http://admin:secret@127.0.0.1:5000"], "credentials"),
    (["--url", "http://127.0.0.1:5000/?token=abc"], "query"),
    (["--url", "http://127.0.0.1:5000/#top"], "fragment"),
    (["--url", "http://" + "a" * 64 + ".example:80"], "resolve"),
    (["--url", "http://no-such-host.invalid:5000"], "resolve"),
    # proxies
    (["--proxy", "socks5://127.0.0.1:1080"], "SOCKS"),
    (["--proxy", "https://127.0.0.1:3128"], "https://"),
    (["--proxy", "http://admin:secret@127.0.0.1:3128/path"], "--proxy"),
    (["--proxy", "http://127.0.0.1:99999"], "--proxy"),
    (["--proxy", "http://127.0.0.1:0"], "port 0"),
    (["--proxy", "http://admin:secret@"], "no host"),
    (["--proxy", "http://admin:secret\n@127.0.0.1:3128"], "--proxy"),
    (["--proxy", "http://no-such-host.invalid:3128"], "resolve proxy host"),
    # line breaks and escapes in what was typed still make one line
    (["extra\nargument"], "unexpected extra argument"),
    (["--endpoint", "/a\rb"], "--endpoint"),
    (["--header", "X\u2028Y: 1"], "--header"),
    (["\x1b[2J\x1e"], "unexpected extra argument"),
    # ask-password
    (["--ask-password"], "--ask-password needs --auth"),
    (["--ask-password", "--auth"], "stdin ended"),
])
def test_bad_run_option(refusing, args: list[str], needle: str) -> None:
    line = assert_bad_input(run_in_process("run", "--url", refusing.url, *args))
    assert needle.lower() in line.lower(), line
    assert "secret" not in line and "token=abc" not in line


def test_empty_password_line(refusing) -> None:
    line = assert_bad_input(run_in_process("run", "--url", refusing.url, "--auth",
                                           "--ask-password", stdin="\n"))
    assert "empty" in line


@pytest.mark.parametrize("make,needle", [
    (lambda d: str(d / "missing.json"), "cannot read"),
    (lambda d: str(d), "directory"),
    (lambda d: "/dev/zero", "not a regular file"),
    (lambda d: "/dev/stdin", "not a regular file"),
])
def test_unreadable_data_file(refusing, tmp_path: Path, make, needle: str) -> None:
    line = assert_bad_input(run_in_process("run", "--url", refusing.url, "--data-file",
                                           make(tmp_path)))
    assert "--data-file" in line and needle in line, line


@pytest.mark.parametrize("option", ["--save", "--output-image", "--html"])
@pytest.mark.parametrize("make,needle", [
    (lambda d: str(d / "no" / "such" / "folder" / "r.out"), "does not exist"),
    (lambda d: str(d), "is a directory"),
])
def test_unwritable_output_is_refused_before_the_run(refusing, tmp_path: Path, option: str,
                                                     make, needle: str) -> None:
    line = assert_bad_input(run_in_process("run", "--url", refusing.url, option, make(tmp_path)))
    assert option in line and needle in line, line


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_folder_is_refused(refusing, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        line = assert_bad_input(run_in_process("run", "--url", refusing.url, "--save",
                                               str(folder / "r.json")))
        assert "permission" in line
    finally:
        folder.chmod(0o700)


# --- run: scenario files ----------------------------------------------------------------------


@pytest.mark.parametrize("text,needle", [
    ("url = ", "invalid TOML"),
    ("[auth", "invalid TOML"),
    ('requests = "ten"', "'requests' must be an integer"),
    ("requests = 0", "'requests' must be 1 or more"),
    ("concurrency = 1.5", "'concurrency' must be an integer"),
    ('duration = "-1s"', "'duration'"),
    ("rate = inf", "'rate'"),
    ("rate = nan", "'rate'"),
    ("unknwon = 1", "unknown key"),
    ("[[endpoints]]\nweight = 2", "needs 'path'"),
    ('stages = [1]', "stages"),
    ('headers = { "X-A" = "\\u65e5" }', "ISO-8859-1"),
    ('url = "http://u:p@127.0.0.1:5000"', "credentials"),
    ('save = "/no/such/folder/r.json"', "--save"),
    ('data_file = "/dev/zero"', "not a regular file"),
    ('data_file = "a\\u0000b"', "--data-file"),
    ("requests = 99999999999999999999999999", "cannot reach"),   # valid, if optimistic
])
def test_bad_scenario_file(refusing, tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(text)
    line = assert_bad_input(run_in_process("run", "--url", refusing.url, "--config", str(path)))
    assert needle in line, line


@pytest.mark.parametrize("data", [b"\xff\xfe\x00garbage", b"url = \"\x00\"", bytes(range(256))])
def test_binary_scenario_file(refusing, tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "s.toml"
    path.write_bytes(data)
    assert_bad_input(run_in_process("run", "--url", refusing.url, "--config", str(path)))


@pytest.mark.parametrize("make", [lambda d: str(d / "missing.toml"), lambda d: "/dev/zero",
                                  lambda d: str(d)])
def test_unreadable_scenario_file(refusing, tmp_path: Path, make) -> None:
    line = assert_bad_input(run_in_process("run", "--url", refusing.url, "--config",
                                           make(tmp_path)))
    assert "config" in line.lower() or "scenario" in line or "regular" in line, line


# --- capacity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("args,needle", [
    (["--slo", "p99<100ms", "--start-rate", "0"], "--start-rate"),
    (["--slo", "p99<100ms", "--max-rate", "inf"], "--max-rate"),
    (["--slo", "p99<100ms", "--max-rate", "nan"], "--max-rate"),
    (["--slo", "p99<100ms", "--start-rate", "100", "--max-rate", "10"], "--start-rate"),
    (["--slo", "latency is fine"], "threshold"),
    (["--slo", "p99<100ms", "--step-duration", "0s"], "--step-duration"),
    (["--slo", "p99<100ms", "--precision", "2"], "--precision"),
    ([], "--slo"),
])
def test_bad_capacity_option(refusing, args: list[str], needle: str) -> None:
    line = assert_bad_input(run_in_process("capacity", "--url", refusing.url, *args))
    assert needle.lower() in line.lower(), line


# --- results files: report and compare --------------------------------------------------------


BAD_RESULTS = {
    "empty": b"",
    "truncated": b'{"schema": "loadgen/1", "status": "compl',
    "binary": bytes(range(256)) * 4,
    "png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
    "utf16": '{"schema": "loadgen/1"}'.encode("utf-16"),
    "array": b"[1, 2, 3]",
    "string": b'"loadgen/1"',
    "nan": b'{"schema": "loadgen/1", "summary": NaN}',
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "huge-int": b'{"schema": "loadgen/1", "n": 1' + b"0" * 400 + b"}",
    "other-tool": orjson.dumps({"tool": "k6", "metrics": {"http_reqs": {"count": 10}}}),
    "other-schema": orjson.dumps({"schema": "loadgen/2", "status": "complete"}),
    "capacity": orjson.dumps({"schema": "loadgen-capacity/1", "steps": []}),
    "no-summary": orjson.dumps({"schema": "loadgen/1", "status": "complete", "endpoints": [],
                                "histograms": {}}),
    "wrong-shapes": orjson.dumps({"schema": "loadgen/1", "status": 3, "summary": [],
                                  "endpoints": {}, "histograms": []}),
}


@pytest.mark.parametrize("name", sorted(BAD_RESULTS))
@pytest.mark.parametrize("command", ["report", "compare"])
def test_bad_results_file(tmp_path: Path, good_results: Path, command: str, name: str) -> None:
    path = tmp_path / f"{name}.json"
    path.write_bytes(BAD_RESULTS[name])
    args = [command, str(path)] + ([str(good_results)] if command == "compare" else [])
    line = assert_bad_input(run_in_process(*args))
    assert path.name in line, line


@pytest.mark.parametrize("command", ["report", "compare"])
def test_results_file_that_is_a_directory_or_missing(tmp_path: Path, good_results: Path,
                                                     command: str) -> None:
    for path in (tmp_path, tmp_path / "missing.json"):
        args = [command, str(path)] + ([str(good_results)] if command == "compare" else [])
        assert_bad_input(run_in_process(*args))


# --- real argv bytes (not UTF-8) through a subprocess -----------------------------------------


@pytest.mark.parametrize("args", [
    [b"--url", b"http://\xff\xfe:80"],
    [b"--endpoint", b"/\xff"],
    [b"--header", b"X-A: \xff\x00"[:-1] + b"\x01"],
    [b"--save", b"/no/such/\xff/r.json"],
    [b"--config", b"/no/such/\xff.toml"],
])
def test_undecodable_argv(refusing, args: list[bytes]) -> None:
    proc = subprocess.run([sys.executable.encode(), b"-m", b"loadgen", b"run", b"--url",
                           refusing.url.encode(), *args],
                          check=False, capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    run = Run(proc.returncode, proc.stdout.decode(errors="replace"),
              proc.stderr.decode(errors="replace"), None)
    assert_bad_input(run)


def test_undecodable_data_is_sent_as_typed(target_server, tmp_path: Path) -> None:
    """Not an error: a body given as bytes that are not UTF-8 goes out byte for byte."""
    proc = subprocess.run([sys.executable, "-m", "loadgen", "run", "--url", target_server.url,
                           "--endpoint", "/api/dataset/transform", "--requests", "1",
                           "--save", str(tmp_path / "r.json"), b"--data", b"\xff\xfe"],
                          check=False, capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    doc = orjson.loads((tmp_path / "r.json").read_bytes())
    assert doc["config"]["body_bytes"] == {"POST /api/dataset/transform": 2}


# --- property: any argv is a run that stops before load, or one line and exit 2 ----------------

_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=30)
_argv_bytes = st.binary(max_size=20).filter(lambda b: b"\x00" not in b).map(os.fsdecode)
_junk = st.one_of(_text, _argv_bytes, st.sampled_from(["", " ", "-", "--", "-1", "0", "1e999",
                                                       "nan", "inf", "--bogus", "\t"]))
_number = st.one_of(st.integers(-5, 10**12).map(str), st.floats(allow_nan=True).map(str))
_duration = st.one_of(
    st.builds(lambda n, u: f"{n}{u}", st.integers(0, 10**9) | st.floats(0, 1e12).map(str),
              st.sampled_from(["", "ms", "s", "m", "h", "x"])), _junk)


def _url(refusing_url: str) -> st.SearchStrategy[str]:
    """A URL that is malformed, or valid and refusing: never one that could take load."""
    return st.one_of(
        st.just(refusing_url),
        st.builds(lambda p: refusing_url + p, st.sampled_from(["/", "/base", "/a/b/"])),
        st.sampled_from(["", "http://", "https://", "ftp://127.0.0.1", "http://127.0.0.1:0",
                         "http://127.0.0.1:65536", "http://[::1", "http://u:p@127.0.0.1:1",
                         "http://127.0.0.1:1/?q", "mailto:x@y", "http//127.0.0.1",
                         "http://" + "x" * 70 + ":80", "http://\udcff:80"]),
        _junk,
    )


OPTION_VALUES = {
    "--requests": _number | _junk,
    "--concurrency": st.integers(-2, 10**11).map(str) | _junk,
    "--workers": st.integers(-2, 10**6).map(str) | _junk,
    "--duration": _duration,
    "--timeout": _duration,
    "--rate": _number | _junk,
    "--stage": st.builds(lambda d, r: f"{d}:{r}", _duration, _number) | _junk,
    "--max-connections": st.integers(-2, 10**11).map(str) | _junk,
    "--endpoint": st.builds(lambda t: "/" + t, _text) | _junk,
    "--method": st.sampled_from(["GET", "post", "HEAD", "PUT"]) | _junk,
    "--header": st.builds(lambda n, v: f"{n}: {v}", st.text(string.ascii_letters + "-", max_size=8),
                          _text) | _junk,
    "--data": _text | _argv_bytes,
    "--username": _text,
    "--password": _text,
    "--login-endpoint": _text | _junk,
    "--token-field": _text,
    "--threshold": st.sampled_from(["p99<200ms", "errors<1%", "rps>10", "GET /api/health: p50<1"])
    | _junk,
}
FLAGS = ["--auth", "--insecure", "--quiet", "--visualize", "--ask-password"]
FILE_OPTIONS = ["--data-file", "--save", "--output-image", "--html", "--config"]


@st.composite
def run_argv(draw: Any, refusing_url: str, files: dict[str, str]) -> list[str]:
    argv = ["run", "--url", refusing_url]
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["value"] * 5 + ["flag", "file", "junk"]))
        if kind == "value":
            option = draw(st.sampled_from(sorted(OPTION_VALUES)))
            argv += [option, draw(OPTION_VALUES[option])]
        elif kind == "flag":
            argv.append(draw(st.sampled_from(FLAGS)))
        elif kind == "file":
            argv += [draw(st.sampled_from(FILE_OPTIONS)),
                     draw(st.sampled_from(sorted(files.values())))]
        else:
            argv.append(draw(_junk))
    if draw(st.booleans()):   # a --url of its own (last one wins)
        argv += ["--url", draw(_url(refusing_url))]
    return argv


def _files(tmp: Path, refusing_url: str) -> dict[str, str]:
    """Files the generated argv may name: good and bad, readable and not."""
    (tmp / "body.json").write_bytes(b'{"text": "hi"}')
    (tmp / "binary.bin").write_bytes(bytes(range(256)))
    (tmp / "good.toml").write_text(f'url = "{refusing_url}"\nrequests = 5\nconcurrency = 2\n'
                                   '[auth]\nusername = "a"\n')
    (tmp / "bad.toml").write_text("requests = [\n")
    (tmp / "typed.toml").write_text('requests = "many"\n')
    (tmp / "open.toml").write_text('rate = 50\nduration = "1s"\n[[stages]]\nduration = "1s"\n'
                                   "rate = 10\n")
    return {name: str(tmp / name) for name in
            ("body.json", "binary.bin", "good.toml", "bad.toml", "typed.toml", "open.toml")} | {
        "missing": str(tmp / "missing" / "x.json"), "dir": str(tmp), "zero": "/dev/zero",
        "out": str(tmp / "out.json"), "empty": ""}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_run_argv_is_one_line_and_exit_2(refusing, tmp_path_factory, data) -> None:
    """Valid argv meets the refusing port ("cannot reach"), invalid argv its own message:
    either way exit 2, exactly one ``loadgen:`` line on stderr, nothing on stdout, and no
    exception escapes ``main``."""
    tmp = tmp_path_factory.getbasetemp() / "argv-files"
    tmp.mkdir(exist_ok=True)
    files = _files(tmp, refusing.url)
    argv = data.draw(run_argv(refusing.url, files))
    assume(not {"-h", "--help"} & set(argv))   # help is not a mistake: usage on stdout, exit 0
    stdin = data.draw(st.sampled_from(["", "\n", "pw\n", "pw"]))
    run = run_in_process(*argv, stdin=stdin)
    assert_bad_input(run)
    assert not (tmp / "out.json").exists()   # nothing ran, so nothing was saved


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=st.one_of(
    st.text(max_size=200),
    st.lists(st.tuples(st.sampled_from(["url", "requests", "concurrency", "workers", "duration",
                                        "timeout", "rate", "max_connections", "save", "data",
                                        "data_file", "method", "headers", "thresholds", "stages",
                                        "insecure", "quiet", "visualize", "output_image", "auth",
                                        "endpoints", "bogus"]),
                       st.one_of(st.integers(-3, 10**20).map(str), st.floats().map(str),
                                 st.sampled_from(['"1s"', '"30s:100"', '""', "true", "[]",
                                                  '["/a", "/b"]', '{ "X" = "y" }', '"GET"',
                                                  '"/no/such/r.json"', '"/dev/zero"', "inf",
                                                  "nan", '["p99<1ms"]', '[{ path = "/x" }]']),
                                 _text.map(lambda t: orjson.dumps(t).decode()))),
             max_size=6).map(lambda kv: "\n".join(f"{k} = {v}" for k, v in dict(kv).items()))))
def test_any_scenario_file_is_one_line_and_exit_2(refusing, tmp_path_factory, text: str) -> None:
    tmp = tmp_path_factory.getbasetemp() / "scenarios"
    tmp.mkdir(exist_ok=True)
    path = tmp / "s.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    run = run_in_process("run", "--url", refusing.url, "--config", str(path))
    assert_bad_input(run)
