"""Which finished trial a new trial continues from, when the job keeps checkpoints.

- Hyperband: a configuration promoted to a larger budget continues its trial at the largest
  smaller budget that succeeded, from that trial's last stored step.
- PBT: every member after the first round continues its parent (itself, or the top member it
  copies) from the parent's last stored step.

A trial with no stored step to continue from starts from scratch. Pure; imports no I/O library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .search import Observation, PbtSuggester, SearchSpace
from .spec import HyperbandAlgorithm, PbtAlgorithm, TrialState, TuningJobSpec


@dataclass(frozen=True)
class Continuation:
    trial: str  # the trial whose checkpoint the new one starts from
    step: int  # its last stored step: the new trial resumes after it


class Lineal(Protocol):
    """What this needs to know of a trial (the engine's TrialView has it)."""

    @property
    def name(self) -> str: ...
    @property
    def params(self) -> Mapping[str, Any]: ...
    @property
    def state(self) -> TrialState: ...
    @property
    def curve(self) -> Sequence[tuple[int, float]]: ...


def continuation(
    spec: TuningJobSpec,
    trials: Sequence[Lineal],
    history: Sequence[Observation],
    index: int,
    params: Mapping[str, Any],
) -> Continuation | None:
    """Where trial `index` (with `params`) starts; `trials` and `history` in index order."""
    if spec.checkpoints is None or spec.resource is None:
        return None
    parent: Lineal | None = None
    if isinstance(spec.algorithm, PbtAlgorithm):
        member = PbtSuggester(spec).plan(history, index)
        if member is not None and member.parent is not None:
            parent = trials[member.parent]
    elif isinstance(spec.algorithm, HyperbandAlgorithm):
        parent = _promoted_from(spec, trials, params)
    if parent is None or not parent.curve:
        return None
    return Continuation(parent.name, max(step for step, _ in parent.curve))


def _promoted_from(
    spec: TuningJobSpec, trials: Sequence[Lineal], params: Mapping[str, Any]
) -> Lineal | None:
    assert spec.resource is not None
    resource = spec.resource.name
    space = SearchSpace(spec.parameters)
    key = space.key(params)
    budget = float(params[resource])
    earlier = [
        t
        for t in trials
        if t.state is TrialState.succeeded
        and space.key(t.params) == key
        and float(t.params[resource]) < budget
    ]
    return max(earlier, key=lambda t: float(t.params[resource]), default=None)
