"""Acquisition functions of the Bayesian search, for minimization: higher is better.

- `expected_improvement`: log EI below the incumbent.
- `confidence_bound`: the negated lower confidence bound, -(mean - kappa * sd).
- `JointImprovement`: EI of a new point given pending points (running trials, earlier picks of a
  batch) whose outcomes are not known yet, i.e. q-EI of the set {pending, x} as a function of x.

For `JointImprovement`, the pending outcomes are drawn jointly from the GP posterior
(quasi-random normal draws). For each draw the improvement of x is analytic: x improves on the
better of the incumbent and the draw's best pending outcome, and f(x) given the draw is Gaussian.
Averaging over draws prices in that a pending point may already win, so the next pick goes where
the pending points are unlikely to.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import logsumexp, ndtr, ndtri
from scipy.stats import qmc

from ._gp import Surrogate, cholesky_with_jitter

DRAWS = 128

Acquisition = Callable[[np.ndarray], np.ndarray]  # one score per row of X


def expected_improvement(surrogate: Surrogate, best_y: float) -> Acquisition:
    def score(X: np.ndarray) -> np.ndarray:
        mean, sd = surrogate.predict(X)
        return log_ei((best_y - mean) / sd) + np.log(sd)

    return score


def confidence_bound(surrogate: Surrogate, kappa: float) -> Acquisition:
    def score(X: np.ndarray) -> np.ndarray:
        mean, sd = surrogate.predict(X)
        return -(mean - kappa * sd)

    return score


class JointImprovement:
    """log q-EI of x together with the pending points `P` (see the module docstring)."""

    def __init__(
        self, surrogate: Surrogate, P: np.ndarray, best_y: float, rng: np.random.Generator
    ) -> None:
        self.surrogate, self.P = surrogate, P
        mean_p, _ = surrogate.predict(P)
        unit = surrogate.scale**2  # jitter relative to the signal, whatever the losses' scale
        self._L = cholesky_with_jitter(surrogate.covariance(P) / unit) * np.sqrt(unit)
        sobol = qmc.Sobol(d=len(P), scramble=True, seed=rng)
        self._z = ndtri(np.clip(sobol.random(DRAWS), 1e-9, 1 - 1e-9)).T  # k x draws
        outcomes = mean_p[:, None] + self._L @ self._z
        self._threshold = np.minimum(best_y, outcomes.min(axis=0))  # one per draw

    def __call__(self, X: np.ndarray) -> np.ndarray:
        mean, sd, cov = self.surrogate.predict_with_covariance(X, self.P)
        # f(x) given the draw z: mean + u.z, variance sd^2 - |u|^2, with u = L^-1 cov
        u = solve_triangular(self._L, cov.T, lower=True, check_finite=False).T  # m x k
        s = np.sqrt(np.maximum(sd**2 - np.einsum("mk,mk->m", u, u), 1e-12 * sd**2))
        z = (self._threshold[None, :] - mean[:, None] - u @ self._z) / s[:, None]
        return logsumexp(log_ei(z), axis=1) - np.log(DRAWS) + np.log(s)


def log_ei(z: np.ndarray) -> np.ndarray:
    """log(z * Phi(z) + phi(z)), stable for very negative z."""
    out = np.empty_like(z)
    near = z > -6.0
    zn = z[near]
    out[near] = np.log(zn * ndtr(zn) + np.exp(-0.5 * zn**2) / np.sqrt(2 * np.pi))
    zf = z[~near]
    # Mills-ratio expansion: h(z) ~ phi(z) / z^2 * (1 - 3 / z^2)
    out[~near] = -0.5 * zf**2 - 0.5 * np.log(2 * np.pi) - 2 * np.log(-zf) + np.log1p(-3.0 / zf**2)
    return out
