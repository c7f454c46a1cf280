"""Population-based training (Jaderberg et al., 2017), as trials replayed from the history.

A member's life is a chain of trials, one per round: trial `i` is member `i % P` in round
`i // P`, trained up to budget `(round + 1) * interval`, continuing from the checkpoint of its
parent in the round before. A round starts once the previous one has finished: its members are
ranked by objective, the bottom `truncation` fraction each copy a random top member (exploit:
that member's trial is their parent) and perturb its parameters (explore: x0.8 or x1.2, the
neighbouring choice, or with `resampleProbability` a fresh draw); the others continue their own
line unchanged. Every random choice is seeded by (seed, round, member), so the same history gives
the same rounds, whoever replays it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..spec import (
    CategoricalParameter,
    FloatParameter,
    IntParameter,
    PbtAlgorithm,
    TuningJobSpec,
    pbt_rounds,
)
from ._base import BaseSuggester, Observation, Params
from ._space import SearchSpace, _from_raw, _on_step

FACTORS = (0.8, 1.2)


@dataclass(frozen=True)
class Member:
    """What round `round` of member `member` trains, and whose checkpoint it starts from."""

    round: int
    member: int
    params: Params
    parent: int | None  # trial index in the round before; None in round 0
    exploited: bool = False


class PbtSuggester(BaseSuggester):
    """Suggestions carry the round's budget under the resource's name."""

    def __init__(self, spec: TuningJobSpec) -> None:
        super().__init__(spec)
        assert isinstance(spec.algorithm, PbtAlgorithm) and spec.resource is not None
        self.settings = spec.algorithm.settings
        self.resource = spec.resource
        self.size = self.settings.population_size
        self.rounds = pbt_rounds(self.resource.max, self.settings.perturbation_interval)
        self.space = SearchSpace(spec.parameters)

    def suggest(self, history: Sequence[Observation], count: int) -> list[Params]:
        picks = []
        for index in range(len(history), len(history) + count):
            member = self.plan(history, index)
            if member is None:
                break
            picks.append(member.params)
        return picks

    def budget(self, round_: int) -> int | float:
        return self.resource.budget((round_ + 1) * self.settings.perturbation_interval)

    def plan(self, history: Sequence[Observation], index: int) -> Member | None:
        """Trial `index` of the population (its params with the budget), or None until the round
        before has finished, or once every round is done."""
        round_, member = divmod(index, self.size)
        if round_ >= self.rounds:
            return None
        budget = {self.resource.name: self.budget(round_)}
        if round_ == 0:
            rng = np.random.default_rng([self.seed, 0])
            first = self.space.draw_distinct(rng, self.size, set(), rounds=20)
            config = first[member % len(first)]
            return Member(0, member, {**config, **budget}, None)
        before = list(history[(round_ - 1) * self.size : round_ * self.size])
        if len(before) < self.size or not all(o.finished for o in before):
            return None
        ranked = sorted(range(self.size), key=lambda m: self._loss(before[m]))
        cut = max(1, int(self.size * self.settings.truncation))
        top, bottom = ranked[:cut], ranked[-cut:]
        first_index = (round_ - 1) * self.size
        if member not in bottom:
            own = self._config(before[member])
            return Member(round_, member, {**own, **budget}, first_index + member)
        rng = np.random.default_rng([self.seed, round_, member])
        source = int(top[int(rng.integers(len(top)))])
        explored = self.explore(self._config(before[source]), rng)
        return Member(round_, member, {**explored, **budget}, first_index + source, True)

    def explore(self, config: Params, rng: np.random.Generator) -> Params:
        """Perturb (or, with resampleProbability, redraw) every parameter of `config`."""
        out: Params = {}
        for p in self.space.parameters:
            value = config[p.name]
            if rng.random() < self.settings.resample_probability:
                out[p.name] = self.space.from_quantiles(rng.random((1, len(self.space.names))))[0][
                    p.name
                ]
            elif isinstance(p, CategoricalParameter):
                at = p.values.index(value) if value in p.values else 0
                step = int(rng.choice([-1, 1]))
                out[p.name] = p.values[min(max(at + step, 0), len(p.values) - 1)]
            else:
                out[p.name] = _perturbed(p, float(value), float(rng.choice(FACTORS)))
        return out

    def _config(self, observation: Observation) -> Params:
        return {name: observation.params[name] for name in self.space.names}

    def _loss(self, observation: Observation) -> float:
        """Lower is better; a member without a usable objective ranks last."""
        if observation.value is None or observation.state.value == "failed":
            return float("inf")
        return self.sign() * float(observation.value)


def _perturbed(p: FloatParameter | IntParameter, value: float, factor: float) -> float | int:
    """`value` times `factor`, kept in range and on the parameter's step; an int that would not
    move moves one step."""
    moved = _nearest(p, float(value) * factor)
    if moved == value and isinstance(p, IntParameter):
        moved = _nearest(p, value + (1 if factor > 1 else -1) * (p.step or 1))
    return moved


def _nearest(p: FloatParameter | IntParameter, target: float) -> float | int:
    target = min(max(target, p.min), p.max)
    if p.step is not None:
        value = _on_step(p, round((target - p.min) / p.step))
    else:
        value = _from_raw(p, target)
    assert not isinstance(value, str | bool)
    return value
