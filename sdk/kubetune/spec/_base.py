"""Shared model base and field-path error helpers for the spec models.

Every spec model derives from `SpecModel`: camelCase in YAML/JSON, snake_case in Python, unknown
fields rejected. Cross-field checks raise `field_error(...)` so that the reported location points
at the exact field (`spec.parameters[1].max`), not at the enclosing object.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

FIELD_ERROR = "kubetune_field"


class SpecModel(BaseModel):
    """Base of all manifest models."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
    )

    def to_manifest(self) -> dict[str, Any]:
        """The model as manifest JSON: camelCase keys, no unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def field_error(path: str, message: str) -> PydanticCustomError:
    """An error located at `path`, relative to the model that raises it.

    `path` uses manifest names, e.g. ``parameters[0].step`` or ``algorithm.settings.points``.
    """
    return PydanticCustomError(FIELD_ERROR, message, {"path": path})


def field_errors_at(problems: list[tuple[str, str]]) -> ValidationError:
    """Several located errors at once (raise the result), for checks that find more than one."""
    details = [
        InitErrorDetails(type=field_error(path, message), loc=(), input=None)
        for path, message in problems
    ]
    return ValidationError.from_exception_data("TuningJob", details)
