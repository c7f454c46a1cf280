"""Grid search: every point of a finite space once, in a fixed order, then exhausted."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

from ..spec import GridAlgorithm, ParamValue, TuningJobSpec
from ._base import BaseSuggester, Observation, Params
from ._space import SearchSpace


class GridSuggester(BaseSuggester):
    """The first parameter varies slowest. Floats without a step get `settings.points` values."""

    def __init__(self, spec: TuningJobSpec) -> None:
        super().__init__(spec)
        assert isinstance(spec.algorithm, GridAlgorithm)
        self.space = SearchSpace(spec.parameters)
        points = spec.algorithm.settings.points
        self.axes: list[list[ParamValue]] = []
        for p in spec.parameters:
            values = p.grid_values(points)
            assert values is not None, "validated by TuningJobSpec"
            self.axes.append(list(values))

    @property
    def size(self) -> int:
        total = 1
        for axis in self.axes:
            total *= len(axis)
        return total

    def points(self) -> Iterator[Params]:
        for combo in itertools.product(*self.axes):
            yield dict(zip(self.space.names, combo, strict=True))

    def suggest(self, history: Sequence[Observation], count: int) -> list[Params]:
        seen = {self.space.key(o.params) for o in history}
        picks: list[Params] = []
        for config in self.points():
            if len(picks) == count:
                break
            if self.space.key(config) not in seen:
                picks.append(config)
        return picks
