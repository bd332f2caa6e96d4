"""The server's own resources beside the latency: ``--monitor-pid`` and ``--monitor-url``.

A reader of a run wants to see that p99 rose when the server's CPU reached
100%.  So while the load runs, a thread of the coordinator (never a worker:
it must not steal their CPU nor touch gevent; the coordinator never
monkey-patches) samples the server once a second on the run's own absolute
schedule (``wall_start + n``), so sample ``n`` covers exactly the run's second
``n``, the interval the workers' reports for that second make.

Two sources, either or both:

- ``--monitor-pid``: a local process and its children, re-read every sample so
  forked workers count (``psutil``).  CPU is the tree's CPU time over the second
  (100% = one core busy; the machine's core count is recorded beside it), RSS
  summed (shared pages of forked workers count once per process: an upper bound),
  threads, file descriptors and inet connections.
- ``--monitor-url``: a Prometheus node-exporter ``/metrics`` page, parsed with
  ``prometheus_client``'s own parser: CPU busy % from ``node_cpu_seconds_total``
  deltas (all CPUs; idle and iowait are not busy), memory used (MemTotal -
  MemAvailable), ``node_load1``, and network bytes/s (``lo`` left out).

A sample that fails (the process is gone, the URL is down, the page does not
parse) is counted with its reason and the run goes on: the monitor observes,
it never breaks a run.  Only what can be known before the load is bad input
(a PID with no process, a malformed URL): one line, exit 2.
"""

from __future__ import annotations

import base64
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loadgen.errors import InputError
from loadgen.schema import (
    HostSample,
    HostSummary,
    ProcessSample,
    ProcessSummary,
    ServerSample,
    ServerSummary,
)

#: A node-exporter page must answer well within the second it describes.
URL_TIMEOUT_S = 0.8
#: Distinct failure reasons kept per source (the counts stay exact).
MAX_REASONS = 5
#: A last sample is taken at the end only when the last second lasted at least this
#: long (``stats.aggregate.SLIVER_S``: a shorter one joins the second before it).
LAST_SAMPLE_MIN_S = 0.1
#: CPU modes that are not work (node exporter's ``mode`` label).
IDLE_MODES = frozenset({"idle", "iowait"})


class MonitorError(InputError):
    """A ``--monitor-*`` value that cannot be monitored: one line, exit 2, before any load."""


class SampleError(Exception):
    """One failed sample, with the reason counted in the summary."""


