"""Search-space parameters: `float` and `int` (linear or log, optional step), `categorical`."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, StrictFloat, StrictInt, StrictStr, field_validator, model_validator

from ._base import SpecModel, field_error

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
ParamValue = StrictStr | StrictInt | StrictFloat
_VALUE_TYPES = (str, int, float)


class Scale(StrEnum):
    linear = "linear"
    log = "log"


class _Numeric(SpecModel):
    name: str = Field(pattern=NAME_PATTERN, description="Parameter name, used as ${params.NAME}.")
    scale: Scale = Field(Scale.linear, description="Sampling scale: linear or log.")

    def _check_range(self) -> None:
        lo, hi = self.min, self.max  # type: ignore[attr-defined]
        if not hi > lo:
            raise field_error("max", f"must be greater than min (got {hi} <= {lo})")
        if self.scale is Scale.log and lo <= 0:
            raise field_error("min", f"log scale needs a positive range (got min={lo})")
        step = self.step  # type: ignore[attr-defined]
        if step is not None and step > hi - lo:
            raise field_error("step", f"must not exceed max - min (got {step} > {hi - lo})")

    def outside(self, value: Any) -> str | None:
        """Why `value` is not a value of this parameter (None: it is)."""
        integral = isinstance(self, IntParameter)
        if isinstance(value, bool) or not isinstance(value, int if integral else int | float):
            return f"must be {'an integer' if integral else 'a number'} (got {value!r})"
        lo, hi, step = self.min, self.max, self.step  # type: ignore[attr-defined]
        if not lo <= value <= hi:
            return f"{value!r} is outside [{lo}, {hi}]"
        if step is not None:
            k = (value - lo) / step
            if abs(k - round(k)) > 1e-6:
                return f"{value!r} is not min + k * step (min {lo}, step {step})"
        return None


class FloatParameter(_Numeric):
    """A real-valued parameter in [min, max]; with `step`, only min + k*step."""

    type: Literal["float"] = Field(description="Parameter type.")
    min: float = Field(description="Lower bound (inclusive).")
    max: float = Field(description="Upper bound (inclusive).")
    step: float | None = Field(None, gt=0, description="Optional quantization step.")

    @field_validator("min", "max")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError(f"must be a finite number (got {v})")
        return v

    @model_validator(mode="after")
    def _check(self) -> FloatParameter:
        self._check_range()
        return self

    def grid_values(self, points: int | None) -> list[float] | None:
        """The finite values of this parameter, or None if it has no step and `points` is None."""
        if self.step is not None:
            count = math.floor((self.max - self.min) / self.step + 1e-9) + 1
            values = [round_to_step(self.min + k * self.step, self.step) for k in range(count)]
            return [self.min, *(min(max(v, self.min), self.max) for v in values[1:])]
        if points is None:
            return None
        if points == 1:
            return [self.min]
        if self.scale is Scale.log:
            lo, hi = math.log(self.min), math.log(self.max)
            inner = [math.exp(lo + (hi - lo) * k / (points - 1)) for k in range(1, points - 1)]
            return [self.min, *inner, self.max]
        return [self.min + (self.max - self.min) * k / (points - 1) for k in range(points)]


class IntParameter(_Numeric):
    """An integer parameter in [min, max]; with `step`, only min + k*step."""

    type: Literal["int"] = Field(description="Parameter type.")
    min: int = Field(description="Lower bound (inclusive).")
    max: int = Field(description="Upper bound (inclusive).")
    step: int | None = Field(None, ge=1, description="Optional step between allowed values.")

    @model_validator(mode="after")
    def _check(self) -> IntParameter:
        self._check_range()
        return self

    def grid_values(self, points: int | None = None) -> list[int]:
        return list(range(self.min, self.max + 1, self.step or 1))


class CategoricalParameter(SpecModel):
    """A choice among listed strings or numbers."""

    name: str = Field(pattern=NAME_PATTERN, description="Parameter name, used as ${params.NAME}.")
    type: Literal["categorical"] = Field(description="Parameter type.")
    values: list[ParamValue] = Field(min_length=1, description="The choices (strings or numbers).")

    @model_validator(mode="before")
    @classmethod
    def _plain_values(cls, data: Any) -> Any:
        values = data.get("values") if isinstance(data, dict) else None
        if not isinstance(values, list):
            return data
        seen: set[str] = set()
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, _VALUE_TYPES):
                raise field_error(f"values[{i}]", f"must be a string or a number (got {v!r})")
            if isinstance(v, float) and not math.isfinite(v):
                raise field_error(f"values[{i}]", f"must be a finite number (got {v})")
            if repr(v) in seen:
                raise field_error(f"values[{i}]", f"duplicate value {v!r}")
            seen.add(repr(v))
        return data

    def grid_values(self, points: int | None = None) -> list[ParamValue]:
        return list(self.values)

    def outside(self, value: Any) -> str | None:
        """Why `value` is not one of the choices (None: it is)."""
        if any(type(value) is type(v) and value == v for v in self.values):
            return None
        return f"{value!r} is not one of {self.values}"


Parameter = Annotated[
    FloatParameter | IntParameter | CategoricalParameter, Field(discriminator="type")
]


def round_to_step(value: float, step: float) -> float:
    """Remove float noise from a multiple of `step` (0.1 + 2*0.1 -> 0.3, not 0.30000000000000004)."""
    return float(f"{value:.15g}")
