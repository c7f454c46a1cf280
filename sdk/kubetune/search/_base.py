"""The suggester interface: `Observation`, `BaseSuggester` and its call contract.

A suggester is rebuilt from (spec, seed, history) on every call and holds no state between calls:
`suggest(history, count)` must give the same answer for the same inputs, whoever calls it and
however often. Callers (the decision core, the suggestion service, benchmarks) pass raw metric
values; the suggester applies the objective's direction itself.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..front import feasible, goal_values
from ..pareto import rank_order, to_losses
from ..spec import Direction, ParamValue, TrialState, TuningJobSpec

Params = dict[str, ParamValue]


@dataclass(frozen=True)
class Observation:
    """One trial as a suggester sees it.

    `value` is the raw objective (None when none was reported). `state` is final (`succeeded`,
    `failed`, `stopped`) for finished trials; an active one is still in flight, and the suggester
    must not propose its params again. History is given in trial creation order.
    """

    params: Mapping[str, Any]
    value: float | None = None
    state: TrialState = TrialState.succeeded
    metrics: Mapping[str, float] = field(default_factory=dict)  # latest values: objectives,
    # constraints (several objectives and constraints are read from here)
    prior: bool = False  # an earlier job's result (warm start), not a trial of this one

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "state", TrialState(self.state))
        except ValueError:
            known = [s.value for s in TrialState]
            raise ValueError(f"state: must be one of {known} (got {self.state!r})") from None
        if self.value is not None and not math.isfinite(self.value):
            # A NaN/inf objective is a failed measurement, never a data point.
            object.__setattr__(self, "value", None)

    @property
    def finished(self) -> bool:
        return self.state.final

    @property
    def usable(self) -> bool:
        """Finished with a finite objective (succeeded, or stopped after reporting)."""
        return self.state in (TrialState.succeeded, TrialState.stopped) and self.value is not None


class BaseSuggester(abc.ABC):
    """Proposes the next configurations of a search space.

    Call order: construct from the spec once, then call `suggest` any number of times; each call
    is independent of the previous ones. Invariants every implementation keeps (checked by the
    conformance tests): every returned dict has exactly the space's parameter names (plus the
    resource name for budget-aware algorithms), every value lies in its range, on its step and has
    its declared type, and no returned configuration repeats one in `history` or in the batch.
    """

    def __init__(self, spec: TuningJobSpec) -> None:
        self.spec = spec
        self.seed = spec.algorithm.seed

    @abc.abstractmethod
    def suggest(self, history: Sequence[Observation], count: int) -> list[Params]:
        """Up to `count` new configurations; fewer only when the space (or schedule) has no more
        right now, and an empty list once it is exhausted."""

    def exhausted(self, history: Sequence[Observation]) -> bool:
        """Whether no configuration will ever be suggested again for this history."""
        return not self.suggest(history, 1) and not any(not o.finished for o in history)

    def ranked(self, observations: Sequence[Observation]) -> list[int]:
        """Indices of usable observations, best first: feasible before infeasible; then by
        loss, or with several objectives by non-dominated rank and crowding (NSGA-II's order).
        Those missing an objective come last."""
        spec = self.spec
        keys: list[tuple[int, int]] = []
        rows, scored = [], []
        for i, o in enumerate(observations):
            values = goal_values(spec, o.metrics) if spec.multi_objective else (o.value,)
            if values is None or values[0] is None:
                keys.append((2, i))
                continue
            keys.append((0 if feasible(spec, o.metrics) else 1, i))
            rows.append(values)
            scored.append(i)
        position = {i: len(scored) + i for i in range(len(observations))}
        if rows:
            minimize = [g.minimize for g in spec.goals]
            order = rank_order(to_losses(np.array(rows, dtype=float), minimize))
            position.update({scored[k]: p for p, k in enumerate(order)})
        return sorted(range(len(observations)), key=lambda i: (keys[i][0], position[i]))

    def sign(self) -> float:
        """+1 for minimize, -1 for maximize: multiply raw values to get a loss."""
        return 1.0 if self.spec.objective.direction is Direction.minimize else -1.0
