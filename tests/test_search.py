"""Suggesters: one conformance suite run against every algorithm, then per-algorithm behaviour."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubetune.search import (
    GridSuggester,
    HyperbandSuggester,
    Observation,
    SearchSpace,
    create_suggester,
    plan_brackets,
)
from kubetune.spec import Resource

from .conftest import make_spec

ALGORITHMS = ["bayesian", "random", "grid", "hyperband"]
GRID_SETTINGS = {"points": 3}


def spec_for(algorithm: str, **extra: Any) -> Any:
    if algorithm == "grid":
        extra.setdefault("settings", GRID_SETTINGS)
    if algorithm == "bayesian":
        extra.setdefault("settings", {"initialPoints": 4})
    return make_spec(algorithm, **extra)


def loss(params: dict[str, Any]) -> float:
    """A smooth loss over the mixed space, best near lr=1e-2, layers=2, units=64, adam."""
    value = (math.log10(params["lr"]) + 2) ** 2 + 0.3 * (params["layers"] - 2) ** 2
    value += (math.log2(params["units"]) - 6) ** 2 / 4 + (params["dropout"] - 0.2) ** 2
    return value + {"sgd": 0.5, "adam": 0.0, 3: 0.2}[params["optimizer"]]


def run(algorithm: str, trials: int, batch: int, seed: int = 0, **extra: Any) -> list[Observation]:
    spec = spec_for(algorithm, seed=seed, **extra)
    suggester = create_suggester(spec)
    history: list[Observation] = []
    while len(history) < trials:
        batch_params = suggester.suggest(history, min(batch, trials - len(history)))
        if not batch_params:
            break
        history.extend(Observation(params=p, value=loss(p)) for p in batch_params)
    return history


def assert_in_space(spec: Any, params: dict[str, Any]) -> None:
    space = SearchSpace(spec.parameters)
    names = set(space.names)
    if spec.algorithm.name == "hyperband":
        budget = params.pop(spec.resource.name)
        assert spec.resource.min <= budget <= spec.resource.max
        assert isinstance(budget, int)
    assert set(params) == names
    assert space.contains(params), params


# -- conformance: every algorithm -------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_suggestions_are_typed_in_range_and_never_repeat(algorithm: str) -> None:
    spec = spec_for(algorithm)
    history = run(algorithm, trials=16, batch=4)
    assert len(history) == 16
    keys = Counter(tuple(sorted((k, repr(v)) for k, v in o.params.items())) for o in history)
    assert max(keys.values()) == 1
    for o in history:
        assert_in_space(spec, dict(o.params))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_same_inputs_same_suggestions(algorithm: str) -> None:
    history = run(algorithm, trials=8, batch=2)
    first = create_suggester(spec_for(algorithm)).suggest(history, 3)
    again = create_suggester(spec_for(algorithm)).suggest(history, 3)
    assert first == again and len(first) == 3
    other_seed = create_suggester(spec_for(algorithm, seed=5)).suggest(history, 3)
    if algorithm != "grid":
        assert other_seed != first


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_running_trials_are_not_suggested_again(algorithm: str) -> None:
    suggester = create_suggester(spec_for(algorithm))
    history = run(algorithm, trials=6, batch=3)
    pending = suggester.suggest(history, 2)
    running = [*history, *(Observation(params=p, state="running") for p in pending)]
    following = suggester.suggest(running, 2)
    assert not {repr(sorted(p.items())) for p in following} & {
        repr(sorted(p.items())) for p in pending
    }


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_failed_trials_do_not_break_the_search(algorithm: str) -> None:
    spec = spec_for(algorithm)
    suggester = create_suggester(spec)
    history: list[Observation] = []
    for i in range(12):
        for p in suggester.suggest(history, 1):
            failed = i % 3 == 0
            history.append(
                Observation(
                    params=p,
                    value=None if failed else loss(p),
                    state="failed" if failed else "succeeded",
                )
            )
    history.append(Observation(params=history[1].params, value=float("nan")))
    nxt = suggester.suggest(history, 2)
    assert len(nxt) == 2
    for p in nxt:
        assert_in_space(spec, dict(p))


# -- property: any valid space ------------------------------------------------------------


@st.composite
def parameter_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    params = []
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["float", "int", "categorical"]))
        name = f"p{i}"
        if kind == "categorical":
            values = draw(
                st.lists(
                    st.one_of(st.text("abc", min_size=1, max_size=3), st.integers(-5, 5)),
                    min_size=1,
                    max_size=4,
                    unique_by=repr,
                )
            )
            params.append({"name": name, "type": kind, "values": values})
            continue
        log = draw(st.booleans())
        if kind == "int":
            lo = draw(st.integers(1 if log else -50, 50))
            hi = draw(st.integers(lo + 1, lo + 200))
            step = draw(st.one_of(st.none(), st.integers(1, max(1, (hi - lo) // 2))))
        else:
            lo = draw(st.floats(1e-4 if log else -100, 100, allow_nan=False))
            hi = lo + draw(st.floats(1e-3, 1000))
            step = draw(st.one_of(st.none(), st.sampled_from([(hi - lo) / 7, (hi - lo) / 2])))
        param = {
            "name": name,
            "type": kind,
            "min": lo,
            "max": hi,
            "scale": "log" if log else "linear",
        }
        if step is not None:
            param["step"] = step
        params.append(param)
    return params


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parameters=parameter_lists(), algorithm=st.sampled_from(["random", "bayesian", "grid"]))
def test_suggestions_stay_inside_any_valid_space(
    parameters: list[dict[str, Any]], algorithm: str
) -> None:
    extra: dict[str, Any] = {"settings": {"initialPoints": 3}} if algorithm == "bayesian" else {}
    if algorithm == "grid":
        extra["settings"] = {"points": 3}
    spec = make_spec(algorithm, parameters=parameters, **extra)
    suggester = create_suggester(spec)
    rng = np.random.default_rng(0)
    history: list[Observation] = []
    for _ in range(3):
        batch = suggester.suggest(history, 2)
        for p in batch:
            assert_in_space(spec, dict(p))
            history.append(Observation(params=p, value=float(rng.normal())))
        if not batch:
            break
    assert len({SearchSpace(spec.parameters).key(o.params) for o in history}) == len(history)


# -- bayesian ---------------------------------------------------------------------------------


def test_bayesian_beats_random_on_a_smooth_loss() -> None:
    best = {
        algo: [min(o.value for o in run(algo, trials=24, batch=1, seed=s)) for s in range(2)]
        for algo in ("bayesian", "random")
    }
    assert max(best["bayesian"]) < min(best["random"]), best


def test_bayesian_batch_is_distinct_and_spread() -> None:
    history = run("bayesian", trials=8, batch=4)
    batch = create_suggester(spec_for("bayesian")).suggest(history, 4)
    space = SearchSpace(make_spec().parameters)
    points = space.to_unit(batch)
    gaps = [np.linalg.norm(a - b) for i, a in enumerate(points) for b in points[i + 1 :]]
    assert len({space.key(p) for p in batch}) == 4
    assert min(gaps) > 1e-3


def test_bayesian_respects_log_scale_in_its_design() -> None:
    spec = make_spec(
        "bayesian",
        parameters=[{"name": "lr", "type": "float", "min": 1e-5, "max": 1.0, "scale": "log"}],
        settings={"initialPoints": 20},
    )
    picks = create_suggester(spec).suggest([], 20)
    decades = Counter(math.floor(math.log10(p["lr"])) for p in picks)
    assert set(decades) == {-5, -4, -3, -2, -1}  # spread over decades, not bunched near 1.0


def test_bayesian_exhausts_a_small_finite_space() -> None:
    params = [
        {"name": "a", "type": "int", "min": 0, "max": 2},
        {"name": "b", "type": "categorical", "values": ["x", "y"]},
    ]
    spec = make_spec("bayesian", parameters=params, settings={"initialPoints": 2})
    suggester = create_suggester(spec)
    history: list[Observation] = []
    for _ in range(10):
        for p in suggester.suggest(history, 2):
            history.append(Observation(params=p, value=float(p["a"])))
    assert len(history) == 6
    assert suggester.suggest(history, 1) == []
    assert suggester.exhausted(history)


def test_bayesian_maximize_moves_toward_the_maximum() -> None:
    params = [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}]
    spec = make_spec(
        "bayesian",
        parameters=params,
        settings={"initialPoints": 4},
        objective={"metric": "acc", "direction": "maximize"},
    )
    suggester = create_suggester(spec)
    history: list[Observation] = []
    for _ in range(12):
        for p in suggester.suggest(history, 1):
            history.append(Observation(params=p, value=-((p["x"] - 0.8) ** 2)))
    best = max(history, key=lambda o: o.value or -1)
    assert abs(best.params["x"] - 0.8) < 0.02


# -- grid ---------------------------------------------------------------------------------------


def test_grid_is_exhaustive_without_duplicates_then_exhausted() -> None:
    params = [
        {"name": "lr", "type": "float", "min": 0.1, "max": 0.3, "step": 0.1},
        {"name": "n", "type": "int", "min": 1, "max": 5, "step": 2},
        {"name": "opt", "type": "categorical", "values": ["a", "b"]},
        {"name": "w", "type": "float", "min": 1e-3, "max": 1e-1, "scale": "log"},
    ]
    spec = make_spec("grid", parameters=params, settings={"points": 3})
    suggester = create_suggester(spec)
    assert isinstance(suggester, GridSuggester) and suggester.size == 3 * 3 * 2 * 3
    history: list[Observation] = []
    while batch := suggester.suggest(history, 5):
        history.extend(Observation(params=p, value=0.0) for p in batch)
    combos = {(o.params["lr"], o.params["n"], o.params["opt"], o.params["w"]) for o in history}
    assert len(history) == len(combos) == 54
    assert {o.params["lr"] for o in history} == {0.1, 0.2, 0.3}
    assert {o.params["n"] for o in history} == {1, 3, 5}
    assert sorted({o.params["w"] for o in history}) == pytest.approx([1e-3, 1e-2, 1e-1])
    assert suggester.exhausted(history)


# -- random --------------------------------------------------------------------------------


def test_random_covers_a_finite_space_without_replacement() -> None:
    params = [
        {"name": "a", "type": "int", "min": 0, "max": 3},
        {"name": "b", "type": "categorical", "values": [1, 2]},
    ]
    suggester = create_suggester(make_spec("random", parameters=params))
    history: list[Observation] = []
    while batch := suggester.suggest(history, 3):
        history.extend(Observation(params=p, value=1.0) for p in batch)
    assert len(history) == 8 and len({(o.params["a"], o.params["b"]) for o in history}) == 8


# -- hyperband -----------------------------------------------------------------------------


def test_hyperband_plan_matches_the_paper() -> None:
    plan = plan_brackets(Resource(name="epochs", min=1, max=27), eta=3, iterations=1)
    assert [(b.s, b.sizes, b.budgets) for b in plan] == [
        (3, (27, 9, 3, 1), (1, 3, 9, 27)),
        (2, (12, 4, 1), (3, 9, 27)),
        (1, (6, 2), (9, 27)),
        (0, (4,), (27,)),
    ]


def test_hyperband_promotes_the_best_of_each_rung_and_then_exhausts() -> None:
    spec = make_spec("hyperband", resource={"name": "epochs", "min": 1, "max": 9})
    suggester = create_suggester(spec)
    assert isinstance(suggester, HyperbandSuggester)
    history: list[Observation] = []
    rounds = 0
    while batch := suggester.suggest(history, 4):
        rounds += 1
        history.extend(
            Observation(params=p, value=loss(p) / p["epochs"])
            for p in batch  # more epochs, better
        )
    # eta=3, budgets 1..9: brackets (9,3,1)@(1,3,9), (5,1)@(3,9), (3)@(9) -> 13 + 6 + 3
    assert len(history) == 22
    assert suggester.exhausted(history)
    strip = lambda o: tuple(v for k, v in sorted(o.params.items()) if k != "epochs")  # noqa: E731
    rung0 = [o for o in history if o.params["epochs"] == 1]  # only bracket 0 starts at 1 epoch
    starters = {strip(o) for o in rung0}
    rung1 = [o for o in history if o.params["epochs"] == 3 and strip(o) in starters]
    assert len(rung0) == 9 and len(rung1) == 3
    best3 = sorted(rung0, key=lambda o: o.value or 0)[:3]
    assert {strip(o) for o in rung1} == {strip(o) for o in best3}
    rung2 = [o for o in history if o.params["epochs"] == 9 and strip(o) in starters]
    assert [strip(o) for o in rung2] == [strip(min(rung1, key=lambda o: o.value or 0))]


def test_hyperband_waits_for_a_rung_before_promoting() -> None:
    spec = make_spec("hyperband", resource={"name": "epochs", "min": 1, "max": 9})
    suggester = create_suggester(spec)
    rung0 = suggester.suggest([], 9)
    assert {p["epochs"] for p in rung0} == {1}
    history = [Observation(params=p, value=1.0) for p in rung0[:8]]
    history.append(Observation(params=rung0[8], state="running"))
    nxt = suggester.suggest(history, 2)
    assert all(p["epochs"] == 3 for p in nxt)  # next bracket's rung 0, not a promotion
    finished = [*history[:8], Observation(params=rung0[8], value=0.5)]
    following = suggester.suggest(finished, 20)
    promoted = [p for p in following if p["epochs"] == 3 and p["lr"] == rung0[8]["lr"]]
    assert len(promoted) == 1


def test_output_warp_keeps_the_order_and_spreads_the_low_end() -> None:
    from kubetune.search._bayesian import warp_outputs

    losses = np.array([1e5, 3e4, 200.0, 50.0, 12.0, 3.0, 1.0, 0.5])
    warp = warp_outputs(losses)
    assert warp is not None
    warped, _ = warp
    assert list(np.argsort(warped)) == list(np.argsort(losses))
    standardized = (losses - losses.mean()) / losses.std()

    # the gap between the two best losses, relative to the whole range, grows by orders
    def share(v: np.ndarray) -> float:
        return float((v[6] - v[7]) / (v.max() - v.min()))

    assert share(warped) > 100 * share(standardized)
    assert warp_outputs(np.array([2.0, 2.0, 2.0])) is None  # nothing to warp


def test_batch_fantasies_believe_the_posterior_mean() -> None:
    from kubetune.search._gp import fit_surrogate

    rng = np.random.default_rng(0)
    X = rng.random((20, 2))
    y = np.sin(6 * X[:, 0]) + X[:, 1]
    surrogate = fit_surrogate(X, y, seed=0)
    pending = np.array([[0.5, 0.5]])
    before, spread = surrogate.predict(pending)
    after, collapsed = surrogate.with_fantasies(pending).predict(pending)
    assert after == pytest.approx(before, abs=1e-6)  # the belief stays
    assert collapsed[0] < 0.1 * spread[0]  # the uncertainty there is gone


def test_the_warp_is_used_only_where_it_explains_the_losses_better() -> None:
    from kubetune.search._bayesian import _fit

    rng = np.random.default_rng(1)
    X = rng.random((30, 2))
    bowl = np.sum((X - 0.3) ** 2, axis=1)  # smooth: a GP on raw values fits it
    y, _ = _fit(X, bowl, seed=0)
    assert np.array_equal(y, bowl)
    cliff = np.exp(12 * np.sum(X, axis=1))  # spans orders of magnitude: warped
    y, _ = _fit(X, cliff, seed=0)
    assert not np.array_equal(y, cliff)
    assert list(np.argsort(y)) == list(np.argsort(cliff))


def test_the_warped_gp_keeps_some_noise_and_the_raw_gp_interpolates() -> None:
    from kubetune.search._bayesian import _fit, warp_outputs
    from kubetune.search._gp import fit_surrogate

    def noise(surrogate: Any) -> float:
        return float(surrogate.kernel.k2.noise_level)

    rng = np.random.default_rng(1)
    X = rng.random((30, 2))
    cliff = np.exp(12 * np.sum(X, axis=1))
    y, warped = _fit(X, cliff, seed=0)
    assert not np.array_equal(y, cliff)
    warp = warp_outputs(cliff)
    assert warp is not None
    assert noise(fit_surrogate(X, warp[0], seed=0)) < 1e-9  # without the prior: interpolates
    assert noise(warped) > 1e-8  # with it: some noise, as small as the data allow
    bowl = np.sum((X - 0.3) ** 2, axis=1)
    y, plain = _fit(X, bowl, seed=0)
    assert np.array_equal(y, bowl)
    assert noise(plain) < 1e-9


def test_the_noise_prior_adds_a_gamma_log_density_and_its_gradient() -> None:
    from kubetune.search._gp import NOISE_PRIOR_RATE, NOISE_PRIOR_SHAPE, _penalized

    def likelihood(theta: np.ndarray, eval_gradient: bool) -> tuple[float, np.ndarray]:
        return float(np.sum(theta**2)), 2 * theta

    theta = np.array([0.3, -0.2, 0.1, np.log(0.02)])  # amplitude, 2 length scales, noise
    plain, _ = _penalized(likelihood, theta, 2, noise_prior=False)
    value, grad = _penalized(likelihood, theta, 2, noise_prior=True)
    noise = 0.02
    log_density = (NOISE_PRIOR_SHAPE - 1) * np.log(noise) - NOISE_PRIOR_RATE * noise
    assert value == pytest.approx(plain - log_density)
    step = 1e-6
    for i in range(len(theta)):
        moved = theta.copy()
        moved[i] += step
        numeric = (_penalized(likelihood, moved, 2, noise_prior=True)[0] - value) / step
        assert grad[i] == pytest.approx(numeric, rel=1e-4, abs=1e-4)


def _bumpy_surrogate() -> tuple[Any, np.ndarray, np.ndarray]:
    from kubetune.search._gp import fit_surrogate

    rng = np.random.default_rng(0)
    X = rng.random((30, 3))
    y = 7 * np.sin(5 * X).sum(axis=1) + 3
    return fit_surrogate(X, y, seed=0), X, y


def test_joint_improvement_matches_monte_carlo_q_ei() -> None:
    from kubetune.search._acquisition import JointImprovement

    surrogate, X, y = _bumpy_surrogate()
    rng = np.random.default_rng(1)
    best = X[np.argmin(y)]
    pending = np.clip(best + 0.05 * rng.standard_normal((3, 3)), 0, 1)
    joint = JointImprovement(surrogate, pending, float(y.min()), np.random.default_rng(2))
    for x in (best + 0.03, pending[0] + 0.01):
        both = np.vstack([pending, np.clip(x, 0, 1)[None, :]])
        mean, _ = surrogate.predict(both)
        L = np.linalg.cholesky(surrogate.covariance(both) + 1e-9 * np.eye(4))
        f = mean[:, None] + L @ rng.standard_normal((4, 400_000))
        # what x adds to the batch's expected improvement
        gain = np.maximum(0, y.min() - f.min(axis=0)) - np.maximum(0, y.min() - f[:3].min(axis=0))
        assert joint(np.clip(x, 0, 1)[None, :])[0] == pytest.approx(np.log(gain.mean()), abs=0.15)


def test_joint_improvement_steers_away_from_pending_points() -> None:
    from kubetune.search._acquisition import JointImprovement, expected_improvement

    surrogate, _, y = _bumpy_surrogate()
    best_y = float(y.min())
    plain = expected_improvement(surrogate, best_y)
    candidates = np.random.default_rng(3).random((2000, 3))
    first = candidates[np.argmax(plain(candidates))]
    joint = JointImprovement(surrogate, first[None, :], best_y, np.random.default_rng(4))
    # once the best point is pending, picking it again is worth almost nothing
    assert joint(first[None, :])[0] < plain(first[None, :])[0] - 3
    second = candidates[np.argmax(joint(candidates))]
    assert np.linalg.norm(second - first) > 0.05


def test_under_asha_stopped_trials_are_pending_once_two_trials_completed() -> None:
    from kubetune.search._bayesian import MAX_STOPPED_PENDING, _trained_on

    def obs(x: float, state: str) -> Observation:
        return Observation(params={"x": x}, value=x, state=state)  # type: ignore[arg-type]

    early = [obs(0.1, "succeeded"), obs(0.2, "stopped"), obs(0.3, "stopped")]
    assert _trained_on(early, stopped_pending=True) == early  # partial values are all there is
    history = [*early, obs(0.4, "succeeded"), Observation(params={"x": 0.5}, value=None)]
    assert _trained_on(history, stopped_pending=True) == [history[0], history[3]]
    assert _trained_on(history, stopped_pending=False) == history[:4]  # the median rule
    params = [{"name": "x", "type": "float", "min": 0, "max": 1}]
    resource = {"name": "epochs", "min": 1, "max": 9}
    asha = create_suggester(
        make_spec("bayesian", parameters=params, resource=resource, earlyStopping={"name": "asha"})
    )
    median = create_suggester(
        make_spec(
            "bayesian", parameters=params, resource=resource, earlyStopping={"name": "median"}
        )
    )
    assert asha.stopped_pending and not median.stopped_pending  # type: ignore[attr-defined]
    many = [*history, *(obs(0.001 * i, "stopped") for i in range(MAX_STOPPED_PENDING + 10))]
    stopped = asha._stopped(many, _trained_on(many, True))  # type: ignore[attr-defined]
    assert len(stopped) == MAX_STOPPED_PENDING
    assert [o.value for o in stopped[:2]] == [0.0, 0.001]  # the most promising are kept
