"""When each request of the open model is meant to leave: an absolute schedule.

The whole run is one global stream: request ``k`` is due when the cumulative
number of requests the rate profile allows reaches ``k``.  Worker ``w`` of
``W`` takes every ``W``-th request starting at ``w``, so the merged stream is
even (phase-shifted workers) and no worker's timer drift accumulates: every
send time is computed from the start, never by adding sleeps.

Pure standard library: it travels to worker processes inside their plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from loadgen.config.model import ConfigError, StageDescription
from loadgen.config.stages import MAX_RATE, StageSpec  # parsed there, built into a schedule here


@dataclass(frozen=True)
class Stage:
    """A linear ramp from ``start_rate`` to ``end_rate`` requests/s over ``duration_s``."""

    duration_s: float
    start_rate: float
    end_rate: float

    @property
    def count(self) -> float:
        """Requests this stage allows (the area under its rate line)."""
        return (self.start_rate + self.end_rate) / 2.0 * self.duration_s

    def time_of(self, m: float) -> float:
        """Seconds into the stage at which ``m`` requests have become due."""
        if m <= 0:
            return 0.0
        r0, r1, d = self.start_rate, self.end_rate, self.duration_s
        a = (r1 - r0) / (2.0 * d)  # cumulative(t) = r0*t + a*t^2
        if abs(a) < 1e-12:
            return m / r0
        # the root of a*t^2 + r0*t - m = 0 that is stable for small a
        return 2.0 * m / (r0 + math.sqrt(max(0.0, r0 * r0 + 4.0 * a * m)))


@dataclass(frozen=True)
class Schedule:
    """A rate profile: stages run back to back; ``None`` duration on the last = open-ended."""

    stages: tuple[Stage, ...]
    open_ended_rate: float | None = None   # constant rate after the stages, until stopped

    def time_of(self, k: int) -> float | None:
        """Seconds after the start when global request ``k`` is due; None once past the end."""
        elapsed, m = 0.0, float(k)
        for stage in self.stages:
            count = stage.count
            if m < count:
                return elapsed + stage.time_of(m)
            m -= count
            elapsed += stage.duration_s
        if self.open_ended_rate:
            return elapsed + m / self.open_ended_rate
        return None

    def describe(self) -> list[StageDescription]:
        """Each stage as a ramp, then the open-ended rate as a stage without a duration."""
        stages: list[StageDescription] = [
            {"duration_s": s.duration_s, "start_rate": s.start_rate, "end_rate": s.end_rate}
            for s in self.stages]
        if self.open_ended_rate:
            stages.append({"duration_s": None, "start_rate": self.open_ended_rate,
                           "end_rate": self.open_ended_rate})
        return stages


def build_schedule(rate: float | None, stages: list[StageSpec] | tuple[StageSpec, ...],
                   duration_s: float | None) -> Schedule:
    """The schedule for ``--rate`` and/or ``--stage``; stages ramp from the previous rate.

    The first stage ramps from ``--rate`` if given, else from 0.  A plain
    ``--rate`` runs for ``--duration``, or open-ended until ``--requests`` are sent.
    """
    if rate is not None and not 0 < rate <= MAX_RATE:   # also refuses nan and inf
        raise ConfigError(f"--rate: must be greater than zero and at most {MAX_RATE:,.0f}")
    if stages:
        previous, built = rate or 0.0, []
        for duration, target in stages:
            built.append(Stage(duration, previous, target))
            previous = target
        if all(s.count == 0 for s in built):
            raise ConfigError("--stage: every stage has rate 0: nothing would be sent")
        return Schedule(tuple(built))
    assert rate is not None
    if duration_s is not None:
        return Schedule((Stage(duration_s, rate, rate),))
    return Schedule((), open_ended_rate=rate)
