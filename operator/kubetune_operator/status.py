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
from kubetune.spec import (
    Condition,
    Objective,
    TrialState,
    TuningJobSpec,
    TuningJobStatus,
    WarmStartStatus,
)

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
    warm: WarmStartStatus | None = None,
) -> dict[str, Any]:
    """The TuningJob's status after carrying out `decision`, as JSON for a status patch."""
    old = TuningJobStatus.model_validate(previous or {})
    after = jobstatus.planned(trials, decision)
    status = jobstatus.job_status(spec, after, decision.best, decision.finish, old, now, warm)
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def build_metrics_status(
    curve: Sequence[tuple[int, float]], objective: Objective, latest: Mapping[str, float]
) -> dict[str, Any]:
    """The part of a Trial's status that reports write: latest metrics, curve, best objective."""
    status: dict[str, Any] = {
        "metrics": dict(latest),
        "curve": [{"step": s, "value": v} for s, v in curve],
    }
    value = objective.summarize([v for _, v in curve])
    if value is not None:
        status["objective"] = value
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
    trial: Mapping[str, Any], pod: Mapping[str, Any] | None, now: str, retries: int = 0
) -> TrialObservation:
    """Map the pod's phase onto the trial. Final states never change; a stopping trial is
    stopped once its pod has ended or is gone. A running trial whose pod was evicted, preempted
    or lost goes back to pending, up to `retries` times, to resume from its last stored step."""
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
    disruption = disrupted(pod) if pod is not None else "PodLost"
    if (
        state is TrialState.pending
        and pod is not None
        and (disruption or (pod.get("metadata") or {}).get("deletionTimestamp"))
    ):
        return TrialObservation(state)  # the pod of an earlier attempt is still going away
    if state is TrialState.running and disruption and pod_phase != "Succeeded":
        return _retry(status, disruption, retries, now, summary)
    if pod_phase == "Succeeded":
        done = {"phase": TrialState.succeeded.phase, "completionTime": now, **summary}
        return TrialObservation(TrialState.succeeded, done)
    if pod_phase == "Failed":
        failed = {"phase": "Failed", "reason": "PodFailed", "message": pod_failure(pod or {})}
        return TrialObservation(TrialState.failed, {**failed, "completionTime": now, **summary})
    if pod_phase == "Running":
        running: dict[str, Any] = {"phase": TrialState.running.phase, "startTime": now, **summary}
        if status.get("reason") == "Retrying":  # running again
            running |= {"reason": None, "message": None}
        return TrialObservation(
            TrialState.running, None if state is TrialState.running else running
        )
    return TrialObservation(TrialState.pending, needs_pod=pod is None)


# Why a pod ended that is no fault of the trial (status.reason values kubelets write).
INFRASTRUCTURE_REASONS = frozenset(
    {"Evicted", "Preempting", "NodeLost", "NodeShutdown", "Shutdown", "Terminated"}
)


def disrupted(pod: Mapping[str, Any]) -> str | None:
    """Why the pod is being (or was) taken away from its trial by the infrastructure: its
    `DisruptionTarget` condition's reason (an eviction, a preemption, a lost node...) or an
    eviction by the kubelet; None if it was not."""
    status = pod.get("status") or {}
    for c in status.get("conditions") or []:
        if c.get("type") == "DisruptionTarget" and c.get("status") == "True":
            return str(c.get("reason") or "DisruptionTarget")
    reason = status.get("reason")
    return str(reason) if reason in INFRASTRUCTURE_REASONS else None


def _retry(
    status: Mapping[str, Any], why: str, retries: int, now: str, summary: dict[str, Any]
) -> TrialObservation:
    """Start a disrupted trial again from its last stored step, or fail it once its retries
    (spec.trialRetries) are used up."""
    done = int(status.get("retries") or 0)
    if done >= retries:
        message = f"its pod was taken away ({why}) and all {retries} retries are used up"
        failed = {"phase": "Failed", "reason": why, "message": message, "completionTime": now}
        return TrialObservation(TrialState.failed, {**failed, **summary})
    curve = status.get("curve") or []
    step = max((int(p["step"]) for p in curve), default=None)
    where = f"step {step}" if step is not None else "the start"
    retry = {
        "phase": TrialState.pending.phase,
        "reason": "Retrying",
        "message": f"its pod was taken away ({why}); again from {where} "
        f"(retry {done + 1} of {retries})",
        "retries": done + 1,
        "resumeStep": step,
    }
    return TrialObservation(TrialState.pending, retry)


def pod_failure(pod: Mapping[str, Any]) -> str:
    """Why a pod failed: the terminated container's exit code and reason, if known."""
    status = pod.get("status") or {}
    for c in status.get("containerStatuses") or []:
        term = (c.get("state") or {}).get("terminated")
        if term:
            why = term.get("reason") or "Error"
            said = (term.get("message") or "").strip()  # the termination log, e.g. a checkpoint
            text = f"container {c.get('name')} exited with code {term.get('exitCode')} ({why})"
            return f"{said[:1024]} ({text})" if said else text
    return status.get("message") or status.get("reason") or "pod failed"


def job_as_pod(job: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's batch/v1 Job as the pod-shaped view `observe_trial` reads: its Complete or
    Failed condition is the phase (Succeeded, Failed; the message says why), an active pod is
    Running; the Job controller itself retries failed pods up to the Job's backoffLimit."""
    status = job.get("status") or {}
    conditions = {
        c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"
    }
    view: dict[str, Any] = {"metadata": job.get("metadata") or {}}
    if "Complete" in conditions:
        view["status"] = {"phase": "Succeeded"}
    elif "Failed" in conditions:
        failed = conditions["Failed"]
        why = f"Job failed: {failed.get('reason') or 'Failed'}"
        message = failed.get("message")
        view["status"] = {"phase": "Failed", "message": f"{why}: {message}" if message else why}
    elif int(status.get("active") or 0) > 0:
        view["status"] = {"phase": "Running"}
    else:
        view["status"] = {"phase": "Pending"}
    return view
