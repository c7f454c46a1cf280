"""Status models of `TuningJob` and `Trial`, and the `Trial` resource itself."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema

from ._base import SpecModel
from ._parameters import ParamValue

API_VERSION = "kubetune.dev/v1alpha1"


class JobPhase(StrEnum):
    pending = "Pending"
    validating = "Validating"
    running = "Running"
    succeeded = "Succeeded"
    failed = "Failed"


class TrialState(StrEnum):
    """Where a trial is in its life, one spelling everywhere: the engine, the local store, the
    Trial status (as a phase: `Stopping`), the client and the exporter's `state` label.

    pending -> running -> succeeded | failed; running -> stopping -> stopped (an early stop, or
    the job's end: the process or pod is on its way out and its last reports still count);
    pending -> stopped (the job ended first).
    """

    pending = "pending"
    running = "running"
    stopping = "stopping"
    succeeded = "succeeded"
    failed = "failed"
    stopped = "stopped"

    @property
    def final(self) -> bool:
        """It will never change again."""
        return self in _FINAL

    @property
    def active(self) -> bool:
        """It holds a parallelism slot: not final (a stopping trial's process still runs)."""
        return self not in _FINAL

    @property
    def reporting(self) -> bool:
        """Its reports are accepted."""
        return self in (TrialState.running, TrialState.stopping)

    @property
    def phase(self) -> str:
        """The Kubernetes spelling, as in a Trial's `status.phase`."""
        return self.value.capitalize()

    @classmethod
    def from_phase(cls, phase: str | None) -> TrialState:
        """The state of a Trial whose `status.phase` is `phase` (none yet: pending)."""
        try:
            return cls((phase or "Pending").lower())
        except ValueError:
            raise ValueError(f"status.phase: unknown trial phase {phase!r}") from None


_FINAL = frozenset({TrialState.succeeded, TrialState.failed, TrialState.stopped})


def _parse_phase(value: Any) -> Any:
    return TrialState.from_phase(value) if isinstance(value, str) else value


# A TrialState in a Trial's status, spelled as a Kubernetes phase.
TrialPhaseField = Annotated[
    TrialState,
    BeforeValidator(_parse_phase),
    PlainSerializer(lambda state: state.phase, return_type=str),
    WithJsonSchema({"type": "string", "enum": [s.phase for s in TrialState]}),
]


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


MAX_FRONT = 50  # Pareto-front entries a job's status lists (paretoFrontSize counts them all)


class FrontTrial(SpecModel):
    """A trial on the Pareto front: no feasible trial is at least as good in every objective
    and better in one."""

    name: str
    params: dict[str, ParamValue]
    values: dict[str, float] = Field(description="Its value of each objective (latest reported).")


class TrialCounts(SpecModel):
    """Trials of a job: all it created, and how many are in each TrialState. Like a Kubernetes
    Job's `active`, `running` counts pending trials too, so that a pod starting does not cost a
    status write."""

    created: int = 0
    running: int = Field(0, description="Pending or running: started, or about to start.")
    stopping: int = Field(0, description="Told to stop; the process is still on its way out.")
    succeeded: int = 0
    failed: int = 0
    stopped: int = 0

    @property
    def active(self) -> bool:
        """Some trial has not ended."""
        return self.running + self.stopping > 0


class WarmStartStatus(SpecModel):
    """What `spec.warmStart` brought in. Earlier results are no trials of this job: they only
    feed the search's model and use up no maxTrials."""

    points: int = Field(
        0, ge=0, description="Earlier results that fit the space: they feed the model."
    )
    left_out: int = Field(
        0, ge=0, description="Earlier results that do not fit the space (listed in an event)."
    )
    enqueued: int = Field(
        0, ge=0, description="Configurations of warmStart.enqueue: this job's first trials."
    )


class TuningJobStatus(SpecModel):
    phase: JobPhase = JobPhase.pending
    conditions: list[Condition] = Field(default_factory=list)
    trials: TrialCounts = Field(default_factory=TrialCounts)
    progress: str | None = Field(None, description="Finished trials / maxTrials, e.g. 12/30.")
    best_trial: BestTrial | None = None
    pareto_front: list[FrontTrial] | None = Field(
        None,
        max_length=MAX_FRONT,
        description=f"With several objectives: the Pareto front (at most {MAX_FRONT} trials, "
        "spread along it).",
    )
    pareto_front_size: int | None = Field(None, description="Trials on the Pareto front.")
    hypervolume: float | None = Field(
        None, description="Volume the front dominates up to the reference point (losses)."
    )
    warm_start: WarmStartStatus | None = Field(None, description="With spec.warmStart.")
    reason: str | None = Field(None, description="Why the job finished.")
    message: str | None = None
    start_time: str | None = None
    completion_time: str | None = None
    observed_generation: int | None = None


class Continues(SpecModel):
    """The trial whose checkpoint a trial starts from (a Hyperband promotion, a PBT member)."""

    trial: str = Field(description="The earlier trial.")
    step: int = Field(ge=0, description="Its last stored step; this trial resumes after it.")


class TrialSpec(SpecModel):
    job: str = Field(description="Name of the owning TuningJob.")
    index: int = Field(ge=0, description="Position of the trial in its job.")
    params: dict[str, ParamValue] = Field(description="The suggested parameter values.")
    budget: float | None = Field(None, description="Value of spec.resource for this trial.")
    continues: Continues | None = Field(None, description="Where its training starts from.")


class TrialStatus(SpecModel):
    phase: TrialPhaseField = TrialState.pending
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
    retries: int = Field(
        0, ge=0, description="Times its pod was evicted, preempted or lost and started again."
    )
    resume_step: int | None = Field(
        None, description="The step its current pod resumes after (from its checkpoint)."
    )


class Trial(SpecModel):
    """One training run of a TuningJob (a custom resource in the cluster)."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["kubetune.dev/v1alpha1"] = "kubetune.dev/v1alpha1"
    kind: Literal["Trial"] = "Trial"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TrialSpec
    status: TrialStatus = Field(default_factory=TrialStatus)
