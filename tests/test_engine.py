"""The decision core: starts, stops, and every reason a job can finish."""

from __future__ import annotations

from typing import Any

from kubetune.engine import FinishReason, TrialView, decide, trial_name
from kubetune.search import create_suggester

from .conftest import make_spec

GRID_PARAMS = [{"name": "x", "type": "int", "min": 0, "max": 2}]


def view(index: int, state: str, params: dict[str, Any] | None = None, **kw: Any) -> TrialView:
    return TrialView(
        name=trial_name("job", index),
        index=index,
        params=params or {"x": index},
        state=state,  # type: ignore[arg-type]
        **kw,
    )


def test_first_decision_starts_parallelism_trials_with_deterministic_names() -> None:
    spec = make_spec("random", maxTrials=10, parallelism=3)
    decision = decide("job", spec, [])
    assert [t.name for t in decision.start] == ["job-0", "job-1", "job-2"]
    assert [t.index for t in decision.start] == [0, 1, 2]
    assert decision.finish is None and decision.stop == []
    assert decision.start[0].params == create_suggester(spec).suggest([], 3)[0]
    assert decide("job", spec, []) == decision  # a restarted driver decides the same


def test_new_trials_fill_free_slots_and_never_pass_max_trials() -> None:
    spec = make_spec(
        "grid",
        parameters=[{"name": "x", "type": "int", "min": 0, "max": 20}],
        maxTrials=5,
        parallelism=4,
    )
    trials = [
        view(0, "succeeded", curve=[(1, 0.5)]),
        view(1, "running"),
        view(2, "failed"),
        view(3, "stopped", curve=[(1, 0.9)]),
    ]
    decision = decide("job", spec, trials)
    assert [t.name for t in decision.start] == ["job-4"]  # 5 - 4 existing
    assert decision.start[0].params == {"x": 4}
    full = decide("job", spec, [*trials, view(4, "running")])
    assert full.start == [] and full.finish is None


def test_resource_budget_is_passed_as_a_param() -> None:
    spec = make_spec("random", resource={"name": "epochs", "min": 1, "max": 27})
    launch = decide("job", spec, []).start[0]
    assert launch.params["epochs"] == 27 and launch.budget == 27
    hb = make_spec("hyperband", resource={"name": "epochs", "min": 1, "max": 9}, parallelism=2)
    launches = decide("job", hb, []).start
    assert [(t.params["epochs"], t.budget) for t in launches] == [(1, 1.0), (1, 1.0)]


def test_max_trials_reached_finishes_with_the_best_trial() -> None:
    spec = make_spec("random", maxTrials=3)
    trials = [
        view(0, "succeeded", curve=[(1, 0.5), (2, 0.3)]),
        view(1, "succeeded", curve=[(1, 0.2), (2, 0.25)]),
        view(2, "failed"),
    ]
    decision = decide("job", spec, trials)
    assert decision.finish is not None
    assert decision.finish.reason is FinishReason.max_trials and decision.finish.succeeded
    assert decision.best is not None
    assert (decision.best.name, decision.best.objective, decision.best.step) == ("job-1", 0.2, 1)


def test_max_trials_waits_for_running_trials() -> None:
    spec = make_spec("random", maxTrials=2)
    decision = decide("job", spec, [view(0, "succeeded", curve=[(1, 1.0)]), view(1, "running")])
    assert decision.finish is None and decision.start == []


def test_no_objective_at_all_is_a_failed_job() -> None:
    spec = make_spec("random", maxTrials=1)
    decision = decide("job", spec, [view(0, "succeeded")])
    assert decision.finish is not None and not decision.finish.succeeded
    assert "no trial reported" in decision.finish.message


def test_target_reached_finishes_and_stops_running_trials() -> None:
    spec = make_spec(
        "random",
        maxTrials=10,
        parallelism=3,
        objective={"metric": "acc", "direction": "maximize", "target": 0.95},
    )
    trials = [view(0, "running", curve=[(1, 0.96)]), view(1, "running", curve=[(1, 0.5)])]
    decision = decide("job", spec, trials)
    assert decision.finish is not None and decision.finish.reason is FinishReason.target
    assert decision.finish.succeeded and decision.start == []
    assert {s.name for s in decision.stop} == {"job-0", "job-1"}
    assert all(s.reason == "job finished: TargetReached" for s in decision.stop)


