"""How many virtual users run over time, in the closed model: ``--user-stage``.

A user schedule is stages run back to back, each a straight line from the
previous count to its own over its duration (k6's ramping-vus, locust's
``-u``/``-r``).  Users are whole, so the count follows the line in steps: it
*becomes* ``n`` at the moment the line reaches ``n``.  Ramping up that is the
floor of the line, ramping down its ceiling: the count never runs ahead of the
line (0 -> 6 over 2 s adds a user every 1/3 s, the sixth at 2 s; 6 -> 0 over
1 s removes one every 1/6 s, the last at 1 s).

Users have global indices; at any time users ``0 .. N(t)-1`` are active, so
a ramp up starts the next index and a ramp down stops the highest one.  Worker
``w`` of ``W`` owns the users ``u`` with ``u % W == w``: summed over workers,
the active count is exactly ``N(t)`` at every instant, and each worker reads
the times of its own changes from the same pure function of the start time,
without talking to the others (on Dask nodes too).

Pure standard library: it travels to worker processes inside their plan.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from loadgen.config.model import ConfigError

#: One stage as the results document records it (``config.user_stages``).
UserStageDescription = dict[str, float | int]


@dataclass(frozen=True)
class UserStage:
    """A straight line from ``start_users`` to ``end_users`` over ``duration_s``."""

    duration_s: float
    start_users: int
    end_users: int

    def users_at(self, t: float) -> int:
        """Active users ``t`` seconds into the stage: the last whole count the line reached."""
        a, b, d = self.start_users, self.end_users, self.duration_s
        if t <= 0 or a == b:
            return a
        if t >= d:
            return b
        line = a + (b - a) * t / d
        return math.floor(line) if b > a else math.ceil(line)

    def time_of(self, n: int) -> float:
        """Seconds into the stage at which the count becomes ``n`` (between the ends)."""
        a, b = self.start_users, self.end_users
        return self.duration_s * (n - a) / (b - a)


@dataclass(frozen=True)
class UserSchedule:
    """Users over time: ``start_users`` at the start, then each stage in turn."""

    start_users: int
    stages: tuple[UserStage, ...]

    @property
    def duration_s(self) -> float:
        """The run's length: the stages end it (as ``--stage`` does in the open model)."""
        return sum(s.duration_s for s in self.stages)

    @property
    def peak(self) -> int:
        """The most users active at once."""
        return max([self.start_users, *(s.end_users for s in self.stages)])

    def users_at(self, t: float) -> int:
        """Active users (all workers) ``t`` seconds after the start; 0 once past the end."""
        elapsed = 0.0
        for stage in self.stages:
            if t < elapsed + stage.duration_s:
                return stage.users_at(t - elapsed)
            elapsed += stage.duration_s
        return 0   # past the end: the run is over

    def changes(self, worker: int, workers: int) -> Iterator[tuple[float, int, bool]]:
        """Worker ``worker``'s own changes, in time order: ``(t, user, starts)``.

        ``t`` is seconds after the start; ``starts`` False means the user stops.
        Only the worker's users (``user % workers == worker``) are visited, so a
        worker's share of a million-user ramp costs it its share alone.
        """
        elapsed = 0.0
        for stage in self.stages:
            a, b = stage.start_users, stage.end_users
            if b > a:   # user u starts when the line reaches u + 1
                for u in range(_first_at_or_above(a, worker, workers), b, workers):
                    yield elapsed + stage.time_of(u + 1), u, True
            elif b < a:   # user u stops when the line comes down to u
                for u in range(_last_below(a, worker, workers), b - 1, -workers):
                    yield elapsed + stage.time_of(u), u, False
            elapsed += stage.duration_s

    def describe(self) -> list[UserStageDescription]:
        """Each stage as a ramp of users: the document's ``config.user_stages``."""
        return [{"duration_s": s.duration_s, "start_users": s.start_users,
                 "end_users": s.end_users} for s in self.stages]


def _first_at_or_above(n: int, worker: int, workers: int) -> int:
    """The smallest user index >= n that belongs to ``worker``."""
    return n + (worker - n) % workers


def _last_below(n: int, worker: int, workers: int) -> int:
    """The largest user index < n that belongs to ``worker`` (may be negative: none)."""
    return n - 1 - (n - 1 - worker) % workers


def build_user_schedule(start_users: int, stages: list[tuple[float, int]]) -> UserSchedule:
    """Stages ramp from the previous count; the first from ``start_users``."""
    previous, built = start_users, []
    for duration, users in stages:
        built.append(UserStage(duration, previous, users))
        previous = users
    schedule = UserSchedule(start_users, tuple(built))
    if schedule.peak == 0:
        raise ConfigError("--user-stage: every stage has 0 users: nothing would be sent")
    return schedule
