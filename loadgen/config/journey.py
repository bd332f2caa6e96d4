"""User journeys (issue 12 section 2): kinds of virtual users, each a login and its steps.

A scenario file's ``[[users]]`` tables become ``UserKind``s.  Every step (``on_start``
ones included) is an ordinary ``config.model.Endpoint`` in the run's endpoint list,
named ``"<kind>: METHOD path"``, so each step is a row of the report with exact counts,
its own success set, templates (``Endpoint.templates``) and response rules
(``Endpoint.rules``: ``extract`` / ``expect`` / ``max_body``).  A ``UserKind`` only
says which rows its users run, in which order, with how much think time between them.

Which kind a virtual user is, and which kind an open-model arrival starts, is fixed by
a weighted cycle (``config.model.endpoint_cycle`` over the kinds' weights), so it is
the same on every worker and Dask node: user ``u`` (closed model) is of kind
``cycle[u % len(cycle)]``, arrival ``k`` (open model) starts an iteration of kind
``cycle[k % len(cycle)]``.  ``rank(u)`` is user ``u``'s index among the users of its
kind: a ``per-user`` feeder gives it row ``rank(u) % rows``, so the kinds' users take
their credentials in order, without gaps, across workers.

Pure standard library: pickled to worker processes and Dask nodes with the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadgen.config.model import endpoint_cycle


@dataclass(frozen=True)
class UserKind:
    """One ``[[users]]`` table: its name, weight, think time, rows and data."""

    name: str
    weight: float = 1.0
    think: tuple[float, float] = (0.0, 0.0)     # seconds after each step: uniform in [lo, hi]
    on_start: tuple[int, ...] = ()              # endpoint indices, once per virtual user
    steps: tuple[int, ...] = ()                 # endpoint indices, in order, each iteration
    refresh_on: frozenset[int] = frozenset()    # a step answered so: on_start again, retry once
    feeder: Any = None                          # config.feeder.Feeder of its ``data``; None: none

    @property
    def rows(self) -> tuple[int, ...]:
        """Every endpoint index this kind sends, on_start first."""
        return (*self.on_start, *self.steps)


@dataclass(frozen=True)
class Journeys:
    """The run's user kinds, the kind cycle, and ``--iterations``.

    ``iterations`` None: iterations run until ``--duration`` (closed model) or the
    schedule ends (open model).  Otherwise exactly that many iterations start in
    total, split across workers as ``--requests`` splits tickets.
    """

    kinds: tuple[UserKind, ...]
    iterations: int | None = None
    cycle: tuple[int, ...] = field(init=False)
    _before: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cycle = endpoint_cycle([k.weight for k in self.kinds]) if self.kinds else (0,)
        object.__setattr__(self, "cycle", cycle)
        # _before[p]: how many positions before p in the cycle hold the same kind
        seen: dict[int, int] = {}
        before = []
        for kind in cycle:
            before.append(seen.get(kind, 0))
            seen[kind] = seen.get(kind, 0) + 1
        object.__setattr__(self, "_before", tuple(before))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Journeys, (self.kinds, self.iterations))

    def kind_of(self, x: int) -> int:
        """The kind of closed-model user ``x``, or of the iteration open-model arrival ``x`` starts."""
        return self.cycle[x % len(self.cycle)]

    def rank(self, u: int) -> int:
        """User ``u``'s index among the users of its kind (0, 1, 2, ... for each kind)."""
        n = len(self.cycle)
        kind = self.cycle[u % n]
        per_cycle = self.cycle.count(kind)
        return (u // n) * per_cycle + self._before[u % n]
