"""Pure builders of TuningJob and Trial status: phase, counts, progress, best trial, conditions.

Conditions follow Kubernetes conventions (type, status, reason, message, lastTransitionTime);
a condition keeps its lastTransitionTime while its status does not change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubetune.engine import Decision, TrialView
from kubetune.spec import TuningJobSpec

from .builders import params_summary

PHASES = {
    "pending": "Pending",
    "running": "Running",
    "succeeded": "Succeeded",
    "failed": "Failed",
    "stopped": "Stopped",
}


def condition(
    previous: Sequence[Mapping[str, Any]],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: str,
) -> dict[str, Any]:
    """A condition; lastTransitionTime carries over from `previous` if the status is unchanged."""
    value = "True" if status else "False"
    old = next((c for c in previous if c.get("type") == type_), None)
    since = old["lastTransitionTime"] if old and old.get("status") == value else now
    return {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }


def build_job_status(
    spec: TuningJobSpec,
    trials: Sequence[TrialView],
    decision: Decision,
    previous: Mapping[str, Any] | None,
    now: str,
) -> dict[str, Any]:
    """The TuningJob's status after carrying out `decision`."""
    previous = previous or {}
    old = previous.get("conditions", [])
    counts = {
        state: sum(1 for t in trials if t.state == state)
        for state in ("running", "succeeded", "failed", "stopped")
    }
    counts["running"] += sum(1 for t in trials if t.state == "pending") + len(decision.start)
    counts["running"] -= len({s.name for s in decision.stop})
    counts["stopped"] += len({s.name for s in decision.stop})
    finished = counts["succeeded"] + counts["failed"] + counts["stopped"]
    status: dict[str, Any] = {
        "trials": {"created": len(trials) + len(decision.start), **counts},
        "progress": f"{finished}/{spec.max_trials}",
        "startTime": previous.get("startTime", now),
    }
    if decision.best is not None:
        status["bestTrial"] = decision.best.model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
    finish = decision.finish
    if finish is None:
        status["phase"] = "Running"
        status["conditions"] = [
            condition(
                old, "Running", True, "TrialsRunning", f"{counts['running']} trials running", now
            ),
            condition(old, "Succeeded", False, "InProgress", "", now),
        ]
        return status
    status["phase"] = "Succeeded" if finish.succeeded else "Failed"
    status["reason"], status["message"] = finish.reason.value, finish.message
    status["completionTime"] = previous.get("completionTime", now)
    status["conditions"] = [
        condition(old, "Running", False, finish.reason.value, finish.message, now),
        condition(
            old,
            "Succeeded" if finish.succeeded else "Failed",
            True,
            finish.reason.value,
            finish.message,
            now,
        ),
    ]
    return status


def build_trial_status(
    params: Mapping[str, Any],
    state: str,
    curve: Sequence[tuple[int, float]],
    maximize: bool,
    latest: Mapping[str, float],
    reason: str | None = None,
) -> dict[str, Any]:
    """A Trial's status: phase, best objective, the compact curve the stoppers need."""
    status: dict[str, Any] = {
        "phase": PHASES[state],
        "paramsSummary": params_summary(params),
        **build_metrics_status(curve, maximize, latest),
    }
    if reason:
        status["reason"] = reason
    return status


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


TERMINAL = {"Succeeded": "succeeded", "Failed": "failed", "Stopped": "stopped"}


@dataclass(frozen=True)
class TrialObservation:
    """A trial's state as seen from its Trial and Pod, and what the operator must do about it."""

    state: str
    status_patch: dict[str, Any] | None = None  # to write to the Trial's status
    needs_pod: bool = False


def observe_trial(
    trial: Mapping[str, Any], pod: Mapping[str, Any] | None, now: str
) -> TrialObservation:
    """Map the pod's phase onto the trial. Terminal trial phases are final."""
    status = trial.get("status") or {}
    phase = status.get("phase")
    if phase in TERMINAL:
        return TrialObservation(TERMINAL[phase])
    summary = {"paramsSummary": params_summary(trial["spec"]["params"])}
    pod_phase = ((pod or {}).get("status") or {}).get("phase")
    if pod_phase == "Succeeded":
        return TrialObservation(
            "succeeded", {"phase": "Succeeded", "completionTime": now, **summary}
        )
    if pod_phase == "Failed":
        failed = {"phase": "Failed", "reason": "PodFailed", "message": pod_failure(pod or {})}
        return TrialObservation("failed", {**failed, "completionTime": now, **summary})
    if pod is None and phase == "Running":
        lost = {"phase": "Failed", "reason": "PodLost", "message": "the trial's pod disappeared"}
        return TrialObservation("failed", {**lost, "completionTime": now, **summary})
    if pod_phase == "Running":
        patch = None if phase == "Running" else {"phase": "Running", "startTime": now, **summary}
        return TrialObservation("running", patch)
    return TrialObservation("pending", needs_pod=pod is None)


def pod_failure(pod: Mapping[str, Any]) -> str:
    """Why a pod failed: the terminated container's exit code and reason, if known."""
    status = pod.get("status") or {}
    for c in status.get("containerStatuses") or []:
        term = (c.get("state") or {}).get("terminated")
        if term:
            why = term.get("reason") or "Error"
            return f"container {c.get('name')} exited with code {term.get('exitCode')} ({why})"
    return status.get("message") or status.get("reason") or "pod failed"
