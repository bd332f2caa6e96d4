"""Fuzzing the results reader: whatever a results file holds, ``read_document`` returns a
document or raises ResultsError, and ``loadgen report`` / ``compare`` print it or say in
one line (exit 2) why not.  Never another exception.

Inputs: arbitrary bytes; a real results file (``good_results``) with bytes flipped,
cut, inserted or deleted; and the same document with parts of its structure replaced
by arbitrary JSON values.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadgen.cli import status_of
from loadgen.commands.compare import compare_command as _compare_command
from loadgen.commands.report import report_command as _report_command
from loadgen.output.results import SCHEMA, ResultsError, read_document


# commands raise; the CLI prints the one line and exits with the status (loadgen.cli)
def report_command(*args: Any, **kwargs: Any) -> int:
    return status_of(_report_command, *args, **kwargs)


def compare_command(*args: Any, **kwargs: Any) -> int:
    return status_of(_compare_command, *args, **kwargs)


FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)


@pytest.fixture(scope="module")
def good_bytes(good_results: Path) -> bytes:
    return good_results.read_bytes()


def _check_read(path: Path) -> dict[str, Any] | None:
    try:
        doc = read_document(str(path))
    except ResultsError as exc:
        assert "\n" not in str(exc)
        return None
    assert isinstance(doc, dict) and doc["schema"] == SCHEMA
    return doc


def _check_command(status: int, out: str, err: str) -> None:
    assert status in (0, 2), (status, err)
    if status == 2:
        assert out == ""
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("loadgen: "), err
    else:
        assert out


def _report(path: Path, as_json: bool = False, image: Path | None = None) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = report_command(str(path), image is not None, str(image) if image else None,
                                as_json)
    _check_command(status, out.getvalue(), "\n".join(
        line for line in err.getvalue().splitlines() if not line.startswith("Chart saved")))


def _compare(paths: list[Path]) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = compare_command([str(p) for p in paths], [], False, None, False)
    _check_command(status, out.getvalue(), err.getvalue())


def test_the_real_file_reads_and_reports(good_results: Path, tmp_path: Path) -> None:
    assert _check_read(good_results) is not None
    _report(good_results)
    _report(good_results, image=tmp_path / "c.png")


@FUZZ
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz-bytes.json"
    path.write_bytes(data)
    _check_read(path)
    _report(path)


@FUZZ
@given(data=st.data())
def test_mutated_bytes_of_a_real_file(good_bytes: bytes, tmp_path_factory, data) -> None:
    buffer = bytearray(good_bytes)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(buffer) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "delete", "truncate"]))
        if action == "flip":
            buffer[at] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "insert":
            buffer[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del buffer[at:at + data.draw(st.integers(1, 16))]
        elif action == "truncate":
            del buffer[at:]
            break
        else:
            buffer[at] = data.draw(st.sampled_from(b'{}[]",:0-9eE.tfn\\ '))
        if not buffer:
            break
    path = tmp_path_factory.getbasetemp() / "fuzz-mutated.json"
    path.write_bytes(bytes(buffer))
    if _check_read(path) is not None:
        _report(path)
        _report(path, as_json=True)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside a JSON document."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*prefix, i))
    return found


def _replace(doc: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {**doc, head: _replace(doc[head], rest, new)}
    copy = list(doc)
    copy[head] = _replace(doc[head], rest, new)
    return copy


@FUZZ
@given(data=st.data())
def test_structure_replaced_by_arbitrary_json(good_results: Path, tmp_path_factory,
                                              data) -> None:
    doc = orjson.loads(good_results.read_bytes())
    paths = [p for p in _paths(doc) if p and p[0] != "schema"]
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(paths))
        try:
            doc = _replace(doc, path, data.draw(json_values))
        except (KeyError, IndexError, TypeError):   # an earlier change removed that path
            continue
    path = tmp_path_factory.getbasetemp() / "fuzz-structure.json"
    path.write_bytes(orjson.dumps(doc))
    if _check_read(path) is not None:
        _report(path)
        _compare([good_results, path])


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_charts_of_damaged_documents(good_results: Path, tmp_path_factory, data) -> None:
    """Fewer examples: each draws a PNG (matplotlib)."""
    doc = orjson.loads(good_results.read_bytes())
    targets = [("intervals",), ("histograms",), ("endpoints",), ("summary",), ("config",),
               ("service_histograms",), ("generator",)]
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(targets))
        inner = [p for p in _paths(doc.get(key[0])) if p]
        where = key + data.draw(st.sampled_from(inner)) if inner and data.draw(st.booleans()) \
            else key
        try:
            doc = _replace(doc, where, data.draw(json_values))
        except (KeyError, IndexError, TypeError):
            continue
    base = tmp_path_factory.getbasetemp()
    path = base / "fuzz-chart.json"
    path.write_bytes(orjson.dumps(doc))
    if _check_read(path) is not None:
        _report(path, image=base / "fuzz-chart.png")


def test_a_renderer_surprised_by_the_document_is_still_one_line(good_results: Path,
                                                                monkeypatch, capsys) -> None:
    """Fields added later (and so unchecked) must not turn a bad file into a traceback."""
    import loadgen.commands.report

    def surprised(doc: dict) -> str:
        return doc["a field this document does not have"]

    monkeypatch.setattr(loadgen.commands.report, "render_table", surprised)
    assert report_command(str(good_results), False, None, False) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "cannot render it (KeyError)" in err
