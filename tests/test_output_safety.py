"""Files loadgen writes never destroy what is not a regular file of its own.

``--save /dev/stdout`` run as root once replaced the device symlink with a
JSON file.  Symlinks must be followed, FIFOs and devices written in place
(never replaced), and ``--save -`` must leave stdout pure JSON.  The FIFO
cases stand in for /dev/stdout without touching the real /dev; /dev/null is
the one real device used, and it is checked to still be the same device.
"""

from __future__ import annotations

import errno
import os
import selectors
import signal
import stat
import threading
from pathlib import Path
from typing import Any, Self
from unittest import mock

import orjson
import pytest
from helpers import RefusingPort, finish, loadgen, run_in_process, start_loadgen, stop

from loadgen.output import progress
from loadgen.output.charts import draw_capacity
from loadgen.output.files import is_stdout, replaceable, write_bytes

PNG = b"\x89PNG\r\n\x1a\n"


class FifoReader:
    """Everything written to a FIFO, read by a thread, from the first writer to the last.

    ``__enter__`` returns only once the reader has the FIFO open (it opens a
    writer of its own, which blocks until then), so loadgen's non-blocking open
    finds a reader; ``data()`` closes that writer and returns what was read.
    """

    def __init__(self, fifo: Path) -> None:
        self.fifo = fifo
        self.chunks: list[bytes] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.hold = -1

    def _read(self) -> None:
        with open(self.fifo, "rb") as f:   # blocks until a writer opens
            while chunk := f.read(65536):
                self.chunks.append(chunk)

    def __enter__(self) -> Self:
        self.thread.start()
        self.hold = os.open(self.fifo, os.O_WRONLY)   # returns once the reader is there
        return self

    def data(self, timeout: float = 30) -> bytes:
        if self.hold >= 0:
            os.close(self.hold)
            self.hold = -1
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the FIFO never reached end of file"
        return b"".join(self.chunks)

    def __exit__(self, *exc: object) -> None:
        if self.hold >= 0:
            os.close(self.hold)
            self.hold = -1


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".loadgen-")]


# --- loadgen.output.files, in process ----------------------------------------------------------------


def test_new_and_regular_files_are_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_bytes(str(path), b"first")
    write_bytes(str(path), b"second")
    assert path.read_bytes() == b"second"
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()
    assert replaceable(str(path)) and replaceable(str(tmp_path / "new.json"))
    assert no_temp_files(tmp_path)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_symlink_is_followed_and_stays_a_symlink(tmp_path: Path) -> None:
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target = real_dir / "r.json"
    target.write_bytes(b"old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_bytes(str(link), b"new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() == b"new"
    assert no_temp_files(tmp_path) and no_temp_files(real_dir)


def test_dangling_symlink_creates_the_file_it_names(tmp_path: Path) -> None:
    link = tmp_path / "link.json"
    link.symlink_to("made.json")   # relative, resolved beside the link
    assert replaceable(str(link))
    write_bytes(str(link), b"doc")
    assert link.is_symlink() and (tmp_path / "made.json").read_bytes() == b"doc"


def test_failed_replace_leaves_nothing_behind(tmp_path: Path) -> None:
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "gone" / "r.json")
    with pytest.raises(FileNotFoundError):
        write_bytes(str(link), b"doc")
    assert link.is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == ["link.json"]


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        write_bytes(str(tmp_path), b"doc")
    assert tmp_path.is_dir()


@pytest.mark.parametrize("via_link", [False, True])
def test_fifo_is_written_once_and_stays_a_fifo(tmp_path: Path, via_link: bool) -> None:
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    name = fifo
    if via_link:
        name = tmp_path / "link.json"
        name.symlink_to(fifo)
    assert not replaceable(str(name))
    data = os.urandom(200_000)   # more than a pipe holds: the writes must wait for the reader
    with FifoReader(fifo) as reader:
        write_bytes(str(name), data)
        assert reader.data() == data
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert not via_link or name.is_symlink()
    assert no_temp_files(tmp_path)


def test_fifo_without_reader_fails_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError) as caught:
        write_bytes(str(fifo), b"doc")
    assert caught.value.errno == errno.ENXIO
    assert caught.value.strerror == "no process is reading from this FIFO"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and no_temp_files(tmp_path)


def test_dev_null_is_written_not_replaced() -> None:
    before = os.stat(os.devnull)
    assert stat.S_ISCHR(before.st_mode)
    assert not replaceable(os.devnull)
    write_bytes(os.devnull, b"x" * 100_000)
    after = os.stat(os.devnull)
    assert stat.S_ISCHR(after.st_mode)
    assert (after.st_ino, after.st_rdev, after.st_dev) == (before.st_ino, before.st_rdev,
                                                           before.st_dev)


