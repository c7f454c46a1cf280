"""Turn pydantic validation errors into `path: reason` lines that name manifest fields."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

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


def field_errors(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> list[FieldError]:
    """One `FieldError` per pydantic error, with manifest paths and plain messages."""
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


def _tag_message(err: Any) -> str:
    ctx = err.get("ctx") or {}
    if err["type"] == "union_tag_not_found":
        return "field required"
    return f"must be one of {ctx.get('expected_tags', '?')} (got {ctx.get('tag')!r})"
