"""Pareto fronts and hypervolume, on loss vectors (every objective minimized).

Used by the decision core (the front of a job), the Bayesian search (the front it improves on),
Hyperband (ranking a rung) and the benchmarks. Callers turn raw values into losses with
`to_losses` (a maximized objective is negated). Pure numpy; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

REFERENCE_MARGIN = 0.1  # an inferred reference lies this share of the range beyond the worst


def to_losses(values: np.ndarray, minimize: Sequence[bool]) -> np.ndarray:
    """Raw objective values (n x m) as losses: maximized columns negated."""
    signs = np.where(np.asarray(minimize, dtype=bool), 1.0, -1.0)
    return np.asarray(values, dtype=float) * signs


def front_mask(Y: np.ndarray) -> np.ndarray:
    """Which rows of the losses `Y` (n x m) no other row dominates (duplicates all kept)."""
    Y = np.asarray(Y, dtype=float)
    n = len(Y)
    if n == 0:
        return np.zeros(0, dtype=bool)
    no_worse = np.all(Y[:, None, :] <= Y[None, :, :], axis=2)  # [i, j]: i <= j everywhere
    better = np.any(Y[:, None, :] < Y[None, :, :], axis=2)
    dominated = np.any(no_worse & better, axis=0)  # some i dominates j
    return np.asarray(~dominated)


def nondominated_ranks(Y: np.ndarray) -> np.ndarray:
    """The front each row belongs to: 0 for the Pareto front, 1 once it is removed, ..."""
    Y = np.asarray(Y, dtype=float)
    ranks = np.full(len(Y), -1)
    left = np.arange(len(Y))
    rank = 0
    while len(left):
        mask = front_mask(Y[left])
        ranks[left[mask]] = rank
        left = left[~mask]
        rank += 1
    return ranks


def crowding(Y: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance within one front: larger is lonelier (ends: infinite)."""
    Y = np.asarray(Y, dtype=float)
    n, m = Y.shape
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(Y[:, j], kind="stable")
        span = Y[order[-1], j] - Y[order[0], j]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (Y[order[2:], j] - Y[order[:-2], j]) / span
    return distance


def rank_order(Y: np.ndarray) -> np.ndarray:
    """Row indices best first: by non-dominated rank, then by crowding distance."""
    Y = np.asarray(Y, dtype=float)
    if Y.shape[1] == 1:
        return np.argsort(Y[:, 0], kind="stable")
    ranks = nondominated_ranks(Y)
    spread = np.zeros(len(Y))
    for r in np.unique(ranks):
        members = np.flatnonzero(ranks == r)
        spread[members] = crowding(Y[members])
    return np.lexsort((-spread, ranks))


def infer_reference(Y: np.ndarray) -> np.ndarray:
    """A reference point for losses `Y`: the worst value of each objective, moved beyond it by
    a tenth of the objective's range (a tenth of 1 where the range is 0)."""
    Y = np.asarray(Y, dtype=float)
    worst, best = Y.max(axis=0), Y.min(axis=0)
    span = np.where(worst > best, worst - best, 1.0)
    return np.asarray(worst + REFERENCE_MARGIN * span)


def hypervolume(Y: np.ndarray, reference: np.ndarray) -> float:
    """The volume the losses `Y` dominate below `reference` (exact, by slicing the last axis)."""
    Y = np.asarray(Y, dtype=float)
    reference = np.asarray(reference, dtype=float)
    if len(Y) == 0:
        return 0.0
    Y = Y[np.all(reference > Y, axis=1)]
    if len(Y) == 0:
        return 0.0
    return _volume(Y[front_mask(Y)], reference)


def _volume(Y: np.ndarray, reference: np.ndarray) -> float:
    m = Y.shape[1]
    if m == 1:
        return float(reference[0] - Y[:, 0].min())
    if m == 2:
        order = np.argsort(Y[:, 0], kind="stable")
        xs, ys = Y[order, 0], np.minimum.accumulate(Y[order, 1])
        widths = np.diff(np.append(xs, reference[0]))
        return float(np.sum(widths * (reference[1] - ys)))
    order = np.argsort(Y[:, -1], kind="stable")
    Y = Y[order]
    total = 0.0
    for i in range(len(Y)):
        top = reference[-1] if i + 1 == len(Y) else Y[i + 1, -1]
        depth = top - Y[i, -1]
        if depth <= 0:
            continue
        slab = Y[: i + 1, :-1]
        total += depth * _volume(slab[front_mask(slab)], reference[:-1])
    return total
