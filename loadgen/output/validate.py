"""Check the shape of a results document read from a file, before anything renders it.

Everything a user can hand ``loadgen report`` or ``loadgen compare`` is
untrusted: a file from another tool, a run still being written, a hand-edited
document.  Each such case ends as one line (``ResultsError``, exit 2); a
traceback would suggest a bug in loadgen when the problem is the file.  The
shapes checked are those of ``loadgen.schema``, old files' keys included.
"""

from __future__ import annotations

from typing import Any

from loadgen.output.results import ResultsError
from loadgen.output.server import sample_problem, summary_problem

#: Keys of an S block the renderers read as numbers (or null).
NUMERIC_BLOCK_KEYS = ("requests", "successes", "failures", "rps", "duration_s", "success_rate",
                      "checked")
#: Latency blocks of an S block: objects of numbers (or null).  ``success_latency_ms`` is
#: absent from files written before failures were split from successes.
LATENCY_BLOCK_KEYS = ("latency_ms", "success_latency_ms", "service_time_ms")
#: Count maps of an S block.  ``errors`` is the old name of ``failures_by_kind``; old files
#: have no ``failures_by_status`` (the reader derives it from ``status_codes``).
COUNT_BLOCK_KEYS = ("status_codes", "failures_by_status", "failures_by_kind", "errors",
                    "checks_failed")
#: Numbers of an interval, old and new: old files have ``errors`` (transport failures only),
#: new ones ``successes``, ``failures`` and ``length_s``.
NUMERIC_INTERVAL_KEYS = ("requests", "successes", "failures", "errors", "rps", "length_s",
                         "users", "iterations")
#: Counts of a journey's ``iterations`` (``journeys``: journey runs only).
ITERATION_COUNT_KEYS = ("total", "successes", "failures", "cut", "latency_overflow")


def check_document(doc: dict[str, Any], path: str, charts: bool) -> None:
    """Raise ResultsError when the parts the renderers read have the wrong shape.

    ``read_document`` checks the schema tag and the top-level keys; this goes
    one level down (types of blocks, numbers, histogram payloads), because a
    document can be hand-edited or written by something imitating loadgen.
    Histograms are decoded only when charts will be drawn: the table never
    reads them, so a damaged one should not stop it.
    """
    problem = _shape_problem(doc) or (_histogram_problem(doc) if charts else None)
    if problem:
        raise ResultsError(f"{path} is not a valid loadgen results file: {problem}")


def _shape_problem(doc: dict[str, Any]) -> str | None:
    """The first structural problem found, as words for the user; None when sound."""
    for key, kind in (("config", dict), ("generator", dict), ("problems", list),
                      ("intervals", list), ("service_histograms", dict),
                      ("phase_histograms", dict), ("journeys", list),
                      ("journey_histograms", dict)):
        if doc.get(key) is not None and not isinstance(doc[key], kind):
            return f"{key!r} is not {'an object' if kind is dict else 'a list'}"
    if not isinstance(doc["status"], str):
        return "'status' is not a string"
    if not isinstance(doc["histograms"], dict):
        return "'histograms' is not an object"
    if not isinstance(doc["endpoints"], list):
        return "'endpoints' is not a list"
    blocks = [("summary", doc["summary"])]
    blocks += [(f"endpoints[{i}]", e) for i, e in enumerate(doc["endpoints"])]
    for where, block in blocks:
        problem = _block_problem(block)
        if problem:
            return f"{where}: {problem}"
    problem = _phases_problem(doc["summary"].get("phases_ms"))
    if problem:
        return f"summary: {problem}"
    for i, interval in enumerate(doc.get("intervals") or []):
        if not isinstance(interval, dict) or not _is_number(interval.get("t")):
            return f"intervals[{i}] has no time 't'"
        problem = _interval_problem(interval)
        if problem:
            return f"intervals[{i}]: {problem}"
    return (_config_problem(doc.get("config") or {}) or _generator_problem(doc.get("generator"))
            or _auth_problem(doc.get("auth")) or _journeys_problem(doc.get("journeys"))
            or summary_problem(doc.get("server")))


def _journeys_problem(journeys: list[Any] | None) -> str | None:
    """``journeys`` (journey runs only; absent from endpoint runs and older files)."""
    for i, journey in enumerate(journeys or []):
        problem = _journey_problem(journey)
        if problem:
            return f"journeys[{i}]: {problem}"
    return None


def _journey_problem(journey: Any) -> str | None:
    if not isinstance(journey, dict):
        return "not an object"
    if not isinstance(journey.get("name"), str):
        return "'name' is not a string"
    if journey.get("weight") is not None and not _is_number(journey["weight"]):
        return "'weight' is not a number"
    for key in ("on_start", "steps"):
        rows = journey.get(key)
        if rows is not None and not (isinstance(rows, list)
                                     and all(isinstance(r, str) for r in rows)):
            return f"{key!r} is not a list of row names"
    figures = journey.get("iterations")
    if not isinstance(figures, dict):
        return "'iterations' is not an object"
    for key in ITERATION_COUNT_KEYS:
        if figures.get(key) is not None and not _is_int(figures[key]):
            return f"iterations {key!r} is not an integer"
    if figures.get("per_second") is not None and not _is_number(figures["per_second"]):
        return "iterations 'per_second' is not a number"
    latency = figures.get("latency_ms")
    if latency is not None and not _numbers_or_null(latency):
        return "iterations 'latency_ms' is not an object of numbers"
    failed_at = figures.get("failed_at")
    if failed_at is not None and not (isinstance(failed_at, dict)
                                      and all(_is_int(n) for n in failed_at.values())):
        return "iterations 'failed_at' is not an object of counts"
    return None


