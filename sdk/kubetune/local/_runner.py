"""The local driver: runs a TuningJob on this machine with trials as processes.

A thin loop around `kubetune.engine.decide`: reap exited processes, ask the core what happens
next, record it in SQLite, then start and stop processes. The MetricsService runs in-process on
an ephemeral loopback port; its backend writes each report to SQLite before acknowledging it and
answers with the early-stopping verdict. Killing the runner loses nothing: rerunning resumes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine import Decision, TrialView, best_trial, decide
from ..rpc import tokens
from ..rpc.limits import check_trial_names
from ..rpc.metrics import BadToken, ReportVerdict, UnknownTrial
from ..rpc.server import serve
from ..spec import BestTrial, TuningJob
from ..stopping import NoStopper, create_stopper
from ._executor import LocalExecutor, build_local_command, kill_group
from ._store import Store, TrialRow

ENGINE_STATES = {"stopping": "running", "interrupted": "pending"}
MAX_ATTEMPTS = 3  # an interrupted trial is restarted at most this many times in all
STOP_DELAY = 1.0
IDLE_DECIDE = 1.0  # seconds between decisions when no trial exited and no report arrived  # seconds between a stop verdict and SIGTERM: the reply reaches the trainer first


class JobMismatch(ValueError):
    """The work directory holds a different job, or another runner is using it."""


def lock_workdir(workdir: Path) -> Any:
    """An exclusive lock on the work directory for this runner's lifetime (released at exit)."""
    import fcntl

    workdir.mkdir(parents=True, exist_ok=True)
    handle = open(workdir / "runner.lock", "w")  # noqa: SIM115 - held until the process ends
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise JobMismatch(f"another `kubetune run` is using {workdir}") from None
    return handle


@dataclass
class RunResult:
    name: str
    workdir: Path
    finished: bool
    reason: str | None
    succeeded: bool | None
    message: str | None
    best: BestTrial | None
    trials: list[TrialRow]


