"""Bayesian optimization: a space-filling start, then a GP surrogate and expected improvement.

Rebuilt from the history on every call: fit the GP on the finished trials, raw and on
Box-Cox-warped losses, keeping the fit that explains them better; then pick the batch one point at
a time. Running trials and earlier picks of the batch are pending: EI becomes q-EI jointly with
them (`_acquisition.JointImprovement`), so a batch spreads out; LCB conditions on them at the
posterior mean (kriging believer). Under ASHA a trial stopped early is pending too, never
resolved; under the median rule its partial loss is fitted as if final. The acquisition is
maximized over random points, points near the best trials, and a few rounds of shrinking local
search around the leaders."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import boxcox, chi2, qmc
from threadpoolctl import threadpool_limits

from ..front import feasible, goal_values, reference_losses
from ..pareto import crowding, front_mask, to_losses
from ..spec import Acquisition as AcquisitionName
from ..spec import AshaStopping, BayesianAlgorithm, TuningJobSpec
from ._acquisition import Acquisition, JointImprovement, confidence_bound, expected_improvement
from ._base import BaseSuggester, Observation, Params
from ._gp import Surrogate, fit_surrogate
from ._outcomes import Feasibility, HypervolumeImprovement, plain_front
from ._space import SearchSpace, snap_columns

RANDOM_CANDIDATES = 1024
LOCAL_SCALES = (0.2, 0.05, 0.01, 0.002, 0.0005, 0.0001)
LOCAL_PER_SCALE = 32
LEADERS = 5
REFINE_ROUNDS = 7
PARETO_REFINE_ROUNDS = 4  # hypervolume gains need less precision; each round costs 3+ GPs
REFINE_POINTS = 96
TOP_OVERALL = 3
MAX_STOPPED_PENDING = 256  # bounds the cost of q-EI in long jobs with early stopping
STALE_AFTER = 3  # own results before warm-start points are checked against them
STALE_Z = 3.0  # median standardized error beyond which warm-start points are dropped
STALE_P = 1e-3  # chance level below which this job's squared errors mean the points are stale
STALE_SLACK = 0.25  # of the earlier losses' robust spread: mismatch within it is noise


class BayesianSuggester(BaseSuggester):
    """GP-based suggestions (see module docstring)."""

    def __init__(self, spec: TuningJobSpec) -> None:
        super().__init__(spec)
        assert isinstance(spec.algorithm, BayesianAlgorithm)
        self.settings = spec.algorithm.settings
        self.space = SearchSpace(spec.parameters)
        # ASHA stops most trials at its first rungs, where a partial loss says little about the
        # final one: those trials are pending. The median rule's partial losses are kept
        # (benchmarks/stopped_trials.py measured both).
        self.stopped_pending = isinstance(spec.early_stopping, AshaStopping)

    def suggest(self, history: Sequence[Observation], count: int) -> list[Params]:
        history = self._without_stale_prior(history)
        seen = {self.space.key(o.params) for o in history}
        done = _trained_on(history, self.stopped_pending, self._known)
        picks: list[Params] = []
        while len(picks) < count and self._in_design(len(history) + len(picks), len(done)):
            pick = self._design_point(len(history) + len(picks), seen)
            if pick is None:
                return picks
            picks.append(pick)
            seen.add(self.space.key(pick))
        if len(picks) < count:
            # Small dense algebra: BLAS threads only add contention.
            with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                picks.extend(self._model_picks(history, done, picks, seen, count - len(picks)))
        return picks

    def _without_stale_prior(self, history: Sequence[Observation]) -> list[Observation]:
        """The history, without the warm-start points once this job's own results show that
        they describe another function (the optimum moved): a GP fitted on the earlier
        results must predict this job's results (the first 3, the first 4, ... all) within
        STALE_Z spreads (median)."""
        prior = [o for o in history if o.prior and self._known(o)]
        own = [o for o in history if not o.prior and self._known(o)]
        if not prior or len(own) < STALE_AFTER or self._consistent(prior, own):
            return list(history)
        return [o for o in history if not o.prior]

    def _consistent(self, prior: list[Observation], own: list[Observation]) -> bool:
        X_p = self.space.to_unit([o.params for o in prior])
        X_o = self.space.to_unit([o.params for o in own])
        for y_p, y_o in zip(self._losses(prior).T, self._losses(own).T, strict=True):
            with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mean, sd = fit_surrogate(X_p, y_p, seed=self.seed).predict(X_o)
            spread = 1.4826 * float(np.median(np.abs(y_p - np.median(y_p))))  # robust sd
            slack = STALE_SLACK * (spread or float(np.std(y_p)) or 1.0)
            z = np.abs(y_o - mean) / np.sqrt(sd**2 + slack**2)
            # judged on every prefix of this job's results, so that once stale, always stale:
            # systematically off (median), or too far off for chance where it was sure (chi^2)
            for k in range(STALE_AFTER, len(z) + 1):
                if np.median(z[:k]) > STALE_Z or np.sum(z[:k] ** 2) > chi2.isf(STALE_P, k):
                    return False
        return True

    def _losses(self, observations: list[Observation]) -> np.ndarray:
        """Each observation's loss per objective (n x m)."""
        if not self.spec.multi_objective:
            return self.sign() * np.array([[o.value] for o in observations], dtype=float)
        rows = [goal_values(self.spec, o.metrics) for o in observations]
        return to_losses(np.array(rows, dtype=float), [g.minimize for g in self.spec.goals])

    def _known(self, o: Observation) -> bool:
        """A finished trial whose every objective is known (the model's training data)."""
        return o.usable and (
            not self.spec.multi_objective or goal_values(self.spec, o.metrics) is not None
        )

    def _in_design(self, started: int, usable: int) -> bool:
        return started < self.settings.initial_points or usable < 2

    def _design_point(self, index: int, seen: set[tuple[object, ...]]) -> Params | None:
        """The `index`-th point of a scrambled Halton sequence, or a random unseen one."""
        halton = qmc.Halton(d=len(self.space.parameters), scramble=True, seed=self.seed)
        if index:
            halton.fast_forward(index)
        candidate = self.space.from_quantiles(halton.random(1))[0]
        if self.space.key(candidate) not in seen:
            return candidate
        rng = np.random.default_rng([self.seed, index])
        for candidate in self.space.from_quantiles(rng.random((256, len(self.space.parameters)))):
            if self.space.key(candidate) not in seen:
                return candidate
        return None

    def _model_picks(
        self,
        history: Sequence[Observation],
        done: list[Observation],
        picks: list[Params],
        seen: set[tuple[object, ...]],
        count: int,
    ) -> list[Params]:
        if self.spec.multi_objective:
            return self._pareto_picks(history, done, picks, seen, count)
        X = self.space.to_unit([o.params for o in done])
        y, surrogate = _fit(
            X,
            self.sign() * np.array([o.value for o in done], dtype=float),
            self.seed + len(history),
        )
        pending = self._pending(history, done, picks)
        rng = np.random.default_rng([self.seed, len(history), 1])
        ok = np.array([feasible(self.spec, o.metrics) for o in done], dtype=bool)
        feasibility = self._feasibility(X, done)
        best_y = float(np.min(y[ok])) if ok.any() else None
        ranked = np.lexsort((y, ~ok))  # feasible first, then by loss
        leaders = X[ranked[:LEADERS]]
        result: list[Params] = []
        for _ in range(count):
            if best_y is None:
                assert feasibility is not None  # without constraints every trial is feasible
                acquisition: Acquisition = feasibility
            else:
                acquisition = _times(
                    self._acquisition(surrogate, best_y, pending, rng), feasibility
                )
            point = self._maximize(acquisition, leaders, seen, rng)
            if point is None:
                break
            config = self.space.from_unit(point[None, :])[0]
            result.append(config)
            seen.add(self.space.key(config))
            pending = np.vstack([pending, point[None, :]])
        return result

    def _pareto_picks(
        self,
        history: Sequence[Observation],
        done: list[Observation],
        picks: list[Params],
        seen: set[tuple[object, ...]],
        count: int,
    ) -> list[Params]:
        """Several objectives: one GP per objective, expected hypervolume improvement (times
        the probability of feasibility); each pick joins the front at its posterior mean."""
        X = self.space.to_unit([o.params for o in done])
        Y = self._losses(done)
        seed = self.seed + len(history)
        surrogates = [fit_surrogate(X, Y[:, j], seed=seed + j) for j in range(Y.shape[1])]
        ok = np.array([feasible(self.spec, o.metrics) for o in done], dtype=bool)
        feasibility = self._feasibility(X, done)
        believed = _means(surrogates, X[ok])
        reference = reference_losses(self.spec, Y[ok] if ok.any() else Y)
        front = plain_front(
            np.vstack([believed, _means(surrogates, self._pending(history, done, picks))])
        )
        on = np.flatnonzero(front_mask(believed)) if len(believed) else np.zeros(0, dtype=int)
        leaders = X[ok][on[np.argsort(-crowding(believed[on]))][:LEADERS]] if len(on) else X[:0]
        if not len(leaders):
            leaders = X[np.argsort(Y.sum(axis=1))[:LEADERS]]
        rng = np.random.default_rng([self.seed, len(history), 1])
        result: list[Params] = []
        for _ in range(count):
            if ok.any():
                improvement = HypervolumeImprovement(surrogates, front, reference, rng)
                acquisition = _times(improvement, feasibility)
            else:
                assert feasibility is not None
                acquisition = feasibility
            point = self._maximize(acquisition, leaders, seen, rng)
            if point is None:
                break
            config = self.space.from_unit(point[None, :])[0]
            result.append(config)
            seen.add(self.space.key(config))
            front = plain_front(np.vstack([front, _means(surrogates, point[None, :])]))
        return result

    def _pending(
        self, history: Sequence[Observation], done: list[Observation], picks: list[Params]
    ) -> np.ndarray:
        """Points whose outcome the model does not know: running (and failed) trials, trials
        stopped early that it was not fitted on, earlier picks of this batch."""
        return self.space.to_unit(
            [
                *(o.params for o in history if not o.finished or o.state == "failed"),
                *(o.params for o in self._stopped(history, done)),
                *picks,
            ]
        )

    def _feasibility(self, X: np.ndarray, done: list[Observation]) -> Feasibility | None:
        """The probability of feasibility, a GP per constrained metric (None: no constraints)."""
        if not self.spec.constraints:
            return None
        models = []
        for i, c in enumerate(self.spec.constraints):
            rows = [k for k, o in enumerate(done) if c.metric in o.metrics]
            values = np.array([done[k].metrics[c.metric] for k in rows], dtype=float)
            if len(rows) < 2 or np.ptp(values) == 0:
                continue  # nothing to learn yet
            models.append((c, fit_surrogate(X[rows], values, seed=self.seed + 101 + i)))
        return Feasibility(models)

    def _stopped(
        self, history: Sequence[Observation], done: list[Observation]
    ) -> list[Observation]:
        """Trials stopped early that the GP was not fitted on, the most promising first."""
        if any(o.state == "stopped" for o in done):
            return []  # fitted on their partial values
        stopped = [o for o in history if o.usable and o.state == "stopped"]
        stopped.sort(key=lambda o: self.sign() * float(o.value))  # type: ignore[arg-type]
        return stopped[:MAX_STOPPED_PENDING]

    def _acquisition(
        self, surrogate: Surrogate, best_y: float, pending: np.ndarray, rng: np.random.Generator
    ) -> Acquisition:
        """EI, or LCB, given the pending points: q-EI jointly with them (EI), or the kriging
        believer (LCB: the GP believes each pending point scores its posterior mean)."""
        if self.settings.acquisition is AcquisitionName.lcb:
            return confidence_bound(surrogate.with_fantasies(pending), self.settings.kappa)
        if len(pending):
            return JointImprovement(surrogate, pending, best_y, rng)
        return expected_improvement(surrogate, best_y)

    def _maximize(
        self,
        acquisition: Acquisition,
        leaders: np.ndarray,
        seen: set[tuple[object, ...]],
        rng: np.random.Generator,
    ) -> np.ndarray | None:
        """The best unseen point found: random and local candidates, then shrinking local
        rounds around the best of them."""
        pool = [self.space.random_unit(rng, RANDOM_CANDIDATES)]
        for scale in LOCAL_SCALES:
            pool.append(self._perturb(np.repeat(leaders, LOCAL_PER_SCALE, axis=0), scale, rng))
        candidates = np.vstack(pool)
        scores = acquisition(candidates)
        top = candidates[np.argsort(-scores)[:TOP_OVERALL]]
        scale = 0.05
        for _ in range(PARETO_REFINE_ROUNDS if self.spec.multi_objective else REFINE_ROUNDS):
            local = self._perturb(np.repeat(top, REFINE_POINTS // len(top), axis=0), scale, rng)
            candidates = np.vstack([candidates, local])
            scores = np.concatenate([scores, acquisition(local)])
            top = candidates[np.argsort(-scores)[:TOP_OVERALL]]
            scale *= 0.25
        for index in np.argsort(-scores):
            point = candidates[index]
            if self.space.key(self.space.from_unit(point[None, :])[0]) not in seen:
                return point
        return None

    def _perturb(self, points: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
        moved = points + rng.normal(0.0, scale, size=points.shape)
        for p, (a, b) in zip(self.space.parameters, self.space.spans, strict=True):
            if b - a > 1 or p.type == "categorical":
                flip = rng.random(len(points)) < min(0.5, 2 * scale)
                moved[flip, a:b] = rng.random((int(flip.sum()), b - a))
                moved[~flip, a:b] = points[~flip, a:b]
        return snap_columns(self.space, moved)


def _means(surrogates: Sequence[Surrogate], X: np.ndarray) -> np.ndarray:
    """The posterior mean of each objective at the rows of X (n x m)."""
    if not len(X):
        return np.zeros((0, len(surrogates)))
    return np.column_stack([s.predict(X)[0] for s in surrogates])


def _times(acquisition: Acquisition, feasibility: Feasibility | None) -> Acquisition:
    """The acquisition weighted by the probability of feasibility (added in log space)."""
    if feasibility is None:
        return acquisition

    def score(X: np.ndarray) -> np.ndarray:
        return np.asarray(acquisition(X) + feasibility(X))

    return score


def _trained_on(
    history: Sequence[Observation],
    stopped_pending: bool,
    known: Callable[[Observation], bool] = lambda o: o.usable,
) -> list[Observation]:
    """The trials the GP is fitted on. With `stopped_pending`, only those that ran to the end:
    a trial stopped early is pending instead, unless fewer than two trials ran to the end."""
    usable = [o for o in history if known(o)]
    completed = [o for o in usable if o.state == "succeeded"]
    return completed if stopped_pending and len(completed) >= 2 else usable


def _fit(X: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, Surrogate]:
    """The GP on the raw losses or on Box-Cox-warped ones, whichever explains the raw losses
    better (marginal likelihood, with the warp's Jacobian); the losses it was fitted on.

    The warp spreads the low end, so near the optimum a little noise in the losses becomes a
    lot: the warped GP gets a prior against zero noise. The raw GP interpolates, which is what
    a smooth, exact loss needs (benchmarks/README.md measured both ways)."""
    plain = fit_surrogate(X, y, seed=seed)
    warp = warp_outputs(y)
    if warp is None:
        return y, plain
    warped_y, log_jacobian = warp
    warped = fit_surrogate(X, warped_y, seed=seed, noise_prior=True)
    if warped.log_likelihood() + log_jacobian > plain.log_likelihood():
        return warped_y, warped
    return y, plain


def warp_outputs(y: np.ndarray) -> tuple[np.ndarray, float] | None:
    """A monotone Box-Cox warp of the losses (shifted to be positive), its parameter fitted by
    likelihood, and the log of its Jacobian; None where there is nothing to warp.

    A loss that spans orders of magnitude makes a GP on raw values flat near the optimum,
    where the search needs it to resolve differences; the warp keeps the order of every value."""
    gaps = y - np.min(y)
    positive = gaps[gaps > 0]
    if len(positive) < 2:
        return None
    shifted = gaps + 0.1 * float(np.median(positive))
    warped, lam = boxcox(shifted)
    if not np.all(np.isfinite(warped)):
        return None
    return warped, float((lam - 1.0) * np.sum(np.log(shifted)))