#: Counts of the ``auth`` block (absent from runs without --auth and from older files).
AUTH_COUNT_KEYS = ("logins", "renewed_before_expiry", "renewed_after_401", "failed")


def _auth_problem(auth: Any) -> str | None:
    if auth is None:
        return None
    if not isinstance(auth, dict):
        return "'auth' is not an object"
    for key in AUTH_COUNT_KEYS:
        if auth.get(key) is not None and not _is_int(auth[key]):
            return f"auth {key!r} is not an integer"
    problems = auth.get("problems")
    if problems is not None and not (isinstance(problems, list)
                                     and all(isinstance(p, str) for p in problems)):
        return "auth 'problems' is not a list of strings"
    return None


def _interval_problem(interval: dict[str, Any]) -> str | None:
    """What is wrong with one interval beyond its time 't' (old and new keys accepted)."""
    if not _numbers_or_null(interval.get("latency_ms") or {}):
        return "'latency_ms' holds a non-number"
    for key in NUMERIC_INTERVAL_KEYS:
        if interval.get(key) is not None and not _is_number(interval[key]):
            return f"{key!r} is not a number"
    if interval.get("partial") is not None and not isinstance(interval["partial"], bool):
        return "'partial' is not true or false"
    if interval.get("start") is not None and not isinstance(interval["start"], str):
        return "'start' is not a string"
    if "server" in interval:   # --monitor-* only
        return sample_problem(interval["server"])
    return None


def _config_problem(config: dict[str, Any]) -> str | None:
    """The parts of 'config' that are formatted as numbers (the schedule, the concurrency)."""
    if config.get("concurrency") is not None and not _is_int(config["concurrency"]):
        return "config 'concurrency' is not an integer"
    schedule = config.get("schedule")
    if schedule is None:
        return None
    if not isinstance(schedule, list) or not all(
            isinstance(stage, dict) and _is_number(stage.get("start_rate"))
            and _is_number(stage.get("end_rate"))
            and _numbers_or_null({"duration_s": stage.get("duration_s")})
            for stage in schedule):
        return "config 'schedule' is not a list of stages with numbers"
    return None


def _generator_problem(generator: Any) -> str | None:
    if not isinstance(generator, dict):
        return None
    if not _numbers_or_null(generator.get("lateness_ms") or {}):
        return "generator 'lateness_ms' is not an object of numbers"
    reasons = generator.get("reasons")
    if reasons is not None and not (isinstance(reasons, list)
                                    and all(isinstance(r, str) for r in reasons)):
        return "generator 'reasons' is not a list of strings"
    return None


def _block_problem(block: Any) -> str | None:
    """What is wrong with one S block (summary or endpoint entry), if anything."""
    if not isinstance(block, dict):
        return "not an object"
    for key in NUMERIC_BLOCK_KEYS:
        if block.get(key) is not None and not _is_number(block[key]):
            return f"{key!r} is not a number"
    for key in LATENCY_BLOCK_KEYS:
        value = block.get(key)
        if value is not None and not (isinstance(value, dict) and _numbers_or_null(value)):
            return f"{key!r} is not an object of numbers"
    for key in COUNT_BLOCK_KEYS:
        value = block.get(key)
        if value is not None and not (isinstance(value, dict)
                                      and all(_is_int(n) for n in value.values())):
            return f"{key!r} is not an object of counts"
    return None


def _phases_problem(phases: Any) -> str | None:
    """``phases_ms`` (absent from files written before phases): {phase: {figures}}."""
    if phases is None:
        return None
    if not (isinstance(phases, dict)
            and all(isinstance(figures, dict) and _numbers_or_null(figures)
                    for figures in phases.values())):
        return "'phases_ms' is not an object of phases with numbers"
    return None


def _histogram_problem(doc: dict[str, Any]) -> str | None:
    """Decode every histogram once, so a damaged payload is reported by name, not as
    a traceback from the HDR decoder halfway through drawing."""
    from loadgen.stats.metrics import decode_histogram

    for key in ("histograms", "service_histograms", "phase_histograms", "journey_histograms"):
        for name, encoded in (doc.get(key) or {}).items():
            if not isinstance(encoded, str):
                return f"{key}[{name!r}] is not a string"
            try:
                decode_histogram(encoded)
            except Exception:  # noqa: BLE001 - binascii, zlib, struct, Hdr...: all mean damaged
                return f"{key}[{name!r}] is not a valid HDR histogram"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _numbers_or_null(values: Any) -> bool:
    return isinstance(values, dict) and all(v is None or _is_number(v) for v in values.values())
