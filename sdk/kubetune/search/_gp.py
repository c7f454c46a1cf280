"""Gaussian-process surrogate on scikit-optimize: MAP-fitted once, then cheap conditioning.

`fit_surrogate` fits kernel hyperparameters on the completed trials (the only expensive step).
`Surrogate` predicts the posterior mean, spread and covariance in numpy with those hyperparameters
frozen; `Surrogate.with_fantasies` conditions it on pending points without refitting (kriging
believer: each pending point is believed to score the posterior mean)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import cho_solve, cholesky, solve_triangular
from scipy.optimize import fmin_l_bfgs_b
from scipy.spatial.distance import cdist
from skopt.learning import GaussianProcessRegressor
from skopt.learning.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

LENGTH_BOUNDS = (0.01, 20.0)
NOISE_BOUNDS = (1e-10, 0.5)
FIT_POINTS = 48  # trials used to fit kernel hyperparameters
RESTARTS = 2
PRIOR_CENTER = float(np.log(0.5))  # log-normal prior on length scales (unit-cube inputs)
PRIOR_WIDTH = 1.5
# Gamma(shape, rate) prior on the noise variance of the standardized losses (Optuna's GPSampler
# uses the same): it keeps the GP from interpolating noise, at a small cost in precision.
NOISE_PRIOR_SHAPE = 1.1
NOISE_PRIOR_RATE = 30.0


@dataclass
class Surrogate:
    """A GP with frozen kernel hyperparameters, conditioned on (X, y).

    `kernel` is the fitted `signal + WhiteKernel`; predictions are of the noise-free signal.
    Conditioning is done here in numpy (one Cholesky), which keeps fantasies cheap.
    """

    kernel: Any
    X: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        self._offset = float(np.mean(self.y))
        self._scale = float(np.std(self.y)) or 1.0
        K = self.kernel(self.X)
        self._L = cholesky_with_jitter(K)
        self._alpha = cho_solve((self._L, True), (self.y - self._offset) / self._scale)
        self._amplitude = float(self.kernel.k1.k1.constant_value)
        self._length = np.asarray(self.kernel.k1.k2.length_scale, dtype=float)
        self._X_scaled = self.X / self._length

    @property
    def scale(self) -> float:
        """The spread of the losses the GP was conditioned on (their standard deviation)."""
        return self._scale

    def _matern(self, A: np.ndarray, B_scaled: np.ndarray) -> np.ndarray:
        """Matern-5/2 signal covariance between rows of A and rows of B / length."""
        r = np.sqrt(5.0) * cdist(A / self._length, B_scaled)
        return self._amplitude * (1.0 + r + r**2 / 3.0) * np.exp(-r)

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the noise-free function at rows of `X`."""
        mean, std, _ = self._posterior(X, X[:0])
        return mean, std

    def predict_with_covariance(
        self, X: np.ndarray, P: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`predict` at rows of X, and the posterior covariance between rows of X and of P."""
        return self._posterior(X, P)

    def covariance(self, P: np.ndarray) -> np.ndarray:
        """Posterior covariance of the noise-free function between rows of P."""
        return self._posterior(P, P)[2]

    def _posterior(self, X: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cross = self._matern(X, self._X_scaled)
        mean = cross @ self._alpha
        v = solve_triangular(self._L, cross.T, lower=True, check_finite=False)
        var = self._amplitude - np.einsum("ij,ij->j", v, v)
        std = np.sqrt(np.maximum(var, 1e-18)) * self._scale
        cov = np.empty((len(X), 0))
        if len(P):
            v_p = solve_triangular(
                self._L, self._matern(P, self._X_scaled).T, lower=True, check_finite=False
            )
            cov = (self._matern(X, P / self._length) - v.T @ v_p) * self._scale**2
        return mean * self._scale + self._offset, std, cov

    def log_likelihood(self) -> float:
        """Log marginal likelihood of the targets as given (not normalized) under this GP."""
        yn = (self.y - self._offset) / self._scale
        return float(
            -0.5 * yn @ self._alpha
            - np.sum(np.log(np.diag(self._L)))
            - 0.5 * len(yn) * np.log(2 * np.pi)
            - len(yn) * np.log(self._scale)
        )

    def with_fantasies(self, X_new: np.ndarray) -> Surrogate:
        """Condition on pending points, each believed to score the posterior mean there
        (kriging believer): the uncertainty around them collapses, the model's belief stays."""
        if len(X_new) == 0:
            return self
        lies, _ = self.predict(X_new)
        return Surrogate(self.kernel, np.vstack([self.X, X_new]), np.concatenate([self.y, lies]))


def cholesky_with_jitter(K: np.ndarray) -> np.ndarray:
    jitter = 1e-10
    for _ in range(8):
        try:
            return cholesky(K + jitter * np.eye(len(K)), lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            jitter *= 100
    raise np.linalg.LinAlgError("kernel matrix is not positive definite")


def fit_surrogate(X: np.ndarray, y: np.ndarray, seed: int, noise_prior: bool = False) -> Surrogate:
    """Fit a Matern-5/2 ARD GP (plus noise) by maximizing the penalized marginal likelihood.

    Hyperparameters are fitted on at most FIT_POINTS trials (the best ones plus a seeded random
    sample of the rest), then the GP is conditioned on all of them: the fit is O(n^3) per
    likelihood evaluation, conditioning is a single O(n^3) step. With `noise_prior`, the noise
    variance has a Gamma prior too, which favours a little noise over none.
    """
    dims = X.shape[1]
    rng = np.random.default_rng(seed)
    subset = _fit_subset(y, rng)
    restarts = RESTARTS if len(subset) < FIT_POINTS else 0
    kernel = ConstantKernel(1.0, (1e-2, 1e2)) * Matern(
        length_scale=np.full(dims, 0.5), length_scale_bounds=LENGTH_BOUNDS, nu=2.5
    ) + WhiteKernel(1e-3, NOISE_BOUNDS)
    fits: list[tuple[float, np.ndarray]] = []

    def optimizer(obj: Any, theta0: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, float]:
        theta, value, _ = fmin_l_bfgs_b(
            lambda t: _penalized(obj, t, dims, noise_prior), theta0, bounds=bounds, maxiter=200
        )
        fits.append((float(value), theta))
        return theta, float(value)

    gp = GaussianProcessRegressor(
        kernel=kernel,
        normalize_y=True,
        noise="gaussian",
        optimizer=optimizer,
        n_restarts_optimizer=restarts,
        random_state=np.random.RandomState(seed % (2**32)),
    )
    gp.fit(X[subset], y[subset])
    best_theta = min(fits, key=lambda f: f[0])[1]
    return Surrogate(kernel.clone_with_theta(best_theta), X, y)


def _fit_subset(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if len(y) <= FIT_POINTS:
        return np.arange(len(y))
    order = np.argsort(y, kind="stable")
    best = order[: FIT_POINTS // 3]
    rest = rng.choice(order[FIT_POINTS // 3 :], size=FIT_POINTS - len(best), replace=False)
    return np.sort(np.concatenate([best, rest]))


def _penalized(
    obj: Any, theta: np.ndarray, dims: int, noise_prior: bool
) -> tuple[float, np.ndarray]:
    """Negative log marginal likelihood plus a weak log-normal prior on the length scales, and
    with `noise_prior` a Gamma prior on the noise variance (theta is log-scaled; last: noise)."""
    value, grad = obj(theta, eval_gradient=True)
    ls = theta[1 : 1 + dims]
    grad = np.array(grad, copy=True)
    center, width = PRIOR_CENTER, PRIOR_WIDTH
    value = value + 0.5 * float(np.sum(((ls - center) / width) ** 2))
    grad[1 : 1 + dims] += (ls - center) / width**2
    if noise_prior:
        log_noise = theta[-1]
        value -= (NOISE_PRIOR_SHAPE - 1) * log_noise - NOISE_PRIOR_RATE * np.exp(log_noise)
        grad[-1] -= (NOISE_PRIOR_SHAPE - 1) - NOISE_PRIOR_RATE * np.exp(log_noise)
    return value, grad