def check_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host (it is read, never loaded: any host)."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise MonitorError(f"--monitor-url {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MonitorError(f"--monitor-url {url!r}: not an http:// or https:// URL with a host")
    return url


def public_url(url: str) -> str:
    """The URL as results show it: no user, password or query (secrets never reach outputs)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# -- a process tree (psutil) -----------------------------------------------------------------


class ProcessSource:
    """A local process and its descendants, re-read at each sample.

    CPU time per process is user + system + its reaped children's: a child's time
    moves into its parent's ``children_*`` when it is waited for, so the tree's
    total stays continuous when a forked worker exits.  Processes are told apart by
    (pid, create time): a reused pid is a new process.
    """

    def __init__(self, pid: int) -> None:
        import psutil

        self.psutil = psutil
        self.pid = pid
        try:
            self.root = psutil.Process(pid)
            self.name = self.root.name()
            self.root.memory_info()
        except psutil.NoSuchProcess:
            raise MonitorError(f"--monitor-pid {pid}: no such process") from None
        except psutil.AccessDenied:
            raise MonitorError(f"--monitor-pid {pid}: not allowed to read that process") from None
        self.cpu_count = psutil.cpu_count() or 1
        self._cpu: dict[tuple[int, float], float] = {}   # (pid, created) -> CPU seconds
        self._at: float | None = None                    # monotonic time of the last read

    def sample(self, now: float) -> ProcessSample:
        psutil = self.psutil
        try:
            if not self.root.is_running():
                raise psutil.NoSuchProcess(self.pid)
            tree = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            raise SampleError(f"process {self.pid} is gone") from None
        except psutil.AccessDenied:
            raise SampleError(f"process {self.pid}: access denied") from None
        cpu: dict[tuple[int, float], float] = {}
        rss = threads = fds = connections = 0
        counted = 0
        for proc in tree:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    key = (proc.pid, proc.create_time())
                    cpu[key] = (times.user + times.system + times.children_user
                                + times.children_system)
                    rss += proc.memory_info().rss
                    threads += proc.num_threads()
                    fds += _fds(proc)
                connections += len(proc.net_connections(kind="inet"))
                counted += 1
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue   # a child that ended while the tree was read
            except psutil.AccessDenied:
                if proc is self.root:
                    raise SampleError(f"process {self.pid}: access denied") from None
                continue
        if not counted:
            raise SampleError(f"process {self.pid} is gone")
        busy = self._busy(cpu, now)
        self._cpu, self._at = cpu, now
        return {"cpu_percent": busy, "rss_bytes": rss, "threads": threads, "fds": fds,
                "connections": connections, "processes": counted}

    def _busy(self, cpu: Mapping[tuple[int, float], float], now: float) -> float | None:
        """The tree's CPU % (of one core) since the last read; None on the first."""
        if self._at is None or now <= self._at:
            return None
        started = time.time() - (now - self._at)   # the last read, on the wall clock
        used = 0.0
        for key, seconds in cpu.items():
            before = self._cpu.get(key)
            if before is not None:
                used += max(0.0, seconds - before)
            elif key[1] >= started - 0.01:
                used += seconds   # born since the last read: all its time is this second's
        return round(100.0 * used / (now - self._at), 1)

    def describe(self) -> dict[str, Any]:
        return {"pid": self.pid, "name": self.name, "cpu_count": self.cpu_count}


def _fds(proc: Any) -> int:
    try:
        return int(proc.num_fds())
    except AttributeError:   # Windows: handles, not descriptors
        return int(proc.num_handles())


# -- a node exporter (Prometheus text) -------------------------------------------------------


@dataclass
class HostReading:
    """The counters and gauges of one node-exporter page that the figures come from."""

    at: float                         # monotonic, the middle of the request
    cpu_busy_s: float = 0.0
    cpu_total_s: float = 0.0
    cpus: int = 0
    mem_total: float | None = None
    mem_available: float | None = None
    load1: float | None = None
    rx_bytes: float | None = None
    tx_bytes: float | None = None


def read_exporter(text: str, at: float) -> HostReading:
    """The figures' inputs from a node-exporter page; SampleError if it does not parse."""
    from prometheus_client.parser import text_string_to_metric_families

    reading = HostReading(at)
    cpus: set[str] = set()
    found_cpu = False
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name, labels, value = sample.name, sample.labels, float(sample.value)
                if name == "node_cpu_seconds_total":
                    found_cpu = True
                    cpus.add(labels.get("cpu", ""))
                    reading.cpu_total_s += value
                    if labels.get("mode") not in IDLE_MODES:
                        reading.cpu_busy_s += value
                elif name == "node_memory_MemTotal_bytes":
                    reading.mem_total = value
                elif name == "node_memory_MemAvailable_bytes":
                    reading.mem_available = value
                elif name == "node_load1":
                    reading.load1 = value
                elif name in ("node_network_receive_bytes_total",
                              "node_network_transmit_bytes_total"):
                    if labels.get("device") == "lo":
                        continue
                    key = "rx_bytes" if "receive" in name else "tx_bytes"
                    setattr(reading, key, (getattr(reading, key) or 0.0) + value)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise SampleError(f"cannot parse the metrics page ({exc})") from None
    if not found_cpu and reading.mem_total is None and reading.load1 is None:
        raise SampleError("no node-exporter metrics on the page")
    reading.cpus = len(cpus)
    return reading


def host_figures(before: HostReading | None, now: HostReading) -> HostSample:
    """One second's host figures: gauges as read, counters as rates since ``before``.

    CPU busy % is a ratio of the CPU-seconds counters (all CPUs: 100% = every core
    busy), so it does not depend on when exactly the page was read; network bytes/s
    divide by the time between the two reads.  A counter that went down (the
    exporter restarted) gives None for that second.
    """
    used = None
    if now.mem_total is not None and now.mem_available is not None:
        used = now.mem_total - now.mem_available
    sample: HostSample = {
        "cpu_percent": None,
        "cpus": now.cpus,
        "memory_used_bytes": int(used) if used is not None else None,
        "memory_used_percent": (round(100.0 * used / now.mem_total, 2)
                                if used is not None and now.mem_total else None),
        "load1": now.load1,
        "net_rx_bytes_per_s": None,
        "net_tx_bytes_per_s": None,
    }
    if before is None:
        return sample
    total = now.cpu_total_s - before.cpu_total_s
    busy = now.cpu_busy_s - before.cpu_busy_s
    if total > 0 and busy >= 0:
        sample["cpu_percent"] = round(100.0 * busy / total, 2)
    span = now.at - before.at
    for key, prev, cur in (("net_rx_bytes_per_s", before.rx_bytes, now.rx_bytes),
                           ("net_tx_bytes_per_s", before.tx_bytes, now.tx_bytes)):
        if span > 0 and prev is not None and cur is not None and cur >= prev:
            sample[key] = round((cur - prev) / span, 1)   # type: ignore[literal-required]
    return sample


class HostSource:
    """A node-exporter ``/metrics`` URL, read with a short timeout (userinfo: basic auth)."""

    def __init__(self, url: str) -> None:
        self.url = check_url(url)
        parts = urllib.parse.urlsplit(url)
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port:
            netloc += f":{parts.port}"
        self.fetch_url = urllib.parse.urlunsplit(
            (parts.scheme, netloc, parts.path or "/", parts.query, ""))
        self.headers = {"Accept": "text/plain;version=0.0.4"}
        if parts.username is not None:
            secret = f"{urllib.parse.unquote(parts.username)}:" \
                     f"{urllib.parse.unquote(parts.password or '')}"
            self.headers["Authorization"] = "Basic " + base64.b64encode(secret.encode()).decode()
        self._before: HostReading | None = None
        # no proxy: an exporter is read directly, whatever the environment says
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def sample(self, now: float) -> HostSample:
        sent = time.monotonic()
        try:
            request = urllib.request.Request(self.fetch_url, headers=self.headers)
            with self._opener.open(request, timeout=URL_TIMEOUT_S) as response:
                body = response.read(64 * 1024 * 1024)
        except urllib.error.HTTPError as exc:
            raise SampleError(f"HTTP {exc.code} from the metrics URL") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SampleError(f"cannot read the metrics URL: {reason}") from None
        at = (sent + time.monotonic()) / 2.0
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise SampleError("the metrics page is not UTF-8") from None
        reading = read_exporter(text, at)
        figures = host_figures(self._before, reading)
        self._before = reading
        return figures

    def describe(self) -> dict[str, Any]:
        return {"url": public_url(self.url)}


# -- the sampling thread ---------------------------------------------------------------------


@dataclass
class _Tally:
    """One source's sample counts and failure reasons."""

    samples: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        self.failed += 1
        if reason in self.reasons or len(self.reasons) < MAX_REASONS:
            self.reasons[reason] = self.reasons.get(reason, 0) + 1


class Monitor:
    """A local PID and/or a node-exporter URL, checked now (bad input before any load),
    sampled in ``session``s: one per run (a capacity search has one per step)."""

    def __init__(self, pid: int | None, url: str | None) -> None:
        self.pid, self.url = pid, url
        if url is not None:
            check_url(url)
        if pid is not None:
            ProcessSource(pid)   # raises MonitorError now, not mid-run

    def session(self) -> Sampler:
        process = ProcessSource(self.pid) if self.pid is not None else None
        host = HostSource(self.url) if self.url is not None else None
        return Sampler(process, host)


def open_monitor(pid: int | None, url: str | None) -> Monitor | None:
    """The monitor the options ask for (None without ``--monitor-*``); MonitorError: exit 2."""
    return Monitor(pid, url) if pid is not None or url is not None else None


class Sampler:
    """Samples the sources on the run's schedule in a thread: ``begin(wall_start)`` (the
    collector's start), ``stop(run_s)`` (the load is over), then ``samples()`` and
    ``summary()``.

    Sample ``n`` (1-based) is read at ``wall_start + n`` and belongs to the run's
    second ``n``; a reading at ``wall_start`` is the baseline of the rates.  A
    second missed because a read was slow is skipped, not read late.
    """

    def __init__(self, process: ProcessSource | None, host: HostSource | None) -> None:
        self.process = process
        self.host = host
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._by_second: dict[int, ServerSample] = {}
        self._tallies = {"process": _Tally(), "host": _Tally()}
        self._start = 0.0      # monotonic time of the run's start
        self._last = 0         # the last second sampled (or skipped)

    def begin(self, wall_start: float) -> None:
        """Start sampling the run that starts at ``wall_start`` (``time.time()`` clock)."""
        if self._thread is not None:
            return
        self._start = time.monotonic() + (wall_start - time.time())
        self._thread = threading.Thread(target=self._loop, name="loadgen-monitor", daemon=True)
        self._thread.start()

    def stop(self, run_s: float | None = None) -> None:
        """Stop the thread.  ``run_s``: how long the load lasted (the slowest worker's
        elapsed time); its last, partial second gets a last sample, unless it is a sliver
        the aggregate folds into the second before (``stats.aggregate.SLIVER_S``)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        if run_s is None:
            return
        second = math.ceil(run_s - 1e-9)
        if second > self._last and run_s - (second - 1) >= LAST_SAMPLE_MIN_S:
            self._sample(second, time.monotonic())

    def _loop(self) -> None:
        if self._stop.wait(max(0.0, self._start - time.monotonic())):
            return
        self._baseline(time.monotonic())
        while True:
            n = max(self._last + 1, math.floor(time.monotonic() - self._start) + 1)
            self._missed(range(self._last + 1, n))
            if self._stop.wait(max(0.0, self._start + n - time.monotonic())):
                return
            self._sample(n, time.monotonic())

    def _missed(self, seconds: range) -> None:
        """Seconds skipped because the reads before them took over a second: failed
        samples (a gap in the series), so "57 of 60" counts every second of the run."""
        for n in seconds:
            sample: ServerSample = {}
            with self._lock:
                for name, source in (("process", self.process), ("host", self.host)):
                    if source is not None:
                        sample[name] = None  # type: ignore[literal-required]
                        self._tallies[name].fail("missed: the reads took over a second")
                self._by_second[n] = sample
                self._last = n

    def _baseline(self, now: float) -> None:
        """The readings the first second's rates start from (failures are not counted:
        the first second's own sample says whether the source answers)."""
        for source in (self.process, self.host):
            if source is not None:
                try:
                    source.sample(now)
                except SampleError:
                    pass

    def _sample(self, n: int, now: float) -> None:
        sample: ServerSample = {}
        if self.process is not None:
            sample["process"] = self._read("process", self.process, now)
        if self.host is not None:
            sample["host"] = self._read("host", self.host, now)
        with self._lock:
            self._by_second[n] = sample
            self._last = n

    def _read(self, name: str, source: ProcessSource | HostSource, now: float) -> Any:
        tally = self._tallies[name]
        try:
            figures = source.sample(now)
        except SampleError as exc:
            reason: str | None = str(exc)
        except Exception as exc:   # noqa: BLE001  a monitor never breaks a run
            reason = f"{type(exc).__name__}: {exc}"
        else:
            reason = None
        with self._lock:   # summary() reads the tallies from the run's thread
            if reason is not None:
                tally.fail(reason)
                return None
            tally.samples += 1
        return figures

    def samples(self) -> dict[int, ServerSample]:
        """The samples so far, by the run's second (1-based)."""
        with self._lock:
            return dict(self._by_second)

    def summary(self) -> ServerSummary:
        """The run-level figures: peaks and means of each source, samples and failures."""
        with self._lock:
            samples = list(self._by_second.values())
            tallies = {name: _Tally(t.samples, t.failed, dict(t.reasons))
                       for name, t in self._tallies.items()}
        summary: ServerSummary = {}
        if self.process is not None:
            summary["process"] = process_summary(
                self.process.describe(), [s.get("process") for s in samples],
                tallies["process"])
        if self.host is not None:
            summary["host"] = host_summary(
                self.host.describe(), [s.get("host") for s in samples], tallies["host"])
        return summary


def _peak(values: Iterable[float | int | None]) -> Any:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _mean(values: Iterable[float | int | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 2) if present else None


def _counts(tally: _Tally) -> dict[str, Any]:
    return {"samples": tally.samples, "failed": tally.failed, "failures": dict(tally.reasons)}


def process_summary(about: Mapping[str, Any], samples: list[ProcessSample | None],
                    tally: _Tally) -> ProcessSummary:
    ok = [s for s in samples if s is not None]
    return {
        "pid": about["pid"], "name": about["name"], "cpu_count": about["cpu_count"],
        **_counts(tally),  # type: ignore[typeddict-item]
        "cpu_percent_max": _peak(s["cpu_percent"] for s in ok),
        "cpu_percent_mean": _mean(s["cpu_percent"] for s in ok),
        "rss_bytes_max": _peak(s["rss_bytes"] for s in ok),
        "threads_max": _peak(s["threads"] for s in ok),
        "fds_max": _peak(s["fds"] for s in ok),
        "connections_max": _peak(s["connections"] for s in ok),
        "processes_max": _peak(s["processes"] for s in ok),
    }


def host_summary(about: Mapping[str, Any], samples: list[HostSample | None],
                 tally: _Tally) -> HostSummary:
    ok = [s for s in samples if s is not None]
    return {
        "url": about["url"], "cpus": _peak(s["cpus"] for s in ok),
        **_counts(tally),  # type: ignore[typeddict-item]
        "cpu_percent_max": _peak(s["cpu_percent"] for s in ok),
        "cpu_percent_mean": _mean(s["cpu_percent"] for s in ok),
        "memory_used_bytes_max": _peak(s["memory_used_bytes"] for s in ok),
        "memory_used_percent_max": _peak(s["memory_used_percent"] for s in ok),
        "load1_max": _peak(s["load1"] for s in ok),
        "net_rx_bytes_per_s_max": _peak(s["net_rx_bytes_per_s"] for s in ok),
        "net_tx_bytes_per_s_max": _peak(s["net_tx_bytes_per_s"] for s in ok),
    }
