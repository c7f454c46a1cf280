"""`$(VAR)` expansion in container commands, args and env values, as the kubelet does it."""

from __future__ import annotations

import re

REFERENCE = re.compile(r"\$?\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """`$(VAR)` replaced by VAR's value where it is defined; `$$(VAR)` escapes to `$(VAR)`."""

    def value(match: re.Match[str]) -> str:
        if match.group(0).startswith("$$"):
            return match.group(0)[1:]
        return env.get(match.group(1), match.group(0))

    return REFERENCE.sub(value, text)
