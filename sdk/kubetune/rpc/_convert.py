"""Conversions between parameter dicts and the protobuf `ParamValue` map."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import kubetune_pb2 as pb


def to_proto_params(params: Mapping[str, Any], target: Any) -> None:
    """Fill a protobuf `map<string, ParamValue>` from a params dict."""
    for name, value in params.items():
        slot = target[name]
        if isinstance(value, bool):
            raise TypeError(f"params.{name}: booleans are not parameter values")
        if isinstance(value, int):
            slot.integer = value
        elif isinstance(value, float):
            slot.number = value
        elif isinstance(value, str):
            slot.text = value
        else:
            raise TypeError(f"params.{name}: unsupported value {value!r}")


def from_proto_params(source: Mapping[str, pb.ParamValue]) -> dict[str, Any]:
    """A params dict from a protobuf `map<string, ParamValue>`."""
    out: dict[str, Any] = {}
    for name, value in source.items():
        kind = value.WhichOneof("kind")
        out[name] = getattr(value, kind) if kind else None
    return out
