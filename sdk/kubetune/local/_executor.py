"""LocalExecutor: trials as host processes, one process group each, output to log files.

Builds the argv from the primary container (or the template's `local` override), substitutes
parameters, applies the trial env, and stops processes with SIGTERM then SIGKILL after a grace.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..spec import TrialTemplate
from ..spec._job import LocalOverride
from ..trialenv import substitute, trial_env

PYTHONS = frozenset({"python", "python3"})


@dataclass(frozen=True)
class LocalCommand:
    argv: list[str]
    cwd: Path
    env: dict[str, str]


def build_local_command(
    template: TrialTemplate,
    base_dir: Path,
    job: str,
    trial: str,
    params: dict[str, Any],
    metrics_address: str,
    token: str,
) -> LocalCommand:
    """The process that runs a trial on this host (pure)."""
    container = template.primary()
    local = template.local or LocalOverride()
    command = local.command if local.command is not None else container.get("command") or []
    args = local.args if local.args is not None else container.get("args") or []
    argv = [substitute(str(a), params) for a in [*command, *args]]
    if not argv:
        raise ValueError("spec.trialTemplate: the primary container has no command or args to run")
    if argv[0] in PYTHONS:
        argv[0] = sys.executable  # the interpreter kubetune runs in, with its packages
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if isinstance(item, dict) and isinstance(item.get("value"), str):
            env[item["name"]] = substitute(item["value"], params)
    for key, value in (local.env or {}).items():
        env[key] = substitute(value, params)
    env.update(trial_env(job, trial, params, metrics_address, token))
    env["PYTHONUNBUFFERED"] = "1"
    workdir = base_dir / local.working_dir if local.working_dir else base_dir
    return LocalCommand(argv, workdir.resolve(), env)


class LocalExecutor:
    """Starts, watches and stops trial processes."""

    def __init__(self, logs: Path, grace: float = 10.0) -> None:
        self.logs = logs
        self.grace = grace
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.terminated_at: dict[str, float] = {}
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, trial: str, command: LocalCommand) -> int:
        log = open(self.logs / f"{trial}.log", "ab")  # noqa: SIM115 - owned by the process
        try:
            self.procs[trial] = subprocess.Popen(
                command.argv,
                cwd=command.cwd,
                env={**os.environ, **command.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()
        return self.procs[trial].pid

    def running(self) -> set[str]:
        return set(self.procs)

    def reap(self) -> dict[str, int]:
        """Trials whose process has exited since the last call, with exit codes."""
        done = {name: code for name, p in self.procs.items() if (code := p.poll()) is not None}
        for name in done:
            del self.procs[name]
            self.terminated_at.pop(name, None)
        return done

    def terminate(self, trial: str) -> None:
        """SIGTERM now; `enforce_grace` sends SIGKILL once the grace period has passed."""
        proc = self.procs.get(trial)
        if proc is None or trial in self.terminated_at:
            return
        self.terminated_at[trial] = time.monotonic()
        _signal_group(proc, signal.SIGTERM)

    def enforce_grace(self) -> None:
        now = time.monotonic()
        for trial, since in list(self.terminated_at.items()):
            proc = self.procs.get(trial)
            if proc is not None and now - since > self.grace:
                _signal_group(proc, signal.SIGKILL)

    def stop_all(self) -> dict[str, int]:
        """Stop every process (SIGTERM, SIGKILL after the grace); their exit codes."""
        for trial in list(self.procs):
            self.terminate(trial)
        exited: dict[str, int] = {}
        deadline = time.monotonic() + self.grace
        while self.procs and time.monotonic() < deadline:
            time.sleep(0.05)
            exited.update(self.reap())
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGKILL)
        for name, proc in self.procs.items():
            exited[name] = proc.wait()
        self.procs.clear()
        return exited


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def kill_group(pid: int) -> None:
    """SIGKILL a process group left behind by a previous runner, if it still exists."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
