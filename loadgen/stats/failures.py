"""One meaning of "failure" for everything that reads a results document.

A failure is a request that did not succeed (no 2xx response).  It has two
causes, kept apart because they point at different culprits: a non-2xx
*status* (the server answered, and said no) and a transport *kind* (no HTTP
response at all: connect, timeout, write, read, protocol).  The report, the
progress line, the thresholds and the charts all read failures through this
module, so the word cannot drift back to meaning three different counts.

A third cause, ``check`` (a kind, counted in ``failures_by_kind``): the server
answered with a status in the success set, but the body failed one of the
endpoint's ``expect`` checks (``body_contains``, ``json``); which checks failed,
how often, is the endpoint's ``checks_failed``.  A fourth, ``extract``: a journey
step's response in the success set from which an ``extract`` rule found nothing
usable (the reason is counted in ``checks_failed`` too, so the report says why).

Documents written before this vocabulary (``errors`` for the transport kinds,
intervals with only ``errors``) are still read: the by-status split is then
computed from ``status_codes``, which has always held every response's status.
Pure and standard-library only, like ``report``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The failure kind of a response that failed an ``expect`` check (not a transport kind).
CHECK = "check"
#: The failure kind of a journey step whose extraction found nothing usable.
EXTRACT = "extract"
#: Every failure kind, in the order the report lists them: no response, then the answers
#: that failed a check or an extraction.
FAILURE_KINDS = ("connect", "timeout", "write", "read", "protocol", CHECK, EXTRACT)


def checks_failed(block: Mapping[str, Any]) -> dict[str, int]:
    """How often each named check failed (``checks_failed``; absent: none, or no checks)."""
    return _counts(block.get("checks_failed"))


def checks_rate(block: Mapping[str, Any]) -> float | None:
    """The share of checked responses that passed every check; None when nothing was checked.

    ``checked`` counts the responses of endpoints with checks whose status was in the
    success set (the ones whose body was checked); each failed at most one check.
    """
    checked = block.get("checked")
    if not isinstance(checked, int) or isinstance(checked, bool) or checked <= 0:
        return None
    failed = sum(checks_failed(block).values())
    return max(0, checked - failed) / checked


def is_success_status(code: str | int) -> bool:
    """2xx is success; anything else the server answered with is a failure by status."""
    text = str(code)
    return text.isdigit() and 200 <= int(text) < 300


def _counts(value: Any) -> dict[str, int]:
    """A {name: count} map with the zero entries dropped (old files listed every kind)."""
    if not isinstance(value, dict):
        return {}
    return {str(k): n for k, n in value.items() if isinstance(n, int) and n}


def failures_by_status(block: Mapping[str, Any]) -> dict[str, int]:
    """Non-2xx responses by status code, from ``failures_by_status`` or else ``status_codes``."""
    if "failures_by_status" in block:
        return _counts(block["failures_by_status"])
    return {code: n for code, n in _counts(block.get("status_codes")).items()
            if not is_success_status(code)}


def failures_by_kind(block: Mapping[str, Any]) -> dict[str, int]:
    """Requests without an HTTP response, by kind; old documents called this ``errors``."""
    if "failures_by_kind" in block:
        return _counts(block["failures_by_kind"])
    return _counts(block.get("errors"))


def failure_count(block: Mapping[str, Any]) -> int:
    """Requests that did not succeed: ``failures``, else requests - successes, else the splits."""
    failures = block.get("failures")
    if isinstance(failures, int) and not isinstance(failures, bool):
        return failures
    requests, successes = block.get("requests"), block.get("successes")
    if isinstance(requests, int) and isinstance(successes, int):
        return max(0, requests - successes)
    return sum(failures_by_status(block).values()) + sum(failures_by_kind(block).values())


def interval_counts(interval: Mapping[str, Any]) -> tuple[int, int]:
    """(successes, failures) of one per-second interval.

    New intervals carry both.  Old ones only have ``errors`` (transport
    failures only, as non-2xx responses were not counted per second), so for
    them this undercounts failures: it is the best an old file can say.
    """
    requests = interval.get("requests") or 0
    failures = interval.get("failures")
    if failures is None:
        failures = interval.get("errors") or 0
    successes = interval.get("successes")
    if successes is None:
        successes = max(0, requests - failures)
    return successes, failures


def share_text(part: int, whole: int, decimals: int = 2) -> str:
    """``part / whole`` in percent ("0.14%"); "-" when there is no whole."""
    return percent_text(part / whole, decimals) if whole > 0 else "-"


def percent_text(fraction: float, decimals: int = 2) -> str:
    """A 0..1 fraction in percent, never rounded to a misleading 0% or 100%.

    A run with 3 failures in a million has not "0.00%" failures nor "100.00%"
    success: those are exactly the two figures people act on, so a value that
    would round to them says "<0.01%" or ">99.99%" instead.
    """
    text = f"{100.0 * fraction:.{decimals}f}"
    step = 10.0 ** -decimals
    if fraction > 0 and float(text) == 0.0:
        return f"<{step:.{decimals}f}%"
    if fraction < 1 and float(text) == 100.0:
        return f">{100.0 - step:.{decimals}f}%"
    return text + "%"
