"""The local backend of `kubetune.Client`: jobs in a work directory, each run by a detached
`kubetune run`.

A root holds one directory per job (`<root>/<name>`, as `kubetune run` lays them out); a job's
directory may also be given directly. `submit` copies the manifest into the job's directory and
starts `kubetune run` in its own session, so the run outlives the caller. Reads open the state
file read-only beside the running runner; `update` stores a new budget that the runner picks up
within a second; `delete` stops the runner (which stops its trials) and removes the directory.
"""

from __future__ import annotations

import builtins
import datetime
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import yaml

from .. import jobstatus
from ..engine import Finish, FinishReason, best_trial
from ..local import Store, TrialRow
from ..local._runner import engine_view, runner_pid
from ..local._store import peek_job, peek_trial
from ..spec import (
    CurvePoint,
    FieldError,
    JobPhase,
    Objective,
    SpecError,
    TuningJob,
    TuningJobSpec,
    TuningJobStatus,
    WarmStartStatus,
)
from ._errors import AlreadyExists, ClientError, NotFound, UsageError
from ._types import JobEvent, JobStatus, TrialInfo, marked

STATE_FILE = "state.db"
MANIFEST = "job.yaml"
RUNNER_LOG = "runner.log"
START_TIMEOUT = 60.0  # seconds for a submitted run to record its job
STOP_TIMEOUT = 120.0  # seconds for a deleted job's runner to stop its trials
POLL = 0.1  # seconds between looks at a state file while waiting or following a log
# Starts the runner in its own session (its output to the launcher's stderr), prints its PID and
# exits, so that the caller never has to reap it.
DETACH = (
    "import subprocess, sys; "
    "print(subprocess.Popen(sys.argv[1:], start_new_session=True, stdout=sys.stderr).pid)"
)


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


