"""The job status (one function for both drivers) as the operator writes it, the trial
lifecycle's spelling as phases, and how a trial's pod maps onto its state."""

from __future__ import annotations

from typing import Any

import pytest
from kubetune.engine import TrialView, decide
from kubetune.spec import TrialState, TrialStatus
from kubetune_operator.status import TrialObservation, job_status_patch, observe_trial

from .conftest import make_spec

SPEC = make_spec(
    "grid",
    parameters=[{"name": "x", "type": "int", "min": 0, "max": 9}],
    maxTrials=3,
    parallelism=2,
    objective={"metric": "acc", "direction": "maximize"},
)


def view(i: int, state: str, curve: list[tuple[int, float]] | None = None) -> TrialView:
    return TrialView(f"job-{i}", i, {"x": i}, TrialState(state), curve or [])


def test_running_job_status_and_stable_transition_times() -> None:
    trials = [view(0, "succeeded", [(1, 0.5), (2, 0.7)]), view(1, "running", [(1, 0.4)])]
    decision = decide("job", SPEC, trials)
    status = job_status_patch(SPEC, trials, decision, None, "2026-11-22T10:00:00Z")
    assert status == {
        "trials": {
            "created": 3,
            "running": 2,
            "stopping": 0,
            "succeeded": 1,
            "failed": 0,
            "stopped": 0,
        },
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
    later = job_status_patch(SPEC, trials, decision, status, "2026-11-22T10:05:00Z")
    assert [c["lastTransitionTime"] for c in later["conditions"]] == ["2026-11-22T10:00:00Z"] * 2


def test_finished_job_status() -> None:
    trials = [view(i, "succeeded", [(1, 0.1 * (i + 1))]) for i in range(3)]
    decision = decide("job", SPEC, trials)
    previous = {
        "startTime": "t0",
        "conditions": [{"type": "Running", "status": "True", "lastTransitionTime": "t0"}],
    }
    status = job_status_patch(SPEC, trials, decision, previous, "t9")
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


@pytest.mark.parametrize("state", list(TrialState))
def test_each_state_is_spelled_as_a_phase_and_read_back(state: TrialState) -> None:
    assert TrialState.from_phase(state.phase) is state
    status = TrialStatus.model_validate({"phase": state.phase})
    assert status.phase is state
    assert status.model_dump(mode="json", by_alias=True)["phase"] == state.phase
    assert state.active is not state.final
    assert state.reporting == (state in (TrialState.running, TrialState.stopping))


def test_an_unknown_phase_is_named() -> None:
    with pytest.raises(ValueError, match=r"status\.phase: unknown trial phase 'Exploded'"):
        TrialState.from_phase("Exploded")


def test_a_stopped_trial_counts_once_it_is_told_and_its_pod_is_gone() -> None:
    trials = [view(0, "running", [(1, 0.1)]), view(1, "stopping", [(1, 0.0)])]
    decision = decide("job", SPEC, trials)
    status = job_status_patch(SPEC, trials, decision, None, "t0")
    assert status["trials"]["stopping"] == 1 and status["progress"] == "0/3"
    t = "2026-01-01T00:00:00Z"
    told = _trial("Stopping")
    assert observe_trial(told, _pod("Running"), t) == TrialObservation(TrialState.stopping)
    for pod in (None, _pod("Succeeded", 0), _pod("Failed", 143)):
        gone = observe_trial(told, pod, t)
        assert gone.state is TrialState.stopped
        assert gone.status_patch == {"phase": "Stopped", "completionTime": t}


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
