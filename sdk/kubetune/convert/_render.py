"""A conversion as YAML, with each note as a comment beside its field (ruamel.yaml)."""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from ._katib import Conversion, Path


def _commented(value: Any) -> Any:
    if isinstance(value, dict):
        return CommentedMap((k, _commented(v)) for k, v in value.items())
    if isinstance(value, list):
        return CommentedSeq(_commented(v) for v in value)
    return value


def render(conversion: Conversion, source: str) -> str:
    """The TuningJob as YAML: a header naming the source, then the manifest with its notes."""
    doc = _commented(conversion.manifest)
    for path, text in conversion.notes.items():
        _attach(doc, path, text)
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 100
    yaml.indent(mapping=2, sequence=4, offset=2)
    out = io.StringIO()
    out.write(f"# Converted by `kubetune convert katib` from {source}.\n")
    out.write("# Comments mark each decision that is not one-to-one.\n")
    yaml.dump(doc, out)
    return out.getvalue()


def _attach(doc: CommentedMap, path: Path, text: str) -> None:
    """The comment at the end of the line of the field `path`, or of the deepest field on it
    that exists."""
    container: Any = None
    key: Any = None
    node: Any = doc
    for part in path:
        in_map = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if not (in_map or in_list):
            break
        container, key, node = node, part, node[part]
    if container is None:
        doc.yaml_set_start_comment(text)
    else:
        container.yaml_add_eol_comment(text, key)
