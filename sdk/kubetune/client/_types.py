"""Typed results of `kubetune.Client`: a job's status and its trials, the same on both backends."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from ..spec import BestTrial, Condition, CurvePoint, Direction, JobPhase, ParamValue, TrialCounts
from ..spec import TrialPhase as TrialState
from ..spec._base import SpecModel

FINISHED_PHASES = (JobPhase.succeeded, JobPhase.failed)
FINISHED_STATES = (TrialState.succeeded, TrialState.failed, TrialState.stopped)


class JobStatus(SpecModel):
    """Where a TuningJob stands: phase, conditions, trial counts and the best trial so far."""

    name: str
    namespace: str | None = None  # None on the local backend
    phase: JobPhase
    conditions: list[Condition] = []
    trials: TrialCounts = TrialCounts()
    progress: str | None = None
    best: BestTrial | None = None
    reason: str | None = None
    message: str | None = None
    algorithm: str
    metric: str
    direction: Direction
    max_trials: int
    parallelism: int
    start_time: str | None = None
    completion_time: str | None = None
    labels: dict[str, str] = {}

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED_PHASES

    @property
    def settled(self) -> bool:
        """Finished, and no trial is still active (being stopped counts as active)."""
        return self.finished and self.trials.running == 0

    @property
    def succeeded(self) -> bool:
        return self.phase is JobPhase.succeeded

    @property
    def maximize(self) -> bool:
        return self.direction is Direction.maximize


class TrialInfo(SpecModel):
    """One trial: its parameters, state, why it stopped, its objective and learning curve."""

    name: str
    index: int
    params: dict[str, ParamValue]
    state: TrialState
    reason: str | None = None
    objective: float | None = None  # the best value of the objective the trial reported
    metrics: dict[str, float] = {}  # the latest value of every reported metric
    curve: list[CurvePoint] = []
    budget: float | None = None
    exit_code: int | None = None
    start_time: str | None = None
    completion_time: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


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
