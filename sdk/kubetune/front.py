"""What trials achieved beyond one number: feasibility under `spec.constraints`, each trial's
objective values, and a job's Pareto front and hypervolume.

Used by the decision core and the job status (both drivers), the client and the plots. A trial's
values are the latest it reported of each objective; constraints judge latest values too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .pareto import crowding, front_mask, hypervolume, infer_reference, to_losses
from .spec import MAX_FRONT, FrontTrial, TrialState, TuningJobSpec
from .spec._goals import meets_all

if TYPE_CHECKING:
    from .engine import TrialView


def feasible(spec: TuningJobSpec, metrics: Mapping[str, float]) -> bool:
    """Whether latest metrics meet every constraint (a constraint not reported is not met)."""
    return meets_all(spec.constraints, metrics)


def goal_values(spec: TuningJobSpec, metrics: Mapping[str, float]) -> tuple[float, ...] | None:
    """The latest value of each objective, in `spec.goals` order; None if one is missing."""
    values = tuple(metrics.get(g.metric, math.nan) for g in spec.goals)
    return values if all(math.isfinite(v) for v in values) else None


@dataclass(frozen=True)
class Front:
    """A job's Pareto front: every trial on it (best-spread first), and its hypervolume."""

    trials: list[FrontTrial]
    hypervolume: float | None
    reference: tuple[float, ...] | None  # as raw values of the objectives

    def status_entries(self) -> list[FrontTrial]:
        return self.trials[:MAX_FRONT]


def reference_losses(spec: TuningJobSpec, losses: np.ndarray) -> np.ndarray:
    """The reference point as losses: the user's where given, else inferred from `losses`."""
    inferred = infer_reference(losses) if len(losses) else np.zeros(len(spec.goals))
    given = [
        (g.reference if g.minimize else -g.reference) if g.reference is not None else None
        for g in spec.goals
    ]
    return np.array([inferred[j] if v is None else v for j, v in enumerate(given)])


def pareto_front(spec: TuningJobSpec, trials: Sequence[TrialView]) -> Front:
    """The feasible, not-failed trials no other dominates, with the hypervolume they reach."""
    named, rows = [], []
    for t in trials:
        if t.state is TrialState.failed or not feasible(spec, t.metrics):
            continue
        values = goal_values(spec, t.metrics)
        if values is not None:
            named.append(t)
            rows.append(values)
    if not rows:
        return Front([], None, None)
    minimize = [g.minimize for g in spec.goals]
    losses = to_losses(np.array(rows), minimize)
    reference = reference_losses(spec, losses)
    on = np.flatnonzero(front_mask(losses))
    order = on[np.argsort(-crowding(losses[on]), kind="stable")]
    entries = [
        FrontTrial(
            name=named[i].name,
            params=dict(named[i].params),
            values={g.metric: rows[i][j] for j, g in enumerate(spec.goals)},
        )
        for i in order
    ]
    raw_reference = tuple(float(v) for v in to_losses(reference[None, :], minimize)[0])
    return Front(entries, hypervolume(losses, reference), raw_reference)