class StoreMetrics:
    """MetricsBackend of the local runner: persist, then judge with the early-stopping rule.

    Objective curves are mirrored in memory (loaded once from the store, then appended to after
    each committed write) so that judging a report does not re-read the whole metrics table.
    """

    def __init__(
        self,
        store: Store,
        job: TuningJob,
        wake: Callable[[], None],
        changed: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.changed = changed
        self.objective = job.spec.objective.metric
        self.stopper = create_stopper(job.spec)
        self.judges = not isinstance(self.stopper, NoStopper)  # skip the bookkeeping entirely
        self.wake = wake
        self.lock = threading.Lock()
        self.curves: dict[str, dict[int, float]] | None = None
        self.names: dict[str, set[str]] = {}  # distinct metric names per trial, loaded lazily

    def report(
        self, trial: str, token: str, step: int, metrics: dict[str, float], invalid: list[str]
    ) -> ReportVerdict:
        known = self.store.trial(trial)
        if known is None:
            raise UnknownTrial(trial)
        if not tokens.matches(known[0], token):
            raise BadToken(trial)
        values: dict[str, float | None] = {**metrics, **dict.fromkeys(invalid)}
        with self.lock:
            names = self.names.get(trial)
            if names is None:
                names = self.names[trial] = self.store.metric_names(trial)
            check_trial_names(names, list(values))
            names.update(values)
        self.store.add_metrics(trial, step, values)
        self.changed()
        if known[1] == "stopping":
            return ReportVerdict(True, "already stopping")
        if not self.judges or known[1] != "running" or self.objective not in metrics:
            return ReportVerdict(False)
        with self.lock:
            if self.curves is None:
                stored = self.store.curves(self.objective)
                self.curves = {name: dict(points) for name, points in stored.items()}
            self.curves.setdefault(trial, {})[step] = metrics[self.objective]
            mine = sorted(self.curves[trial].items())
            if not self.stopper.judges(mine):
                return ReportVerdict(False)
            others = [sorted(c.items()) for name, c in self.curves.items() if name != trial]
        verdict = self.stopper.should_stop(mine, others)
        if verdict.stop and self.store.request_stop(trial, f"early stopping: {verdict.reason}"):
            self.wake()
            return ReportVerdict(True, verdict.reason)
        return ReportVerdict(False)


class LocalRunner:
    def __init__(
        self,
        job: TuningJob,
        manifest_dir: Path,
        workdir: Path,
        grace: float = 10.0,
        on_update: Callable[[LocalRunner, Decision | None], None] | None = None,
        poll: float = 0.1,
    ) -> None:
        if job.spec.trial_template is None:
            raise ValueError("spec.trialTemplate: required to run trials")
        self.job = job
        self.spec = job.spec
        self.template = job.spec.trial_template
        self.manifest_dir = manifest_dir
        self.workdir = workdir
        self.store = Store(workdir / "state.db")
        self.executor = LocalExecutor(workdir / "logs", grace)
        self.on_update = on_update
        self.poll = poll
        self.stop_marked: dict[str, float] = {}
        self._woken = False
        self._dirty = True
        self._decided_at = 0.0
        self.last_decision: Decision | None = None

    # -- public ---------------------------------------------------------------------------
    def run(self) -> RunResult:
        self._lock = lock_workdir(self.workdir)
        self._open_job()
        backend = StoreMetrics(self.store, self.job, self._wake, self._mark_dirty)
        server = serve("127.0.0.1:0", metrics=backend)
        self.address = server.address
        try:
            self._recover()
            while not self._step():
                self._sleep()
            if self.on_update:
                self.on_update(self, self.last_decision)
        except KeyboardInterrupt:
            self._interrupt()
            raise
        finally:
            server.stop(grace=0.5)
            self._lock.close()
        return self.result()

    def result(self) -> RunResult:
        job = self.store.job() or {}
        trials = self.store.trials(self.spec.objective.metric)
        best = self.last_decision.best if self.last_decision else None
        if best is None:
            best = best_trial(self.spec, [self._view(t) for t in trials])
        return RunResult(
            self.job.name,
            self.workdir,
            job.get("finished") is not None,
            job.get("reason"),
            None if job.get("succeeded") is None else bool(job["succeeded"]),
            job.get("message"),
            best,
            trials,
        )

    # -- loop -----------------------------------------------------------------------------
    def _open_job(self) -> None:
        manifest = self.spec.model_dump(mode="json", by_alias=True)
        existing = self.store.job()
        if existing is not None and json.loads(existing["spec"]) != manifest:
            raise JobMismatch(
                f"{self.workdir} holds job {existing['name']!r} with a different spec; "
                "use another --workdir"
            )
        self.store.init_job(self.job.name, manifest)

    def _recover(self) -> None:
        """Trials left running by a killed or interrupted runner are restarted or failed."""
        for pid in self.store.leftover_pids():
            kill_group(pid)
        for t in self.store.trials():
            if t.state in ("running", "stopping", "pending", "interrupted"):
                if t.attempts >= MAX_ATTEMPTS:
                    self.store.set_state(t.name, "failed", stop_reason="interrupted too often")
                else:
                    self.store.set_state(t.name, "interrupted")

    def _step(self) -> bool:
        """One pass; True once the job has finished and all processes are gone."""
        objective = self.spec.objective.metric
        exited = self.executor.reap()
        for name, code in exited.items():
            self._record_exit(name, code)
        self._signal_stops()
        self.executor.enforce_grace()
        now = time.monotonic()
        if not (exited or self._dirty or now - self._decided_at >= IDLE_DECIDE):
            return False  # nothing changed: don't spend CPU the trials could use
        self._dirty, self._decided_at = False, now
        trials = self.store.trials(objective)
        job = self.store.job()
        if job is not None and job["finished"] is not None:
            return not self.executor.running()
        decision = decide(self.job.name, self.spec, [self._view(t) for t in trials])
        self.last_decision = decision
        for order in decision.stop:
            if self.store.request_stop(order.name, order.reason):
                self.stop_marked[order.name] = time.monotonic() - STOP_DELAY  # no reply to wait for
        if decision.finish is None:
            for t in trials:
                if t.state == "interrupted":
                    self._start(t.name, t.params, t.token, t.attempts)
        for launch in decision.start:
            token = tokens.new_token()
            self.store.add_trial(launch.name, launch.index, launch.params, launch.budget, token)
            self._start(launch.name, launch.params, token, 0)
        if decision.finish is not None:
            f = decision.finish
            self.store.finish_job(f.reason.value, f.succeeded, f.message)
        if self.on_update:
            self.on_update(self, decision)
        return decision.finish is not None and not self.executor.running()

    def _start(self, name: str, params: dict[str, Any], token: str, attempts: int) -> None:
        command = build_local_command(
            self.template, self.manifest_dir, self.job.name, name, params, self.address, token
        )
        self.store.set_state(name, "running", started=time.time(), attempts=attempts + 1)
        pid = self.executor.start(name, command)
        self.store.set_state(name, "running", pid=pid)

    def _record_exit(self, name: str, code: int) -> None:
        current = self.store.trial(name)
        state = current[1] if current else "running"
        final = "stopped" if state == "stopping" else "succeeded" if code == 0 else "failed"
        self.store.set_state(name, final, exit_code=code, finished=time.time())
        self.stop_marked.pop(name, None)

    def _signal_stops(self) -> None:
        now = time.monotonic()
        running = self.executor.running()
        for name in self.store.names_in_state("stopping"):
            if name in running:
                marked = self.stop_marked.setdefault(name, now)
                if now - marked >= STOP_DELAY:
                    self.executor.terminate(name)

    def _interrupt(self) -> None:
        """Ctrl-C: stop every process; their trials restart on the next run."""
        for name, code in self.executor.stop_all().items():
            current = self.store.trial(name)
            if current and current[1] == "stopping":
                self.store.set_state(name, "stopped", exit_code=code, finished=time.time())
            else:
                self.store.set_state(name, "interrupted", exit_code=code)
        self.store.close()

    def _view(self, t: TrialRow) -> TrialView:
        state = ENGINE_STATES.get(t.state, t.state)
        return TrialView(t.name, t.index, t.params, state, t.curve)  # type: ignore[arg-type]

    def _wake(self) -> None:
        self._woken = True
        self._dirty = True

    def _mark_dirty(self) -> None:
        self._dirty = True

    def _sleep(self) -> None:
        deadline = time.monotonic() + self.poll
        while time.monotonic() < deadline and not self._woken:
            time.sleep(0.01)
        self._woken = False
