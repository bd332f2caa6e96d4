"""Outputs as a list: each thing a run leaves behind is a sink the commands choose.

``run``, ``capacity`` and ``report`` used to wire the progress line, the
table, the JSON file and the charts by hand, each with its own copy of the
ordering and the failure rules.  Now a command picks its sinks, calls
``update`` while work is in progress and ``finish`` with the final document;
the order of the list is the order of the output on the terminal.

A sink's ``on_finish`` returns None to let the next sink run, or an exit
status to stop there: a results file that cannot be written makes the run
exit 3 before any chart is drawn, as it always has.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import click

from loadgen import errors
from loadgen.errors import InputError, error_line
from loadgen.output.files import is_stdout, replaceable
from loadgen.output.progress import Progress
from loadgen.output.results import save_final, write_document
from loadgen.schema import Interval

if TYPE_CHECKING:
    from loadgen.output.liveview import LiveSink
    from loadgen.stats.aggregate import Aggregate

Document = Mapping[str, Any]   # a ResultsDocument, a CapacityDocument, or an old file
Say = Callable[[str], None]


class Snapshot:
    """Work in progress: the merged per-second intervals now, the whole document on demand.

    Building a document costs a merge of every histogram; it is built at most
    once per update, and only when a sink asks for it (a run without
    ``--save`` never builds one until the end).  ``aggregate``: the merged totals
    themselves, for a sink that reads them as they are (``--metrics-port``, the live
    view's per-endpoint rows).
    """

    def __init__(self, intervals: Sequence[Interval], build: Callable[[], Document],
                 aggregate: Aggregate | None = None) -> None:
        self.intervals = intervals
        self.aggregate = aggregate
        self._build = build
        self._doc: Document | None = None

    def document(self) -> Document:
        if self._doc is None:
            self._doc = self._build()
        return self._doc


class Sink(Protocol):
    """One output of a command."""

    def on_update(self, snapshot: Snapshot) -> None:
        """Every second of a run (every step of a capacity search)."""

    def on_finish(self, doc: Document) -> int | None:
        """The final document: None to go on, an exit status to stop the outputs there."""


def update(sinks: Iterable[Sink], snapshot: Snapshot) -> None:
    for sink in sinks:
        sink.on_update(snapshot)


def finish(sinks: Iterable[Sink], doc: Document) -> int | None:
    """Finish the sinks in order; the first exit status one returns stops the rest."""
    for sink in sinks:
        status = sink.on_finish(doc)
        if status is not None:
            return status
    return None


def stdout_taken(save: str | None) -> bool:
    """``--save -`` (or /dev/stdout): stdout carries only the JSON, the report goes to stderr."""
    return is_stdout(save) if save else False


def echo(to_stderr: bool) -> Say:
    """A line on stdout, or on stderr when stdout carries the JSON (``--save -``)."""
    return lambda text: click.echo(text, err=to_stderr)


class ProgressSink:
    """The live line on stderr.  ``erase`` takes it away at the end (a capacity step's
    line replaces it) instead of ending it with a newline (a run's report follows)."""

    def __init__(self, progress: Progress, erase: bool = False) -> None:
        self.progress = progress
        self.erase = erase

    def on_update(self, snapshot: Snapshot) -> None:
        self.progress.update(snapshot.intervals)

    def on_finish(self, doc: Document) -> int | None:
        self.end()
        return None

    def end(self) -> None:
        """Also called when the work ended without a document (Ctrl-C, a broken step)."""
        if self.erase:
            self.progress.erase()
        else:
            self.progress.close()


def live_or_plain(progress: Progress, config: Mapping[str, Any],
                  erase: bool = False) -> ProgressSink | LiveSink:
    """A run's progress: on a terminal the live table (``output.liveview``, rich imported
    only then), else the plain line; ``--quiet``: the plain one, silent.  ``config``: the
    run's public config (its length, schedule and users).  ``erase``: see ``ProgressSink``
    (the live view always goes away at the end)."""
    if progress.quiet or not progress.tty:
        return ProgressSink(progress, erase=erase)
    from loadgen.output.liveview import LivePlan, LiveSink, LiveView

    return LiveSink(LiveView(LivePlan.from_config(config), progress.stream))


def end_progress(sinks: Iterable[Sink]) -> None:
    """Take a live view or line off the terminal when the run ended without a document
    (a second Ctrl-C, an error): a live view left running would hide the cursor."""
    for sink in sinks:
        end = getattr(sink, "end", None)
        if end is not None:
            end()


class TextSink:
    """A rendering of the final document (the table, the thresholds, ``report --json``)."""

    def __init__(self, render: Callable[[Document], str | None], say: Say) -> None:
        self.render = render
        self.say = say

    def on_update(self, snapshot: Snapshot) -> None:
        pass

    def on_finish(self, doc: Document) -> int | None:
        text = self.render(doc)
        if text is not None:
            self.say(text)
        return None


class ProblemsSink:
    """What went wrong during the run: one ``loadgen: ...`` line each, always on stderr."""

    def on_update(self, snapshot: Snapshot) -> None:
        pass

    def on_finish(self, doc: Document) -> int | None:
        for problem in doc.get("problems") or ():
            click.echo(error_line(problem), err=True)
        return None


class JsonFileSink:
    """``--save PATH``: the document, rewritten on every update and saved at the end.

    Only a regular file takes the rewrites (replaced atomically: a killed run
    still leaves a complete document); stdout (``-``), a FIFO or a device gets
    the one final document.  A rewrite that fails is silent, the final save
    reports it (``results.save_final``) and the command exits 3.  Whether the
    path is replaceable is decided once, when the sink is made (before the run).
    """

    def __init__(self, path: str, say: Say) -> None:
        self.path = path
        self.say = say
        self.to_stdout = is_stdout(path)
        self.rewrite = not self.to_stdout and replaceable(path)

    def on_update(self, snapshot: Snapshot) -> None:
        if self.rewrite:
            try:
                write_document(self.path, snapshot.document())
            except OSError:
                pass  # reported once, by the final save

    def on_finish(self, doc: Document) -> int | None:
        return None if save_final(self.path, doc, self.say) else errors.BROKEN


def started_name(prefix: str) -> Callable[[Document], str]:
    """The default chart name, from the document's start: ``loadgen-20261201-121500.png``."""
    def name(doc: Document) -> str:
        started = dt.datetime.fromisoformat(doc["started_at"])
        return f"{prefix}-{started:%Y%m%d-%H%M%S}.png"
    return name


class FileSink:
    """A file made from the final document, written once at the end: the chart, the CSV
    files, the JUnit XML, the HTML report.

    ``run`` and ``capacity`` treat a file they cannot write as a broken record (one
    line, exit 3: the load happened); ``report`` as bad input (``input_error``: exit 2,
    nothing was run).  A subclass writes it (``write``: what it wrote, as the "saved to"
    line names it) and says what it is (``what``: "chart", "CSV", ...).
    """

    what = "file"

    def __init__(self, path: str | None, say: Say, input_error: bool = False) -> None:
        self.path = path
        self.say = say
        self.input_error = input_error

    def on_update(self, snapshot: Snapshot) -> None:
        pass

    def write(self, doc: Document) -> str:
        raise NotImplementedError

    def failed_path(self, exc: OSError, doc: Document) -> str:
        """The path a failure names (the one given, unless a subclass knows better)."""
        return self.path or str(exc.filename or "")

    def on_finish(self, doc: Document) -> int | None:
        try:
            written = self.write(doc)
        except OSError as exc:
            message = (f"cannot write {self.what} to {self.failed_path(exc, doc)}: "
                       f"{exc.strerror or exc}")
            if self.input_error:
                raise InputError(message) from None
            click.echo(error_line(message), err=True)
            return errors.BROKEN
        self.say(f"{self.what[:1].upper()}{self.what[1:]} saved to {written}")
        return None


class ChartSink(FileSink):
    """The PNG, drawn from the final document (its default name from the run's start)."""

    what = "chart"

    def __init__(self, draw: Callable[[Document, str], str], path: str | None,
                 default: Callable[[Document], str], say: Say,
                 input_error: bool = False) -> None:
        super().__init__(path, say, input_error)
        self.draw = draw
        self.default = default

    def write(self, doc: Document) -> str:
        return self.draw(doc, self.path or self.default(doc))

    def failed_path(self, exc: OSError, doc: Document) -> str:
        return self.path or self.default(doc)


def document_files(html: str | None, csv: str | None, junit: str | None, say: Say,
                   input_error: bool = False) -> list[Sink]:
    """The files made once from the final document, in the order they are reported:
    ``--html``, ``--csv``, ``--junit`` (``run``, ``capacity`` and ``report`` alike).
    Their modules are imported only when asked for (matplotlib, csv, xml: start-up)."""
    sinks: list[Sink] = []
    if html:
        from loadgen.output.html import HtmlSink

        sinks.append(HtmlSink(html, say, input_error))
    if csv:
        from loadgen.output.csvfiles import CsvSink

        sinks.append(CsvSink(csv, say, input_error))
    if junit:
        from loadgen.output.junit import JunitSink

        sinks.append(JunitSink(junit, say, input_error))
    return sinks


def draw_summary(doc: Document, path: str) -> str:
    """``charts.draw_summary``, imported only when a chart is drawn (matplotlib is slow to load)."""
    from loadgen.output.charts import draw_summary as draw

    return draw(doc, path)


def draw_capacity(doc: Document, path: str) -> str:
    """``charts.draw_capacity``, imported only when a chart is drawn."""
    from loadgen.output.charts import draw_capacity as draw

    return draw(doc, path)