def test_dash_is_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert is_stdout("-") and not replaceable("-")
    print("text first")
    write_bytes("-", b'{"a": 1}')
    assert capsys.readouterr().out == 'text first\n{"a": 1}\n'


CAPACITY_DOC: dict[str, Any] = {
    "schema": "loadgen-capacity/1", "config": {"url": "http://127.0.0.1:1"}, "slos": ["p99<1ms"],
    "capacity_rps": 100.0, "generator_limited": False,
    "steps": [{"rate": 100.0, "passed": True, "p99_ms": 0.5, "error_share": 0.0},
              {"rate": 200.0, "passed": False, "p99_ms": 3.0, "error_share": 0.01}]}


def test_chart_through_a_symlink_and_into_a_fifo(tmp_path: Path) -> None:
    target = tmp_path / "chart.png"
    link = tmp_path / "link.png"
    link.symlink_to(target)
    draw_capacity(CAPACITY_DOC, str(link))
    assert link.is_symlink() and target.read_bytes().startswith(PNG)
    fifo = tmp_path / "chart.fifo"
    os.mkfifo(fifo)
    with FifoReader(fifo) as reader:
        draw_capacity(CAPACITY_DOC, str(fifo))
        assert reader.data() == target.read_bytes()
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and no_temp_files(tmp_path)


# --- what the command line accepts before a run (in process, nothing sent) ---------------------


@pytest.fixture(scope="module")
def refusing() -> Any:
    with RefusingPort() as port:
        yield port


def test_outputs_accepted_before_the_run(refusing: RefusingPort, tmp_path: Path) -> None:
    """Accepted outputs get as far as the reachability check ("cannot reach", exit 2)."""
    fifo = tmp_path / "r.fifo"
    os.mkfifo(fifo)
    for args in (["--save", "-"], ["--save", str(fifo)], ["--save", os.devnull],
                 ["--output-image", os.devnull], ["--output-image", str(fifo)]):
        run = run_in_process("run", "--url", refusing.url, *args)
        assert run.status == 2 and "cannot reach" in run.stderr, (args, run.stderr)


@pytest.mark.parametrize("args,needle", [
    (["--output-image", "-"], "--output-image: '-' (stdout) is not supported"),
    (["--save", "{tmp}/no/such/r.json"], "does not exist"),
    (["--save", "{tmp}/dangling.json"], "folder {tmp}/gone does not exist"),
])
def test_outputs_refused_before_the_run(refusing: RefusingPort, tmp_path: Path,
                                        args: list[str], needle: str) -> None:
    (tmp_path / "dangling.json").symlink_to(tmp_path / "gone" / "r.json")
    run = run_in_process("run", "--url", refusing.url,
                         *[a.format(tmp=tmp_path) for a in args])
    assert run.status == 2 and needle.format(tmp=tmp_path) in run.stderr, run.stderr
    assert len(run.stderr.splitlines()) == 1


def test_json_and_png_cannot_share_stdout(refusing: RefusingPort, tmp_path: Path) -> None:
    link = tmp_path / "out"
    link.symlink_to(os.devnull)
    with mock.patch("loadgen.output.paths.is_stdout", lambda path: path in ("-", str(link))):
        run = run_in_process("run", "--url", refusing.url, "--save", "-",
                             "--output-image", str(link))
    assert run.status == 2 and "both go to stdout" in run.stderr, run.stderr


@pytest.mark.parametrize("command", ["report", "compare"])
def test_report_and_compare_refuse_a_png_on_stdout(good_results: Path, command: str) -> None:
    files = [str(good_results)] * (2 if command == "compare" else 1)
    run = run_in_process(command, *files, "--output-image", "-")
    assert run.status == 2 and "'-' (stdout) is not supported" in run.stderr, run.stderr
    assert run.stdout == ""


# --- real runs against the built-in target ----------------------------------------------------


def test_save_dash_keeps_stdout_pure_json(target_server: Any) -> None:
    run = loadgen("run", "--url", target_server.url, "--requests", "50", "--quiet",
                  "--workers", "1", "--threshold", "p99<10s", "--save", "-")
    assert run.status == 0, run.stderr
    doc = orjson.loads(run.stdout)
    assert doc["status"] == "complete" and doc["summary"]["requests"] == 50
    assert "Run complete" in run.stderr and "p99<10s" in run.stderr
    assert "Results saved" not in run.stdout + run.stderr


