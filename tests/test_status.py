"""Status builders of the operator against expected dicts."""

from __future__ import annotations

from kubetune.engine import TrialView, decide
from kubetune_operator.status import build_job_status, build_trial_status

from .conftest import make_spec

SPEC = make_spec(
    "grid",
    parameters=[{"name": "x", "type": "int", "min": 0, "max": 9}],
    maxTrials=3,
    parallelism=2,
    objective={"metric": "acc", "direction": "maximize"},
)


def view(i: int, state: str, curve: list[tuple[int, float]] | None = None) -> TrialView:
    return TrialView(f"job-{i}", i, {"x": i}, state, curve or [])  # type: ignore[arg-type]


def test_running_job_status_and_stable_transition_times() -> None:
    trials = [view(0, "succeeded", [(1, 0.5), (2, 0.7)]), view(1, "running", [(1, 0.4)])]
    decision = decide("job", SPEC, trials)
    status = build_job_status(SPEC, trials, decision, None, "2026-11-22T10:00:00Z")
    assert status == {
        "trials": {"created": 3, "running": 2, "succeeded": 1, "failed": 0, "stopped": 0},
        "progress": "1/3",
        "startTime": "2026-11-22T10:00:00Z",
        "bestTrial": {"name": "job-0", "params": {"x": 0}, "objective": 0.7, "step": 2},
        "phase": "Running",
        "conditions": [
            {
                "type": "Running",
                "status": "True",
                "reason": "TrialsRunning",
                "message": "2 trials running",
                "lastTransitionTime": "2026-11-22T10:00:00Z",
            },
            {
                "type": "Succeeded",
                "status": "False",
                "reason": "InProgress",
                "message": "",
                "lastTransitionTime": "2026-11-22T10:00:00Z",
            },
        ],
    }
    later = build_job_status(SPEC, trials, decision, status, "2026-11-22T10:05:00Z")
    assert [c["lastTransitionTime"] for c in later["conditions"]] == ["2026-11-22T10:00:00Z"] * 2


def test_finished_job_status() -> None:
    trials = [view(i, "succeeded", [(1, 0.1 * (i + 1))]) for i in range(3)]
    decision = decide("job", SPEC, trials)
    previous = {
        "startTime": "t0",
        "conditions": [{"type": "Running", "status": "True", "lastTransitionTime": "t0"}],
    }
    status = build_job_status(SPEC, trials, decision, previous, "t9")
    assert status["phase"] == "Succeeded" and status["reason"] == "MaxTrialsReached"
    assert status["progress"] == "3/3" and status["completionTime"] == "t9"
    assert status["conditions"][0] == {
        "type": "Running",
        "status": "False",
        "reason": "MaxTrialsReached",
        "message": status["message"],
        "lastTransitionTime": "t9",
    }
    assert (
        status["conditions"][1]["type"] == "Succeeded"
        and status["conditions"][1]["status"] == "True"
    )
    assert status["bestTrial"]["name"] == "job-2"


def test_trial_status() -> None:
    assert build_trial_status(
        {"lr": 0.012345, "opt": "adam"},
        "stopped",
        [(1, 0.3), (2, 0.2)],
        False,
        {"acc": 0.2, "loss": 1.5},
        "early stopping: ...",
    ) == {
        "phase": "Stopped",
        "paramsSummary": "lr=0.0123,opt=adam",
        "metrics": {"acc": 0.2, "loss": 1.5},
        "curve": [{"step": 1, "value": 0.3}, {"step": 2, "value": 0.2}],
        "objective": 0.2,
        "reason": "early stopping: ...",
    }
