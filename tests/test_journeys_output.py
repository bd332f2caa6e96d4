"""User journeys' iterations, from worker messages to the document, the table and the report.

Synthetic worker messages (``tests/synthetic.py``: ``IterationTally`` wires as the worker
sends them) go into the real ``Aggregate`` and ``build_document``: the merged counts must
be exact, the percentiles those of the merged HDR histogram, and endpoint runs untouched.
No processes, no network.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from synthetic import (
    JOURNEY_ROWS,
    WALL_START,
    iterations,
    journey_kinds,
    journey_run,
    message,
    synthetic_run,
    tally,
)

from loadgen.output.results import build_document
from loadgen.schema import LATENCY_KEYS, IterationFigures, Journey, ResultsDocument
from loadgen.stats.aggregate import Aggregate, WorkerState
from loadgen.stats.metrics import decode_histogram, latency_ms, new_histogram

STARTED = dt.datetime.fromtimestamp(WALL_START, dt.UTC)


def journey_aggregate(workers: int = 2) -> Aggregate:
    agg = Aggregate(list(JOURNEY_ROWS), [WorkerState(i) for i in range(workers)],
                    journeys=journey_kinds())
    agg.wall_start = WALL_START
    return agg


def rows(*ok: int) -> list[Any]:
    return [tally(ok=n) for n in ok]


def keys(typed: Any) -> set[str]:
    return set(typed.__required_keys__) | set(typed.__optional_keys__)


# --- the aggregate ----------------------------------------------------------------------------


def test_merged_iterations_are_exact_and_their_percentiles_those_of_the_merged_histogram() -> None:
    agg = journey_aggregate(workers=3)
    expected = new_histogram()
    shopper_ok = {0: [20_000, 21_500, 90_000], 1: [25_000] * 7, 2: [19_000, 1_200_000]}
    for w, times in shopper_ok.items():
        for us in times:
            expected.record_value(us)
        failed = [(1, 5_000)] * w + [(2, 40_000)]
        agg.add(message(w, 1.0004, rows(1, 5, 5, 3), journeys=[
            iterations(times, failed, cut=0), iterations([3_000] * (w + 1))]))
    for w in range(3):
        agg.add(message(w, 1.3, rows(0, 0, 0, 0), final=True,
                        journeys=[iterations(cut=w), iterations(failed=[(3, 700)])]))
    agg.finish()
    shopper, browser = agg.iterations
    assert shopper.successes == 12 and shopper.failures == 3 + 3 and shopper.cut == 3
    assert dict(shopper.failed_at) == {1: 3, 2: 3}
    assert shopper.failed.get_total_count() == shopper.failures
    assert shopper.hist.get_total_count() == expected.get_total_count()
    assert list(shopper.hist.counts) == list(expected.counts)
    assert (browser.successes, browser.failures, browser.cut) == (6, 3, 0)

    shopper_doc, browser_doc = agg.journey_summaries() or []
    figures = shopper_doc["iterations"]
    assert (figures["total"], figures["successes"], figures["failures"], figures["cut"]) == (
        21, 12, 6, 3)
    assert figures["latency_ms"] == latency_ms(expected)
    assert tuple(figures["latency_ms"]) == LATENCY_KEYS
    assert figures["latency_ms"]["p50"] == expected.get_value_at_percentile(50) / 1000
    assert figures["latency_ms"]["p99"] == expected.get_value_at_percentile(99) / 1000
    assert figures["failed_at"] == {"shopper: GET /shop/items": 3,
                                    "shopper: POST /shop/orders": 3}
    assert figures["per_second"] == pytest.approx(18 / 1.3)
    assert browser_doc["iterations"]["failed_at"] == {"browser: GET /shop/items": 3}


def test_intervals_of_a_journey_run_count_completed_iterations() -> None:
    agg = journey_aggregate()
    for k in (1, 2):
        for w in (0, 1):
            agg.add(message(w, k + 0.0004, rows(1, 4, 4, 2), journeys=[
                iterations([30_000] * (3 + k), [(2, 9_000)], cut=0),
                iterations([2_000] * 2)]))
    for w in (0, 1):   # the last half second: one iteration completes, one is cut per worker
        agg.add(message(w, 2.5, rows(0, 1, 0, 0), final=True,
                        journeys=[iterations(cut=1), iterations([2_000])]))
    agg.finish()
    assert [i["iterations"] for i in agg.intervals] == [2 * (4 + 1 + 2), 2 * (5 + 1 + 2), 2]
    shopper, browser = agg.journey_summaries() or []
    completed = (shopper["iterations"]["successes"] + shopper["iterations"]["failures"]
                 + browser["iterations"]["successes"] + browser["iterations"]["failures"])
    assert sum(i["iterations"] for i in agg.intervals) == completed
    assert shopper["iterations"]["cut"] == 2


def test_a_sliver_folded_into_the_last_second_keeps_its_iterations() -> None:
    agg = journey_aggregate()
    for w in (0, 1):
        agg.add(message(w, 1.0004, rows(1, 3, 3, 1), journeys=[
            iterations([10_000] * 3), iterations([1_000])]))
    for w in (0, 1):
        agg.add(message(w, 1.03, rows(0, 0, 1, 0), final=True, journeys=[
            iterations([10_000]), iterations()]))
    agg.finish()
    (only,) = agg.intervals
    assert only["iterations"] == 2 * 4 + 2


def test_a_journey_run_without_journey_wires_counts_none() -> None:
    """A message without ``"journeys"`` (a worker that recorded none) adds no iteration."""
    agg = journey_aggregate(workers=1)
    agg.add(message(0, 1.0, rows(1, 0, 0, 0), final=True))
    agg.finish()
    assert agg.intervals[0]["iterations"] == 0
    assert [j["iterations"]["total"] for j in agg.journey_summaries() or []] == [0, 0]
    assert all(v is None for j in agg.journey_summaries() or []
               for v in j["iterations"]["latency_ms"].values())


def test_an_endpoint_run_has_no_iterations_anywhere() -> None:
    doc = synthetic_run()
    assert "journeys" not in doc and "journey_histograms" not in doc
    assert all("iterations" not in i for i in doc["intervals"])


def test_wires_survive_the_cluster_relay() -> None:
    """A cluster node writes each raw worker message as one JSON line and the central
    coordinator merges what it reads back (``engine.cluster.node``/``run``): the journey
    wires must merge the same after that round trip."""
    import orjson

    direct, relayed = journey_aggregate(), journey_aggregate()
    for w in (0, 1):
        sent = message(w, 1.2, rows(1, 2, 2, 1), final=True, journeys=[
            iterations([30_000, 31_000], [(2, 5_000)], cut=1), iterations([2_000])])
        direct.add(sent)
        relayed.add(orjson.loads(orjson.dumps(sent)))
    direct.finish()
    relayed.finish()
    assert direct.journey_summaries() == relayed.journey_summaries()
    assert direct.journey_histograms() == relayed.journey_histograms()


# --- the document -----------------------------------------------------------------------------


def test_the_document_carries_one_journey_per_kind() -> None:
    doc = journey_run()
    assert list(doc).index("journeys") == list(doc).index("endpoints") + 1
    shopper, browser = doc["journeys"]
    for journey in (shopper, browser):
        assert set(journey) == keys(Journey)
        assert set(journey["iterations"]) == keys(IterationFigures)
        assert tuple(journey["iterations"]["latency_ms"]) == LATENCY_KEYS
    assert (shopper["name"], shopper["weight"]) == ("shopper", 2.0)
    assert shopper["on_start"] == ["shopper: POST /api/auth/login"]
    assert shopper["steps"] == ["shopper: GET /shop/items", "shopper: POST /shop/orders"]
    assert (browser["on_start"], browser["steps"]) == ([], ["browser: GET /shop/items"])
    # 2 workers x 2 seconds: 9 ok + 1 failed each; then one cut per worker
    assert shopper["iterations"] == {**shopper["iterations"], "total": 42, "successes": 36,
                                     "failures": 4, "cut": 2,
                                     "failed_at": {"shopper: POST /shop/orders": 4}}
    assert shopper["iterations"]["per_second"] == pytest.approx(40 / 2.5)
    assert browser["iterations"]["failed_at"] == {}
    # the saved histogram is the one the figures were read from
    hist = decode_histogram(doc["journey_histograms"]["shopper"])
    assert hist.get_total_count() == 36
    assert latency_ms(hist) == shopper["iterations"]["latency_ms"]
    assert set(doc["journey_histograms"]) == {"shopper", "browser"}
    # every step is a row with its exact requests
    names = [e["endpoint"] for e in doc["endpoints"]]
    assert names == list(JOURNEY_ROWS)
    assert [i["iterations"] for i in doc["intervals"]] == [30, 30, 0]


def test_the_journey_keys_are_declared() -> None:
    doc = journey_run()
    declared = keys(ResultsDocument)
    assert set(doc) <= declared
    assert {"journeys", "journey_histograms"} <= declared


def test_a_running_save_of_a_journey_run_has_the_final_keys() -> None:
    agg = journey_aggregate()
    for w in (0, 1):
        agg.add(message(w, 1.0004, rows(1, 1, 1, 1), journeys=[
            iterations([30_000]), iterations([1_000])]))
    running = build_document({"model": "closed"}, agg, "running", [], STARTED)
    assert running["journeys"][0]["iterations"]["successes"] == 2
    assert set(running) == set(journey_run())
