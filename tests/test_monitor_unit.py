"""``--monitor-*`` without a run: the node-exporter arithmetic, the placement of samples in
the intervals, the report's lines, the checks of a saved document.

Exporter pages are the text ``prometheus_client`` itself writes for a registry set here, and
read back with its parser, so the figures tested are the ones a real exporter page gives.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from synthetic import WALL_START, message, new_aggregate, synthetic_run, tally

from loadgen.engine.monitor import (
    HostReading,
    MonitorError,
    ProcessSource,
    SampleError,
    Sampler,
    _Tally,
    check_url,
    host_figures,
    process_summary,
    public_url,
    read_exporter,
)
from loadgen.output.results import ResultsError, build_document, with_server
from loadgen.output.server import format_bytes, samples_line, server_lines
from loadgen.output.table import render_table
from loadgen.output.validate import check_document
from loadgen.schema import ProcessSample, ServerSample


def exporter_page(busy: float, idle: float, iowait: float = 0.0, rx: float = 0.0,
                  tx: float = 0.0, lo: float = 0.0, total: float = 8e9,
                  available: float = 6e9, load1: float = 1.25) -> str:
    """A node-exporter page with these values (two CPUs, eth0 and lo), as the library writes."""
    reg = CollectorRegistry()
    cpu = Counter("node_cpu_seconds", "CPU seconds", ["cpu", "mode"], registry=reg)
    for n in ("0", "1"):   # split over two CPUs: the sums are what count
        cpu.labels(n, "user").inc(busy * 0.75 / 2)
        cpu.labels(n, "system").inc(busy * 0.25 / 2)
        cpu.labels(n, "idle").inc(idle / 2)
        cpu.labels(n, "iowait").inc(iowait / 2)
    Gauge("node_memory_MemTotal_bytes", "", registry=reg).set(total)
    Gauge("node_memory_MemAvailable_bytes", "", registry=reg).set(available)
    Gauge("node_load1", "", registry=reg).set(load1)
    rx_c = Counter("node_network_receive_bytes", "", ["device"], registry=reg)
    tx_c = Counter("node_network_transmit_bytes", "", ["device"], registry=reg)
    rx_c.labels("eth0").inc(rx)
    tx_c.labels("eth0").inc(tx)
    rx_c.labels("lo").inc(lo)
    tx_c.labels("lo").inc(lo)
    return generate_latest(reg).decode()


def test_host_figures_are_what_the_page_says() -> None:
    before = read_exporter(exporter_page(busy=10, idle=90, iowait=4, rx=1000, tx=500, lo=7),
                           at=100.0)
    now = read_exporter(exporter_page(busy=13, idle=95, iowait=6, rx=6000, tx=1500, lo=999),
                        at=102.0)
    figures = host_figures(before, now)
    # busy 3 of 3 + 5 + 2 CPU-seconds: idle and iowait are not busy
    assert figures["cpu_percent"] == 30.0
    assert figures["cpus"] == 2
    assert figures["memory_used_bytes"] == 2_000_000_000
    assert figures["memory_used_percent"] == 25.0
    assert figures["load1"] == 1.25
    assert figures["net_rx_bytes_per_s"] == 2500.0   # 5000 bytes over 2 s, lo left out
    assert figures["net_tx_bytes_per_s"] == 500.0


def test_the_first_reading_has_no_rates_and_a_counter_reset_gives_none() -> None:
    first = read_exporter(exporter_page(busy=10, idle=90, rx=1000), at=1.0)
    alone = host_figures(None, first)
    assert alone["cpu_percent"] is None and alone["net_rx_bytes_per_s"] is None
    assert alone["memory_used_bytes"] == 2_000_000_000   # gauges need no previous reading
    restarted = read_exporter(exporter_page(busy=1, idle=2, rx=10), at=2.0)
    after = host_figures(first, restarted)
    assert after["cpu_percent"] is None and after["net_rx_bytes_per_s"] is None


@pytest.mark.parametrize("page", ["node_load1{ 1\n", "just words\n", "# TYPE x counter\nx 1\n"])
def test_a_page_that_is_not_node_metrics_is_a_failed_sample(page: str) -> None:
    with pytest.raises(SampleError):
        read_exporter(page, at=0.0)


def test_urls_are_checked_and_shown_without_secrets() -> None:
    assert check_url("http://10.0.0.5:9100/metrics")
    for bad in ("10.0.0.5:9100/metrics", "ftp://h/metrics", "http:///metrics",
                "http://h:99999/metrics"):
        with pytest.raises(MonitorError):
            check_url(bad)
    shown = public_url("https://admin:s3cret@[::1]:9100/metrics?token=abc")
    assert shown == "https://[::1]:9100/metrics"


def test_a_pid_without_a_process_is_bad_input() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()   # reaped: its pid names no process (until reused, which a test cannot see)
    with pytest.raises(MonitorError, match=f"--monitor-pid {gone.pid}: no such process"):
        ProcessSource(gone.pid)


def test_this_process_is_read_with_its_tree() -> None:
    source = ProcessSource(os.getpid())
    first = source.sample(time.monotonic())
    assert first["cpu_percent"] is None   # no previous reading yet
    sum(i * i for i in range(200_000))    # some CPU time between the readings
    second = source.sample(time.monotonic())
    assert second["cpu_percent"] is not None and second["cpu_percent"] >= 0
    assert second["rss_bytes"] > 0 and second["threads"] >= 1 and second["processes"] >= 1
    assert second["fds"] > 0


class _Scripted:
    """A source that answers or fails as scripted (the Sampler's bookkeeping, not psutil)."""

    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = outcomes

    def sample(self, now: float) -> Any:
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def describe(self) -> dict[str, Any]:
        return {"pid": 7, "name": "srv", "cpu_count": 2}


def test_failed_samples_are_counted_with_their_reasons_and_leave_a_gap() -> None:
    ok: ProcessSample = {"cpu_percent": 50.0, "rss_bytes": 1000, "threads": 2, "fds": 5,
                         "connections": 3, "processes": 1}
    gone = SampleError("process 7 is gone")
    source = _Scripted([ok, gone, {**ok, "cpu_percent": 80.0, "rss_bytes": 4000}, gone,
                        RuntimeError("boom")])
    sampler = Sampler(source, None)  # type: ignore[arg-type]
    for n in range(1, 6):
        sampler._sample(n, float(n))
    samples = sampler.samples()
    assert samples[2] == {"process": None} and samples[1]["process"] == ok
    summary = sampler.summary()["process"]
    assert (summary["samples"], summary["failed"]) == (2, 3)
    assert summary["failures"] == {"process 7 is gone": 2, "RuntimeError: boom": 1}
    assert summary["cpu_percent_max"] == 80.0 and summary["cpu_percent_mean"] == 65.0
    assert summary["rss_bytes_max"] == 4000
    assert samples_line("process", summary) == (
        "Server samples (process): 2 of 5, 3 failed: process 7 is gone × 2; "
        "RuntimeError: boom × 1")


def test_failure_reasons_are_capped_but_counted() -> None:
    tally = _Tally()
    for i in range(9):
        tally.fail(f"reason {i}")
    assert tally.failed == 9 and len(tally.reasons) == 5


def _process(cpu: float, rss: int) -> ServerSample:
    return {"process": {"cpu_percent": cpu, "rss_bytes": rss, "threads": 3, "fds": 9,
                        "connections": 4, "processes": 2}}


def test_each_second_gets_its_own_sample_in_the_document() -> None:
    agg = new_aggregate(workers=1)
    for k in (1, 2):
        agg.add(message(0, k + 0.0004, [tally(5)], cpu_s=0.1 * k))
    agg.add(message(0, 2.05, [tally(1)], final=True, cpu_s=0.2))   # a sliver: joins second 2
    agg.finish()
    samples = {1: _process(10.0, 100), 2: _process(20.0, 200), 3: _process(99.0, 999)}
    summary = process_summary({"pid": 1, "name": "srv", "cpu_count": 2},
                              [s["process"] for s in samples.values()], _Tally(samples=3))
    started = dt.datetime.fromtimestamp(WALL_START, dt.UTC)
    doc = build_document({}, agg, "complete", [], started, server=(samples, {"process": summary}))
    assert [i["server"]["process"]["cpu_percent"] for i in doc["intervals"]] == [10.0, 20.0]
    assert doc["server"]["process"]["cpu_percent_max"] == 99.0
    assert "server" not in agg.intervals[0]   # the aggregate's own intervals are untouched
    plain = build_document({}, agg, "complete", [], started)
    assert "server" not in plain and all("server" not in i for i in plain["intervals"])


def monitored_run() -> dict[str, Any]:
    """A synthetic document as a monitored run writes it: both sources, second 2 failed."""
    doc = synthetic_run(seconds=2)
    samples: dict[int, ServerSample] = {
        1: {**_process(35.5, 50 * 2**20),
            "host": {"cpu_percent": 42.0, "cpus": 4, "memory_used_bytes": 3 * 2**30,
                     "memory_used_percent": 37.5, "load1": 2.5, "net_rx_bytes_per_s": 2048.0,
                     "net_tx_bytes_per_s": 1024.0}},
        2: {"process": None, "host": None},
        3: _process(180.0, 60 * 2**20) | {"host": None},
    }
    doc["intervals"] = with_server(doc["intervals"], samples)
    doc["server"] = {
        "process": {"pid": 4321, "name": "gunicorn", "cpu_count": 2, "samples": 2, "failed": 1,
                    "failures": {"process 4321 is gone": 1}, "cpu_percent_max": 180.0,
                    "cpu_percent_mean": 107.75, "rss_bytes_max": 60 * 2**20, "threads_max": 3,
                    "fds_max": 9, "connections_max": 4, "processes_max": 2},
        "host": {"url": "http://10.0.0.5:9100/metrics", "cpus": 4, "samples": 1, "failed": 2,
                 "failures": {"cannot read the metrics URL: timed out": 2},
                 "cpu_percent_max": 42.0, "cpu_percent_mean": 42.0,
                 "memory_used_bytes_max": 3 * 2**30, "memory_used_percent_max": 37.5,
                 "load1_max": 2.5, "net_rx_bytes_per_s_max": 2048.0,
                 "net_tx_bytes_per_s_max": 1024.0},
    }
    return doc


def test_the_table_has_a_server_line_per_source_and_the_failures() -> None:
    text = render_table(monitored_run())
    assert ("Server: CPU peak 180.0% (mean 107.8%; 100% = one core of 2), RSS peak 60.0 MiB, "
            "3 threads, 4 connections (pid 4321 gunicorn, 2 processes)") in text
    assert ("Server host: CPU peak 42.0% of 4 CPUs (mean 42.0%), memory peak 3.00 GiB (37.5%), "
            "load1 peak 2.50, network peak in 2.00 KiB/s, out 1.00 KiB/s "
            "(http://10.0.0.5:9100/metrics)") in text
    assert "Server samples (process): 2 of 3, 1 failed: process 4321 is gone × 1" in text
    assert "Server samples (host): 1 of 3, 2 failed" in text
    assert "Server" not in render_table(synthetic_run())
    assert server_lines(None) == []


def test_bytes_read_as_people_read_them() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.50 KiB"
    assert format_bytes(5 * 2**40) == "5.00 TiB"
    assert format_bytes(None) == "-"


def test_saved_documents_with_and_without_server_are_valid(tmp_path: Path) -> None:
    check_document(synthetic_run(), "old.json", charts=True)
    check_document(monitored_run(), "monitored.json", charts=True)


@pytest.mark.parametrize("spoil", [
    lambda d: d.update(server=[1]),
    lambda d: d["server"]["process"].update(rss_bytes_max="big"),
    lambda d: d["server"]["host"].update(url=5),
    lambda d: d["server"]["host"].update(failures={"x": "many"}),
    lambda d: d["intervals"][0].update(server="x"),
    lambda d: d["intervals"][0]["server"].update(process={"cpu_percent": "hot"}),
])
def test_a_spoiled_server_block_is_one_line(spoil: Any) -> None:
    doc = monitored_run()
    spoil(doc)
    with pytest.raises(ResultsError, match="server"):
        check_document(doc, "bad.json", charts=False)


def test_the_chart_draws_a_server_panel(tmp_path: Path) -> None:
    from matplotlib.image import imread

    from loadgen.output.charts import DPI, GRID_FIGSIZE, SERVER_FIGSIZE, draw_summary

    monitored = tmp_path / "monitored.png"
    draw_summary(monitored_run(), str(monitored))
    # the third row (SERVER_FIGSIZE) instead of the 2x2 grid a run without monitoring gets
    height = imread(str(monitored)).shape[0]
    assert height == SERVER_FIGSIZE[1] * DPI > GRID_FIGSIZE[1] * DPI


def test_a_host_reading_without_memory_has_no_memory_figures() -> None:
    page = "# TYPE node_load1 gauge\nnode_load1 0.5\n"
    figures = host_figures(None, read_exporter(page, at=0.0))
    assert figures["memory_used_bytes"] is None and figures["load1"] == 0.5
    assert isinstance(HostReading(0.0).cpus, int)


def test_seconds_missed_by_slow_reads_are_failed_samples() -> None:
    ok: ProcessSample = {"cpu_percent": 5.0, "rss_bytes": 10, "threads": 1, "fds": 3,
                         "connections": 0, "processes": 1}
    sampler = Sampler(_Scripted([ok, ok]), None)  # type: ignore[arg-type]
    sampler._sample(1, 1.0)
    sampler._missed(range(2, 4))   # seconds 2 and 3 passed while second 1 was read
    sampler._sample(4, 4.0)
    assert sampler.samples()[3] == {"process": None}
    summary = sampler.summary()["process"]
    assert (summary["samples"], summary["failed"]) == (2, 2)
    assert summary["failures"] == {"missed: the reads took over a second": 2}


def test_the_server_blocks_have_the_schema_keys() -> None:
    from loadgen.schema import HostSample, HostSummary, ProcessSummary, ServerSummary

    def keys(typed: Any) -> set[str]:
        return set(typed.__required_keys__) | set(typed.__optional_keys__)

    doc = monitored_run()
    assert set(doc["server"]) == keys(ServerSummary)
    assert set(doc["server"]["process"]) == keys(ProcessSummary)
    assert set(doc["server"]["host"]) == keys(HostSummary)
    assert set(doc["intervals"][0]["server"]["process"]) == keys(ProcessSample)
    assert set(doc["intervals"][0]["server"]["host"]) == keys(HostSample)
    # and what the code writes, not only the hand-made document
    tally = _Tally(samples=1)
    written = process_summary({"pid": 1, "name": "x", "cpu_count": 1},
                              [doc["intervals"][0]["server"]["process"]], tally)
    assert set(written) == keys(ProcessSummary)
    page = read_exporter(exporter_page(busy=1, idle=1), at=0.0)
    assert set(host_figures(None, page)) == keys(HostSample)


def test_a_process_tree_counts_its_children() -> None:
    """A server that forks workers: the children are found at every read (a parent here that
    starts one child and waits on its stdin; both end when it closes)."""
    import psutil
    from helpers import poll_until

    script = ("import subprocess, sys\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'],"
              " stdin=subprocess.PIPE)\n"
              "sys.stdin.read()\nchild.stdin.close()\nchild.wait()\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE)
    try:
        assert poll_until(lambda: psutil.Process(parent.pid).children(), limit_s=30.0)
        source = ProcessSource(parent.pid)
        source.sample(time.monotonic())
        tree = source.sample(time.monotonic())
        assert tree["processes"] == 2
        alone = psutil.Process(parent.pid).memory_info().rss
        assert tree["rss_bytes"] > alone   # the child's memory is in the sum
    finally:
        assert parent.stdin is not None
        parent.stdin.close()
        parent.wait(30)
    with pytest.raises(SampleError, match=f"process {parent.pid} is gone"):
        source.sample(time.monotonic())
