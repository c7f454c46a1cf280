"""Status builders of the operator against expected dicts."""

from __future__ import annotations

from typing import Any

from kubetune.engine import TrialView, decide
from kubetune_operator.status import (
    TrialObservation,
    build_job_status,
    build_trial_status,
    observe_trial,
)

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


def _trial(phase: str | None = None) -> dict[str, Any]:
    trial: dict[str, Any] = {"metadata": {"name": "j-0"}, "spec": {"params": {"lr": 0.1}}}
    if phase:
        trial["status"] = {"phase": phase}
    return trial


def _pod(phase: str, code: int | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if code is not None:
        terminated = {"exitCode": code, "reason": "Error"}
        status["containerStatuses"] = [{"name": "trainer", "state": {"terminated": terminated}}]
    return {"status": status}


def test_observe_trial_maps_pod_phases_and_keeps_terminal_phases() -> None:
    t = "2026-01-01T00:00:00Z"
    assert observe_trial(_trial(), None, t) == TrialObservation("pending", needs_pod=True)
    assert observe_trial(_trial(), _pod("Pending"), t) == TrialObservation("pending")
    running = observe_trial(_trial(), _pod("Running"), t)
    assert running.state == "running"
    assert running.status_patch == {"phase": "Running", "startTime": t, "paramsSummary": "lr=0.1"}
    assert observe_trial(_trial("Running"), _pod("Running"), t) == TrialObservation("running")
    done = observe_trial(_trial("Running"), _pod("Succeeded", 0), t)
    assert done.state == "succeeded" and done.status_patch is not None
    assert done.status_patch["phase"] == "Succeeded"
    failed = observe_trial(_trial("Running"), _pod("Failed", 3), t)
    assert failed.status_patch == {
        "phase": "Failed",
        "reason": "PodFailed",
        "message": "container trainer exited with code 3 (Error)",
        "completionTime": t,
        "paramsSummary": "lr=0.1",
    }
    lost = observe_trial(_trial("Running"), None, t)
    assert lost.state == "failed" and lost.status_patch is not None
    assert lost.status_patch["reason"] == "PodLost"
    for phase, state in (("Stopped", "stopped"), ("Succeeded", "succeeded")):
        assert observe_trial(_trial(phase), _pod("Running"), t) == TrialObservation(state)
