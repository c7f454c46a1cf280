"""LocalExecutor: trials as host processes, one session each, output to capped log files.

Builds the argv from the primary container (or the template's `local` override), substitutes
parameters and applies the trial env. Each trial runs under `_supervise.py`, which records its
exit code in a file and kills the trial's whole process group when its main process exits.
Stopping is SIGTERM to the group, then SIGKILL after a grace. Every process carries the run's
marker in its environment, and the executor signals a process left by an earlier runner only once
it has proved that the process is ours (same PID, same start time, our exit file on its command
line, or our marker in its environment).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from ..spec import FieldError, SpecError, TrialTemplate
from ..spec._job import LocalOverride
from ..trialenv import expand_env, substitute, trial_env

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
    metrics_port: int | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> LocalCommand:
    """The process that runs a trial on this host (pure); `extra_env` (the checkpoint
    contract) goes in last."""
    container = template.primary()
    local = template.local or LocalOverride()
    argv = [substitute(str(a), params) for a in local_argv(template)]
    if argv[0] in PYTHONS:
        argv[0] = sys.executable  # the interpreter kubetune runs in, with its packages
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if isinstance(item, dict) and isinstance(item.get("value"), str):
            env[item["name"]] = substitute(item["value"], params)
    for key, value in (local.env or {}).items():
        env[key] = substitute(value, params)
    env.update(trial_env(job, trial, params, metrics_address, token, metrics_port))
    env.update(extra_env or {})
    env["PYTHONUNBUFFERED"] = "1"
    argv = [argv[0], *(expand_env(a, env) for a in argv[1:])]  # $(VAR), as Kubernetes does
    workdir = base_dir / local.working_dir if local.working_dir else base_dir
    return LocalCommand(argv, workdir.resolve(), env)


SUPERVISOR = Path(__file__).with_name("_supervise.py")
RUN_MARKER = "KUBETUNE_RUN_ID"
LOG_LIMIT = 64 * 1024 * 1024  # bytes per trial log file; one rotated file is kept besides


@dataclass(frozen=True)
class TrialExit:
    code: int
    error: str | None = None  # why the command could not start


@dataclass(frozen=True)
class Started:
    pid: int
    started: float  # the process's start time: with the PID, it names the process for good


def local_argv(template: TrialTemplate) -> list[str]:
    """The command and args a trial runs locally, before substitution; SpecError if none."""
    container = template.primary()
    local = template.local or LocalOverride()
    command = local.command if local.command is not None else container.get("command") or []
    args = local.args if local.args is not None else container.get("args") or []
    if not command and not args:
        problem = "the primary container has no command or args to run (or set local.command)"
        raise SpecError([FieldError("spec.trialTemplate", problem)])
    return [*command, *args]


class LocalExecutor:
    """Starts, watches and stops trial processes."""

    def __init__(
        self, workdir: Path, run_id: str, grace: float = 10.0, log_limit: int = LOG_LIMIT
    ) -> None:
        self.logs = workdir / "logs"
        self.exits = workdir / "exits"
        self.run_id = run_id
        self.grace = grace
        self.log_limit = log_limit
        self.procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        self.terminated_at: dict[str, float] = {}
        self.logs.mkdir(parents=True, exist_ok=True)
        self.exits.mkdir(parents=True, exist_ok=True)

    def exit_file(self, trial: str, attempt: int) -> Path:
        return self.exits / f"{trial}.{attempt}.json"

    def log_file(self, trial: str) -> Path:
        """The trial's output (every attempt's, appended)."""
        return self.logs / f"{trial}.log"

    def message_file(self, trial: str, attempt: int) -> Path:
        """Where an attempt may say why it failed (KUBETUNE_TERMINATION_LOG)."""
        return self.exits / f"{trial}.{attempt}.message"

    def start(self, trial: str, attempt: int, command: LocalCommand) -> Started:
        """Start the trial's supervisor; OSError if even that cannot start."""
        exit_file = self.exit_file(trial, attempt)
        exit_file.unlink(missing_ok=True)
        log = self.log_file(trial)
        argv = [sys.executable, "-I", "-S", str(SUPERVISOR), str(exit_file), str(log)]
        argv += [str(self.log_limit), str(command.cwd), "--", *command.argv]
        with open(log, "ab") as errors:  # the supervisor's own errors, if it ever has any
            proc = subprocess.Popen(
                argv,
                env={**os.environ, **command.env, RUN_MARKER: self.run_id},
                stdin=subprocess.DEVNULL,
                stdout=errors,
                stderr=errors,
                start_new_session=True,
            )
        self.procs[trial] = (proc, exit_file)
        return Started(proc.pid, _start_time(proc.pid) or 0.0)

    def running(self) -> set[str]:
        return set(self.procs)

    def reap(self) -> dict[str, TrialExit]:
        """Trials whose process has exited since the last call, and how they ended."""
        done: dict[str, TrialExit] = {}
        for name, (proc, exit_file) in list(self.procs.items()):
            code = proc.poll()
            if code is None:
                continue
            done[name] = read_exit(exit_file) or TrialExit(code)
            exit_file.unlink(missing_ok=True)
            del self.procs[name]
            self.terminated_at.pop(name, None)
        return done

    def terminate(self, trial: str) -> None:
        """SIGTERM now; `enforce_grace` sends SIGKILL once the grace period has passed."""
        entry = self.procs.get(trial)
        if entry is None or trial in self.terminated_at:
            return
        self.terminated_at[trial] = time.monotonic()
        _signal_group(entry[0].pid, signal.SIGTERM)

    def enforce_grace(self) -> None:
        now = time.monotonic()
        for trial, since in list(self.terminated_at.items()):
            entry = self.procs.get(trial)
            if entry is not None and now - since > self.grace:
                _signal_group(entry[0].pid, signal.SIGKILL)

    def stop_all(self, hurry: Callable[[], bool] = lambda: False) -> dict[str, TrialExit]:
        """Stop every process: SIGTERM, then SIGKILL after the grace, or at once when `hurry()`
        turns true (a second Ctrl-C). Returns only when all have exited, with how they ended."""
        for trial in list(self.procs):
            self.terminate(trial)
        exited: dict[str, TrialExit] = {}
        deadline = time.monotonic() + self.grace
        while self.procs:
            if hurry() or time.monotonic() >= deadline:
                for proc, _ in self.procs.values():
                    _signal_group(proc.pid, signal.SIGKILL)
            time.sleep(0.02)
            exited.update(self.reap())
        return exited

    # -- what an earlier runner left behind ---------------------------------------------------
    def stop_leftovers(self, leftovers: dict[str, tuple[int, float, int]]) -> set[str]:
        """Stop the supervisors of an earlier runner, each given as trial: (pid, start, attempt),
        that are still alive and provably ours; the trials that were stopped."""
        alive: dict[str, psutil.Process] = {}
        for trial, (pid, started, attempt) in leftovers.items():
            proc = _ours(pid, started, str(self.exit_file(trial, attempt)))
            if proc is not None:
                alive[trial] = proc
                _signal_group(pid, signal.SIGTERM)
        _, late = psutil.wait_procs(list(alive.values()), timeout=self.grace)
        for proc in late:
            if proc.is_running():  # psutil compares the start time too
                _signal_group(proc.pid, signal.SIGKILL)
        psutil.wait_procs(late, timeout=5)
        return set(alive)

    def kill_marked(self) -> int:
        """SIGKILL every process carrying this run's marker (children that left their trial's
        group, say); call only when no trial is running. The number killed."""
        killed = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if proc.pid != os.getpid() and proc.environ().get(RUN_MARKER) == self.run_id:
                    proc.kill()
                    killed.append(proc)
        psutil.wait_procs(killed, timeout=5)
        return len(killed)


def read_exit(path: Path) -> TrialExit | None:
    """The exit a supervisor recorded, if it did."""
    try:
        data = json.loads(path.read_text())
        return TrialExit(int(data["code"]), data.get("error"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _start_time(pid: int) -> float | None:
    with contextlib.suppress(psutil.Error):
        return float(psutil.Process(pid).create_time())
    return None


def _ours(pid: int, started: float, exit_file: str) -> psutil.Process | None:
    """The process `pid` if it is still the supervisor we started (same start time, our exit
    file on its command line); else None."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - started) > 0.01 or exit_file not in proc.cmdline():
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.Error:
        return None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the session our supervisor `pid` leads (its group id is its PID)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
