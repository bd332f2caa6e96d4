"""The server's resources (``--monitor-pid`` / ``--monitor-url``) as the report shows them.

The document carries them twice (``engine.monitor`` samples, ``output.results``
places them): each interval's ``server`` and the run's ``server`` summary.
This module turns them into the table's "Server:" lines and the series the
chart plots, from the document alone, so ``loadgen report`` shows a saved run
exactly as it was shown live.  Documents without ``server`` show nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from loadgen.output.table import format_number

BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_bytes(value: float | None) -> str:
    """``123.4 MiB``: memory in binary units, about three significant digits."""
    if value is None or not math.isfinite(value):
        return "-"
    size, unit = float(value), BYTE_UNITS[0]
    for unit in BYTE_UNITS:
        if abs(size) < 1024 or unit == BYTE_UNITS[-1]:
            break
        size /= 1024
    return f"{format_number(size, thousands=True)} {unit}"


def _pct(value: Any) -> str:
    return f"{value:,.1f}%" if isinstance(value, (int, float)) else "-"


def server_lines(server: Mapping[str, Any] | None) -> list[str]:
    """``Server: CPU peak 87% ...`` per source, then the failed samples, if any."""
    if not isinstance(server, Mapping):
        return []
    lines: list[str] = []
    process, host = server.get("process"), server.get("host")
    if isinstance(process, Mapping):
        lines.append(
            f"Server: CPU peak {_pct(process.get('cpu_percent_max'))} "
            f"(mean {_pct(process.get('cpu_percent_mean'))}; 100% = one core of "
            f"{process.get('cpu_count', '?')}), RSS peak "
            f"{format_bytes(process.get('rss_bytes_max'))}, "
            f"{_count(process.get('threads_max'), 'thread')}, "
            f"{_count(process.get('connections_max'), 'connection')} "
            f"(pid {process.get('pid', '?')} {process.get('name', '')}, "
            f"{_count(process.get('processes_max'), 'process')})")
    if isinstance(host, Mapping):
        cpus = host.get("cpus")
        parts = [(f"CPU peak {_pct(host.get('cpu_percent_max'))} of "
                  f"{_count(cpus, 'CPU') if cpus else '? CPUs'} "
                  f"(mean {_pct(host.get('cpu_percent_mean'))})"),
                 (f"memory peak {format_bytes(host.get('memory_used_bytes_max'))} "
                  f"({_pct(host.get('memory_used_percent_max'))})")]
        if host.get("load1_max") is not None:
            parts.append(f"load1 peak {format_number(host['load1_max'])}")
        if host.get("net_rx_bytes_per_s_max") is not None:
            parts.append(f"network peak in {format_bytes(host['net_rx_bytes_per_s_max'])}/s, "
                         f"out {format_bytes(host.get('net_tx_bytes_per_s_max'))}/s")
        lines.append(f"Server host: {', '.join(parts)} ({host.get('url', '?')})")
    for name, source in (("process", process), ("host", host)):
        if isinstance(source, Mapping) and source.get("failed"):
            lines.append(samples_line(name, source))
    return lines


def samples_line(name: str, source: Mapping[str, Any]) -> str:
    """``Server samples (process): 57 of 60, 3 failed: process 123 is gone × 3``."""
    ok, failed = _int(source.get("samples")), _int(source.get("failed"))
    reasons = source.get("failures") or {}
    why = "; ".join(f"{reason} × {count:,}" for reason, count in reasons.items()
                    if isinstance(count, int))
    return (f"Server samples ({name}): {ok:,} of {ok + failed:,}, {failed:,} failed"
            + (f": {why}" if why else ""))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _count(value: Any, noun: str) -> str:
    """``1 thread``, ``11 connections``, ``2 processes``; ``- threads`` when unknown."""
    plural = noun + ("es" if noun.endswith("s") else "s")
    if not isinstance(value, int):
        return f"- {plural}"
    return f"{value:,} {noun if value == 1 else plural}"


def has_server(intervals: Sequence[Mapping[str, Any]]) -> bool:
    """Does any plotted second carry a server sample?"""
    return any(isinstance(i.get("server"), Mapping) for i in intervals)


def cpu_series(intervals: Sequence[Mapping[str, Any]], source: str) -> list[float]:
    """One source's CPU % per interval; NaN (a gap) where it was not sampled or failed."""
    values = []
    for interval in intervals:
        sample = (interval.get("server") or {}).get(source)
        value = sample.get("cpu_percent") if isinstance(sample, Mapping) else None
        values.append(float(value) if isinstance(value, (int, float)) else math.nan)
    return values


def sample_series(intervals: Sequence[Mapping[str, Any]], source: str, key: str) -> list[float]:
    """One source's ``key`` (``rss_bytes``, ``memory_used_bytes``, ...) per interval; NaN (a
    gap) where it was not sampled or failed, as ``cpu_series``."""
    values = []
    for interval in intervals:
        sample = (interval.get("server") or {}).get(source)
        value = sample.get(key) if isinstance(sample, Mapping) else None
        values.append(float(value) if isinstance(value, (int, float)) else math.nan)
    return values


#: The text fields of a source's summary; every other field is a number or null.
TEXT_FIELDS = frozenset({"name", "url"})


def sample_problem(sample: Any) -> str | None:
    """What is wrong with an interval's ``server`` (``output.validate``), else None."""
    if not isinstance(sample, Mapping):
        return "'server' is not an object"
    for source, figures in sample.items():
        if figures is None:
            continue   # that second's sample failed
        if not isinstance(figures, Mapping) or not all(
                v is None or _is_number(v) for v in figures.values()):
            return f"server {source!r} is not an object of numbers"
    return None


def summary_problem(server: Any) -> str | None:
    """What is wrong with the document's ``server`` summary (``output.validate``), else None."""
    if server is None:
        return None
    if not isinstance(server, Mapping):
        return "'server' is not an object"
    for source, figures in server.items():
        if not isinstance(figures, Mapping):
            return f"server {source!r} is not an object"
        for key, value in figures.items():
            if key == "failures":
                if not isinstance(value, Mapping) or not all(
                        isinstance(k, str) and _int(v) == v for k, v in value.items()):
                    return f"server {source!r} 'failures' is not counts by reason"
            elif key in TEXT_FIELDS:
                if not isinstance(value, str):
                    return f"server {source!r} {key!r} is not a string"
            elif value is not None and not _is_number(value):
                return f"server {source!r} {key!r} is not a number"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
