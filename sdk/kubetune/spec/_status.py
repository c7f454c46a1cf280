"""Status models of `TuningJob` and `Trial`, and the `Trial` resource itself."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import ConfigDict, Field

from ._base import SpecModel
from ._parameters import ParamValue

API_VERSION = "kubetune.dev/v1alpha1"


class JobPhase(StrEnum):
    pending = "Pending"
    validating = "Validating"
    running = "Running"
    succeeded = "Succeeded"
    failed = "Failed"


class TrialPhase(StrEnum):
    pending = "Pending"
    running = "Running"
    succeeded = "Succeeded"
    failed = "Failed"
    stopped = "Stopped"


class Condition(SpecModel):
    """A Kubernetes-style condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None


class CurvePoint(SpecModel):
    """The objective reported at one step of a trial."""

    step: int = Field(ge=0)
    value: float


class BestTrial(SpecModel):
    name: str
    params: dict[str, ParamValue]
    objective: float
    step: int | None = None


class TrialCounts(SpecModel):
    created: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    stopped: int = 0


class TuningJobStatus(SpecModel):
    phase: JobPhase = JobPhase.pending
    conditions: list[Condition] = Field(default_factory=list)
    trials: TrialCounts = Field(default_factory=TrialCounts)
    progress: str | None = Field(None, description="Finished trials / maxTrials, e.g. 12/30.")
    best_trial: BestTrial | None = None
    reason: str | None = Field(None, description="Why the job finished.")
    message: str | None = None
    start_time: str | None = None
    completion_time: str | None = None
    observed_generation: int | None = None


class TrialSpec(SpecModel):
    job: str = Field(description="Name of the owning TuningJob.")
    index: int = Field(ge=0, description="Position of the trial in its job.")
    params: dict[str, ParamValue] = Field(description="The suggested parameter values.")
    budget: float | None = Field(None, description="Value of spec.resource for this trial.")


class TrialStatus(SpecModel):
    phase: TrialPhase = TrialPhase.pending
    params_summary: str | None = Field(None, description="Short k=v summary of the params.")
    objective: float | None = Field(None, description="Best objective value reported so far.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Latest reported metrics.")
    curve: list[CurvePoint] = Field(
        default_factory=list, description="Objective per step, as the early-stopping rules use it."
    )
    reason: str | None = None
    message: str | None = None
    start_time: str | None = None
    completion_time: str | None = None
    conditions: list[Condition] = Field(default_factory=list)


class Trial(SpecModel):
    """One training run of a TuningJob (a custom resource in the cluster)."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["kubetune.dev/v1alpha1"] = "kubetune.dev/v1alpha1"
    kind: Literal["Trial"] = "Trial"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TrialSpec
    status: TrialStatus = Field(default_factory=TrialStatus)
