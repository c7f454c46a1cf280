"""The trial contract, shared by both executors: `${params.NAME}` substitution and trial env.

Pure functions: the local executor turns them into a process, the Kubernetes executor into a Pod.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .spec._job import PARAM_REF


def format_value(value: Any) -> str:
    """How a parameter value appears in command lines and env (repr of floats round-trips)."""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def short_value(value: Any) -> str:
    """A compact display form (floats to 3 significant digits) for tables and summaries."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def substitute(text: str, params: Mapping[str, Any]) -> str:
    """Replace every ${params.NAME} in `text` (names are checked by spec validation)."""
    return PARAM_REF.sub(lambda m: format_value(params[m.group(1)]), text)


def env_name(param: str) -> str:
    return "KUBETUNE_PARAM_" + re.sub(r"[^A-Za-z0-9_]", "_", param).upper()


def trial_env(
    job: str,
    trial: str,
    params: Mapping[str, Any],
    metrics_address: str,
    token: str,
    metrics_port: int | None = None,
) -> dict[str, str]:
    """The variables every trial gets, whatever runs it. With `metrics_port` (a job whose
    metrics are scraped), KUBETUNE_METRICS_PORT says where the trial serves them."""
    env = {
        "KUBETUNE_JOB": job,
        "KUBETUNE_TRIAL": trial,
        "KUBETUNE_METRICS_ADDR": metrics_address,
        "KUBETUNE_TRIAL_TOKEN": token,
        "KUBETUNE_PARAMS": json.dumps(dict(params), sort_keys=True),
    }
    if metrics_port is not None:
        env["KUBETUNE_METRICS_PORT"] = str(metrics_port)
    for name, value in params.items():
        env[env_name(name)] = format_value(value)
    return env


ENV_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_env(text: str, env: Mapping[str, str]) -> str:
    """`$(VAR)` references replaced from `env`, as Kubernetes expands a container's command and
    args: `$$` is a literal `$`, and a name `env` lacks stays as written."""

    def swap(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return ENV_REF.sub(swap, text)
