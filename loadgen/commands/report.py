"""``loadgen report FILE``: re-render a saved run (table, JSON, charts) without re-running it.

Everything a user can hand us here is untrusted: a file from another tool, a
run still being written, a hand-edited document.  Each such case ends as one
line on stderr and exit status 2, the same contract as bad input to ``run``;
a traceback would suggest a bug in loadgen when the problem is the file.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from loadgen import errors
from loadgen.errors import InputError
from loadgen.output.files import STDOUT
from loadgen.output.paths import check_csv_prefix, check_output
from loadgen.output.results import read_document
from loadgen.output.sinks import ChartSink, Sink, TextSink, document_files, draw_summary, finish
from loadgen.output.table import render_table
from loadgen.output.validate import check_document


def report_command(path: str, visualize: bool, output_image: str | None,
                   as_json: bool, *, html: str | None = None, csv: str | None = None,
                   junit: str | None = None) -> int:
    """Print the saved run's table (or the document as JSON) and optionally draw its charts.

    The chart message goes to stderr with ``--json`` so that stdout stays one
    parseable JSON document (``loadgen report run.json --json | jq``).
    """
    if output_image == STDOUT:   # the table is on stdout: the PNG cannot share it
        raise InputError("--output-image: '-' (stdout) is not supported here: name a file")
    check_output(html, "--html", stdout_ok=False)   # before anything is printed
    check_csv_prefix(csv)   # before the file is read: the same line as run's
    check_output(junit, "--junit", stdout_ok=False)
    # a bad file raises ResultsError: one line, exit 2 (loadgen.cli)
    doc = read_document(path)
    charts = visualize or output_image is not None
    check_document(doc, path, charts=charts)
    sinks: list[Sink] = [TextSink(lambda d: _render(d, path, as_json), _print)]
    if charts:
        sinks.append(ChartSink(draw_summary, output_image, lambda _: default_image_path(path),
                               _print_err if as_json else _print, input_error=True))
    sinks.extend(document_files(html, csv, junit, _print_err if as_json else _print,
                                input_error=True))
    finish(sinks, doc)
    return errors.OK


def _render(doc: Mapping[str, Any], path: str, as_json: bool) -> str:
    try:   # check_document covers what the renderers read today; this covers the rest
        return (orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() if as_json
                else render_table(doc))
    except (LookupError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
        raise InputError(f"{path} is not a valid loadgen results file: cannot render it "
                         f"({type(exc).__name__})")


def _print(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _print_err(text: str) -> None:
    print(text, file=sys.stderr)


def default_image_path(results_path: str) -> str:
    """The results file's name with ``.png``, next to it: ``runs/a.json`` -> ``runs/a.png``.

    A results file that already ends in ``.png`` gets ``.png`` appended instead,
    so the chart never overwrites the run it was drawn from.
    """
    source = Path(results_path)
    image = source.with_suffix(".png") if source.suffix else source.with_name(source.name + ".png")
    if image == source:
        image = source.with_name(source.name + ".png")
    return str(image)
