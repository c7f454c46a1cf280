"""Several objectives and constraints: fronts, hypervolume, the decision core's results and the
searches that use them (issue 32)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from kubetune.engine import TrialView, best_trial, decide
from kubetune.front import pareto_front
from kubetune.jobstatus import job_status
from kubetune.pareto import (
    crowding,
    front_mask,
    hypervolume,
    infer_reference,
    nondominated_ranks,
    rank_order,
    to_losses,
)
from kubetune.search import Observation, create_suggester
from kubetune.spec import TuningJobSpec


def zdt1(x: np.ndarray) -> tuple[float, float]:
    f1 = float(x[0])
    g = 1 + 9 * float(np.mean(x[1:]))
    return f1, g * (1 - np.sqrt(f1 / g))


def spec_of(algorithm: str = "random", seed: int = 0, **extra: Any) -> TuningJobSpec:
    data: dict[str, Any] = {
        "objectives": [
            {"metric": "f1", "direction": "minimize"},
            {"metric": "f2", "direction": "minimize"},
        ],
        "parameters": [{"name": f"x{i}", "type": "float", "min": 0, "max": 1} for i in range(3)],
        "algorithm": {"name": algorithm, "seed": seed},
        "maxTrials": 30,
    }
    data.update(extra)
    return TuningJobSpec.model_validate(data)


def test_front_and_ranks_of_loss_vectors() -> None:
    Y = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [2.5, 2.5], [3.0, 3.0], [1.0, 3.0]])
    assert front_mask(Y).tolist() == [True, True, True, False, False, True]
    assert nondominated_ranks(Y).tolist() == [0, 0, 0, 1, 2, 0]
    assert crowding(Y[:3]).tolist()[0] == np.inf and crowding(Y[:3])[1] == 2.0
    assert rank_order(Y)[-2:].tolist() == [3, 4]
    assert to_losses(np.array([[1.0, 2.0]]), [True, False]).tolist() == [[1.0, -2.0]]


def test_hypervolume_is_exact() -> None:
    staircase = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    assert hypervolume(staircase, np.array([4.0, 4.0])) == 6.0
    cube = np.array([[0.0, 0.0, 0.0]])
    assert hypervolume(cube, np.array([2.0, 3.0, 4.0])) == 24.0
    # Two boxes in 3-D overlapping in a 1x1x1 corner: 8 + 8 - 1.
    two = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert hypervolume(two, np.array([2.0, 2.0, 2.0])) == pytest.approx(6.0)
    # Points beyond the reference add nothing; a dominated point adds nothing.
    assert (
        hypervolume(np.vstack([staircase, [[5.0, 0.0], [2.5, 2.5]]]), np.array([4.0, 4.0])) == 6.0
    )
    rng = np.random.default_rng(1)
    P = rng.random((12, 4))
    cells = rng.random((200_000, 4))
    share = np.mean(np.any(np.all(P[:, None, :] <= cells[None, :, :], axis=2), axis=0))
    assert hypervolume(P, np.ones(4)) == pytest.approx(share, abs=0.01)


def test_reference_is_beyond_the_worst_values() -> None:
    Y = np.array([[0.0, 10.0], [1.0, 0.0]])
    assert infer_reference(Y).tolist() == [1.1, 11.0]
    assert infer_reference(np.array([[2.0, 2.0]])).tolist() == [2.1, 2.1]


def view(
    name: str, f1: float | None, f2: float | None, state: str = "succeeded", **more: float
) -> TrialView:
    metrics = {k: v for k, v in (("f1", f1), ("f2", f2)) if v is not None}
    return TrialView(name, int(name[1:]), {"x0": 0.5}, state, metrics={**metrics, **more})  # type: ignore[arg-type]


def test_the_job_status_lists_the_feasible_front() -> None:
    spec = spec_of(
        additionalMetrics=["mem"], constraints=[{"metric": "mem", "max": 16}], maxTrials=6
    )
    trials = [
        view("t0", 1.0, 3.0, mem=8),
        view("t1", 2.0, 2.0, mem=8),
        view("t2", 0.5, 0.5, mem=32),  # dominates all, but infeasible
        view("t3", 3.0, 1.0, state="failed", mem=8),  # failed trials are never on it
        view("t4", 2.5, 2.5, mem=8),  # dominated
        view("t5", 3.0, None, mem=8),  # an objective missing
    ]
    assert best_trial(spec, trials) is None
    status = job_status(spec, trials, None, None, None, "now")
    assert status.pareto_front is not None
    assert sorted(t.name for t in status.pareto_front) == ["t0", "t1"]
    assert status.pareto_front_size == 2
    assert status.pareto_front[0].values in ({"f1": 1.0, "f2": 3.0}, {"f1": 2.0, "f2": 2.0})
    # The reference is inferred from the feasible trials' values (t0, t1, t4): (2.65, 3.1).
    assert status.hypervolume == pytest.approx(1.65 * 0.1 + 0.65 * 1.1 - 0.65 * 0.1)
    decision = decide("j", spec, trials)
    assert decision.finish is not None and decision.finish.succeeded
    assert "2 trials on the Pareto front" in decision.finish.message


def test_a_user_reference_point_is_used() -> None:
    spec = spec_of(
        objectives=[
            {"metric": "f1", "direction": "minimize", "reference": 4.0},
            {"metric": "f2", "direction": "maximize", "reference": 0.0},
        ]
    )
    front = pareto_front(spec, [view("t0", 1.0, 3.0), view("t1", 2.0, 4.0)])
    assert front.reference == (4.0, 0.0)
    assert front.hypervolume == pytest.approx(3 * 3 + 2 * 4 - 2 * 3)  # union of two boxes


def test_constraints_rule_out_the_best_single_objective() -> None:
    spec = TuningJobSpec.model_validate(
        {
            "objective": {"metric": "loss", "direction": "minimize", "additionalMetrics": ["ms"]},
            "constraints": [{"metric": "ms", "max": 20}],
            "parameters": [{"name": "x0", "type": "float", "min": 0, "max": 1}],
            "algorithm": {"name": "random"},
            "maxTrials": 2,
        }
    )
    fast = TrialView("t0", 0, {"x0": 0.1}, "succeeded", [(1, 0.5)], metrics={"ms": 10.0})
    slow = TrialView("t1", 1, {"x0": 0.9}, "succeeded", [(1, 0.1)], metrics={"ms": 40.0})
    best = best_trial(spec, [fast, slow])
    assert best is not None and best.name == "t0"
    alone = decide("j", spec, [slow, TrialView("t0", 0, {}, "failed")])
    assert alone.finish is not None and not alone.finish.succeeded
    assert "no trial met the constraints" in alone.finish.message


def run_zdt(algorithm: str, trials: int, seed: int, batch: int = 1) -> float:
    spec = spec_of(algorithm, seed)
    suggester = create_suggester(spec)
    history: list[Observation] = []
    while len(history) < trials:
        picks = suggester.suggest(history, batch)
        assert len(picks) == batch
        for p in picks:
            f1, f2 = zdt1(np.array([p[f"x{i}"] for i in range(3)]))
            history.append(Observation(p, f1, "succeeded", {"f1": f1, "f2": f2}))
    Y = np.array([[o.metrics["f1"], o.metrics["f2"]] for o in history])
    return hypervolume(Y, np.array([1.1, 11.0]))


class Fixed:
    """A posterior with given means and spreads per row of X (X holds row numbers)."""

    def __init__(self, mean: np.ndarray, sd: np.ndarray) -> None:
        self.mean, self.sd = mean, sd

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = X[:, 0].astype(int)
        return self.mean[rows], self.sd[rows]


@pytest.mark.parametrize("m", [2, 3])
def test_expected_hypervolume_improvement_matches_sampling(m: int) -> None:
    """Exact with two objectives, quasi-random cells with three: both agree with the mean
    improvement of sampled outcomes."""
    from kubetune.search._outcomes import HypervolumeImprovement

    rng = np.random.default_rng(5)
    front = np.sort(rng.random((6, m)), axis=0)
    front[:, -1] = front[::-1, -1]  # a trade-off
    front = front[front_mask(front)]
    reference = np.full(m, 1.2)
    mean = rng.random((4, m)) * 0.9
    sd = 0.05 + rng.random((4, m)) * 0.3
    surrogates = [Fixed(mean[:, j], sd[:, j]) for j in range(m)]
    improvement = HypervolumeImprovement(surrogates, front, reference, rng)
    scored = np.exp(improvement(np.arange(4.0)[:, None]))
    base = hypervolume(front, reference)
    draws = mean[:, None, :] + sd[:, None, :] * rng.standard_normal((4, 4000, m))
    sampled = [
        np.mean([hypervolume(np.vstack([front, y]), reference) - base for y in row])
        for row in draws
    ]
    tolerance = 0.04 if m == 2 else 0.2  # sampling error; 1,024 cells add their own with three
    assert np.allclose(scored, sampled, rtol=tolerance, atol=2e-4), (scored, sampled)


def test_hypervolume_improvement_beats_random_on_zdt1() -> None:
    bayes = run_zdt("bayesian", 24, seed=3)
    rand = run_zdt("random", 24, seed=3)
    assert bayes > rand + 0.5, (bayes, rand)
    assert bayes > 11.3  # the true front's hypervolume is 11.77


def test_a_batch_spreads_along_the_front() -> None:
    spec = spec_of("bayesian", 5)
    suggester = create_suggester(spec)
    history: list[Observation] = []
    for p in suggester.suggest(history, 10):
        f1, f2 = zdt1(np.array([p[f"x{i}"] for i in range(3)]))
        history.append(Observation(p, f1, "succeeded", {"f1": f1, "f2": f2}))
    running = [Observation(p, None, "running") for p in suggester.suggest(history, 2)]
    batch = suggester.suggest([*history, *running], 4)
    firsts = sorted(round(float(p["x0"]), 2) for p in batch)
    assert len(set(firsts)) == 4, firsts  # four distinct places along f1, not one spot


def test_infeasible_regions_are_learned() -> None:
    """x0 > 0.5 is infeasible: after the design points most picks stay out of it."""
    spec = spec_of(
        "bayesian", 2, additionalMetrics=["mem"], constraints=[{"metric": "mem", "max": 0.5}]
    )
    suggester = create_suggester(spec)
    history: list[Observation] = []
    model_picks = []
    for i in range(24):
        p = suggester.suggest(history, 1)[0]
        if i >= 10:
            model_picks.append(p)
        f1, f2 = zdt1(np.array([p[f"x{i}"] for i in range(3)]))
        history.append(Observation(p, f1, "succeeded", {"f1": f1, "f2": f2, "mem": float(p["x0"])}))
    inside = sum(1 for p in model_picks if float(p["x0"]) <= 0.5)
    assert inside >= 12, [round(float(p["x0"]), 2) for p in model_picks]


def test_hyperband_promotes_by_non_dominated_rank() -> None:
    spec = spec_of(
        "hyperband",
        resource={"name": "epochs", "min": 1, "max": 9},
        maxTrials=40,
    )
    suggester = create_suggester(spec)
    first = suggester.suggest([], 9)
    assert all(p["epochs"] == 1 for p in first)
    # The rung's front: trials 0, 1, 2 (a staircase); the rest are dominated.
    values = [(1, 3), (2, 2), (3, 1)] + [(4 + i, 4 + i) for i in range(6)]
    history = [
        Observation(p, f1, "succeeded", {"f1": f1, "f2": f2})
        for p, (f1, f2) in zip(first, values, strict=True)
    ]

    def key(p: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(sorted((k, v) for k, v in p.items() if k != "epochs"))

    rung = {key(p) for p in first}
    promoted = {key(p) for p in suggester.suggest(history, 30) if p["epochs"] == 3} & rung
    assert promoted == {key(p) for p in first[:3]}


def test_hypervolume_history_grows_with_the_front() -> None:
    from kubetune.client._types import TrialInfo
    from kubetune.frontplots import hypervolume_history

    spec = spec_of()
    values = [(3.0, 3.0), (1.0, 3.0), (5.0, 5.0), (2.0, 1.0)]
    trials = [
        TrialInfo(name=f"t{i}", index=i, params={}, state="Succeeded", metrics={"f1": a, "f2": b})
        for i, (a, b) in enumerate(values)
    ]
    history = hypervolume_history(spec, trials)
    # reference (5.4, 5.4): each trial's front, measured against it
    assert [i for i, _ in history] == [0, 1, 2, 3]
    volumes = [v for _, v in history]
    assert volumes[0] == pytest.approx(2.4 * 2.4)
    assert volumes[1] == pytest.approx(4.4 * 2.4)
    assert volumes[2] == volumes[1]  # a dominated trial adds nothing
    assert volumes[3] == pytest.approx(4.4 * 2.4 + 3.4 * 2.0)  # (2, 1) adds the strip below
