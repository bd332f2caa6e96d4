"""``loadgen report FILE``: re-render a saved run (table, JSON, charts) without re-running it.

Everything a user can hand us here is untrusted: a file from another tool, a
run still being written, a hand-edited document.  Each such case ends as one
line on stderr and exit status 2, the same contract as bad input to ``run``;
a traceback would suggest a bug in loadgen when the problem is the file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from loadgen import errors
from loadgen.errors import InputError
from loadgen.output.files import STDOUT
from loadgen.output.results import read_document
from loadgen.output.table import render_table
from loadgen.output.validate import check_document


def report_command(path: str, visualize: bool, output_image: str | None,
                   as_json: bool) -> int:
    """Print the saved run's table (or the document as JSON) and optionally draw its charts.

    The chart message goes to stderr with ``--json`` so that stdout stays one
    parseable JSON document (``loadgen report run.json --json | jq``).
    """
    if output_image == STDOUT:   # the table is on stdout: the PNG cannot share it
        raise InputError("--output-image: '-' (stdout) is not supported here: name a file")
    # a bad file raises ResultsError: one line, exit 2 (loadgen.cli)
    doc = read_document(path)
    check_document(doc, path, charts=visualize or output_image is not None)
    try:   # the checks above cover what the renderers read today; this covers the rest
        text = (orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() if as_json
                else render_table(doc))
    except (LookupError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
        raise InputError(f"{path} is not a valid loadgen results file: cannot render it "
                     f"({type(exc).__name__})")
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    if visualize or output_image is not None:
        image = output_image or default_image_path(path)
        from loadgen.output.charts import draw_summary

        try:
            draw_summary(doc, image)
        except OSError as exc:
            raise InputError(f"cannot write chart to {image}: {exc.strerror or exc}")
        print(f"Chart saved to {image}", file=sys.stderr if as_json else sys.stdout)
    return errors.OK


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
