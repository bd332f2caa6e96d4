"""``--junit FILE``: the run's verdicts as JUnit XML, for CI test reporters.

GitLab, Jenkins and GitHub's test-report actions read the same subset of the
JUnit format: ``testsuites`` / ``testsuite`` (name, tests, failures, errors,
skipped, time, timestamp) / ``testcase`` (name, classname, time) with a
``failure`` (message, type) when it failed.  Only that subset is written, so
every reporter shows the same thing.

What is a test case:

* each threshold (``--threshold``; a capacity search's ``--slo``s): passed or
  failed, the failure's message carrying the actual value;
* each endpoint with ``expect`` checks: passed when no checked response failed
  one, else the failed checks by name with the checked vs failed counts;
* the run itself: failed when it did not complete (interrupted, broken);
* a capacity search: whether a capacity was found, then the step the verdict
  stands on (the highest rate that held; else the first step) judged as a run.

Built with ``xml.etree.ElementTree``: escaping of endpoint names and messages is
the library's, never ours.  Nothing secret is in a document, so nothing secret
can reach the XML.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

from loadgen.errors import InputError
from loadgen.output.files import write_bytes
from loadgen.output.sinks import FileSink
from loadgen.stats.thresholds import evaluate, format_actual, parse_threshold, parse_thresholds

Document = Mapping[str, Any]


#: Characters XML 1.0 cannot hold at all (ElementTree would write them as they are, and the
#: file would not parse): replaced, so a strange check name never spoils the report.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class Case:
    """One test case: its name, class name, and the failure (message, details) if it failed."""

    def __init__(self, name: str, classname: str, failure: str | None = None,
                 details: str = "", output: str = "") -> None:
        self.name = _xml_text(name)
        self.classname = classname
        self.failure = None if failure is None else _xml_text(failure)
        self.details = _xml_text(details)
        self.output = _xml_text(output)


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def write_junit(path: str, doc: Document) -> None:
    """Write the XML for a run's (or a capacity search's) document; raises OSError."""
    write_bytes(path, render(doc))


def render(doc: Document) -> bytes:
    """The whole XML document (UTF-8, with its declaration)."""
    root = ET.Element("testsuites", name="loadgen")
    if _is_capacity(doc):
        suites = _capacity_suites(doc)
    else:
        suites = _run_suites(doc, "loadgen run")
    totals = {"tests": 0, "failures": 0}
    for name, cases, source in suites:
        failed = sum(c.failure is not None for c in cases)
        suite = ET.SubElement(root, "testsuite", name=name, tests=str(len(cases)),
                              failures=str(failed), errors="0", skipped="0",
                              time=_seconds(_duration(source)), timestamp=_timestamp(source))
        for case in cases:
            element = ET.SubElement(suite, "testcase", name=case.name,
                                    classname=case.classname, time="0")
            if case.failure is not None:
                failure = ET.SubElement(element, "failure", message=case.failure,
                                        type="AssertionError")
                failure.text = case.details or case.failure
            if case.output:
                ET.SubElement(element, "system-out").text = case.output
        totals["tests"] += len(cases)
        totals["failures"] += failed
    root.set("tests", str(totals["tests"]))
    root.set("failures", str(totals["failures"]))
    root.set("errors", "0")
    root.set("time", _seconds(_duration(doc)))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _is_capacity(doc: Document) -> bool:
    return "steps" in doc and "summary" not in doc


#: A test suite: its name, its cases, and the document its time and timestamp come from.
Suite = tuple[str, list[Case], Document]


def _run_suites(doc: Document, name: str) -> list[Suite]:
    """A run's suite: its status, its thresholds, its endpoints' checks."""
    cases = [_status_case(doc), *_threshold_cases(doc), *_check_cases(doc)]
    return [(name, cases, doc)]


def _status_case(doc: Document) -> Case:
    status = str(doc.get("status", "complete"))
    summary = doc.get("summary") or {}
    output = (f"{summary.get('requests', 0)} requests, {summary.get('failures', 0)} failures, "
              f"{_number(summary.get('rps'))} req/s"
              + ("; loadgen itself was the limit: " + "; ".join(
                  (doc.get("generator") or {}).get("reasons") or [])
                 if doc.get("generator_limited") else ""))
    if status == "complete":
        return Case("run completed", "loadgen.run", output=output)
    problems = "; ".join(str(p) for p in doc.get("problems") or [])
    return Case("run completed", "loadgen.run", f"the run {status}"
                + (f": {problems}" if problems else ""), output=output)


def _threshold_cases(doc: Document) -> list[Case]:
    """``doc["thresholds"]`` as recorded: each as the user wrote it, with its actual value."""
    cases = []
    for result in doc.get("thresholds") or []:
        text = str(result.get("threshold"))
        actual = result.get("actual")
        shown = _actual_text(text, actual)
        if result.get("passed"):
            cases.append(Case(text, "loadgen.thresholds", output=f"actual {shown}"))
        else:
            cases.append(Case(text, "loadgen.thresholds", f"{text} failed: actual {shown}",
                              details=f"threshold: {text}\nactual: {shown}\n"
                                      f"actual value: {'' if actual is None else actual}"))
    return cases


def _actual_text(text: str, actual: Any) -> str:
    """The actual value with its unit, as the terminal shows it ('12.3 ms', '0.40% failures')."""
    try:
        metric = parse_threshold(text).metric
    except InputError:   # a hand-edited document: the bare number still says it
        return "no data" if actual is None else _number(actual)
    return format_actual(metric, actual if isinstance(actual, (int, float)) else None)


def _check_cases(doc: Document) -> list[Case]:
    """Endpoints with ``expect`` checks: one case each, checked vs failed counts."""
    cases = []
    for block in doc.get("endpoints") or []:
        checked = block.get("checked") or 0
        failed_checks = block.get("checks_failed") or {}
        if not checked and not failed_checks:
            continue
        name = f"{block.get('endpoint')}: expect checks"
        failed = sum(failed_checks.values())
        counts = f"{checked} responses checked, {failed} failed a check"
        if not failed:
            cases.append(Case(name, "loadgen.checks", output=counts))
            continue
        by_name = ", ".join(f"{check} ({n})" for check, n in
                            sorted(failed_checks.items(), key=lambda item: -item[1]))
        cases.append(Case(name, "loadgen.checks", f"{counts}: {by_name}",
                          details="\n".join([counts, *(f"{check}: {n}" for check, n in
                                                       failed_checks.items())])))
    return cases


def _capacity_suites(doc: Document) -> list[Suite]:
    """The search's verdict, then the step it stands on judged as a run against the SLOs."""
    steps: Sequence[Mapping[str, Any]] = doc.get("steps") or []
    capacity = doc.get("capacity_rps")
    verdict = str(doc.get("verdict", ""))
    lines = "\n".join(f"step {n}: {s.get('rate')} req/s -> achieved "
                      f"{_number(s.get('achieved_rps'))}: "
                      + ("held" if s.get("passed") else
                         "failed (" + "; ".join(s.get("slo_failures") or []) + ")")
                      for n, s in enumerate(steps, start=1))
    found = capacity is not None and doc.get("status") == "complete" \
        and not doc.get("generator_limited")
    search = Case("capacity found", "loadgen.capacity", None if found else verdict,
                  details=f"{verdict}\n{lines}", output=f"{verdict}\n{lines}")
    suites: list[Suite] = [("loadgen capacity", [search], doc)]
    held = [s for s in steps if s.get("passed")]
    chosen = max(held, key=lambda s: s.get("rate") or 0) if held else (steps[0] if steps else None)
    if chosen is not None:
        result = dict(chosen.get("result") or {})
        try:   # the step's own document holds no thresholds: the SLOs are the search's
            result["thresholds"] = [
                {"threshold": v.threshold.text, "actual": v.actual, "passed": v.passed}
                for v in evaluate(parse_thresholds(doc.get("slos") or []), result)]
        except InputError:   # a hand-edited SLO: the verdict case still says it
            pass
        suites += _run_suites(result, f"loadgen capacity step at {chosen.get('rate')} req/s")
    return suites


def _duration(doc: Document) -> float:
    if _is_capacity(doc):
        return sum(float(((s.get("result") or {}).get("summary") or {}).get("duration_s") or 0)
                   for s in doc.get("steps") or [])
    value = (doc.get("summary") or {}).get("duration_s")
    return float(value) if isinstance(value, (int, float)) else 0.0


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _number(value: Any) -> str:
    return f"{value:,.1f}" if isinstance(value, (int, float)) else "-"


def _timestamp(doc: Document) -> str:
    """The start in the JUnit schema's form: UTC, no zone suffix, whole seconds."""
    try:
        started = dt.datetime.fromisoformat(str(doc.get("started_at")))
    except ValueError:
        started = dt.datetime.now(dt.UTC)
    if started.tzinfo is not None:
        started = started.astimezone(dt.UTC).replace(tzinfo=None)
    return started.strftime("%Y-%m-%dT%H:%M:%S")


class JunitSink(FileSink):
    """``--junit FILE`` as a sink: the XML from the final document."""

    what = "JUnit XML"

    def write(self, doc: Document) -> str:
        write_junit(self.path or "", doc)
        return self.path or ""
