"""``--monitor-pid`` and ``--monitor-url`` on real runs: the built-in target's process, an
exporter served here with ``prometheus_client``, failures mid-run, bad input before load.

The exporter's collector sets the node-exporter metrics itself: every scrape adds 1
busy and 3 idle CPU-seconds (so each second's CPU is exactly 25%), memory and load are
fixed gauges; the run must report exactly those.  Faults are injected on an event: once
the exporter has been scraped for the run's first second (the process was read just
before), it is shut down and the monitored process killed; the run goes on and counts
the failures of the seconds after.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import loadgen, one_line_error, run_in_process
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

MEM_TOTAL = 8 * 2**30
MEM_AVAILABLE = 6 * 2**30
LOAD1 = 0.75
RX_PER_S = 4096.0


class NodeCollector:
    """What a node exporter would say about a host whose CPUs are 25% busy."""

    def __init__(self) -> None:
        self.scrapes = 0
        self.first_second = threading.Event()   # scraped twice: the baseline, then second 1

    def collect(self) -> Iterator[Any]:
        self.scrapes += 1
        cpu = CounterMetricFamily("node_cpu_seconds", "", labels=["cpu", "mode"])
        cpu.add_metric(["0", "user"], 1.0 * self.scrapes)
        cpu.add_metric(["0", "idle"], 2.0 * self.scrapes)
        cpu.add_metric(["0", "iowait"], 1.0 * self.scrapes)
        yield cpu
        yield GaugeMetricFamily("node_memory_MemTotal_bytes", "", value=MEM_TOTAL)
        yield GaugeMetricFamily("node_memory_MemAvailable_bytes", "", value=MEM_AVAILABLE)
        yield GaugeMetricFamily("node_load1", "", value=LOAD1)
        rx = CounterMetricFamily("node_network_receive_bytes", "", labels=["device"])
        rx.add_metric(["eth0"], RX_PER_S * time.monotonic())   # a steady 4 KiB/s
        yield rx
        if self.scrapes >= 2:
            self.first_second.set()


class Exporter:
    """A ``/metrics`` page on 127.0.0.1, port 0, served by prometheus_client's own server."""

    def __init__(self) -> None:
        self.node = NodeCollector()
        registry = CollectorRegistry()
        registry.register(self.node)  # type: ignore[arg-type]
        self.server, self.thread = start_http_server(0, addr="127.0.0.1", registry=registry)
        self.url = f"http://127.0.0.1:{self.server.server_port}/metrics"
        self.open = True

    def stop(self) -> None:
        if self.open:
            self.open = False
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(5)


@pytest.fixture()
def exporter() -> Iterator[Exporter]:
    served = Exporter()
    try:
        yield served
    finally:
        served.stop()


def test_the_target_process_and_an_exporter_beside_the_latency(
        target_server: Any, exporter: Exporter, tmp_path: Path) -> None:
    save = tmp_path / "run.json"
    secret_url = exporter.url.replace("http://", "http://scraper:s3cret-pw@") + "?token=t0k3n"
    run = loadgen("run", "--url", target_server.url, "--rate", "40", "--duration", "2.5s",
                  "--quiet", "--monitor-pid", str(target_server.proc.pid),
                  "--monitor-url", secret_url, save=save)
    assert run.status == 0, run.stderr
    doc = run.doc
    assert doc is not None
    sampled = [i for i in doc["intervals"] if "server" in i]
    assert len(sampled) >= 2   # every whole second at least
    for interval in sampled:
        process, host = interval["server"]["process"], interval["server"]["host"]
        assert process["rss_bytes"] > 0 and process["processes"] >= 1
        assert process["cpu_percent"] is not None and process["cpu_percent"] >= 0
        assert host["cpu_percent"] == 25.0   # 1 busy of 4 CPU-seconds per scrape
        assert host["memory_used_bytes"] == MEM_TOTAL - MEM_AVAILABLE
        assert host["memory_used_percent"] == 25.0
        assert host["load1"] == LOAD1
        assert host["cpus"] == 1
        assert RX_PER_S / 2 < host["net_rx_bytes_per_s"] < RX_PER_S * 2
    summary = doc["server"]
    assert summary["process"]["pid"] == target_server.proc.pid
    assert summary["process"]["failed"] == 0 and summary["host"]["failed"] == 0
    assert summary["process"]["samples"] == summary["host"]["samples"] == len(sampled)
    assert summary["process"]["connections_max"] >= 1   # loadgen's own connections
    assert summary["host"]["cpu_percent_max"] == 25.0
    assert summary["host"]["url"] == exporter.url   # shown without user, password or query
    for secret in ("s3cret-pw", "t0k3n"):
        assert secret not in save.read_text() and secret not in run.stdout + run.stderr
    assert "Server: CPU peak" in run.stdout and "Server host: CPU peak 25.0% of 1 CPU" in run.stdout
    # ``loadgen report`` shows the saved run as it was shown live
    again = run_in_process("report", str(save))
    assert again.status == 0, again.stderr
    server_lines = [line for line in run.stdout.splitlines() if line.startswith("Server")]
    assert server_lines and all(line in again.stdout for line in server_lines)


def test_a_process_gone_and_an_exporter_down_mid_run_are_counted(
        target_server: Any, exporter: Exporter, tmp_path: Path) -> None:
    victim = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                              stdin=subprocess.PIPE)
    save = tmp_path / "run.json"

    def break_both() -> None:
        if exporter.node.first_second.wait(60):
            exporter.stop()
            victim.kill()
            victim.wait()

    breaker = threading.Thread(target=break_both)
    try:
        breaker.start()
        run = loadgen("run", "--url", target_server.url, "--rate", "40", "--duration", "3s",
                      "--quiet", "--monitor-pid", str(victim.pid), "--monitor-url", exporter.url,
                      save=save)
    finally:
        breaker.join(60)
        if victim.poll() is None:
            victim.kill()
            victim.wait()
        assert victim.stdin is not None
        victim.stdin.close()
    assert run.status == 0, run.stderr   # never fatal
    doc = run.doc
    assert doc is not None and doc["status"] == "complete"
    process, host = doc["server"]["process"], doc["server"]["host"]
    assert process["samples"] >= 1 and process["failed"] >= 1
    assert process["failures"] == {f"process {victim.pid} is gone": process["failed"]}
    assert host["samples"] >= 1 and host["failed"] >= 1
    assert all(reason.startswith("cannot read the metrics URL") for reason in host["failures"])
    last = doc["intervals"][-1]["server"]
    assert last == {"process": None, "host": None}   # the gap where the samples failed
    total = process["samples"] + process["failed"]
    assert (f"Server samples (process): {process['samples']} of {total}, "
            f"{process['failed']} failed: process {victim.pid} is gone") in run.stdout
    assert "Server samples (host):" in run.stdout


def test_bad_monitor_input_is_one_line_before_any_load(target_server: Any) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    target_server.reset()
    for command in ("run", "capacity"):
        extra = ["--slo", "p99<1s"] if command == "capacity" else ["--requests", "5"]
        line = one_line_error(loadgen(command, "--url", target_server.url, *extra,
                                      "--monitor-pid", str(gone.pid)))
        assert line == f"loadgen: --monitor-pid {gone.pid}: no such process"
    line = one_line_error(loadgen("run", "--url", target_server.url, "--requests", "5",
                                  "--monitor-url", "localhost:9100/metrics"))
    assert "--monitor-url" in line and "http://" in line
    assert target_server.stats()["requests"] == 0
