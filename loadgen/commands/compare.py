"""``loadgen compare A.json B.json [...]`` on the terminal: table or JSON, and overlay charts."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click
import orjson

from loadgen import errors
from loadgen.config.model import ConfigError
from loadgen.errors import InputError
from loadgen.output.files import STDOUT
from loadgen.output.paths import check_output
from loadgen.output.results import read_document
from loadgen.output.validate import check_document
from loadgen.stats.compare import (
    TESTED_METRICS,
    compare_documents,
    default_labels,
    regressions,
    render_comparison,
)


def load_for_compare(paths: Sequence[str]) -> list[dict[str, Any]]:
    """Read every results file (ResultsError on the first bad one); at least two are needed.

    Here, not in ``stats.compare``: that module works on documents, never on files."""
    if len(paths) < 2:
        raise ConfigError(f"compare needs at least two results files, got {len(paths)}")
    return [read_document(p) for p in paths]


def compare_command(files: list[str], labels: list[str], visualize: bool,
                    output_image: str | None, as_json: bool, fail_on: Sequence[str] = (),
                    floor: float | None = None, html: str | None = None) -> int:
    """The comparison on stdout (and charts); exit 1 when ``fail_on`` names a metric on
    which a later run is significantly worse -- a CI job's regression gate."""
    unknown = [m for m in fail_on if m not in (*TESTED_METRICS, "any")]
    if unknown:
        raise InputError(f"--fail-on-regression {unknown[0]!r}: not a tested metric; choose from "
                    + ", ".join((*TESTED_METRICS, "any")))
    if floor is not None and floor < 0:
        raise InputError(f"--floor must be 0 or more, got {floor:g}")
    if len(files) < 2:
        raise InputError("compare needs at least two results files")
    if labels and len(labels) != len(files):
        raise InputError(f"{len(labels)} --label for {len(files)} files: give one per file or none")
    if output_image == STDOUT:   # the table (or JSON) is on stdout: the PNG cannot share it
        raise InputError("--output-image: '-' (stdout) is not supported here: name a file")
    check_output(html, "--html", stdout_ok=False)   # before anything is printed
    draw = visualize or output_image is not None
    # a bad file raises ResultsError: one line, exit 2 (loadgen.cli)
    docs = load_for_compare(files)
    for doc, path in zip(docs, files):
        check_document(doc, path, charts=draw)
    names = labels or default_labels(files)
    comparison = compare_documents(docs, names, floor=floor)
    if as_json:
        sys.stdout.write(orjson.dumps(comparison, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        click.echo(render_comparison(comparison))
    if draw:
        from loadgen.output.charts import draw_comparison

        path = output_image or "compare.png"
        try:
            draw_comparison(docs, names, path)
        except OSError as exc:
            raise InputError(f"cannot write chart to {path}: {exc.strerror or exc}")
        click.echo(f"Chart saved to {path}", err=as_json)
    if html is not None:
        from loadgen.output.html import render_comparison_html, write_html

        try:
            write_html(html, render_comparison_html(docs, names, comparison))
        except OSError as exc:
            raise InputError(f"cannot write HTML report to {html}: {exc.strerror or exc}")
        click.echo(f"HTML report saved to {html}", err=as_json)
    found = regressions(comparison, fail_on) if fail_on else []
    for line in found:
        click.echo(f"REGRESSION {line}", err=True)
    return errors.THRESHOLD if found else errors.OK
