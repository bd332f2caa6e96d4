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
from loadgen.output.table import render_table
from loadgen.schema import LATENCY_KEYS, IterationFigures, Journey, ResultsDocument
from loadgen.stats.aggregate import Aggregate, WorkerState
from loadgen.stats.metrics import decode_histogram, encode_histogram, latency_ms, new_histogram

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


# --- validation -------------------------------------------------------------------------------


def test_validation_accepts_documents_with_and_without_journeys(tmp_path) -> None:
    from loadgen.output.validate import check_document

    for doc in (journey_run(), journey_run(open_model=True), synthetic_run()):
        check_document(doc, "run.json", charts=True)   # histograms decoded too


@pytest.mark.parametrize("damage, words", [
    (lambda d: d.update(journeys={"shopper": {}}), "'journeys' is not a list"),
    (lambda d: d["journeys"].append("browser"), "journeys[2]: not an object"),
    (lambda d: d["journeys"][0].pop("name"), "journeys[0]: 'name' is not a string"),
    (lambda d: d["journeys"][1].update(weight="heavy"), "journeys[1]: 'weight' is not a number"),
    (lambda d: d["journeys"][0].update(steps="GET /"),
     "journeys[0]: 'steps' is not a list of row names"),
    (lambda d: d["journeys"][0].update(on_start=[1]),
     "journeys[0]: 'on_start' is not a list of row names"),
    (lambda d: d["journeys"][0].update(iterations=[]), "journeys[0]: 'iterations' is not an object"),
    (lambda d: d["journeys"][0]["iterations"].update(cut=1.5),
     "journeys[0]: iterations 'cut' is not an integer"),
    (lambda d: d["journeys"][0]["iterations"].update(per_second="fast"),
     "journeys[0]: iterations 'per_second' is not a number"),
    (lambda d: d["journeys"][1]["iterations"]["latency_ms"].update(p99="slow"),
     "journeys[1]: iterations 'latency_ms' is not an object of numbers"),
    (lambda d: d["journeys"][0]["iterations"].update(failed_at={"x": "many"}),
     "journeys[0]: iterations 'failed_at' is not an object of counts"),
    (lambda d: d["intervals"][0].update(iterations="30"), "intervals[0]: 'iterations' is not a number"),
    (lambda d: d.update(journey_histograms=["x"]), "'journey_histograms' is not an object"),
    (lambda d: d["journey_histograms"].update(shopper="HISTnope"),
     "journey_histograms['shopper'] is not a valid HDR histogram"),
])
def test_a_malformed_journeys_block_is_one_clear_line(tmp_path, capsys, damage, words) -> None:
    from test_reportcmd import assert_one_line_error, report_command, save

    doc = journey_run()
    damage(doc)
    path = str(save(tmp_path / "edited.json", doc))
    line = assert_one_line_error(capsys, report_command(path, True, str(tmp_path / "x.png"), False))
    assert line == f"loadgen: {path} is not a valid loadgen results file: {words}"


# --- the table and the report -----------------------------------------------------------------


def section(text: str, caption_start: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(caption_start))
    end = lines.index("", start)
    return lines[start:end]


def test_the_table_has_a_journeys_section_after_the_endpoint_rows() -> None:
    from loadgen.output.table import JOURNEYS_CAPTION

    text = render_table(journey_run())
    caption, header, rule, shopper, browser, failed = section(text, "Journeys")
    assert caption == JOURNEYS_CAPTION
    assert header.split() == ["Journey", "Iterations", "OK", "Failed", "Cut", "It/s",
                              "Median", "(ms)", "P95", "(ms)", "P99", "(ms)"]
    assert set(rule) <= {"-", " "}
    # total, ok, failed, cut, it/s, p50, p95, p99 (the merged histogram's, in ms)
    assert shopper.split() == ["shopper", "42", "36", "4", "2", "16.0", "34.0", "38.0", "38.0"]
    assert browser.split() == ["browser", "20", "20", "0", "0", "8.00", "4.00", "4.00", "4.00"]
    assert failed == "Iterations failed: 4 of 60 (6.67%) — at shopper: POST /shop/orders × 4"
    lines = text.splitlines()
    assert lines.index(caption) > max(i for i, line in enumerate(lines)
                                      if line.startswith("All endpoints"))
    assert lines.index(caption) < next(i for i, line in enumerate(lines)
                                       if line.startswith("Status codes:"))
    assert len({len(line) for line in (header, rule)}) == 1


def test_iterations_without_failures_say_none_and_the_open_model_says_where_time_starts() -> None:
    from loadgen.output.table import JOURNEYS_OPEN_CAPTION

    doc = journey_run(open_model=True)
    for journey in doc["journeys"]:
        journey["iterations"].update(failures=0, failed_at={})
    text = render_table(doc)
    lines = section(text, "Journeys")
    assert lines[0] == JOURNEYS_OPEN_CAPTION
    assert lines[-1] == "Iterations failed: none"


def test_failures_at_several_steps_are_listed_most_frequent_first() -> None:
    from loadgen.output.table import journeys_lines

    doc = journey_run()
    doc["journeys"][0]["iterations"].update(failures=5, failed_at={
        "shopper: POST /shop/orders": 2, "shopper: GET /shop/items": 3})
    doc["journeys"][1]["iterations"].update(failures=3, failed_at={"browser: GET /shop/items": 3})
    assert journeys_lines(doc)[-2] == (
        "Iterations failed: 8 of 64 (12.50%) — at shopper: GET /shop/items × 3, "
        "browser: GET /shop/items × 3, shopper: POST /shop/orders × 2")


