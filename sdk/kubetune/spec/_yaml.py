"""Strict YAML for manifests: bounded size, no aliases, no duplicate keys, errors with paths.

PyYAML's safe loader still expands aliases (a few hundred bytes can become gigabytes: the
"billion laughs") and lets a repeated key silently win. Kubernetes manifests need neither, so both
are errors here, reported with the field path and line like every other manifest problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ._errors import FieldError, SpecError, join_path

MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # etcd stores objects of at most 1.5 MiB


def read_manifest_text(path: str | Path) -> str:
    """The text of a manifest file; `SpecError` if unreadable, too large or not UTF-8."""
    source = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise SpecError([FieldError("", f"cannot read file: {exc.strerror}")], source) from None
    if len(data) > MAX_MANIFEST_BYTES:
        limit = MAX_MANIFEST_BYTES // (1024 * 1024)
        raise SpecError([FieldError("", f"larger than {limit} MiB")], source)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([FieldError("", f"not UTF-8 text (byte {exc.start})")], source) from None


def load_documents(text: str, source: str | None = None) -> list[Any]:
    """Every non-empty document of `text`; `SpecError` on a syntax error, an alias or a
    duplicate key, naming the line and (for the last two) the field path."""
    docs: list[Any] = []
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # rejects unprintable characters already
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            problems: list[FieldError] = []
            _check(node, [], problems, set())
            if problems:
                raise SpecError(problems, source)
            data = loader.construct_document(node)
            if data is not None:
                docs.append(data)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([FieldError("", f"invalid YAML: {where}{problem}")], source) from None
    finally:
        if loader is not None:
            loader.dispose()
    return docs


def _check(node: yaml.Node, path: list[Any], problems: list[FieldError], seen: set[int]) -> None:
    if id(node) in seen:  # the composer hands out the anchored node again for each alias
        line = node.start_mark.line + 1
        problems.append(
            FieldError(join_path(path), f"YAML alias to the anchor on line {line}: not supported")
        )
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(len(first))
            if name in first:
                line = key.start_mark.line + 1
                problems.append(
                    FieldError(
                        join_path([*path, name]),
                        f"duplicate key on line {line} (first on line {first[name]})",
                    )
                )
            first.setdefault(name, key.start_mark.line + 1)
            _check(value, [*path, name], problems, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check(item, [*path, i], problems, seen)