class LocalBackend:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise ClientError(f"workdir {self.root}: not a directory")

    # -- where jobs live --------------------------------------------------------------------
    def describe(self) -> str:
        return f"workdir={str(self.root)!r}"

    def flags(self) -> builtins.list[str]:
        return ["--workdir", str(self.root)]

    def place(self) -> str:
        return ""

    def plots_dir(self, name: str) -> Path:
        return self.job_dir(name) / "plots"

    def only_job(self) -> str | None:
        """The one job of the work directory; none there is NotFound, several a UsageError."""
        names = self.names()
        if len(names) == 1:
            return names[0]
        if not names:
            raise NotFound(f"no job in {self.root}")
        raise UsageError(f"name a job: {self.root} holds {', '.join(names)}")

    def job_dir(self, name: str | None) -> Path:
        """The directory of job `name`; with None, the only job there is."""
        if (self.root / STATE_FILE).exists():  # the root is one job's directory
            stored = self._stored_name(self.root)
            if name is None or name == stored:
                return self.root
            raise NotFound(f"job {name!r} not found: {self.root} holds job {stored!r}")
        jobs = self.jobs()
        if name is None:
            if len(jobs) != 1:
                found = f"it holds {', '.join(jobs)}" if jobs else "it holds no job"
                raise (ClientError if jobs else NotFound)(f"name a job in {self.root} ({found})")
            name = next(iter(jobs))
        if name not in jobs:
            raise NotFound(f"job {name!r} not found in {self.root}")
        return jobs[name]

    def names(self) -> list[str]:
        return list(self.jobs())

    def jobs(self) -> dict[str, Path]:
        """Each job under the root by its recorded name (a directory may be named otherwise,
        as `--workdir` allows); two directories holding jobs of one name are an error."""
        if (self.root / STATE_FILE).exists():
            return {self._stored_name(self.root): self.root}
        if not self.root.is_dir():
            return {}
        found: dict[str, Path] = {}
        for path in sorted(p for p in self.root.iterdir() if (p / STATE_FILE).exists()):
            name = self._stored_name(path)
            if name in found:
                raise ClientError(
                    f"two jobs named {name!r} in {self.root}: {found[name]} and {path}; "
                    "give one of them as --workdir, or remove one"
                )
            found[name] = path
        return dict(sorted(found.items()))

    def _stored_name(self, path: Path) -> str:
        job = peek_job(path / STATE_FILE)
        return str(job["name"]) if job else path.name

    # -- verbs ------------------------------------------------------------------------------
    def submit(self, job: TuningJob, manifest: dict[str, Any], base_dir: Path) -> str:
        from ..local._executor import local_argv
        from ..warm import inline_file, local_points

        if job.spec.trial_template is None:
            raise SpecError([FieldError("spec.trialTemplate", "required to run trials")])
        local_argv(job.spec.trial_template)
        local_points(inline_file(job, base_dir), self.root)  # bad warm-start input fails here
        self.root.mkdir(parents=True, exist_ok=True)
        generate = manifest["metadata"].get("generateName")
        name, path = self._claim(job.name, generate)
        meta = {k: v for k, v in manifest["metadata"].items() if k != "generateName"}
        manifest = {**manifest, "metadata": {**meta, "name": name}}
        (path / MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=False))
        argv = [sys.executable, "-m", "kubetune.cli", "run", str(path / MANIFEST), "--json"]
        argv += ["--workdir", str(path), "--base-dir", str(base_dir)]
        with open(path / RUNNER_LOG, "ab") as log:
            launched = subprocess.run(
                [sys.executable, "-c", DETACH, *argv],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                check=True,
                text=True,
            )
        self._await_start(path, int(launched.stdout))
        return name

    def _claim(self, name: str, generate: str | None) -> tuple[str, Path]:
        """Create the job's directory; a name taken already is an error, unless generated."""
        taken = self.jobs()
        for _ in range(100):
            if generate:
                name = generate + uuid.uuid4().hex[:5]
            path = self.root / name
            if name in taken:
                if generate:
                    continue
                raise AlreadyExists(f"job {name!r} already exists in {taken[name]}")
            try:
                path.mkdir()
            except FileExistsError:
                if generate:
                    continue
                raise AlreadyExists(f"job {name!r} already exists in {self.root}") from None
            return name, path
        raise ClientError(f"no free name for generateName {generate!r} in {self.root}")

    def _await_start(self, path: Path, pid: int) -> None:
        """Return once the run (process `pid`) has recorded its job; its own error if it
        exited before that."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if (path / STATE_FILE).exists() and peek_job(path / STATE_FILE):
                return
            if not _alive(pid):
                break
            time.sleep(POLL)
        lines = (path / RUNNER_LOG).read_text(errors="replace").strip().splitlines()
        shutil.rmtree(path, ignore_errors=True)
        why = lines[-1] if lines else f"it did not start within {START_TIMEOUT:g} s"
        raise ClientError(f"the run could not start: {why}")

    def get(self, name: str) -> JobStatus:
        path = self.job_dir(name)
        with _reader(path) as store:
            job = store.job()
            trials = store.trials()
        if job is None:
            raise NotFound(f"job {name!r} not found in {self.root}")
        return job_status(job, trials, runner_pid(path) is not None)

    def spec(self, name: str) -> TuningJobSpec:
        return TuningJobSpec.model_validate(self._stored_spec(self.job_dir(name)))

    def _stored_spec(self, path: Path) -> dict[str, Any]:
        job = peek_job(path / STATE_FILE)
        if job is None:
            raise NotFound(f"no job in {path}")
        return dict(json.loads(job["spec"]))

    def list(self, selector: str | None = None) -> builtins.list[JobStatus]:
        if selector:
            raise ClientError("label selectors need a cluster: local jobs carry no labels")
        return [self.get(n) for n in self.names()]

    def trials(self, name: str) -> builtins.list[TrialInfo]:
        return self.view(name)[1]

    def view(self, name: str) -> tuple[JobStatus, builtins.list[TrialInfo]]:
        path = self.job_dir(name)
        with _reader(path) as store:
            job = store.job()
            rows = store.trials()
        if job is None:
            raise NotFound(f"job {name!r} not found in {self.root}")
        objective = TuningJobSpec.model_validate(json.loads(job["spec"])).objective
        status = job_status(job, rows, runner_pid(path) is not None)
        return status, marked(status, [trial_info(r, objective) for r in rows])

    def revision(self, name: str) -> str:
        path = self.job_dir(name)
        return f"{_changes(path)}:{runner_pid(path)}"

    def events(self, name: str, limit: int) -> builtins.list[JobEvent]:
        self.job_dir(name)  # a missing job is an error
        return []  # a local run posts no events: its trials' reasons say what happened

    def wait(
        self, name: str, deadline: float | None, on_change: Callable[[JobStatus], None]
    ) -> JobStatus:
        """Follow the state file: a new status for every change, until the job has finished
        and its last trial has ended."""
        path = self.job_dir(name)
        seen: tuple[Any, ...] | None = None
        while True:
            mark = _changes(path)
            if mark != seen:
                seen = mark
                status = self.get(name)
                on_change(status)
                if status.settled:
                    return status
                if runner_pid(path) is None:
                    status = self.get(name)  # what the runner wrote last, before it exited
                    if status.finished:  # nothing is left to change it
                        on_change(status)
                        return status
                    raise ClientError(
                        f"job {name!r} is not running: its runner exited before the job finished"
                        f" (see {path / RUNNER_LOG}; resume with kubetune run)"
                    )
            if deadline is not None and time.monotonic() >= deadline:
                raise _timeout(name)
            time.sleep(POLL)

    def logs(self, trial: str, follow: bool, job: str | None = None) -> Iterator[str]:
        path = self._trial_dir(trial, job) if not follow else self._await_trial(trial, job)
        log = path / "logs" / f"{trial}.log"
        if not follow:
            if not log.exists():
                return
            with open(log, errors="replace") as f:
                yield from (line.rstrip("\n") for line in f)
            return
        yield from _follow(log, lambda: _trial_ended(path, trial))

    def _await_trial(self, trial: str, job: str | None) -> Path:
        """The trial's job directory; a trial not created yet is waited for while its job
        (named by `job`, or by the trial name `<job>-<index>`) is still running."""
        owner = job or trial.rpartition("-")[0]
        while True:
            try:
                return self._trial_dir(trial, job)
            except NotFound:
                try:
                    status = self.get(owner)
                except NotFound:
                    raise NotFound(f"trial {trial!r} not found in {self.root}") from None
                if status.finished or runner_pid(self.job_dir(owner)) is None:
                    raise
            time.sleep(POLL)

    def _trial_dir(self, trial: str, job: str | None) -> Path:
        if job is not None:
            candidates = [self.job_dir(job)]
        elif (self.root / STATE_FILE).exists():
            candidates = [self.root]
        else:
            candidates = list(self.jobs().values())
        for path in candidates:
            if peek_trial(path / STATE_FILE, trial) is not None:
                return path
        raise NotFound(f"trial {trial!r} not found in {self.root}")

    def delete(self, name: str) -> None:
        path = self.job_dir(name)
        pid = runner_pid(path)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)  # the runner stops its trials and records them
            deadline = time.monotonic() + STOP_TIMEOUT
            while runner_pid(path) is not None:
                if time.monotonic() > deadline:
                    raise ClientError(
                        f"the runner of job {name!r} (PID {pid}) did not stop within "
                        f"{STOP_TIMEOUT:g} s; nothing was removed"
                    )
                time.sleep(POLL)
        shutil.rmtree(path)

    def update(self, name: str, budget: dict[str, int]) -> JobStatus:
        from ._budget import apply_budget

        path = self.job_dir(name)
        spec = apply_budget(self.get(name), self._stored_spec(path), budget)
        store = Store(path / STATE_FILE)
        try:
            store.update_spec(spec)
        finally:
            store.close()
        manifest = path / MANIFEST
        if manifest.exists():  # what a resume of a submitted job reads
            doc = yaml.safe_load(manifest.read_text())
            doc["spec"] = spec
            manifest.write_text(yaml.safe_dump(doc, sort_keys=False))
        return self.get(name)


class _reader:
    """A read-only view of a job's state file, closed on exit."""

    def __init__(self, path: Path) -> None:
        try:
            self.store = Store(path / STATE_FILE, _objective(path), readonly=True)
        except sqlite3.Error as exc:
            raise ClientError(f"cannot read {path / STATE_FILE}: {exc}") from None

    def __enter__(self) -> Store:
        return self.store

    def __exit__(self, *exc: object) -> None:
        self.store.close()


