"""Random search: independent uniform (or log-uniform) draws, never repeating a configuration."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from ..spec import TuningJobSpec
from ._base import BaseSuggester, Observation, Params
from ._space import SearchSpace

ENUMERATE_LIMIT = 20_000  # finite spaces up to this size are sampled without replacement


class RandomSuggester(BaseSuggester):
    """Draws are seeded by (seed, number of trials so far), so replays give the same batch."""

    def __init__(self, spec: TuningJobSpec) -> None:
        super().__init__(spec)
        self.space = SearchSpace(spec.parameters)
        self.size = spec.space_size()

    def suggest(self, history: Sequence[Observation], count: int) -> list[Params]:
        seen = {self.space.key(o.params) for o in history}
        rng = np.random.default_rng([self.seed, len(history)])
        if self.size is not None and self.size <= ENUMERATE_LIMIT:
            return self._without_replacement(seen, rng, count)
        return self.space.draw_distinct(rng, count, seen)

    def _without_replacement(
        self, seen: set[tuple[object, ...]], rng: np.random.Generator, count: int
    ) -> list[Params]:
        values = [p.grid_values(None) or [] for p in self.space.parameters]
        free = [
            combo
            for combo in itertools.product(*values)
            if self.space.key(dict(zip(self.space.names, combo, strict=True))) not in seen
        ]
        chosen: list[int] | np.ndarray = (
            rng.choice(len(free), size=min(count, len(free)), replace=False) if free else []
        )
        return [dict(zip(self.space.names, free[int(i)], strict=True)) for i in chosen]