def test_an_endpoint_run_has_no_journeys_section() -> None:
    assert "Journeys" not in render_table(synthetic_run())
    assert "Iterations" not in render_table(synthetic_run())


def test_long_step_names_keep_every_column_aligned() -> None:
    doc = journey_run()
    long = "shopper: POST /api/v1/customers/{{ customer }}/orders/{{ order }}/items/confirm"
    doc["endpoints"][2]["endpoint"] = long
    doc["journeys"][0]["iterations"]["failed_at"] = {long: 4}
    text = render_table(doc)
    for caption in ("Every request", "Latency of successful"):
        table = section(text, caption)[1:]
        assert any(line.startswith(long + "  ") for line in table)
        # the name column is as wide as the longest name, the numbers right-aligned after it
        assert len({len(line) for line in table}) == 1, table
        assert table[1].startswith("-" * len(long) + "  ")
    assert f"— at {long} × 4" in text


def test_report_re_renders_a_saved_journey_run_as_it_was_shown(tmp_path, capsys) -> None:
    from test_reportcmd import report_command

    from loadgen.output.results import read_document, write_document
    doc = journey_run()
    path = tmp_path / "journeys.json"
    write_document(str(path), doc)
    assert read_document(str(path)) == doc
    assert report_command(str(path), False, None, False) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out == render_table(doc) + "\n"
    assert "Journeys (latency of successful iterations" in out


# --- repeats combined -------------------------------------------------------------------------


def test_combined_repeats_keep_the_journeys_exact() -> None:
    from loadgen.stats.combine import combine_runs

    one, two = journey_run(seconds=2), journey_run(seconds=3)
    combined = combine_runs([one, two])
    shopper, browser = combined["journeys"]
    figures = shopper["iterations"]
    assert (figures["total"], figures["successes"], figures["failures"], figures["cut"]) == (
        42 + 62, 36 + 54, 4 + 6, 2 + 2)
    assert figures["failed_at"] == {"shopper: POST /shop/orders": 10}
    assert figures["per_second"] == pytest.approx((40 + 60) / (2.5 + 3.5))
    merged = decode_histogram(one["journey_histograms"]["shopper"])
    merged.add(decode_histogram(two["journey_histograms"]["shopper"]))
    assert figures["latency_ms"] == latency_ms(merged)
    assert combined["journey_histograms"]["shopper"] == encode_histogram(merged)
    assert browser["iterations"]["successes"] == 20 + 30
    assert (shopper["on_start"], shopper["steps"]) == (one["journeys"][0]["on_start"],
                                                       one["journeys"][0]["steps"])
    assert "shopper         104" in render_table(combined)


def test_combining_journey_runs_with_other_runs_is_refused() -> None:
    from loadgen.stats.combine import combine_runs

    other = journey_run()
    other["journeys"] = other["journeys"][:1]
    with pytest.raises(ValueError, match="not repeats of one configuration"):
        combine_runs([journey_run(), other])
    assert "journeys" not in combine_runs([synthetic_run(), synthetic_run()])


def test_the_chart_of_a_journey_run_draws_iterations_per_second(tmp_path) -> None:
    from test_report import assert_real_png

    from loadgen.output.charts import draw_summary, iteration_rate

    doc = journey_run(seconds=3)
    assert [iteration_rate(i) for i in doc["intervals"]] == [30.0, 30.0, 30.0, 0.0]
    assert iteration_rate({"t": 1.0}) == 0.0   # an endpoint run's interval: none
    path = tmp_path / "journeys.png"
    draw_summary(doc, str(path))
    assert_real_png(path)


# --- fuzz: a damaged journeys block is rendered or refused in one line ------------------------


def test_damaged_journey_documents_render_or_fail_in_one_line(tmp_path_factory) -> None:
    import contextlib
    import io

    import orjson
    from hypothesis import given
    from hypothesis import strategies as st
    from test_results_fuzz import FUZZ, _paths, _replace, json_values, report_command

    good = orjson.loads(orjson.dumps(journey_run()))
    # the block, each entry, its keys and the iterations' keys (not every leaf: each part
    # the table reads gets replaced often)
    paths = [p for p in _paths(good) if p and p[0] in ("journeys", "journey_histograms")
             and len(p) <= (4 if p[2:3] == ("iterations",) else 3)]
    paths += [("intervals", i, "iterations") for i in range(len(good["intervals"]))]

    @FUZZ
    @given(data=st.data())
    def damaged(data: Any) -> None:
        doc = good
        for _ in range(data.draw(st.integers(1, 3))):
            try:
                doc = _replace(doc, data.draw(st.sampled_from(paths)), data.draw(json_values))
            except (KeyError, IndexError, TypeError):   # an earlier change removed that path
                continue
        path = tmp_path_factory.getbasetemp() / "fuzz-journeys.json"
        path.write_bytes(orjson.dumps(doc))
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = report_command(str(path), False, None, False)
        # rendered, or refused by the validator in one line naming the part: never the
        # renderer's last-resort "cannot render it" (the validator covers what the table reads)
        assert (status, err.getvalue()) == (0, "") or (
            status == 2 and out.getvalue() == "" and len(err.getvalue().splitlines()) == 1
            and "is not a valid loadgen results file" in err.getvalue()
            and "cannot render" not in err.getvalue()), (status, err.getvalue())

    damaged()