def _objective(path: Path) -> str:
    """The objective's name, read before the store loads the curves."""
    job = peek_job(path / STATE_FILE)
    if not job:
        return ""
    return TuningJobSpec.model_validate(json.loads(job["spec"])).objective.metric


def job_status(job: dict[str, Any], rows: list[TrialRow], running: bool) -> JobStatus:
    """A local job's status: the model the operator writes, from the same function."""
    spec = TuningJobSpec.model_validate(json.loads(job["spec"]))
    views = [engine_view(r) for r in rows]
    finish = None
    if job["finished"] is not None:
        reason = FinishReason(job["reason"])
        finish = Finish(reason, bool(job["succeeded"]), job["message"] or "")
    started = [r.started for r in rows if r.started is not None]
    since = iso(job["finished"] or (min(started) if started else None)) or ""
    previous = TuningJobStatus(start_time=iso(min(started)) if started else None)
    warm = WarmStartStatus.model_validate_json(job["warm"]) if job.get("warm") else None
    best = best_trial(spec, views)
    status = jobstatus.job_status(spec, views, best, finish, previous, since, warm)
    if finish is None and not running:
        status.phase, status.message = JobPhase.pending, "no runner"
        status.conditions = []
    return JobStatus.of(job["name"], spec, status)


def trial_info(row: TrialRow, objective: Objective) -> TrialInfo:
    return TrialInfo(
        name=row.name,
        index=row.index,
        params=row.params,
        state=row.state,
        reason=row.stop_reason,
        objective=objective.summarize([v for _, v in row.curve]),
        metrics={k: v for k, v in row.latest.items() if v is not None},
        curve=[CurvePoint(step=s, value=v) for s, v in row.curve],
        budget=row.budget,
        exit_code=row.exit_code,
        start_time=iso(row.started),
        completion_time=iso(row.finished),
        continues=row.continues,
        resume_step=row.resume_step,
        retries=max(0, row.attempts - 1),
    )


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _changes(path: Path) -> tuple[Any, ...]:
    """What changes whenever the runner writes: sizes and times of the state file and its WAL."""
    marks: list[Any] = []
    for suffix in ("", "-wal"):
        try:
            st = (path / (STATE_FILE + suffix)).stat()
            marks += [st.st_mtime_ns, st.st_size]
        except FileNotFoundError:
            marks += [None, None]
    return tuple(marks)


