"""Turn pydantic validation errors into `path: reason` lines that name manifest fields."""

from __future__ import annotations

import difflib
import re
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from ._base import FIELD_ERROR

# Tags of the discriminated unions; pydantic puts them into error locations, users never see them.
_UNION_TAGS = frozenset(
    {
        "float",
        "int",
        "categorical",
        "bayesian",
        "random",
        "grid",
        "hyperband",
        "pbt",
        "none",
        "median",
        "asha",
    }
)
_SHOW_INPUT = frozenset(
    {
        "enum",
        "literal_error",
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "string_pattern_mismatch",
        "string_too_long",
        "int_parsing",
        "int_from_float",
        "float_parsing",
        "int_type",
        "float_type",
        "string_type",
    }
)
_PATH_PART = re.compile(r"\[\d+\]|[^.\[\]]+")


@dataclass(frozen=True)
class FieldError:
    """One problem in a manifest: where (`spec.parameters[1].max`) and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


MAX_ERRORS = 50  # a broken manifest gets a screenful of errors, never megabytes
MAX_MESSAGE = 300  # characters in one error message


class SpecError(ValueError):
    """A manifest failed validation. `errors` holds one `FieldError` per problem (at most
    MAX_ERRORS, then a line saying how many more there were)."""

    def __init__(self, errors: list[FieldError], source: str | None = None) -> None:
        errors = [_shorten(e) for e in errors[:MAX_ERRORS]] + (
            [FieldError("", f"... and {len(errors) - MAX_ERRORS} more problems")]
            if len(errors) > MAX_ERRORS
            else []
        )
        self.errors = errors
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__("\n".join(f"{prefix}{e}" for e in errors))


def _shorten(error: FieldError) -> FieldError:
    if len(error.path) + len(error.message) <= MAX_MESSAGE:
        return error
    path = error.path[:100] + "..." if len(error.path) > 100 else error.path
    message = error.message[: MAX_MESSAGE - len(path)] + "..."
    return FieldError(path, message)


def join_path(parts: list[Any]) -> str:
    """Join location parts into `a.b[0].c`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _split_relative(path: str) -> list[Any]:
    parts: list[Any] = []
    for match in _PATH_PART.findall(path):
        parts.append(int(match[1:-1]) if match.startswith("[") else match)
    return parts


def field_errors(
    exc: ValidationError, prefix: tuple[Any, ...] = (), model: type[BaseModel] | None = None
) -> list[FieldError]:
    """One `FieldError` per pydantic error, with manifest paths and plain messages; with the
    validated `model`, an unknown field gets the closest known name as a suggestion."""
    result: list[FieldError] = []
    for err in exc.errors(include_url=False):
        loc: list[Any] = [*prefix]
        for part in err["loc"]:
            if isinstance(part, str) and part in _UNION_TAGS:
                continue
            if isinstance(part, str) and part.startswith("function-"):
                continue
            loc.append(part)
        message = err["msg"]
        if err["type"] == FIELD_ERROR:
            loc.extend(_split_relative(err["ctx"]["path"]))
        elif err["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        elif err["type"] == "extra_forbidden":
            message = "unknown field"
            close = _closest(model, err["loc"]) if model is not None else None
            if close:
                message += f" (did you mean {close!r}?)"
        elif err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            ctx = err.get("ctx") or {}
            loc.append(str(ctx.get("discriminator", "")).strip("'"))
            message = _tag_message(err)
        value = err.get("input")
        if isinstance(value, str | int | float) and err["type"] in _SHOW_INPUT:
            shown = repr(value)
            message = f"{message} (got {shown[:60] + '...' if len(shown) > 63 else shown})"
        result.append(FieldError(join_path(loc), message))
    return result


def _closest(model: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    """The known field name nearest to the unknown one at the end of `loc`."""
    if not loc or not isinstance(loc[-1], str):
        return None
    models = [model]
    for part in loc[:-1]:  # list indexes and union tags name no field: they keep the models
        inner = [
            found
            for m in models
            for name, f in m.model_fields.items()
            if part in (name, f.alias)
            for found in _models_in(f.annotation)
        ]
        models = inner or models
    names = {f.alias or name for m in models for name, f in m.model_fields.items()}
    matches = difflib.get_close_matches(loc[-1], sorted(names), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation holds: itself, or inside list, dict, Union, Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _tag_message(err: Any) -> str:
    ctx = err.get("ctx") or {}
    if err["type"] == "union_tag_not_found":
        return "field required"
    return f"must be one of {ctx.get('expected_tags', '?')} (got {ctx.get('tag')!r})"