def test_too_many_failures_fails_the_job() -> None:
    spec = make_spec("random", maxTrials=10, parallelism=2, maxFailedTrials=1)
    one = [view(0, "failed"), view(1, "running")]
    assert decide("job", spec, one).finish is None
    decision = decide("job", spec, [*one, view(2, "failed")])
    assert decision.finish is not None and decision.finish.reason is FinishReason.failures
    assert not decision.finish.succeeded
    assert [s.name for s in decision.stop] == ["job-1"]


def test_without_max_failed_trials_a_job_whose_first_five_trials_fail_ends() -> None:
    spec = make_spec("random", maxTrials=20, parallelism=2)
    four = [view(i, "failed") for i in range(4)] + [view(4, "running")]
    assert decide("job", spec, four).finish is None
    five = [*four[:4], view(4, "failed"), view(5, "running")]
    decision = decide("job", spec, five)
    assert decision.finish is not None and decision.finish.reason is FinishReason.failures
    assert "the first 5 trials all failed" in decision.finish.message
    assert "maxFailedTrials" in decision.finish.message
    assert [s.name for s in decision.stop] == ["job-5"]
    # once one trial has succeeded, failures are the script's bad luck, not a broken script
    mixed = [view(0, "succeeded", curve=[(1, 0.5)]), *(view(i, "failed") for i in range(1, 9))]
    assert decide("job", spec, mixed).finish is None
    # an explicit limit rules instead
    tolerant = make_spec("random", maxTrials=20, parallelism=2, maxFailedTrials=8)
    assert decide("job", tolerant, five).finish is None


def test_exhausted_space_finishes_once_nothing_runs() -> None:
    spec = make_spec("grid", parameters=GRID_PARAMS, maxTrials=10, parallelism=2)
    trials = [view(i, "succeeded", curve=[(1, float(i))]) for i in range(2)] + [view(2, "running")]
    assert decide("job", spec, trials).finish is None
    trials[2] = view(2, "succeeded", curve=[(1, 5.0)])
    decision = decide("job", spec, trials)
    assert decision.finish is not None and decision.finish.reason is FinishReason.exhausted
    assert decision.best is not None and decision.best.name == "job-0"


def test_early_stopping_orders_a_stop_with_its_reason() -> None:
    spec = make_spec(
        "random",
        maxTrials=10,
        parallelism=4,
        earlyStopping={"name": "asha", "settings": {"reductionFactor": 3}},
        resource={"name": "epochs", "min": 1, "max": 9},
        objective={"metric": "acc", "direction": "maximize"},
    )
    trials = [
        view(0, "succeeded", curve=[(1, 0.9)]),
        view(1, "succeeded", curve=[(1, 0.8)]),
        view(2, "running", curve=[(1, 0.1)]),
        view(3, "running", curve=[(1, 0.95)]),
    ]
    decision = decide("job", spec, trials)
    assert [s.name for s in decision.stop] == ["job-2"]
    assert decision.stop[0].reason.startswith("early stopping: value 0.1 at rung 1")
    # job-2 holds its slot while it stops (its process may still hold the GPU): 4 - 2 = 2 new
    assert [t.name for t in decision.start] == ["job-4", "job-5"]
    stopping = [*trials[:2], view(2, "stopping", curve=[(1, 0.1)]), trials[3]]
    later = decide("job", spec, stopping)
    assert later.stop == [] and len(later.start) == 2  # told once; still holding its slot
    gone = [*trials[:2], view(2, "stopped", curve=[(1, 0.1)]), trials[3]]
    assert len(decide("job", spec, gone).start) == 3


def test_resumed_history_gives_the_same_next_trial() -> None:
    spec = make_spec("bayesian", settings={"initialPoints": 2}, maxTrials=6)
    trials: list[TrialView] = []
    for i in range(4):
        (launch,) = decide("job", spec, trials).start
        assert launch.name == f"job-{i}"
        x = launch.params["lr"]
        trials.append(TrialView(launch.name, launch.index, launch.params, "succeeded", [(1, x)]))
    assert decide("job", spec, trials) == decide("job", spec, list(reversed(trials)))
