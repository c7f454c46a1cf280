"""Typed results of `kubetune.Client`: a job's status and its trials, the same on both backends."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from ..spec import (
    BestTrial,
    Constraint,
    CurvePoint,
    Direction,
    JobPhase,
    ObjectiveGoal,
    ParamValue,
    TuningJobSpec,
    TuningJobStatus,
)
from ..spec._base import SpecModel
from ..spec._goals import meets_all
from ..spec._status import TrialPhaseField


class JobStatus(TuningJobStatus):
    """Where a TuningJob stands: its status as the resource holds it (the same model the
    operator writes), with its name and the spec fields a listing shows."""

    name: str
    namespace: str | None = None  # None on the local backend
    labels: dict[str, str] = {}
    algorithm: str
    metric: str
    direction: Direction
    max_trials: int
    parallelism: int
    early_stopping: str = "none"
    constraints: list[Constraint] = []
    objectives: list[ObjectiveGoal] = []  # with several objectives

    @classmethod
    def of(
        cls,
        name: str,
        spec: TuningJobSpec | dict[str, Any],
        status: TuningJobStatus,
        namespace: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> JobStatus:
        """The status of job `name`; `spec` may also be the summary fields (`summary`)."""
        fields = summary(spec) if isinstance(spec, TuningJobSpec) else spec
        extra = {"name": name, "namespace": namespace, "labels": labels or {}}
        return cls.model_validate({**dict(status), **fields, **extra})

    @property
    def best(self) -> BestTrial | None:
        return self.best_trial

    @property
    def finished(self) -> bool:
        return self.phase in (JobPhase.succeeded, JobPhase.failed)

    @property
    def settled(self) -> bool:
        """Finished, and no trial is still active (being stopped counts as active)."""
        return self.finished and not self.trials.active

    @property
    def succeeded(self) -> bool:
        return self.phase is JobPhase.succeeded

    @property
    def maximize(self) -> bool:
        return self.direction is Direction.maximize


def summary(spec: TuningJobSpec) -> dict[str, Any]:
    """The spec fields that a job's status shows."""
    return {
        "algorithm": spec.algorithm.name,
        "metric": spec.objective.metric,
        "direction": spec.objective.direction,
        "max_trials": spec.max_trials,
        "parallelism": spec.parallelism,
        "early_stopping": spec.early_stopping.name,
        "constraints": spec.constraints,
        "objectives": spec.objectives or [],
    }


class JobEvent(SpecModel):
    """A Kubernetes Event about a job or one of its trials (none on the local backend)."""

    time: str | None = None
    type: str = "Normal"
    reason: str = ""
    message: str = ""
    object: str = ""  # kind/name of the object it is about


class TrialInfo(SpecModel):
    """One trial: its parameters, state, why it stopped, its objective and learning curve."""

    name: str
    index: int
    params: dict[str, ParamValue]
    state: TrialPhaseField  # a TrialState, spelled as the Trial's phase in JSON
    reason: str | None = None
    objective: float | None = None  # the best value of the objective the trial reported
    metrics: dict[str, float] = {}  # the latest value of every reported metric
    curve: list[CurvePoint] = []
    budget: float | None = None
    exit_code: int | None = None
    start_time: str | None = None
    completion_time: str | None = None
    continues: str | None = None  # the trial whose checkpoint it started from
    resume_step: int | None = None  # that trial's step it resumed after
    retries: int = 0  # starts again after an eviction (cluster) or an interrupted run (local)
    feasible: bool | None = None  # whether it meets spec.constraints (None: there are none)
    enqueued: bool = False  # a configuration of spec.warmStart.enqueue

    @property
    def finished(self) -> bool:
        return self.state.final


def marked(status: JobStatus, trials: list[TrialInfo]) -> list[TrialInfo]:
    """The trials, each marked feasible or not when the job has constraints (a constraint
    whose metric a finished trial never reported is not met), and enqueued when it runs a
    configuration of warmStart.enqueue (those are the first trials)."""
    enqueued = status.warm_start.enqueued if status.warm_start is not None else 0
    if not status.constraints and not enqueued:
        return trials
    out = []
    for t in trials:
        update: dict[str, Any] = {"enqueued": t.index < enqueued}
        if status.constraints:
            ok = meets_all(status.constraints, t.metrics)
            update["feasible"] = ok if (ok or t.finished) else None
        out.append(t.model_copy(update=update))
    return out


def logs_command(where: Sequence[str]) -> str:
    """The `kubetune logs` command line for a backend (`where`: its flags), {trial} to fill."""
    return "kubetune logs {trial} " + shlex.join(where)


def objective_text(value: float | None) -> str:
    """An objective for people: 6 significant digits at most (float32 noise never shows)."""
    return "-" if value is None else f"{value:.6g}"


def to_json(value: SpecModel | list[Any]) -> Any:
    """What `--json` prints: camelCase keys, as in the resources."""
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value.model_dump(mode="json", by_alias=True)