def test_save_to_a_name_for_stdout(target_server: Any, tmp_path: Path) -> None:
    """/dev/stdout without touching /dev: a symlink to /proc/self/fd/1, as /dev/stdout is."""
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    run = loadgen("run", "--url", target_server.url, "--requests", "20", "--quiet",
                  "--workers", "1", "--save", str(link), subprocess_=True)   # fd 1 must be the run's own
    assert run.status == 0, run.stderr
    assert orjson.loads(run.stdout)["summary"]["requests"] == 20
    assert "Run complete" in run.stderr
    assert link.is_symlink() and os.readlink(link) == "/proc/self/fd/1"


@pytest.mark.parametrize("via_link", [False, True])
def test_run_saves_once_into_a_fifo(target_server: Any, tmp_path: Path, via_link: bool) -> None:
    """A 2-second run rewrites a regular file every second; a FIFO gets one document."""
    fifo = tmp_path / "r.fifo"
    os.mkfifo(fifo)
    name = fifo
    if via_link:
        name = tmp_path / "r.json"
        name.symlink_to(fifo)
    with FifoReader(fifo) as reader:
        run = loadgen("run", "--url", target_server.url, "--rate", "20", "--duration", "2s",
                      "--workers", "1", "--quiet", "--save", str(name))
        data = reader.data()
    assert run.status == 0, run.stderr
    assert orjson.loads(data)["status"] == "complete"   # one document, not one a second
    assert f"Results saved to {name}" in run.stdout
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and no_temp_files(tmp_path)


def test_run_into_a_fifo_nobody_reads(target_server: Any, tmp_path: Path) -> None:
    fifo = tmp_path / "r.fifo"
    os.mkfifo(fifo)
    run = loadgen("run", "--url", target_server.url, "--requests", "20", "--quiet",
                  "--workers", "1", "--save", str(fifo), timeout=60)
    assert run.status == 3, run.stderr
    assert run.stderr.splitlines() == [
        f"loadgen: cannot save results to {fifo}: no process is reading from this FIFO"]
    assert "Results saved" not in run.stdout
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_run_saves_and_draws_into_dev_null(target_server: Any) -> None:
    before = os.stat(os.devnull)
    run = loadgen("run", "--url", target_server.url, "--requests", "20", "--quiet",
                  "--workers", "1", "--save", os.devnull, "--output-image", os.devnull)
    after = os.stat(os.devnull)
    assert run.status == 0, run.stderr
    assert stat.S_ISCHR(after.st_mode)
    assert (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)


# --- capacity: Ctrl-C, --quiet, --save -, save failures ----------------------------------------


def _wait_for_line(stream: Any, needle: str, limit_s: float) -> str:
    """Read ``stream`` (a text pipe) until a line holds ``needle``; the lines read."""
    seen = []
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        deadline = threading.Event()
        timer = threading.Timer(limit_s, deadline.set)
        timer.start()
        try:
            while not deadline.is_set():
                if not selector.select(timeout=0.5):
                    continue
                line = stream.readline()
                if not line:
                    break
                seen.append(line)
                if needle in line:
                    return "".join(seen)
        finally:
            timer.cancel()
    raise AssertionError(f"no line with {needle!r} within {limit_s}s: {''.join(seen)!r}")


def test_capacity_ctrl_c_exits_130_and_keeps_the_steps(target_server: Any,
                                                        tmp_path: Path) -> None:
    """Ctrl-C during a step: the step shows as interrupted, the verdict says so, the steps
    done are saved with status "interrupted", and the exit status is 130."""
    save = tmp_path / "cap.json"
    proc = start_loadgen("capacity", "--url", target_server.url, "--endpoint", "/delay/5",
                         "--slo", "p99<1s", "--start-rate", "20", "--max-rate", "40",
                         "--step-duration", "30s", "--concurrency", "4", "--workers", "1",
                         "--save", str(save))
    try:
        # the live progress line (every 5 s into a pipe) says the step is under way
        progress = _wait_for_line(proc.stderr, "requests |", 30)
        proc.send_signal(signal.SIGINT)
        run = finish(proc, save, timeout=60)
    finally:
        stop(proc)
    assert run.status == 130, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert "INTERRUPTED" in run.stdout and "interrupted during step 1" in run.stdout
    assert not any(line.rstrip().endswith("FAILED:") for line in run.stdout.splitlines())
    assert run.doc is not None and run.doc["status"] == "interrupted"
    assert [s["result"]["status"] for s in run.doc["steps"]] == ["interrupted"]
    assert "interrupted" in run.doc["verdict"]
    assert "/30s]" in progress


