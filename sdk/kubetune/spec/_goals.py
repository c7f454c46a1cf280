"""What a job optimizes beyond one metric: several objectives, constraints and warm start.

`ObjectiveGoal` is one entry of `spec.objectives` (two to four); `Constraint` rules trials out by
a reported value; `WarmStart` names earlier results and configurations to run first. A trial's
value for each of them is the latest value it reported (the end of its training).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field, model_validator

from ._base import SpecModel, field_error
from ._parameters import ParamValue

MAX_OBJECTIVES = 4
MAX_ENQUEUED = 1000
MAX_WARM_POINTS = 2000  # inline in the resource: bounded by etcd's object size


class ObjectiveGoal(SpecModel):
    """One of several objectives."""

    metric: str = Field(min_length=1, description="Name of a reported metric.")
    direction: str = Field(pattern="^(minimize|maximize)$", description="minimize or maximize.")
    reference: float | None = Field(
        None,
        description="The worst value that still counts toward the hypervolume (the reference "
        "point's coordinate). Unset: inferred from the trials' values.",
    )

    @model_validator(mode="after")
    def _check(self) -> ObjectiveGoal:
        if self.reference is not None and not math.isfinite(self.reference):
            raise field_error("reference", f"must be a finite number (got {self.reference})")
        return self

    @property
    def minimize(self) -> bool:
        return self.direction == "minimize"


class Constraint(SpecModel):
    """A trial is feasible only if its latest reported `metric` is within [min, max]."""

    metric: str = Field(min_length=1, description="An objective or additional metric.")
    max: float | None = Field(None, description="Largest allowed value.")
    min: float | None = Field(None, description="Smallest allowed value.")

    @model_validator(mode="after")
    def _check(self) -> Constraint:
        if self.max is None and self.min is None:
            raise field_error("max", "give max, min or both (e.g. {metric: gpu_gb, max: 16})")
        for name in ("max", "min"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise field_error(name, f"must be a finite number (got {value})")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise field_error("min", f"must be <= max (got {self.min} > {self.max})")
        return self

    def violation(self, value: float | None) -> float:
        """How far `value` is outside the bounds (0: feasible; inf: not reported)."""
        if value is None or not math.isfinite(value):
            return math.inf
        over = value - self.max if self.max is not None else -math.inf
        under = self.min - value if self.min is not None else -math.inf
        return max(0.0, over, under)


def meets_all(constraints: Sequence[Constraint], metrics: Mapping[str, float]) -> bool:
    """Whether latest metrics meet every constraint (a constraint not reported is not met)."""
    return all(c.violation(metrics.get(c.metric)) == 0.0 for c in constraints)


class WarmPoint(SpecModel):
    """An earlier result: its parameters and the metrics it reached."""

    params: dict[str, ParamValue] = Field(description="Parameter values.")
    metrics: dict[str, float] = Field(description="Metric values (objectives, constraints).")
    source: str | None = Field(None, description="Where it came from (a job, a file).")


class WarmStart(SpecModel):
    """Start from what is already known."""

    from_jobs: list[str] = Field(
        default_factory=list,
        description="Earlier jobs (same namespace, or the same work root locally) whose "
        "trials feed the model.",
    )
    from_file: str | None = Field(
        None,
        description="A CSV or JSON file of parameters and metric values, read where the "
        "manifest is submitted (kubetune run/submit, Client.submit) into `points`.",
    )
    points: list[WarmPoint] = Field(
        default_factory=list, max_length=MAX_WARM_POINTS, description="Earlier results, inline."
    )
    enqueue: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=MAX_ENQUEUED,
        description="Configurations to run first, in order (they are trials of this job).",
    )

    @model_validator(mode="after")
    def _check(self) -> WarmStart:
        seen: dict[str, int] = {}
        for i, name in enumerate(self.from_jobs):
            if name in seen:
                raise field_error(f"fromJobs[{i}]", f"{name!r} is already fromJobs[{seen[name]}]")
            seen[name] = i
        return self
