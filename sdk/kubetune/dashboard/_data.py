"""What the dashboard's pages show, as JSON-ready dicts built from `kubetune.Client` results.

The same payloads feed the live pages (over server-sent events) and the HTML report. Parameter
importance comes from scikit-learn's random forest (mean decrease in impurity), as Optuna's
`MeanDecreaseImpurityImportanceEvaluator` does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import yaml

from ..client import Client, JobEvent, JobStatus, TrialInfo
from ..plots import rungs
from ..spec import TuningJobSpec
from ..spec._parameters import CategoricalParameter, Scale

IMPORTANCE_MIN_TRIALS = 4  # finished trials with an objective before importance is shown
IMPORTANCE_SAMPLE = 2000  # trials the forest is fitted on at most (the newest)


def job_row(status: JobStatus) -> dict[str, Any]:
    """One line of the jobs page."""
    best = status.best
    return {
        "name": status.name,
        "namespace": status.namespace,
        "labels": status.labels,
        "phase": status.phase.value,
        "progress": status.progress,
        "finished": status.trials.succeeded + status.trials.failed + status.trials.stopped,
        "maxTrials": status.max_trials,
        "running": status.trials.running,
        "best": None if best is None else best.objective,
        "bestTrial": None if best is None else best.name,
        "metric": status.metric,
        "direction": status.direction.value,
        "algorithm": status.algorithm,
        "earlyStopping": status.early_stopping,
        "startTime": status.start_time,
        "completionTime": status.completion_time,
        "reason": status.reason,
        "message": status.message,
        "objectives": [{"metric": g.metric, "direction": g.direction} for g in status.objectives],
        "front": [t.name for t in status.pareto_front or []],
        "frontSize": status.pareto_front_size,
        "hypervolume": status.hypervolume,
        "warmStart": (
            None
            if status.warm_start is None
            else status.warm_start.model_dump(mode="json", by_alias=True)
        ),
    }


def parameters(spec: TuningJobSpec) -> list[dict[str, Any]]:
    """Each parameter's axis: categorical (with its values), or numeric on a linear/log scale."""
    axes: list[dict[str, Any]] = []
    for p in spec.parameters:
        if isinstance(p, CategoricalParameter):
            axes.append({"name": p.name, "type": "categorical", "values": list(p.values)})
        else:
            axes.append(
                {
                    "name": p.name,
                    "type": p.type,
                    "log": p.scale is Scale.log,
                    "min": p.min,
                    "max": p.max,
                }
            )
    return axes


def trial_row(trial: TrialInfo) -> dict[str, Any]:
    """A trial as the pages use it: everything but the token, with its objective's curve."""
    return {
        "name": trial.name,
        "index": trial.index,
        "state": trial.state.phase,
        "params": trial.params,
        "objective": _finite(trial.objective),
        "metrics": {k: _finite(v) for k, v in trial.metrics.items()},
        "feasible": trial.feasible,
        "enqueued": trial.enqueued,
        "curve": [[p.step, _finite(p.value)] for p in trial.curve],
        "reason": trial.reason,
        "budget": trial.budget,
        "exitCode": trial.exit_code,
        "startTime": trial.start_time,
        "completionTime": trial.completion_time,
        "duration": duration(trial.start_time, trial.completion_time),
        "continues": trial.continues,
        "resumeStep": trial.resume_step,
        "retries": trial.retries,
    }


def job_payload(
    spec: TuningJobSpec,
    status: JobStatus,
    trials: Sequence[TrialInfo],
    events: Sequence[JobEvent],
) -> dict[str, Any]:
    """Everything the job page shows."""
    rows = [trial_row(t) for t in trials]
    return {
        "job": job_details(spec, status, events),
        "trials": rows,
        "importance": importance(spec, rows),
    }


def read_job(client: Client, name: str) -> dict[str, Any]:
    """A job's whole payload, read now (the report, and /api/jobs/NAME)."""
    status, trials = client.view(name)
    return job_payload(client.spec(name), status, trials, client.events(name))


def job_details(
    spec: TuningJobSpec, status: JobStatus, events: Sequence[JobEvent]
) -> dict[str, Any]:
    """The job's header, conditions, events and spec: everything but its trials."""
    return {
        **job_row(status),
        "conditions": [c.model_dump(mode="json", by_alias=True) for c in status.conditions],
        "events": [e.model_dump(mode="json", by_alias=True) for e in events],
        "parameters": parameters(spec),
        "resource": spec.resource.name if spec.resource else None,
        "rungs": rungs(spec),
        "specYaml": spec_yaml(spec),
    }


def spec_yaml(spec: TuningJobSpec) -> str:
    """The spec as a manifest holds it (camelCase keys, defaults included)."""
    body = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    return str(yaml.safe_dump(body, sort_keys=False, default_flow_style=False))


def importance(spec: TuningJobSpec, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each parameter's share of the objective's variance explained by a random forest, largest
    first; empty until enough trials have finished with an objective."""
    done = [r for r in rows if r["objective"] is not None and r["state"] == "Succeeded"]
    done = done[-IMPORTANCE_SAMPLE:]
    names = [p.name for p in spec.parameters]
    if len(done) < IMPORTANCE_MIN_TRIALS or not names:
        return []
    if len(names) == 1:
        return [{"name": names[0], "importance": 1.0}]
    from sklearn.ensemble import RandomForestRegressor

    features = [[_feature(p, r["params"].get(p.name)) for p in spec.parameters] for r in done]
    forest = RandomForestRegressor(n_estimators=64, max_depth=8, random_state=0, n_jobs=1)
    forest.fit(features, [r["objective"] for r in done])
    shares = [float(v) for v in forest.feature_importances_]
    ranked = sorted(zip(names, shares, strict=True), key=lambda x: -x[1])
    return [{"name": n, "importance": v} for n, v in ranked]


def _feature(p: Any, value: Any) -> float:
    """A parameter value as a number for the forest: a choice's position, a log-scale value's
    logarithm."""
    if isinstance(p, CategoricalParameter):
        return float(p.values.index(value)) if value in p.values else -1.0
    if value is None:
        return math.nan
    number = float(value)
    return math.log10(number) if p.scale is Scale.log and number > 0 else number


def duration(start: str | None, end: str | None) -> float | None:
    """Seconds from `start` to `end` (ISO 8601); None until both are known (the page counts a
    running trial's time itself, so a snapshot does not change every second)."""
    began, ended = _parse(start), _parse(end)
    return None if began is None or ended is None else max(0.0, (ended - began).total_seconds())


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: a non-finite value shows as missing."""
    return value if value is not None and math.isfinite(value) else None
