"""``--stage DURATION:RATE`` and ``--user-stage DURATION:USERS`` (and a scenario's
``stages`` / ``user_stages``) parsed into typed stages.

Here rather than in ``engine.schedule`` so that ``config`` validates what the
user typed without importing the engine; the engine builds its send schedule
from these values (``engine.schedule.build_schedule``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from loadgen.config.model import ConfigError, parse_duration

#: Requests per second across all workers.  Far beyond what one machine's workers can send;
#: above it a typo (or inf) would fill the dispatch queue faster than anything drains it.
MAX_RATE = 10_000_000.0
#: Users across all workers.  Each is a greenlet and a connection: beyond this a typo, not a plan.
MAX_USERS = 1_000_000


class StageSpec(NamedTuple):
    """One ``--stage``: ramp linearly to ``rate`` requests/s over ``duration_s`` seconds."""

    duration_s: float
    rate: float


def parse_stage(text: str) -> StageSpec:
    """'30s:100' -> StageSpec(30.0, 100.0)."""
    duration, sep, rate = text.partition(":")
    if not sep:
        raise ConfigError(f"--stage: {text!r} is not DURATION:RATE (e.g. 30s:100)")
    try:
        value = float(rate)
    except ValueError:
        raise ConfigError(f"--stage: {rate!r} in {text!r} is not a rate") from None
    value = check_stage_rate(value, text)   # the rate first, as it always was
    return StageSpec(parse_duration(duration, "--stage"), value)


def check_stage_rate(rate: float, shown: str) -> float:
    """A stage's target rate: zero or more, finite, at most MAX_RATE; ``shown`` names the stage
    in the message (``--stage``'s text, or a scenario table's ``duration:rate``)."""
    if rate < 0 or not math.isfinite(rate):
        raise ConfigError(f"--stage: rate must be zero or more in {shown!r}")
    if rate > MAX_RATE:
        raise ConfigError(f"--stage: rate above {MAX_RATE:,.0f} req/s in {shown!r}")
    return rate


def parse_user_stage(text: str) -> tuple[float, int]:
    """'30s:100' -> (30.0, 100)."""
    duration, sep, users = text.partition(":")
    if not sep:
        raise ConfigError(f"--user-stage: {text!r} is not DURATION:USERS (e.g. 30s:100)")
    value = users.strip()
    if not value.isascii() or not value.isdigit():
        raise ConfigError(f"--user-stage: users must be a whole number, zero or more, "
                          f"in {text!r}")
    if int(value) > MAX_USERS:
        raise ConfigError(f"--user-stage: more than {MAX_USERS:,} users in {text!r}")
    return parse_duration(duration, "--user-stage"), int(value)