def _trial_ended(path: Path, trial: str) -> bool:
    """Whether a trial's log is complete: its state is final (recorded only after its
    supervisor closed the log), or no runner is left to write it."""
    state = peek_trial(path / STATE_FILE, trial)
    return (state is not None and state.final) or runner_pid(path) is None


def _follow(log: Path, ended: Callable[[], bool]) -> Iterator[str]:
    """Lines of a growing log, across rotations, until the trial has ended and all is read."""
    handle = None
    inode = None
    partial = ""
    while True:
        if handle is None and log.exists():
            handle = open(log, errors="replace")  # noqa: SIM115 - closed below
            inode = os.fstat(handle.fileno()).st_ino
        chunk = handle.read() if handle is not None else ""
        if chunk:
            lines = (partial + chunk).split("\n")
            partial = lines.pop()
            yield from lines
            continue
        try:
            rotated = handle is not None and os.stat(log).st_ino != inode
        except FileNotFoundError:
            rotated = False
        if rotated:
            assert handle is not None
            handle.close()
            handle = None
            continue
        if ended():
            if handle is not None:
                handle.close()
            if partial:
                yield partial
            return
        time.sleep(POLL)


def _timeout(name: str) -> ClientError:
    from ._errors import WaitTimeout

    return WaitTimeout(f"timed out waiting for job {name!r} to finish")
