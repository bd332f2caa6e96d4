"""Phase timings (connect, TLS, time to first byte) and ``--no-keepalive``: fast unit tests.

- the vectorised HDR recording the worker uses for the time to first byte gives
  exactly the histogram ``record_value`` gives, edge values included;
- a worker's phases survive the wire, the merge and the document, and old
  documents without them still load, render, combine and compare;
- the report shows them under the table, rendered from the document;
- ``Connection: close`` (``--no-keepalive`` or the user's own header) and its checks.

End-to-end runs against real servers are in tests/test_phases_runs.py.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from helpers import run_in_process
from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic import message, new_aggregate, synthetic_run, tally

from loadgen.cli import status_of
from loadgen.commands.inputs import build_config
from loadgen.commands.report import report_command as _report_command
from loadgen.config.model import ConfigError, asks_to_close, check_keepalive
from loadgen.config.scenario import parse_scenario
from loadgen.config.settings import EndpointSpec, Settings
from loadgen.engine.client import build_request
from loadgen.output.results import build_document
from loadgen.output.table import PHASES_CAPTION, render_table
from loadgen.stats.combine import combine_runs
from loadgen.stats.compare import compare_documents, warnings
from loadgen.stats.metrics import (
    HIGHEST_US,
    RECORD_CHUNK,
    counts_indices,
    decode_histogram,
    encode_histogram,
    new_histogram,
    record_values,
)
from loadgen.stats.phases import PHASES, PhaseRecorder, PhaseTotals


# commands raise; the CLI prints the one line and exits with the status (loadgen.cli)
def report_command(*args: Any, **kwargs: Any) -> int:
    return status_of(_report_command, *args, **kwargs)


EDGES = [0, 1, 2, 3, 1023, 1024, 2046, 2047, 2048, 2049, 4095, 4096, 65535, 65536,
         HIGHEST_US - 1, HIGHEST_US, HIGHEST_US + 1, 67_108_863, 67_108_864,
         2**53 - 1, 2**53, 2**53 + 1, 2**62, 2**63 - 1, -1, -2**63]


def by_record_value(values: list[int]) -> tuple[Any, int]:
    hist, refused = new_histogram(), 0
    for v in values:
        if not hist.record_value(v):
            refused += 1
    return hist, refused


def assert_same(a: Any, b: Any) -> None:
    assert list(a.counts) == list(b.counts)
    assert (a.total_count, a.min_value, a.max_value) == (b.total_count, b.min_value,
                                                         b.max_value)
    assert a.encode() == b.encode()


# --- the vectorised recording ------------------------------------------------------------------


def test_counts_indices_equal_hdrhistogram_on_edges_and_random_values() -> None:
    rng = np.random.default_rng(20261201)
    values = np.concatenate([
        np.array([v for v in EDGES if v >= 0], dtype=np.int64),
        rng.integers(0, 2**63 - 1, 5_000, dtype=np.int64),          # every magnitude ...
        (2.0 ** rng.uniform(0, 62, 20_000)).astype(np.int64),       # ... log-spread
        rng.integers(0, HIGHEST_US + 1, 50_000, dtype=np.int64),    # the layout's range
    ])
    hist = new_histogram()
    expected = [hist._counts_index_for(int(v)) for v in values]
    assert counts_indices(values).tolist() == expected


def test_record_values_equals_record_value_edges_included() -> None:
    rng = np.random.default_rng(7)
    values = EDGES + rng.integers(-10, 2**40, 30_000).tolist() \
        + rng.integers(0, HIGHEST_US + 1, 30_000).tolist()
    expected, refused = by_record_value(values)
    hist = new_histogram()
    assert record_values(hist, np.array(values, dtype=np.int64)) == refused
    assert refused == sum(1 for v in EDGES if v < 0 or v > 67_108_863) + \
        sum(1 for v in values[len(EDGES):] if v < 0 or v > 67_108_863)
    assert_same(hist, expected)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=-5, max_value=2**63 - 1), max_size=200),
       st.lists(st.integers(min_value=0, max_value=HIGHEST_US), max_size=50))
def test_record_values_adds_to_what_is_there(first: list[int], then: list[int]) -> None:
    expected, _ = by_record_value(first + then)
    hist, _ = by_record_value(first)
    record_values(hist, np.array(then, dtype=np.int64))
    assert_same(hist, expected)


def test_empty_batch_leaves_the_histogram_empty() -> None:
    hist = new_histogram()
    assert record_values(hist, np.array([], dtype=np.int64)) == 0
    assert hist.get_total_count() == 0 and hist.encode() == new_histogram().encode()


# --- the worker's recorder, the wire, the merge ------------------------------------------------


def test_recorder_hands_over_an_interval_and_starts_afresh() -> None:
    recorder = PhaseRecorder(tls=True)
    append = recorder.ttfb.append      # what a Connection keeps
    seconds = [0.000_000_4, 0.000_123, 0.0015, 0.25, 75.0]   # 0 µs .. above the layout
    for s in seconds:
        append(s)
    recorder.record_connect(0.0004)
    recorder.record_tls(0.0021)
    wire = recorder.to_wire()
    assert set(wire) == {"connect", "tls", "ttfb"}
    totals = PhaseTotals()
    totals.add_wire(wire)
    direct, _ = by_record_value([min(int(s * 1e6), HIGHEST_US) for s in seconds])
    assert_same(totals.hists["ttfb"], decode_histogram(encode_histogram(direct)))
    assert totals.hists["connect"].get_total_count() == 1
    # the same array, now empty, still the one Connections append to
    append(0.001)
    again = recorder.to_wire()
    assert PhaseTotals.from_document({"phase_histograms": again}).hists["ttfb"] \
        .get_total_count() == 1
    assert again["connect"] == "" and again["tls"] == ""


def test_recorder_converts_many_values_in_chunks_exactly() -> None:
    rng = np.random.default_rng(11)
    seconds = np.concatenate([rng.exponential(0.002, 3 * RECORD_CHUNK + 17),
                              [0.0, 1e-7, 59.9999, 60.0, 61.0, 3600.0]])
    recorder = PhaseRecorder()
    recorder.ttfb.extend(seconds.tolist())
    totals = PhaseTotals()
    totals.add_wire(recorder.to_wire())
    direct, _ = by_record_value([min(int(s * 1e6), HIGHEST_US) for s in seconds.tolist()])
    assert_same(totals.hists["ttfb"], decode_histogram(encode_histogram(direct)))
    assert len(recorder.ttfb) == 0


def test_plain_http_has_no_tls_phase() -> None:
    wire = PhaseRecorder(tls=False).to_wire()
    assert set(wire) == {"connect", "ttfb"}
    totals = PhaseTotals()
    totals.add_wire(wire)
    summary = totals.summary()
    assert set(summary) == {"connect", "ttfb"}
    assert summary["ttfb"] == {"count": 0, "mean": None, "p50": None, "p90": None,
                               "p99": None, "max": None}


def phases_wire(connect_us: list[int], ttfb_us: list[int],
                tls_us: list[int] | None = None) -> dict[str, str]:
    recorder = PhaseRecorder(tls=tls_us is not None)
    for v in connect_us:
        recorder.record_connect(v / 1e6)
    for v in tls_us or []:
        recorder.record_tls(v / 1e6)
    for v in ttfb_us:
        recorder.ttfb.append(v / 1e6)
    return recorder.to_wire()


def run_with_phases(tls: bool = False, open_model: bool = False) -> dict[str, Any]:
    """Two workers, two seconds, phases in every message (as Worker._send_interval sends)."""
    agg = new_aggregate(workers=2)
    for k in (1, 2):
        for w in (0, 1):
            m = message(w, k + 0.0004, [tally(10, open_model=open_model)],
                        final=k == 2, lateness_us=[300] if open_model else None)
            m["phases"] = phases_wire([400 + w] * (2 if k == 1 else 0), [1_500 + 10 * k] * 10,
                                      [2_000] * (2 if k == 1 else 0) if tls else None)
            agg.add(m)
    agg.finish()
    config = {"model": "open" if open_model else "closed", "concurrency": 4,
              "url": "https://x" if tls else "http://x", "keepalive": True}
    return build_document(config, agg, "complete", [], dt.datetime(2026, 12, 1, tzinfo=dt.UTC))


def test_document_has_phases_in_the_summary_and_their_histograms() -> None:
    doc = run_with_phases(tls=True)
    phases = doc["summary"]["phases_ms"]
    assert list(phases) == list(PHASES)
    assert phases["connect"]["count"] == 4 and phases["tls"]["count"] == 4
    assert phases["ttfb"]["count"] == 40 == doc["summary"]["requests"]
    assert phases["connect"]["max"] == 0.401 and phases["tls"]["p50"] == 2.0
    assert set(phases["ttfb"]) == {"count", "mean", "p50", "p90", "p99", "max"}
    assert set(doc["phase_histograms"]) == set(PHASES)
    assert all("phases_ms" not in e for e in doc["endpoints"])   # per worker, not endpoint
    # the histograms give the figures back
    assert PhaseTotals.from_document(doc).summary() == phases


def test_messages_without_phases_give_a_document_without_them() -> None:
    doc = synthetic_run()   # messages as an older worker sends them
    assert "phases_ms" not in doc["summary"] and "phase_histograms" not in doc


# --- the report ---------------------------------------------------------------------------------


def test_report_shows_the_phases_under_the_table() -> None:
    text = render_table(run_with_phases(tls=True))
    lines = text.splitlines()
    start = lines.index(PHASES_CAPTION)
    assert lines.index("Status codes: 200 × 40") > start > \
        next(i for i, line in enumerate(lines) if line.startswith("All endpoints"))
    header, rule, connect, tls, ttfb = lines[start + 1:start + 6]
    assert header.split() == ["Phase", "Count", "Avg", "(ms)", "Median", "(ms)", "P90", "(ms)",
                              "P99", "(ms)", "Max", "(ms)"]
    assert set(rule) <= {"-", " "}
    assert connect.split()[:3] == ["Connect", "(DNS+TCP)", "4"]
    assert tls.split()[:3] == ["TLS", "handshake", "4"]
    assert ttfb.split()[:4] == ["First", "byte", "(TTFB)", "40"]
    assert len({len(line) for line in (header, rule)}) == 1


def test_report_of_plain_http_has_no_tls_row() -> None:
    text = render_table(run_with_phases(tls=False))
    assert "Connect (DNS+TCP)" in text and "First byte (TTFB)" in text
    assert "TLS handshake" not in text


def test_report_of_an_old_document_has_no_phases_section() -> None:
    doc = run_with_phases()
    del doc["summary"]["phases_ms"], doc["phase_histograms"], doc["config"]["keepalive"]
    text = render_table(doc)
    assert PHASES_CAPTION not in text and "keep-alive" not in text


def test_report_header_says_keepalive_was_off() -> None:
    doc = run_with_phases()
    assert "keep-alive" not in render_table(doc).splitlines()[0]
    doc["config"]["keepalive"] = False
    assert render_table(doc).splitlines()[0].endswith(
        "| keep-alive off (a new connection per request)")


def test_loadgen_report_renders_the_phases_and_checks_them(tmp_path: Path, capsys) -> None:
    doc = run_with_phases(tls=True)
    path = tmp_path / "run.json"
    path.write_bytes(orjson.dumps(doc))
    assert report_command(str(path), False, None, False) == 0
    out, _ = capsys.readouterr()
    assert out == render_table(doc) + "\n"
    assert report_command(str(path), False, str(tmp_path / "run.png"), False) == 0   # decodes
    capsys.readouterr()
    for damage, words in [
            (lambda d: d["summary"].update(phases_ms={"ttfb": {"p50": "fast"}}), "'phases_ms'"),
            (lambda d: d["summary"].update(phases_ms=[1]), "'phases_ms'"),
            (lambda d: d.update(phase_histograms=[]), "'phase_histograms' is not an object"),
            (lambda d: d["phase_histograms"].update(ttfb="HISTjunk"),
             "phase_histograms['ttfb'] is not a valid HDR histogram")]:
        bad = copy.deepcopy(doc)
        damage(bad)
        path.write_bytes(orjson.dumps(bad))
        assert report_command(str(path), False, str(tmp_path / "bad.png"), False) == 2
        _, err = capsys.readouterr()
        assert err.startswith("loadgen: ") and words in err, err


# --- combine and compare ------------------------------------------------------------------------


def test_combined_runs_merge_their_phases_exactly() -> None:
    a, b = run_with_phases(tls=True), run_with_phases(tls=True)
    combined = combine_runs([a, b])
    phases = combined["summary"]["phases_ms"]
    assert phases["ttfb"]["count"] == 80 and phases["connect"]["count"] == 8
    merged = PhaseTotals.from_document(a)
    merged.merge(PhaseTotals.from_document(b))
    assert phases == merged.summary()


def test_combining_with_an_old_run_leaves_phases_out() -> None:
    old = run_with_phases()
    del old["summary"]["phases_ms"], old["phase_histograms"]
    combined = combine_runs([run_with_phases(), old])
    assert "phases_ms" not in combined["summary"] and "phase_histograms" not in combined


def test_compare_accepts_old_documents_and_warns_about_keepalive() -> None:
    new, old = run_with_phases(), synthetic_run()
    old["config"]["url"] = new["config"]["url"]
    comparison = compare_documents([old, new], ["old", "new"])
    assert comparison["metrics"]
    off = copy.deepcopy(new)
    off["config"]["keepalive"] = False
    found = warnings([new, off], ["on", "off"])
    assert any("keepalive on vs off" in w for w in found), found
    assert not any("keepalive" in w for w in warnings([old, new], ["old", "new"]))


# --- Connection: close ----------------------------------------------------------------------


@pytest.mark.parametrize("headers, closes", [
    ([], False),
    ([("Connection", "close")], True),
    ([("connection", "Keep-Alive, CLOSE")], True),
    ([("Connection", "keep-alive")], False),
    ([("X-Connection", "close")], False),
    ([("Connection", "closed")], False),
])
def test_asks_to_close(headers: list[tuple[str, str]], closes: bool) -> None:
    assert asks_to_close(headers) is closes


def test_no_keepalive_sends_connection_close_once() -> None:
    plain = build_request("GET", "h", "/", [], b"")
    assert b"Connection" not in plain
    closing = build_request("GET", "h", "/", [], b"", close=True)
    assert closing == plain.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    users = build_request("GET", "h", "/", [("connection", "Close")], b"", close=True)
    assert users.count(b"onnection") == 1 and b"connection: Close\r\n" in users


def test_a_contradicting_connection_header_is_bad_input() -> None:
    check_keepalive([("Connection", "close")], False, "--header")
    check_keepalive([("Connection", "keep-alive")], True, "--header")
    with pytest.raises(ConfigError, match="^--header: 'Connection: keep-alive' contradicts "
                                          "--no-keepalive"):
        check_keepalive([("Connection", "keep-alive")], False, "--header")
    run = run_in_process("run", "--url", "http://127.0.0.1:9", "--no-keepalive",
                         "--header", "Connection: Upgrade")
    assert run.status == 2 and run.stderr.count("\n") == 1
    assert run.stderr.startswith("loadgen: --header: 'Connection: Upgrade' contradicts")


def options(**given: Any) -> dict[str, Any]:
    from loadgen.cli import _run_defaults

    return {**_run_defaults(), **given}


def test_keepalive_setting_in_the_config_and_the_results() -> None:
    assert build_config(options()).keepalive is True
    assert build_config(options()).public()["keepalive"] is True
    off = build_config(options(no_keepalive=True))
    assert off.keepalive is False and off.public()["keepalive"] is False
    # the user's own Connection: close on every request is the same setting
    assert build_config(options(headers=("Connection: close",))).keepalive is False
    # on one endpoint only: the run keeps alive, that endpoint's requests close
    spec = EndpointSpec(method="GET", path="/a", body=b"", weight=1.0,
                        headers=(("Connection", "close"),))
    other = EndpointSpec(method="GET", path="/b", body=b"", weight=1.0, headers=())
    assert build_config(options(), Settings(endpoint_specs=(spec, other))).keepalive is True
    assert build_config(options(), Settings(endpoint_specs=(spec,))).keepalive is False


def test_scenario_key_no_keepalive() -> None:
    assert parse_scenario("no_keepalive = true\n") == Settings(no_keepalive=True)
    with pytest.raises(ConfigError, match="'no_keepalive' must be true or false"):
        parse_scenario('no_keepalive = "yes"\n')
    with pytest.raises(ConfigError, match="did you mean 'no_keepalive'"):
        parse_scenario("keepalive = false\n")
