"""`update`: a new budget (maxTrials, parallelism, maxFailedTrials) for a running job, checked
the same way on both backends."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ..spec import FieldError, SpecError, TuningJobSpec
from ..spec._errors import field_errors
from ._errors import ClientError, JobFinished
from ._types import JobStatus

FIELDS = {
    "max_trials": "maxTrials",
    "parallelism": "parallelism",
    "max_failed_trials": "maxFailedTrials",
}


def apply_budget(status: JobStatus, spec: dict[str, Any], budget: dict[str, int]) -> dict[str, Any]:
    """The spec with the new budget; `SpecError` naming the field if a value is wrong."""
    unknown = sorted(set(budget) - set(FIELDS))
    if unknown:
        raise ClientError(f"update changes only {', '.join(FIELDS)}; not {', '.join(unknown)}")
    if not budget:
        raise ClientError("update needs max_trials, parallelism or max_failed_trials")
    if status.finished:
        raise JobFinished(
            f"job {status.name!r} has finished ({status.phase.value}: {status.reason}); "
            "its budget can no longer change"
        )
    new = {**spec, **{FIELDS[k]: v for k, v in budget.items()}}
    try:
        TuningJobSpec.model_validate(new)
    except ValidationError as exc:
        raise SpecError(field_errors(exc, ("spec",), TuningJobSpec)) from None
    created = status.trials.created
    if "max_trials" in budget and budget["max_trials"] < created:
        raise SpecError(
            [FieldError("spec.maxTrials", f"must be at least {created}: that many trials exist")]
        )
    return new
