"""The results document's schema (``loadgen.schema``) against what ``build_document`` writes.

The TypedDicts are the reference for the document's shape, so a key written
but not declared (or declared as required but not written) fails here; the
README's description is checked to name every top-level key.  The documents
are built by the real ``Aggregate`` from synthetic worker messages, and one of
them is a "running" save of a run in progress: it must already carry the
thresholds, evaluated on the numbers so far.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, finish, start_loadgen, stop, wait_for_status
from synthetic import WALL_START, message, new_aggregate, synthetic_run, tally

from loadgen.output.results import build_document
from loadgen.schema import (
    INTERVAL_LATENCY_KEYS,
    LATENCY_KEYS,
    PHASE_FIGURES,
    Block,
    CapacityStep,
    Generator,
    Interval,
    IntervalLatencyMs,
    LagMs,
    LatencyMs,
    Node,
    PhaseFigures,
    ResultsDocument,
    ThresholdResult,
    Worker,
)
from loadgen.stats.thresholds import evaluate, parse_thresholds

STARTED = dt.datetime.fromtimestamp(WALL_START, dt.UTC)


def keys(typed: Any) -> set[str]:
    return set(typed.__required_keys__) | set(typed.__optional_keys__)


def check_keys(value: dict[str, Any], typed: Any, where: str) -> None:
    assert set(value) <= keys(typed), f"{where}: undeclared {set(value) - keys(typed)}"
    missing = set(typed.__required_keys__) - set(value)
    assert not missing, f"{where}: required but not written {missing}"


def test_figure_dicts_have_the_key_lists() -> None:
    assert tuple(LatencyMs.__annotations__) == LATENCY_KEYS
    assert tuple(IntervalLatencyMs.__annotations__) == INTERVAL_LATENCY_KEYS
    assert tuple(PhaseFigures.__annotations__) == PHASE_FIGURES


@pytest.mark.parametrize("open_model", [False, True])
def test_built_document_matches_the_typed_dicts(open_model: bool) -> None:
    doc = synthetic_run(open_model=open_model)
    check_keys(doc, ResultsDocument, "document")
    for where, block in [("summary", doc["summary"]),
                         *((f"endpoints[{i}]", e) for i, e in enumerate(doc["endpoints"]))]:
        check_keys(block, Block, where)
        assert tuple(block["latency_ms"]) == LATENCY_KEYS
        assert tuple(block["success_latency_ms"]) == LATENCY_KEYS
        assert ("service_time_ms" in block) == open_model
    assert {"endpoint", "concurrency"} <= set(doc["endpoints"][0])
    check_keys(doc["generator"], Generator, "generator")
    assert set(doc["generator"]) == keys(Generator)   # every figure, null when it has none
    if open_model:
        assert set(doc["generator"]["lateness_ms"]) == keys(LagMs)
    for i, interval in enumerate(doc["intervals"]):
        check_keys(interval, Interval, f"intervals[{i}]")
        assert tuple(interval["latency_ms"]) == INTERVAL_LATENCY_KEYS
    for worker in doc["workers"]:
        assert set(worker) == keys(Worker)
    assert "thresholds" not in doc and "nodes" not in doc   # only when asked for


def test_phases_are_declared() -> None:
    from loadgen.stats.phases import PhaseTotals

    agg = new_aggregate()
    agg.phases = PhaseTotals()
    agg.phases.hists["connect"] = _one_value_histogram()
    doc = build_document({"model": "closed"}, agg, "complete", [], STARTED)
    check_keys(doc, ResultsDocument, "document")
    assert set(doc["summary"]["phases_ms"]["connect"]) == keys(PhaseFigures)


def _one_value_histogram() -> Any:
    from loadgen.stats.metrics import new_histogram

    hist = new_histogram()
    hist.record_value(1_500)
    return hist


def test_a_running_save_carries_the_thresholds_so_far() -> None:
    """The every-second save of a run in progress has the final document's keys, thresholds
    included: evaluated on the seconds merged so far (provisional, as "running" says)."""
    agg = new_aggregate()
    for w in (0, 1):   # one second of a longer run: no final message, no finish()
        agg.add(message(w, 1.0004, [tally(ok=30, status_500=1)]))
    thresholds = parse_thresholds(["p99<100ms", "requests>=1000", "GET /a: failures<1%"])
    doc = build_document({"model": "closed"}, agg, "running", [], STARTED, thresholds=thresholds)
    assert doc["status"] == "running"
    check_keys(doc, ResultsDocument, "running save")
    results = doc["thresholds"]
    for result in results:
        assert set(result) == keys(ThresholdResult)
    assert [r["threshold"] for r in results] == [t.text for t in thresholds]
    assert [(r["actual"], r["passed"]) for r in results] == [
        (v.actual, v.passed) for v in evaluate(thresholds, doc)]
    # so far: 62 requests (not yet 1000), 2 of them 500s (over 1%), all fast
    assert [r["passed"] for r in results] == [True, False, False]
    assert results[1]["actual"] == 62


def test_every_second_save_of_a_real_run_has_the_thresholds(target_server: Any,
                                                             tmp_path: Path) -> None:
    """End to end: the file a run rewrites every second already holds the thresholds
    (the second one cannot hold until the end: it shows failing so far), and the
    final save has the same keys with the final verdict."""
    save = tmp_path / "r.json"
    proc = start_loadgen("run", "--url", target_server.url, "--rate", "40", "--duration", "2.5s",
                         "--workers", "1", "--threshold", "p99<5s",
                         "--threshold", "requests>=1000000", "--save", str(save))
    try:
        running = wait_for_status(save, "running", accept=lambda d: d["intervals"])
        run = finish(proc, save, timeout=30)
    finally:
        stop(proc)
    so_far = running["thresholds"]
    assert [r["threshold"] for r in so_far] == ["p99<5s", "requests>=1000000"]
    assert so_far[0]["passed"] is True
    assert so_far[1] == {"threshold": "requests>=1000000",
                         "actual": running["summary"]["requests"], "passed": False}
    assert run.status == 1, run.stderr     # the second threshold failed
    assert run.doc is not None and run.doc["status"] == "complete"
    assert set(run.doc) == set(running)    # nothing added at the end
    assert run.doc["thresholds"][1]["actual"] == run.doc["summary"]["requests"]


def test_nodes_are_part_of_the_build() -> None:
    nodes: list[Node] = [{"address": "tcp://127.0.0.1:1", "host": "a", "workers": 2,
                          "worker_indices": [0, 1], "requests": 0, "lost": None,
                          "start_offset_ms": 0.5}]
    doc = build_document({"model": "closed"}, new_aggregate(), "running", [], STARTED,
                         nodes=nodes)
    assert doc["nodes"] == nodes


def test_validation_reads_declared_keys_or_old_ones() -> None:
    """``output.validate`` checks the keys of the schema, plus the old files' ``errors``."""
    from loadgen.output import validate

    old = {"errors"}
    assert set(validate.NUMERIC_BLOCK_KEYS) <= keys(Block)
    assert set(validate.LATENCY_BLOCK_KEYS) <= keys(Block)
    assert set(validate.COUNT_BLOCK_KEYS) - old <= keys(Block)
    assert set(validate.NUMERIC_INTERVAL_KEYS) - old <= keys(Interval)


def test_capacity_step_matches_its_typed_dict() -> None:
    from loadgen.stats.capacity import judge

    step = judge(60.0, synthetic_run(open_model=True), ["p99<1ms (actual 2 ms)"]).public()
    assert set(step) == keys(CapacityStep)
    assert step["slo_failures"] == ["p99<1ms (actual 2 ms)"] and step["passed"] is False


def test_readme_names_every_top_level_key() -> None:
    """The README's description of the document lists each key the TypedDict declares."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## The results document"):]
    section = section[:section.index("\n## ", 4)]
    named = set(re.findall(r'"(\w+)":', section))
    assert keys(ResultsDocument) <= named, keys(ResultsDocument) - named
    assert keys(Block) - {"phases_ms"} <= named, keys(Block) - named
    assert "loadgen/schema.py" in section
