"""Kubernetes protobuf request bodies, decoded for the kinds clients send that way.

client-go's typed clients (helm's release storage, `kubectl create namespace`) write Secrets,
ConfigMaps, Namespaces and DeleteOptions as `application/vnd.kubernetes.protobuf` and do not fall back to JSON. The body is the magic
`k8s\\0` and a runtime.Unknown whose `raw` is the object in go-to-protobuf's encoding. Only the
fields the tests' clients set are read; any other kind is refused (415).
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

MAGIC = b"k8s\x00"
Fields = dict[int, list[Any]]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def fields(data: bytes) -> Fields:
    """Field number -> values in wire order (varints as int, length-delimited as bytes)."""
    out: Fields = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"protobuf wire type {wire} is not supported")
        out.setdefault(number, []).append(value)
    return out


def _str(f: Fields, n: int) -> str | None:
    return f[n][-1].decode() if n in f else None


def _map(f: Fields, n: int, binary: bool = False) -> dict[str, Any]:
    out = {}
    for entry in f.get(n, []):
        e = fields(entry)
        value = e.get(2, [b""])[-1]
        out[e[1][-1].decode()] = base64.b64encode(value).decode() if binary else value.decode()
    return out


def _time(raw: bytes) -> str:
    seconds = fields(raw).get(1, [0])[-1]
    stamp = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _metadata(raw: bytes) -> dict[str, Any]:
    f = fields(raw)
    meta: dict[str, Any] = {}
    for n, key in [
        (1, "name"),
        (2, "generateName"),
        (3, "namespace"),
        (5, "uid"),
        (6, "resourceVersion"),
    ]:
        if (value := _str(f, n)) is not None and value:
            meta[key] = value
    if 8 in f:
        meta["creationTimestamp"] = _time(f[8][-1])
    for n, key in [(11, "labels"), (12, "annotations")]:
        if n in f:
            meta[key] = _map(f, n)
    if 14 in f:
        meta["finalizers"] = [v.decode() for v in f[14]]
    return meta


def _secret(f: Fields) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": _metadata(f.get(1, [b""])[-1])}
    if 2 in f:
        obj["data"] = _map(f, 2, binary=True)
    if 4 in f:
        obj["stringData"] = _map(f, 4)
    if (kind := _str(f, 3)) is not None:
        obj["type"] = kind
    if 5 in f:
        obj["immutable"] = bool(f[5][-1])
    return obj


def _configmap(f: Fields) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": _metadata(f.get(1, [b""])[-1])}
    if 2 in f:
        obj["data"] = _map(f, 2)
    if 3 in f:
        obj["binaryData"] = _map(f, 3, binary=True)
    if 4 in f:
        obj["immutable"] = bool(f[4][-1])
    return obj


def _delete_options(f: Fields) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    if 1 in f:
        obj["gracePeriodSeconds"] = f[1][-1]
    if (policy := _str(f, 4)) is not None:
        obj["propagationPolicy"] = policy
    return obj


def _namespace(f: Fields) -> dict[str, Any]:
    return {"metadata": _metadata(f.get(1, [b""])[-1])}


DECODERS = {
    "Secret": _secret,
    "ConfigMap": _configmap,
    "Namespace": _namespace,
    "DeleteOptions": _delete_options,
}


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object; ValueError when it cannot be read here."""
    if not body.startswith(MAGIC):
        raise ValueError("not a Kubernetes protobuf body (no k8s\\0 prefix)")
    unknown = fields(body[len(MAGIC) :])
    type_meta = fields(unknown.get(1, [b""])[-1])
    api_version, kind = _str(type_meta, 1) or "", _str(type_meta, 2) or ""
    decoder = DECODERS.get(kind) if api_version in ("v1", "meta.k8s.io/v1") else None
    if decoder is None:
        raise ValueError(f"protobuf bodies of {api_version}/{kind} are not supported")
    return {"apiVersion": api_version, "kind": kind, **decoder(fields(unknown.get(2, [b""])[-1]))}
