"""The output sinks and the typed options, in-process: no load, no server.

The end-to-end tests (test_run.py, test_capacity.py, test_output_safety.py,
test_reportcmd.py) check what the commands print and save; these check each
sink's own contract, into ``io.StringIO`` and ``tmp_path``.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import orjson
import pytest

from loadgen import errors
from loadgen.commands.inputs import (
    CapacitySettings,
    Credentials,
    Outputs,
    capacity_settings,
    outputs,
)
from loadgen.config.model import ConfigError
from loadgen.errors import InputError
from loadgen.output.progress import Progress
from loadgen.output.sinks import (
    ChartSink,
    JsonFileSink,
    ProblemsSink,
    ProgressSink,
    Snapshot,
    TextSink,
    finish,
    started_name,
    stdout_taken,
    update,
)

DOC: dict[str, Any] = {"started_at": "2026-12-01T12:15:07.123+00:00", "status": "complete",
                       "problems": ["worker 2 died"]}


def interval(t: float) -> dict[str, Any]:
    return {"t": t, "requests": 10, "successes": 9, "failures": 1, "rps": 10.0,
            "latency_ms": {"p50": 1.0, "p90": 2.0, "p99": 3.0, "max": 4.0}}


class Recorder:
    """A sink that notes its calls and returns a chosen status."""

    def __init__(self, log: list[str], name: str, status: int | None = None) -> None:
        self.log, self.name, self.status = log, name, status

    def on_update(self, snapshot: Snapshot) -> None:
        self.log.append(f"{self.name} update {len(snapshot.intervals)}")

    def on_finish(self, doc: dict[str, Any]) -> int | None:
        self.log.append(f"{self.name} finish")
        return self.status


def test_sinks_run_in_order_and_the_first_status_stops_the_rest() -> None:
    log: list[str] = []
    sinks = [Recorder(log, "a"), Recorder(log, "b", errors.BROKEN), Recorder(log, "c")]
    update(sinks, Snapshot([interval(1.0)], dict))
    assert finish(sinks, DOC) == errors.BROKEN
    assert log == ["a update 1", "b update 1", "c update 1", "a finish", "b finish"]
    assert finish([Recorder([], "x")], DOC) is None


def test_snapshot_builds_its_document_once_and_only_when_asked() -> None:
    built: list[int] = []

    def build() -> dict[str, Any]:
        built.append(1)
        return {"n": len(built)}

    snapshot = Snapshot([], build)
    assert built == []
    assert snapshot.document() == {"n": 1}
    assert snapshot.document() == {"n": 1}
    assert built == [1]


def test_text_sink_says_the_rendering_and_skips_none() -> None:
    out = io.StringIO()
    say = out.write
    TextSink(lambda doc: f"status {doc['status']}\n", say).on_finish(DOC)
    TextSink(lambda doc: None, say).on_finish(DOC)
    assert out.getvalue() == "status complete\n"


def test_problems_go_to_stderr_one_line_each(capsys: pytest.CaptureFixture[str]) -> None:
    assert ProblemsSink().on_finish(DOC) is None
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "loadgen: worker 2 died\n"


def test_progress_sink_closes_or_erases_its_line() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    closing, erasing = Tty(), Tty()
    for stream, erase in ((closing, False), (erasing, True)):
        sink = ProgressSink(Progress(False, 100, None, stream=stream), erase=erase)
        sink.on_update(Snapshot([interval(1.0)], dict))
        assert stream.getvalue().startswith("\r[1s] 10/100 requests")
        sink.on_finish(DOC)
    assert closing.getvalue().endswith("\x1b[K\n")
    assert erasing.getvalue().endswith("\r\x1b[K")


def test_quiet_progress_writes_nothing() -> None:
    stream = io.StringIO()
    sink = ProgressSink(Progress(True, None, None, stream=stream))
    sink.on_update(Snapshot([interval(1.0)], dict))
    sink.on_finish(DOC)
    assert stream.getvalue() == ""


def test_json_file_sink_rewrites_a_regular_file_then_saves_and_announces(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    said: list[str] = []
    sink = JsonFileSink(str(path), said.append)
    assert sink.rewrite and not sink.to_stdout
    sink.on_update(Snapshot([], lambda: {"status": "running"}))
    assert orjson.loads(path.read_bytes()) == {"status": "running"}
    assert sink.on_finish(DOC) is None
    assert orjson.loads(path.read_bytes()) == DOC
    assert said == [f"Results saved to {path}"]


def test_json_file_sink_to_stdout_is_written_once_and_not_announced(
        capsys: pytest.CaptureFixture[str]) -> None:
    said: list[str] = []
    sink = JsonFileSink("-", said.append)
    assert sink.to_stdout and not sink.rewrite
    sink.on_update(Snapshot([], lambda: pytest.fail("no rewrite to stdout")))
    assert sink.on_finish(DOC) is None
    assert orjson.loads(capsys.readouterr().out) == DOC
    assert said == []


def test_a_failed_save_is_one_line_and_exit_3(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "missing" / "run.json"
    said: list[str] = []
    sink = JsonFileSink(str(path), said.append)
    sink.on_update(Snapshot([], lambda: {"status": "running"}))   # silent
    assert capsys.readouterr().err == ""
    assert sink.on_finish(DOC) == errors.BROKEN
    err = capsys.readouterr().err
    assert err.startswith(f"loadgen: cannot save results to {path}") and err.count("\n") == 1
    assert said == []


def test_chart_sink_names_the_default_from_the_start_and_says_where() -> None:
    drawn: list[str] = []

    def draw(doc: dict[str, Any], path: str) -> str:
        drawn.append(path)
        return path

    said: list[str] = []
    assert ChartSink(draw, None, started_name("loadgen"), said.append).on_finish(DOC) is None
    assert ChartSink(draw, "mine.png", started_name("x"), said.append).on_finish(DOC) is None
    assert drawn == ["loadgen-20261201-121507.png", "mine.png"]
    assert said == ["Chart saved to loadgen-20261201-121507.png", "Chart saved to mine.png"]


def test_a_chart_that_cannot_be_written_is_exit_3_or_bad_input(
        capsys: pytest.CaptureFixture[str]) -> None:
    def draw(doc: dict[str, Any], path: str) -> str:
        raise PermissionError(13, "Permission denied")

    said: list[str] = []
    assert ChartSink(draw, "c.png", started_name("x"), said.append).on_finish(DOC) \
        == errors.BROKEN
    assert capsys.readouterr().err == "loadgen: cannot write chart to c.png: Permission denied\n"
    with pytest.raises(InputError, match="cannot write chart to c.png: Permission denied"):
        ChartSink(draw, "c.png", started_name("x"), said.append, input_error=True).on_finish(DOC)
    assert said == []


def test_stdout_taken() -> None:
    assert stdout_taken("-") and stdout_taken("/dev/stdout")
    assert not stdout_taken(None) and not stdout_taken("") and not stdout_taken("run.json")


def test_outputs_from_click_values() -> None:
    given = outputs({"save": "r.json", "visualize": False, "output_image": "c.png", "quiet": True})
    assert given == Outputs(save="r.json", visualize=False, image="c.png", quiet=True)
    assert given.charts   # --output-image alone asks for the chart
    assert not Outputs().charts


def test_credentials_hide_the_password_and_refuse_to_be_pickled() -> None:
    login = Credentials("user", "pw-9f3a-Secret")
    assert "pw-9f3a-Secret" not in repr(login) and "pw-9f3a-Secret" not in str(login)
    with pytest.raises(TypeError, match="never pickled"):
        pickle.dumps(login)


def test_capacity_settings_are_validated() -> None:
    base = {"step_duration": "5s", "start_rate": 10.0, "max_rate": 100.0, "precision": 0.05,
            "slos": ("p99<100ms",)}
    assert capacity_settings(base) == CapacitySettings(10.0, 100.0, 0.05, 5.0, ("p99<100ms",))
    for bad, message in (({"start_rate": 200.0}, "--start-rate is above --max-rate"),
                         ({"max_rate": float("inf")}, "--max-rate: at most"),
                         ({"step_duration": "soon"}, "--step-duration")):
        with pytest.raises(ConfigError, match=message):
            capacity_settings({**base, **bad})
