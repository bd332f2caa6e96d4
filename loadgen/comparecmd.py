"""``loadgen compare A.json B.json [...]`` on the terminal: table or JSON, and overlay charts."""

from __future__ import annotations

import sys

import click
import orjson

from loadgen import exitcodes
from loadgen.compare import compare_documents, default_labels, load_for_compare, render_comparison
from loadgen.reportcmd import check_document
from loadgen.guards import one_line
from loadgen.output import STDOUT
from loadgen.results import ResultsError


def compare_command(files: list[str], labels: list[str], visualize: bool,
                    output_image: str | None, as_json: bool) -> int:
    if len(files) < 2:
        return _bad("compare needs at least two results files")
    if labels and len(labels) != len(files):
        return _bad(f"{len(labels)} --label for {len(files)} files: give one per file or none")
    if output_image == STDOUT:   # the table (or JSON) is on stdout: the PNG cannot share it
        return _bad("--output-image: '-' (stdout) is not supported here: name a file")
    draw = visualize or output_image is not None
    try:
        docs = load_for_compare(files)
        for doc, path in zip(docs, files):
            check_document(doc, path, charts=draw)
    except ResultsError as exc:
        return _bad(str(exc))
    names = labels or default_labels(files)
    comparison = compare_documents(docs, names)
    if as_json:
        sys.stdout.write(orjson.dumps(comparison, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        click.echo(render_comparison(comparison))
    if draw:
        from loadgen.charts import draw_comparison

        path = output_image or "compare.png"
        try:
            draw_comparison(docs, names, path)
        except OSError as exc:
            return _bad(f"cannot write chart to {path}: {exc.strerror or exc}")
        click.echo(f"Chart saved to {path}", err=as_json)
    return exitcodes.OK


def _bad(message: str) -> int:
    click.echo(f"loadgen: {one_line(message)}", err=True)
    return exitcodes.INPUT
