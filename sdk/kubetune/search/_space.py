"""The search space of a spec in the three forms the suggesters need.

- parameter values (what trials receive, typed and on their steps),
- quantiles in [0, 1) per parameter (random and space-filling designs),
- scikit-optimize's normalized space (continuous [0, 1] columns, one-hot categoricals) where the
  Gaussian process lives.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from skopt.space import Categorical, Integer, Real, Space

from ..spec import CategoricalParameter, FloatParameter, IntParameter, ParamValue, Scale
from ..spec._parameters import round_to_step

Params = dict[str, ParamValue]
Key = tuple[Any, ...]


class SearchSpace:
    """Conversions between parameter values, quantiles and skopt's normalized space."""

    def __init__(self, parameters: Sequence[FloatParameter | IntParameter | CategoricalParameter]):
        self.parameters = list(parameters)
        self.names = [p.name for p in self.parameters]
        self.skopt = Space([_dimension(p) for p in self.parameters])
        self.columns = self.skopt.transformed_n_dims
        widths = [d.transformed_size for d in self.skopt.dimensions]
        starts = np.cumsum([0, *widths])
        self.spans = [(int(a), int(b)) for a, b in itertools.pairwise(starts)]

    # -- values ---------------------------------------------------------------------------
    def from_quantiles(self, quantiles: np.ndarray) -> list[Params]:
        """Map rows of per-parameter quantiles in [0, 1) to configurations."""
        rows = []
        for q in np.atleast_2d(quantiles):
            rows.append(
                {
                    p.name: _from_quantile(p, float(u))
                    for p, u in zip(self.parameters, q, strict=True)
                }
            )
        return rows

    def key(self, params: Mapping[str, Any]) -> Key:
        """A hashable identity of a configuration, robust to float noise."""
        return tuple(_key_value(params.get(name)) for name in self.names)

    def contains(self, params: Mapping[str, Any]) -> bool:
        """Whether `params` names exactly these parameters with in-range, on-step, typed values."""
        if set(params) != set(self.names):
            return False
        return all(_valid(p, params[p.name]) for p in self.parameters)

    # -- normalized (GP) space --------------------------------------------------------------
    def to_unit(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Configurations -> rows of skopt's normalized space."""
        raw = [[_to_raw(p, c[p.name]) for p in self.parameters] for c in configs]
        if not raw:
            return np.empty((0, self.columns))
        return np.asarray(self.skopt.transform(raw), dtype=float)

    def from_unit(self, points: np.ndarray) -> list[Params]:
        """Rows of the normalized space -> configurations (rounded onto the space)."""
        clipped = np.clip(np.atleast_2d(points), 0.0, 1.0)
        raw_rows = self.skopt.inverse_transform(clipped)
        return [
            {p.name: _from_raw(p, r) for p, r in zip(self.parameters, row, strict=True)}
            for row in raw_rows
        ]

    def snap(self, points: np.ndarray) -> np.ndarray:
        """Project normalized points onto the ones that configurations actually map to."""
        return self.to_unit(self.from_unit(points))

    def draw_distinct(
        self, rng: np.random.Generator, count: int, seen: set[Key], rounds: int = 50
    ) -> list[Params]:
        """Up to `count` random configurations not in `seen` (which is updated); fewer only when
        `rounds` batches of draws found no more (a small, nearly used-up finite space)."""
        picks: list[Params] = []
        for _ in range(rounds):
            for config in self.from_quantiles(rng.random((count, len(self.parameters)))):
                key = self.key(config)
                if key not in seen and len(picks) < count:
                    picks.append(config)
                    seen.add(key)
            if len(picks) == count:
                break
        return picks

    def random_unit(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` random points of the normalized space, already snapped onto the space."""
        out = rng.random((n, self.columns))
        for p, dim, (a, b) in zip(self.parameters, self.skopt.dimensions, self.spans, strict=True):
            if isinstance(p, CategoricalParameter) and b - a > 1:
                out[:, a:b] = np.eye(b - a)[rng.integers(0, b - a, size=n)]
            elif isinstance(dim, Integer) and dim.prior == "uniform" and dim.high > dim.low:
                out[:, a] = rng.integers(0, dim.high - dim.low + 1, size=n) / (dim.high - dim.low)
        return snap_columns(self, out)


def _dimension(p: FloatParameter | IntParameter | CategoricalParameter) -> Any:
    if isinstance(p, CategoricalParameter):
        return Categorical(list(range(len(p.values))), transform="onehot")
    prior = "log-uniform" if p.scale is Scale.log else "uniform"
    if p.step is not None and p.scale is Scale.linear:
        return Integer(0, _steps(p), transform="normalize")
    if isinstance(p, IntParameter):
        return Integer(p.min, p.max, prior=prior, transform="normalize")
    return Real(p.min, p.max, prior=prior, transform="normalize")


def _steps(p: FloatParameter | IntParameter) -> int:
    assert p.step is not None
    return math.floor((p.max - p.min) / p.step + 1e-9)


def _to_raw(p: Any, value: Any) -> Any:
    if isinstance(p, CategoricalParameter):
        return _category_index(p, value)
    if p.step is not None and p.scale is Scale.linear:
        return round((value - p.min) / p.step)
    return value


def _category_index(p: CategoricalParameter, value: Any) -> int:
    for i, v in enumerate(p.values):
        if v == value and type(v) is type(value):
            return i
    for i, v in enumerate(p.values):
        if v == value:
            return i
    raise ValueError(f"{p.name}: {value!r} is not one of {p.values}")


def _from_raw(p: Any, raw: Any) -> ParamValue:
    if isinstance(p, CategoricalParameter):
        value: ParamValue = p.values[int(raw)]
        return value
    if p.step is not None and p.scale is Scale.linear:
        return _on_step(p, int(raw))
    if p.step is not None:
        return _on_step(p, round((float(raw) - p.min) / p.step))
    if isinstance(p, IntParameter):
        return int(min(max(round(float(raw)), p.min), p.max))
    return float(min(max(float(raw), p.min), p.max))


def _on_step(p: FloatParameter | IntParameter, k: int) -> ParamValue:
    k = min(max(k, 0), _steps(p))
    assert p.step is not None
    if isinstance(p, IntParameter):
        return p.min + k * p.step
    if k == 0:
        return float(p.min)
    return min(max(round_to_step(p.min + k * p.step, p.step), p.min), p.max)


def _from_quantile(p: Any, u: float) -> ParamValue:
    u = min(max(u, 0.0), 1.0 - 1e-12)
    if isinstance(p, CategoricalParameter):
        value: ParamValue = p.values[int(u * len(p.values))]
        return value
    if p.step is not None and p.scale is Scale.linear:
        return _on_step(p, int(u * (_steps(p) + 1)))
    if isinstance(p, IntParameter) and p.step is None:
        if p.scale is Scale.log:
            lo, hi = math.log(p.min), math.log(p.max + 1)
            return int(min(math.floor(math.exp(lo + u * (hi - lo))), p.max))
        return int(p.min + int(u * (p.max - p.min + 1)))
    if p.scale is Scale.log:
        value = math.exp(math.log(p.min) + u * (math.log(p.max) - math.log(p.min)))
    else:
        value = p.min + u * (p.max - p.min)
    return _from_raw(p, value)


def _key_value(v: Any) -> Any:
    if isinstance(v, float):
        return ("f", float(f"{v:.12g}"))
    return (type(v).__name__, v)


def _valid(p: Any, v: Any) -> bool:
    if isinstance(p, CategoricalParameter):
        return any(v == c and type(v) is type(c) for c in p.values)
    if isinstance(p, IntParameter):
        if isinstance(v, bool) or not isinstance(v, int):
            return False
    elif isinstance(v, bool) or not isinstance(v, float):
        return False
    if not p.min <= v <= p.max:
        return False
    if p.step is None:
        return True
    k = (v - p.min) / p.step
    return abs(k - round(k)) < 1e-6


def snap_columns(space: SearchSpace, points: np.ndarray) -> np.ndarray:
    """Vectorized `space.snap`: round normalized points onto reachable configurations."""
    out = np.clip(np.array(points, dtype=float, copy=True), 0.0, 1.0)
    for p, dim, (a, b) in zip(space.parameters, space.skopt.dimensions, space.spans, strict=True):
        col = out[:, a:b]
        if isinstance(p, CategoricalParameter):
            if b - a == 1:
                col[:] = np.round(col)
            else:
                onehot = np.zeros_like(col)
                onehot[np.arange(len(col)), np.argmax(col, axis=1)] = 1.0
                col[:] = onehot
        elif isinstance(dim, Integer) and dim.prior == "uniform":
            n = dim.high - dim.low
            col[:] = np.round(col * n) / n
        elif p.scale is Scale.log:
            lo, hi = math.log(p.min), math.log(p.max)
            value = np.exp(lo + col * (hi - lo))
            if p.step is not None:
                value = p.min + np.round((value - p.min) / p.step) * p.step
            elif isinstance(p, IntParameter):
                value = np.round(value)
            value = np.clip(value, p.min, p.max)
            col[:] = (np.log(value) - lo) / (hi - lo)
    return out
