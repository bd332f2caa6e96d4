"""Tests for ``loadgen report FILE``: re-rendering a saved run, and refusing bad files.

``report_command`` is tested in-process (fast, capsys); the command line is
checked once through ``python -m loadgen report`` when the Click command exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import loadgen, one_line_error
from test_report import assert_real_png, block, make_doc, open_doc

from loadgen.cli import status_of
from loadgen.commands.report import default_image_path
from loadgen.commands.report import report_command as _report_command


# commands raise; the CLI prints the one line and exits with the status (loadgen.cli)
def report_command(*args: Any, **kwargs: Any) -> int:
    return status_of(_report_command, *args, **kwargs)


def save(path: Path, doc: dict[str, Any]) -> Path:
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return path


@pytest.fixture
def open_file(tmp_path: Path) -> Path:
    return save(tmp_path / "run.json", open_doc())


@pytest.fixture
def closed_file(tmp_path: Path) -> Path:
    return save(tmp_path / "old.json", make_doc({"GET /api/health": block(100, 100, 3.0)}))


def assert_one_line_error(capsys: pytest.CaptureFixture[str], status: int) -> str:
    """Exit 2, nothing on stdout, exactly one ``loadgen: ...`` line on stderr."""
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("loadgen: ")
    return lines[0]


# --- good files -------------------------------------------------------------------------------


def test_prints_the_table_of_an_open_model_run(open_file, capsys):
    assert report_command(str(open_file), False, None, False) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith("Run complete: http://localhost:5000")
    assert "Latency, corrected (from intended send time):" in out
    assert "Service time (uncorrected, from actual send):" in out
    assert not (open_file.parent / "run.png").exists()  # no chart unless asked


def test_prints_the_table_of_an_old_closed_model_run(closed_file, capsys):
    assert report_command(str(closed_file), False, None, False) == 0
    out, _ = capsys.readouterr()
    assert "GET /api/health" in out and "All endpoints" in out
    assert "Service time" not in out


def test_generator_limited_run_starts_with_the_banner(tmp_path, capsys):
    path = save(tmp_path / "limited.json", open_doc(limited=True))
    assert report_command(str(path), False, None, False) == 0
    out, _ = capsys.readouterr()
    assert out.splitlines()[1].startswith("!! GENERATOR LIMITED")


def test_running_file_is_rendered_as_running(tmp_path, capsys):
    path = save(tmp_path / "live.json", open_doc(status="running"))
    assert report_command(str(path), False, None, False) == 0
    assert capsys.readouterr().out.startswith("Run running")


def test_json_prints_the_document_indented(open_file, capsys):
    assert report_command(str(open_file), False, None, True) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert orjson.loads(out) == orjson.loads(open_file.read_bytes())
    assert out.startswith('{\n  "schema": "loadgen/1"')


def test_visualize_writes_png_next_to_the_results(open_file, capsys):
    assert report_command(str(open_file), True, None, False) == 0
    image = open_file.with_suffix(".png")
    out, _ = capsys.readouterr()
    assert out.splitlines()[-1] == f"Chart saved to {image}"
    assert_real_png(image)


def test_output_image_alone_draws_the_chart(closed_file, tmp_path, capsys):
    image = tmp_path / "charts" / "old-run.png"
    image.parent.mkdir()
    assert report_command(str(closed_file), False, str(image), False) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"Chart saved to {image}"
    assert_real_png(image)


def test_json_with_chart_keeps_stdout_parseable(open_file, tmp_path, capsys):
    image = tmp_path / "x.png"
    assert report_command(str(open_file), True, str(image), True) == 0
    out, err = capsys.readouterr()
    orjson.loads(out)
    assert err == f"Chart saved to {image}\n"
    assert_real_png(image)


@pytest.mark.parametrize("results, image", [
    ("run.json", "run.png"), ("runs/a.b.json", "runs/a.b.png"), ("results", "results.png"),
    ("odd.png", "odd.png.png"),  # never overwrite the results file with its chart
])
def test_default_image_path(results, image):
    assert default_image_path(results) == image


# --- bad files --------------------------------------------------------------------------------


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_truncated_json(open_file, tmp_path, capsys):
    data = open_file.read_bytes()
    path = write(tmp_path, "cut.json", data[: len(data) // 2])
    line = assert_one_line_error(capsys, report_command(path, False, None, False))
    assert "not JSON" in line and "cut.json" in line


def test_empty_file(tmp_path, capsys):
    path = write(tmp_path, "empty.json", b"")
    assert "not JSON" in assert_one_line_error(capsys, report_command(path, False, None, False))


def test_binary_garbage(tmp_path, capsys):
    path = write(tmp_path, "garbage.json", bytes(range(256)) * 8)
    assert "not JSON" in assert_one_line_error(capsys, report_command(path, True, None, False))


@pytest.mark.parametrize("other", [
    {"name": "some-package", "version": "1.0.0", "dependencies": {}},           # package.json
    {"metrics": {"http_req_duration": {"avg": 1.2}}, "root_group": {}},         # a k6 summary
    {"schema": "loadgen/0", "summary": {}},                                     # older schema
    [{"requests": 1}],                                                          # not an object
])
def test_json_from_another_tool(tmp_path, capsys, other):
    path = write(tmp_path, "other.json", orjson.dumps(other))
    line = assert_one_line_error(capsys, report_command(path, False, None, True))
    assert "is not a loadgen/1 results file" in line


def test_missing_file(tmp_path, capsys):
    path = str(tmp_path / "nope.json")
    line = assert_one_line_error(capsys, report_command(path, False, None, False))
    assert line == f"loadgen: cannot read {path}: No such file or directory"


def test_directory_instead_of_file(tmp_path, capsys):
    line = assert_one_line_error(capsys, report_command(str(tmp_path), False, None, False))
    assert "cannot read" in line


def test_document_lacking_a_block(tmp_path, capsys):
    doc = open_doc()
    del doc["summary"]
    path = str(save(tmp_path / "partial.json", doc))
    assert "lacks 'summary'" in assert_one_line_error(
        capsys, report_command(path, False, None, False))


@pytest.mark.parametrize("damage, words", [
    (lambda d: d.update(summary=[1, 2]), "summary: not an object"),
    (lambda d: d.update(endpoints={"GET /": {}}), "'endpoints' is not a list"),
    (lambda d: d["endpoints"][0]["latency_ms"].update(p99="fast"),
     "endpoints[0]: 'latency_ms' is not an object of numbers"),
    (lambda d: d["summary"].update(service_time_ms=[1.0]),
     "summary: 'service_time_ms' is not an object of numbers"),
    (lambda d: d["summary"].update(status_codes={"200": "many"}),
     "summary: 'status_codes' is not an object of counts"),
    (lambda d: d["intervals"].append({"requests": 3}), "intervals[30] has no time 't'"),
    (lambda d: d.update(generator="fine"), "'generator' is not an object"),
])
def test_document_with_wrong_shapes(tmp_path, capsys, damage, words):
    doc = open_doc()
    damage(doc)
    path = str(save(tmp_path / "edited.json", doc))
    line = assert_one_line_error(capsys, report_command(path, False, None, False))
    assert line.endswith(f"is not a valid loadgen results file: {words}")


def test_damaged_histogram_stops_the_chart_but_not_the_table(tmp_path, capsys):
    doc = open_doc()
    doc["service_histograms"]["GET /api/health"] = "HISTFAAAAbroken"
    path = str(save(tmp_path / "hist.json", doc))
    assert report_command(path, False, None, False) == 0
    assert "Service time" in capsys.readouterr().out
    line = assert_one_line_error(capsys, report_command(path, True, None, False))
    assert line.endswith("service_histograms['GET /api/health'] is not a valid HDR histogram")
    assert not (tmp_path / "hist.png").exists()


def test_unwritable_chart_path(open_file, tmp_path, capsys):
    image = tmp_path / "no" / "such" / "dir.png"
    status = report_command(str(open_file), False, str(image), False)
    out, err = capsys.readouterr()
    assert status == 2
    assert "Run complete" in out  # the table was already printed
    assert err.splitlines() == [
        f"loadgen: cannot write chart to {image}: No such file or directory"]


# --- the command line -------------------------------------------------------------------------


def report_cli_exists() -> bool:
    from loadgen.cli import cli

    return "report" in cli.commands


@pytest.fixture
def cli_ready() -> None:
    if not report_cli_exists():
        pytest.skip("`loadgen report` is not wired into loadgen/cli.py yet")


def test_cli_report_renders_and_draws(cli_ready, open_file):
    run = loadgen("report", str(open_file), "--visualize")
    assert run.status == 0, run.stderr
    assert "Service time (uncorrected, from actual send):" in run.stdout
    assert run.stdout.splitlines()[-1] == f"Chart saved to {open_file.with_suffix('.png')}"
    assert_real_png(open_file.with_suffix(".png"))


def test_cli_report_json(cli_ready, closed_file):
    run = loadgen("report", str(closed_file), "--json")
    assert run.status == 0, run.stderr
    assert orjson.loads(run.stdout) == orjson.loads(closed_file.read_bytes())


@pytest.mark.parametrize("data", [b"", b'{"schema": "loadgen/1", "status": "compl',
                                  b"\x00\xff" * 9])
def test_cli_report_bad_file_is_one_line(cli_ready, tmp_path, data):
    path = write(tmp_path, "bad.json", data)
    line = one_line_error(loadgen("report", path))
    assert path in line


def test_cli_report_missing_file(cli_ready, tmp_path):
    line = one_line_error(loadgen("report", str(tmp_path / "missing.json")))
    assert "No such file or directory" in line


def test_table_path_does_not_import_matplotlib(closed_file):
    # Re-rendering a table must stay as quick to start as the rest of the command line.
    import subprocess
    import sys

    code = ("import sys; from loadgen.commands.report import report_command; "
            f"status = report_command({str(closed_file)!r}, False, None, False); "
            "print('matplotlib' in sys.modules, status)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "False 0"
