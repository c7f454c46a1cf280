"""Hyperband: brackets of successive halving over `spec.resource`, replayed from the history.

The schedule is fixed by the spec and seed: bracket s (s_max down to 0) starts n_s random
configurations at budget max * eta^-s and promotes the best 1/eta of each rung to the next, eta
times larger budget (with several objectives the rung is ranked by non-dominated sorting, then
crowding). Trials are matched to schedule slots by (params, budget), so the suggester
knows where every bracket stands without any stored state. A rung is promoted only once all its
trials have finished; meanwhile later brackets keep the workers busy.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..spec import HyperbandAlgorithm, Resource, TuningJobSpec
from ._base import BaseSuggester, Observation, Params
from ._space import SearchSpace


@dataclass(frozen=True)
class Bracket:
    """One bracket of one Hyperband pass: how many configs, at which budgets."""

    iteration: int
    s: int
    sizes: tuple[int, ...]
    budgets: tuple[int | float, ...]


def plan_brackets(resource: Resource, eta: int, iterations: int) -> list[Bracket]:
    """The whole schedule, most aggressive bracket first (Li et al., 2018)."""
    s_max = math.floor(math.log(resource.max / resource.min) / math.log(eta) + 1e-9)
    plan = []
    for iteration in range(iterations):
        for s in range(s_max, -1, -1):
            n = math.ceil((s_max + 1) / (s + 1) * eta**s)
            sizes = tuple(max(1, int(n * eta ** (-i))) for i in range(s + 1))
            budgets = tuple(resource.budget(resource.max * eta ** (i - s)) for i in range(s + 1))
            plan.append(Bracket(iteration, s, sizes, budgets))
    return plan


class HyperbandSuggester(BaseSuggester):
    """Each suggestion carries its budget under the resource's name (e.g. ``epochs``)."""

    def __init__(self, spec: TuningJobSpec) -> None:
        super().__init__(spec)
        assert isinstance(spec.algorithm, HyperbandAlgorithm) and spec.resource is not None
        self.resource = spec.resource
        self.eta = spec.algorithm.settings.reduction_factor
        self.space = SearchSpace(spec.parameters)
        self.plan = plan_brackets(self.resource, self.eta, spec.algorithm.settings.iterations)

    def suggest(self, history: Sequence[Observation], count: int) -> list[Params]:
        unclaimed: dict[tuple[object, ...], list[Observation]] = defaultdict(list)
        for o in history:
            if self.resource.name in o.params:
                unclaimed[self._slot_key(o.params, o.params[self.resource.name])].append(o)
        picks: list[Params] = []
        for number, bracket in enumerate(self.plan):
            members = self._starting_configs(number, bracket.sizes[0])
            for rung, budget in enumerate(bracket.budgets):
                finished, complete = [], True
                for config in members:
                    claimed = unclaimed.get(self._slot_key(config, budget))
                    if claimed:
                        observation = claimed.pop(0)
                        complete &= observation.finished
                        finished.append((config, observation))
                    else:
                        complete = False
                        if len(picks) < count:
                            picks.append({**config, self.resource.name: budget})
                if not complete or rung + 1 == len(bracket.sizes):
                    break
                members = self._promote(finished, bracket.sizes[rung + 1])
        return picks

    def _promote(self, results: list[tuple[Params, Observation]], keep: int) -> list[Params]:
        usable = [(c, o) for c, o in results if o.usable]
        order = self.ranked([o for _, o in usable])
        return [usable[i][0] for i in order[:keep]]

    def _starting_configs(self, number: int, size: int) -> list[Params]:
        """The random configurations of bracket `number`, distinct where the space allows."""
        rng = np.random.default_rng([self.seed, number])
        return self.space.draw_distinct(rng, size, set(), rounds=20)

    def _slot_key(self, params: Mapping[str, Any], budget: object) -> tuple[object, ...]:
        rounded = round(float(budget), 9) if isinstance(budget, int | float) else budget
        return (self.space.key(params), rounded)
