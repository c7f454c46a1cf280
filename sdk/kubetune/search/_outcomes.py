"""Acquisitions for several objectives and for constraints (on losses: higher score is better).

- `HypervolumeImprovement`: log expected hypervolume improvement of x over a front, with one
  independent GP per objective. With two objectives it is exact: the improvement region (below
  the reference point, not dominated by the front) splits into one strip per gap of the front,
  and the expectation has a closed form per strip. With three or four the region is covered by
  quasi-random cells; for each cell u, P(f(x) <= u) is the product of the objectives' normal
  CDFs, so EHVI = cell volume x the sum of those probabilities. The
  front is the GPs' posterior mean at the feasible trials (noisy values do not pin it) plus the
  pending points at their posterior mean (running trials and earlier picks of a batch), so a
  batch spreads along the front instead of piling onto one spot.
- `Feasibility`: log probability that every constraint holds, one GP per constrained metric.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import log_ndtr, ndtr
from scipy.stats import qmc

from ..pareto import front_mask
from ..spec import Constraint
from ._gp import Surrogate

CELLS = {2: 1024, 3: 1024, 4: 2048}
SCREEN = 8  # a large candidate pool is first scored on every SCREEN-th cell...
SCREEN_KEEP = 64  # ...and this many of its best rows on all cells
IDEAL_MARGIN = 1.0  # the cells reach this share of the front's spread beyond its best values
CHUNK = 256
FLOOR = 1e-300


class HypervolumeImprovement:
    """log EHVI (see the module docstring)."""

    def __init__(
        self,
        surrogates: Sequence[Surrogate],
        front: np.ndarray,
        reference: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        self.surrogates = list(surrogates)
        m = len(self.surrogates)
        front = front[np.all(front < reference, axis=1)]
        best = front.min(axis=0) if len(front) else reference - 1.0
        spread = np.maximum(reference - best, 1e-12)
        low = best - IDEAL_MARGIN * spread
        self.boxes = _strips(front, reference) if m == 2 else None
        n = CELLS.get(m, 2048)
        cells = low + qmc.Sobol(d=m, scramble=True, seed=rng).random(n) * (reference - low)
        if len(front):
            covered = np.any(np.all(front[:, None, :] <= cells[None, :, :], axis=2), axis=0)
            cells = cells[~covered]
        self.cells = cells
        self.log_cell = float(np.sum(np.log(reference - low)) - np.log(n))

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if len(self.cells) == 0:
            return np.full(len(X), np.log(FLOOR))
        mean, sd = (
            np.column_stack(v) for v in zip(*(s.predict(X) for s in self.surrogates), strict=True)
        )
        if self.boxes is not None:
            return _exact(mean, sd, *self.boxes)
        if len(X) <= SCREEN_KEEP:
            return self._score(mean, sd, self.cells)
        # A large pool is screened on every SCREEN-th cell (the same sum, estimated from fewer
        # cells); only the most promising rows are scored on all of them.
        coarse = self.cells[::SCREEN]
        out = self._score(mean, sd, coarse) + np.log(len(self.cells) / len(coarse))
        top = np.argsort(-out)[:SCREEN_KEEP]
        out[top] = self._score(mean[top], sd[top], self.cells)
        return out

    def _score(self, mean: np.ndarray, sd: np.ndarray, cells: np.ndarray) -> np.ndarray:
        out = np.empty(len(mean))
        for start in range(0, len(mean), CHUNK):
            part = slice(start, start + CHUNK)
            prob = np.ones((len(mean[part]), len(cells)))
            for j in range(cells.shape[1]):
                prob *= ndtr((cells[None, :, j] - mean[part, j, None]) / sd[part, j, None])
            out[part] = np.log(np.maximum(prob.sum(axis=1), FLOOR))
        return out + self.log_cell


class Feasibility:
    """log P(every constraint holds at x), each constrained metric with its own GP."""

    def __init__(self, models: Sequence[tuple[Constraint, Surrogate]]) -> None:
        self.models = list(models)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        total = np.zeros(len(X))
        for constraint, surrogate in self.models:
            mean, sd = surrogate.predict(X)
            if constraint.min is None:
                total += log_ndtr((constraint.max - mean) / sd)
            elif constraint.max is None:
                total += log_ndtr((mean - constraint.min) / sd)
            else:
                inside = ndtr((constraint.max - mean) / sd) - ndtr((constraint.min - mean) / sd)
                total += np.log(np.maximum(inside, FLOOR))
        return total


def _strips(front: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two objectives: the region below `reference` that no row of `front` dominates, as
    disjoint boxes (lower, upper corners; a lower corner may be -inf): one strip per gap
    between neighbours on the front, sorted by the first objective."""
    ordered = front[np.argsort(front[:, 0])]
    x = np.concatenate([[-np.inf], ordered[:, 0], [reference[0]]])
    y = np.concatenate([[reference[1]], ordered[:, 1]])
    lower = np.column_stack([x[:-1], np.full(len(y), -np.inf)])
    upper = np.column_stack([x[1:], y])
    keep = upper[:, 0] > lower[:, 0]
    return lower[keep], upper[keep]


def _exact(mean: np.ndarray, sd: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """log EHVI in closed form over disjoint boxes: the improvement a y brings is the volume of
    each box above y; with independent objectives its expectation factorizes per box into
    sd * (psi(b) - psi(a)) per objective, psi(z) = z Phi(z) + phi(z)."""
    total = np.ones((len(mean), len(lower)))
    for j in range(mean.shape[1]):
        s = sd[:, j, None]
        b = (upper[None, :, j] - mean[:, j, None]) / s
        a = (lower[None, :, j] - mean[:, j, None]) / s
        total *= s * np.maximum(_psi(b) - _psi(a), 0.0)
    return np.log(np.maximum(total.sum(axis=1), FLOOR))


def _psi(z: np.ndarray) -> np.ndarray:
    """z Phi(z) + phi(z): 0 at -inf."""
    with np.errstate(invalid="ignore"):
        value = z * ndtr(z) + np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
    return np.where(np.isneginf(z), 0.0, value)


def plain_front(losses: np.ndarray) -> np.ndarray:
    """The non-dominated rows of `losses`."""
    return losses[front_mask(losses)] if len(losses) else losses
