"""Pure builders of the JSON that the operator writes into TuningJob and Trial status.

The job status itself is `kubetune.jobstatus` (shared with the local client); here it becomes a
patch, next to the Trial's metrics part and the mapping of a trial's Pod onto its state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubetune import jobstatus
from kubetune.engine import Decision, TrialView
from kubetune.spec import Condition, TrialState, TuningJobSpec, TuningJobStatus

from .builders import params_summary


def condition(
    previous: Sequence[Mapping[str, Any]],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: str,
) -> dict[str, Any]:
    """`kubetune.jobstatus.condition` over the JSON conditions of a resource's status."""
    old = [Condition.model_validate(c) for c in previous]
    made = jobstatus.condition(old, type_, status, reason, message, now)
    return made.model_dump(mode="json", by_alias=True, exclude_none=True)


def job_status_patch(
    spec: TuningJobSpec,
    trials: Sequence[TrialView],
    decision: Decision,
    previous: Mapping[str, Any] | None,
    now: str,
) -> dict[str, Any]:
    """The TuningJob's status after carrying out `decision`, as JSON for a status patch."""
    old = TuningJobStatus.model_validate(previous or {})
    after = jobstatus.planned(trials, decision)
    status = jobstatus.job_status(spec, after, decision.best, decision.finish, old, now)
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def build_metrics_status(
    curve: Sequence[tuple[int, float]], maximize: bool, latest: Mapping[str, float]
) -> dict[str, Any]:
    """The part of a Trial's status that reports write: latest metrics, curve, best objective."""
    status: dict[str, Any] = {
        "metrics": dict(latest),
        "curve": [{"step": s, "value": v} for s, v in curve],
    }
    values = [v for _, v in curve]
    if values:
        status["objective"] = max(values) if maximize else min(values)
    return status


def stored_curve(trial: Mapping[str, Any]) -> dict[int, float]:
    """A Trial's objective curve as recorded in its status, by step."""
    points = (trial.get("status") or {}).get("curve") or []
    return {int(p["step"]): float(p["value"]) for p in points}


@dataclass(frozen=True)
class TrialObservation:
    """A trial's state as seen from its Trial and Pod, and what the operator must do about it."""

    state: TrialState
    status_patch: dict[str, Any] | None = None  # to write to the Trial's status
    needs_pod: bool = False


def observe_trial(
    trial: Mapping[str, Any], pod: Mapping[str, Any] | None, now: str
) -> TrialObservation:
    """Map the pod's phase onto the trial. Final states never change; a stopping trial is
    stopped once its pod has ended or is gone."""
    status = trial.get("status") or {}
    phase = status.get("phase")
    state = TrialState.from_phase(phase)
    if state.final:
        return TrialObservation(state)
    pod_phase = ((pod or {}).get("status") or {}).get("phase")
    if state is TrialState.stopping:
        if pod is not None and pod_phase not in ("Succeeded", "Failed"):
            return TrialObservation(state)
        stopped = {"phase": TrialState.stopped.phase, "completionTime": now}
        return TrialObservation(TrialState.stopped, stopped)
    summary = {"paramsSummary": params_summary(trial["spec"]["params"])}
    if pod_phase == "Succeeded":
        done = {"phase": TrialState.succeeded.phase, "completionTime": now, **summary}
        return TrialObservation(TrialState.succeeded, done)
    if pod_phase == "Failed":
        failed = {"phase": "Failed", "reason": "PodFailed", "message": pod_failure(pod or {})}
        return TrialObservation(TrialState.failed, {**failed, "completionTime": now, **summary})
    if pod is None and state is TrialState.running:
        lost = {"phase": "Failed", "reason": "PodLost", "message": "the trial's pod disappeared"}
        return TrialObservation(TrialState.failed, {**lost, "completionTime": now, **summary})
    if pod_phase == "Running":
        running = {"phase": TrialState.running.phase, "startTime": now, **summary}
        return TrialObservation(
            TrialState.running, None if state is TrialState.running else running
        )
    return TrialObservation(TrialState.pending, needs_pod=pod is None)


def pod_failure(pod: Mapping[str, Any]) -> str:
    """Why a pod failed: the terminated container's exit code and reason, if known."""
    status = pod.get("status") or {}
    for c in status.get("containerStatuses") or []:
        term = (c.get("state") or {}).get("terminated")
        if term:
            why = term.get("reason") or "Error"
            return f"container {c.get('name')} exited with code {term.get('exitCode')} ({why})"
    return status.get("message") or status.get("reason") or "pod failed"