def test_capacity_quiet_with_save_dash(target_server: Any, monkeypatch: pytest.MonkeyPatch
                                       ) -> None:
    """--quiet: no live progress, yet the step lines and the verdict; --save -: stdout is the
    capacity document alone, the human lines are on stderr.

    Into a pipe the progress line comes every PLAIN_EVERY_S (5 s): every second here (the
    command runs in this process), so a 2 s step would show it without --quiet."""
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 1.0)
    run = loadgen("capacity", "--url", target_server.url, "--endpoint", "/api/health",
                  "--slo", "p99<5s", "--start-rate", "10", "--max-rate", "10",
                  "--step-duration", "2s", "--concurrency", "2", "--workers", "1", "--quiet",
                  "--save", "-", timeout=120)
    doc = orjson.loads(run.stdout)
    assert doc["schema"] == "loadgen-capacity/1" and doc["status"] == "complete"
    assert len(doc["steps"]) == 1
    assert "step  1" in run.stderr and doc["verdict"] in run.stderr
    assert "requests |" not in run.stderr   # the progress line of a 2 s step without --quiet
    assert "Results saved" not in run.stderr


def test_capacity_interrupted_between_steps(target_server: Any, tmp_path: Path) -> None:
    """A KeyboardInterrupt outside a step's run (no handler of loadgen's is installed then)
    still ends as 130 with the steps done saved, not as a traceback or "aborted"."""
    from loadgen.stats.capacity import judge

    save = tmp_path / "cap.json"
    step_doc = orjson.loads(orjson.dumps(_result_doc(status="complete")))

    def fake_search(run_step: Any, evaluate: Any, start: float, top: float, precision: float,
                    on_step: Any) -> Any:
        on_step(judge(start, step_doc, []))
        raise KeyboardInterrupt

    with mock.patch("loadgen.commands.capacity.search", fake_search):
        run = run_in_process("capacity", "--url", target_server.url, "--slo", "p99<1s",
                             "--start-rate", "10", "--save", str(save))
    assert run.status == 130, run.stdout + run.stderr
    doc = orjson.loads(save.read_bytes())
    assert doc["status"] == "interrupted" and len(doc["steps"]) == 1
    assert "interrupted after step 1" in run.stdout
    assert "the SLOs held up to 10 req/s so far" in doc["verdict"]
    assert doc["capacity_rps"] == 10


def test_capacity_save_failure_is_one_line_exit_3(target_server: Any, tmp_path: Path) -> None:
    """The folder disappears during the search: the per-step save fails quietly, the final
    one says so in one line and exits 3 -- no traceback."""
    import shutil

    from loadgen.stats.capacity import Search, judge

    folder = tmp_path / "out"
    folder.mkdir()
    save = folder / "cap.json"
    step_doc = _result_doc(status="complete")

    def fake_search(run_step: Any, evaluate: Any, start: float, top: float, precision: float,
                    on_step: Any) -> Any:
        shutil.rmtree(folder)
        on_step(judge(start, step_doc, []))
        return Search(capacity=start, verdict="capacity ≈ 10 req/s")

    with mock.patch("loadgen.commands.capacity.search", fake_search):
        run = run_in_process("capacity", "--url", target_server.url, "--slo", "p99<1s",
                             "--start-rate", "10", "--save", str(save))
    assert run.status == 3, run.stdout + run.stderr
    assert run.stderr.splitlines() == [
        f"loadgen: cannot save results to {save}: No such file or directory"]
    assert "Results saved" not in run.stdout


def test_step_line_says_why_a_step_failed() -> None:
    from loadgen.commands.capacity import _step_line
    from loadgen.stats.capacity import judge

    failed = _result_doc(status="failed")
    failed["problems"] = ["worker 0 (pid 1) lost: killed by SIGKILL"]
    line = _step_line(1, judge(10.0, failed, []))
    assert line.endswith("FAILED: the run failed (worker 0 (pid 1) lost: killed by SIGKILL)")
    assert _step_line(2, judge(10.0, _result_doc(status="interrupted"), [])).endswith(
        "INTERRUPTED")
    assert _step_line(3, judge(10.0, _result_doc(), ["p99<1ms (actual 2 ms)"])).endswith(
        "FAILED: p99<1ms (actual 2 ms)")


def _result_doc(status: str = "complete") -> dict[str, Any]:
    """The parts of a results document a capacity step reads (10 req/s, all fine)."""
    return {"schema": "loadgen/1", "status": status, "problems": [], "generator_limited": False,
            "generator": {"reasons": []},
            "summary": {"requests": 60, "failures": 0, "rps": 10.0,
                        "latency_ms": {"p99": 3.0}}}
