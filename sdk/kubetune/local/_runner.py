"""The local driver: runs a TuningJob on this machine with trials as processes.

A thin loop around `kubetune.engine.decide`: reap exited processes, ask the core what happens
next, record it in SQLite, then start and stop processes. The MetricsService runs in-process on
an ephemeral loopback port, over `kubetune.intake` with the state file as its store (as are
scraped reports): each report is in SQLite before it is acknowledged.

Killing the runner loses nothing: rerunning resumes. A resume judges a trial that ended while no
runner watched by the exit code its supervisor recorded, stops (only) the processes it can prove
are its own, and restarts interrupted trials without counting that against them. SIGINT and
SIGTERM stop gracefully; a second one skips the grace, and every state is still recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from .. import checkpoint
from ..collect import LineReader, Tailer
from ..engine import Decision, TrialView, best_trial, decide, default_suggest
from ..front import pareto_front
from ..intake import MetricsIntake
from ..jobstatus import count_trials
from ..rpc import tokens
from ..rpc.metrics import Point
from ..rpc.server import serve
from ..spec import BestTrial, FieldError, SpecError, TrialState, TuningJob, TuningJobSpec
from ..telemetry import (
    JobCounts,
    PullCollector,
    ScrapeError,
    Target,
    Telemetry,
)
from ..warm import fitting, inline_file, local_points
from ._executor import (
    LOG_LIMIT,
    LocalCommand,
    LocalExecutor,
    TrialExit,
    build_local_command,
    local_argv,
    read_exit,
)
from ._store import Store, StoreTrials, TrialRow

STOP_DELAY = 1.0  # seconds between a stop verdict and SIGTERM: the reply reaches the trainer first
BUDGET_FIELDS = ("maxTrials", "parallelism", "maxFailedTrials")  # may change while a job runs
LOCK_FILE = "runner.lock"
CHECKPOINTS = "checkpoints"  # <workdir>/checkpoints/<trial>/
METRICS_FILES = "metrics"  # <workdir>/metrics/<trial>/<file>: the file collector's files
METRICS_FILE_ENV = "KUBETUNE_METRICS_FILE"
LOCAL_NAMESPACE = "local"  # the namespace label of a local job's Prometheus series
SCRAPE_NOTE = "metrics endpoint: "  # prefix of a running trial's reason while scraping fails
IDLE_DECIDE = 1.0  # seconds between decisions when no trial exited and no report arrived


class Interrupted(KeyboardInterrupt):
    """The runner was stopped by a signal; its trials are stopped and resume with the next run."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class JobMismatch(ValueError):
    """The work directory holds a different job, or another runner is using it."""


def lock_workdir(workdir: Path) -> Any:
    """An exclusive lock on the work directory for this runner's lifetime (released at exit).
    The lock file names the holder (PID and start time), for `runner_pid`."""
    import fcntl

    workdir.mkdir(parents=True, exist_ok=True)
    handle = open(workdir / LOCK_FILE, "a+")  # noqa: SIM115 - held until the process ends
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise JobMismatch(f"another `kubetune run` is using {workdir}") from None
    handle.truncate(0)
    handle.write(f"{os.getpid()} {psutil.Process().create_time()}\n")
    handle.flush()
    return handle


def runner_pid(workdir: Path) -> int | None:
    """The PID of the runner working on `workdir` now, or None (proved by its start time)."""
    try:
        pid_text, started_text = (workdir / LOCK_FILE).read_text().split()
        pid, started = int(pid_text), float(started_text)
        if abs(psutil.Process(pid).create_time() - started) > 0.01:
            return None
    except (OSError, ValueError, psutil.Error):
        return None
    return pid


def budget_changed_only(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two specs differ in nothing but the budget (what `update` may change)."""
    drop = dict.fromkeys(BUDGET_FIELDS)

    def settled(spec: dict[str, Any]) -> dict[str, Any]:  # an unset field equals a None one
        return {k: v for k, v in {**spec, **drop}.items() if v is not None}

    return settled(old) == settled(new)


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


class LocalRunner:
    def __init__(
        self,
        job: TuningJob,
        manifest_dir: Path,
        workdir: Path,
        grace: float = 10.0,
        on_update: Callable[[LocalRunner, Decision | None], None] | None = None,
        poll: float = 0.1,
        log_limit: int = LOG_LIMIT,
    ) -> None:
        if job.spec.trial_template is None:
            raise SpecError([FieldError("spec.trialTemplate", "required to run trials")])
        template = job.spec.trial_template
        local_argv(template)  # fail now, not at the first trial
        job = inline_file(job, manifest_dir)
        resuming = (workdir / "state.db").exists()
        warm = fitting(job.spec, local_points(job, workdir.parent, resuming))
        self.prior = warm.observations  # earlier results the search learns from
        self.warm_skipped = warm.skipped
        self.warm_status = warm.status(job.spec)
        self.job = job
        self.spec = job.spec
        self.template = template
        self.manifest_dir = manifest_dir
        self.workdir = workdir
        self.store = Store(workdir / "state.db", job.spec.objective.metric)
        self.grace = grace
        self.log_limit = log_limit
        self.on_update = on_update
        self.poll = poll
        self.stop_marked: dict[str, float] = {}
        self.signals: list[int] = []
        self._woken = False
        self._dirty = True
        self._decided_at = 0.0
        self.last_decision: Decision | None = None
        self.telemetry = Telemetry(self.job_counts)
        self.ports: dict[str, int] = {}  # scraped trials' metrics ports
        self.started_at: dict[str, float] = {}
        self.collector: PullCollector | None = None
        self.tailer: Tailer | None = None  # reads the lines of stdout- and file-collected trials

    # -- public ---------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Run (or resume) the job to its end. Raises `Interrupted` after SIGINT or SIGTERM,
        once every trial process has exited and its state is recorded."""
        self._lock = lock_workdir(self.workdir)
        run_id = self._open_job()
        self.executor = LocalExecutor(self.workdir, run_id, self.grace, self.log_limit)
        intake = MetricsIntake(
            StoreTrials(self.store, self.spec),
            changed=lambda _: self._mark_dirty(),
            stopped=self._stopped,
            telemetry=self.telemetry,
        )
        server = serve("127.0.0.1:0", metrics=intake, observe_report=self.telemetry.report)
        self.address = server.address
        if self.spec.collector.kind == "prometheus":
            self.collector = PullCollector(
                lambda name, sample: intake.accept_scraped(
                    name, Point(sample.step, sample.metrics, sample.invalid)
                ),
                lambda name, problem: self._scrape_trouble(str(name), problem),
                self.telemetry,
            )
        if self.spec.collector.reads_lines:
            self.tailer = Tailer(intake.accept)
        restore = self._catch_signals()
        try:
            self._recover()
            while not self.signals and not self._step():
                self._sleep()
            if self.signals:
                self._interrupt()
                raise Interrupted(self.signals[0])
            self.executor.kill_marked()
            if self.on_update:
                self.on_update(self, self.last_decision)
        except KeyboardInterrupt as exc:
            if not isinstance(exc, Interrupted):
                self._interrupt()
            raise
        finally:
            restore()
            if self.collector is not None:
                self.collector.close()
            if self.tailer is not None:
                self.tailer.close()
            server.stop(grace=0.5)
            self._lock.close()
        return self.result()

    def result(self) -> RunResult:
        job = self.store.job() or {}
        trials = self.store.trials()
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
    def _open_job(self) -> str:
        manifest = self.spec.model_dump(mode="json", by_alias=True)
        existing = self.store.job()
        if existing is not None:
            stored = json.loads(existing["spec"])
            if existing["name"] != self.job.name or not budget_changed_only(stored, manifest):
                raise JobMismatch(
                    f"{self.workdir} holds job {existing['name']!r} with a different spec; "
                    "use another --workdir"
                )
            if stored != manifest:  # a new budget in the manifest: it wins, as an apply would
                self.store.update_spec(manifest)
        self._spec_text = json.dumps(manifest, sort_keys=True)
        run_id = self.store.init_job(self.job.name, manifest)
        warm = self.warm_status
        self.store.set_warm(warm.model_dump(mode="json", by_alias=True) if warm else None)
        return run_id

    def _follow_budget(self, job: dict[str, Any]) -> None:
        """Take a budget that `kubetune update` stored while this runner runs."""
        if job["spec"] == self._spec_text:
            return
        self._spec_text = job["spec"]
        self.spec = TuningJobSpec.model_validate(json.loads(job["spec"]))
        self.job = self.job.model_copy(update={"spec": self.spec})

    def _recover(self) -> None:
        """Settle the trials an earlier runner left: judge those that ended while it was gone,
        stop those still running (only processes provably ours), restart the rest."""
        job = self.store.job()
        finished = job is not None and job["finished"] is not None
        trials = self.store.trials()
        leftovers = {
            t.name: (t.pid, t.pid_started or 0.0, t.attempts)
            for t in trials
            if t.state.reporting and t.pid is not None
        }
        stopped_now = self.executor.stop_leftovers(leftovers)
        for t in trials:
            exit_file = self.executor.exit_file(t.name, t.attempts)
            ended = None if t.name in stopped_now else read_exit(exit_file)
            if t.state.reporting:
                if t.state is TrialState.stopping or finished:
                    reason = t.stop_reason or "job finished"
                    code = ended.code if ended else None
                    self.store.set_state(
                        t.name,
                        TrialState.stopped,
                        stop_reason=reason,
                        exit_code=code,
                        finished=time.time(),
                    )
                elif ended is not None:
                    self._record_exit(t.name, ended)
                else:
                    self.store.set_state(t.name, TrialState.pending)  # restarts, uncounted
            elif t.state is TrialState.pending and finished:
                self.store.set_state(t.name, TrialState.stopped, stop_reason="job finished")
            exit_file.unlink(missing_ok=True)
        self.executor.kill_marked()  # strays, e.g. started just before the last runner died

    def _step(self) -> bool:
        """One pass; True once the job has finished and all processes are gone."""
        exited = self.executor.reap()
        for name, ended in exited.items():
            if self.tailer is not None:
                self.tailer.drain(name)  # its last lines are stored before its result
            self._record_exit(name, ended)
        self._signal_stops()
        self.executor.enforce_grace()
        now = time.monotonic()
        if not (exited or self._dirty or now - self._decided_at >= IDLE_DECIDE):
            return False  # nothing changed: don't spend CPU the trials could use
        self._dirty, self._decided_at = False, now
        trials = self.store.trials()
        job = self.store.job()
        if job is not None and job["finished"] is not None:
            return not self.executor.running()
        if job is not None:
            self._follow_budget(job)
        suggest = self.telemetry.timed_suggest(default_suggest)
        views = [self._view(t) for t in trials]
        decision = decide(self.job.name, self.spec, views, suggest, prior=self.prior)
        self.last_decision = decision
        for order in decision.stop:
            if self.store.request_stop(order.name, order.reason):
                self.stop_marked[order.name] = time.monotonic() - STOP_DELAY  # no reply to wait for
        if decision.finish is None:
            for t in trials:
                if t.state is TrialState.pending:  # interrupted, or never started
                    self._start(t)
        for launch in decision.start:
            token = tokens.new_token()
            c = launch.continues
            parent = (c.trial, c.step) if c is not None else None
            self.store.add_trial(
                launch.name, launch.index, launch.params, launch.budget, token, parent
            )
            self._start(self.store.row(launch.name))
        if decision.finish is not None:
            f = decision.finish
            self.store.finish_job(f.reason.value, f.succeeded, f.message)
        self._sync_targets()
        if self.on_update:
            self.on_update(self, decision)
        return decision.finish is not None and not self.executor.running()

    def _start(self, t: TrialRow) -> None:
        name, attempt = t.name, t.attempts + 1
        if self.collector is not None:
            self.ports[name] = free_port()
        command = build_local_command(
            self.template,
            self.manifest_dir,
            self.job.name,
            name,
            t.params,
            self.address,
            t.token,
            self.ports.get(name),
            self._checkpoint_env(t, attempt),
        )
        command = self._follow_lines(name, command)
        self.started_at[name] = time.time()
        self.store.set_state(
            name,
            TrialState.running,
            started=time.time(),
            attempts=attempt,
            pid=None,
            pid_started=None,
        )
        try:
            started = self.executor.start(name, attempt, command)
        except OSError as exc:  # even the supervisor could not start (no fds, no memory...)
            reason = f"cannot start: {exc.strerror or exc}"
            self.store.set_state(name, TrialState.failed, stop_reason=reason, finished=time.time())
            self._dirty = True
            return
        self.store.set_state(name, TrialState.running, pid=started.pid, pid_started=started.started)

    def _follow_lines(self, name: str, command: LocalCommand) -> LocalCommand:
        """Follow what a stdout- or file-collected trial's new attempt prints or writes. The file
        collector's file is the trial's own here (KUBETUNE_METRICS_FILE): the configured path in
        the command, args and env is replaced by it, so trials running side by side never share
        one."""
        if self.tailer is None:
            return command
        collector, reader = self.spec.collector, LineReader.of(self.spec)
        if collector.kind == "stdout":
            log = self.executor.log_file(name)
            offset = log.stat().st_size if log.exists() else 0  # this attempt's lines only
            self.tailer.follow(name, log, reader, offset)
            return command
        assert collector.path is not None
        own = self.workdir / METRICS_FILES / name / Path(collector.path).name
        own.parent.mkdir(parents=True, exist_ok=True)
        own.unlink(missing_ok=True)
        self.tailer.follow(name, own, reader)
        swap = {collector.path: str(own)}
        return dataclasses.replace(
            command,
            argv=[_replace(a, swap) for a in command.argv],
            env={
                **{k: _replace(v, swap) for k, v in command.env.items()},
                METRICS_FILE_ENV: str(own),
            },
        )

    def _stopped(self, key: object) -> None:
        """The intake stopped a trial early. One whose lines are read gets no reply to wait
        for: it is signalled at once, within a line of its verdict."""
        if self.tailer is not None:
            self.stop_marked[str(key)] = time.monotonic() - STOP_DELAY
        self._wake()

    def _checkpoint_env(self, t: TrialRow, attempt: int) -> dict[str, str]:
        """The checkpoint contract of one attempt: its directory, and where it resumes from (its
        own last stored step, whose curve the new attempt keeps, or the trial it continues)."""
        checkpoints = self.spec.checkpoints
        if checkpoints is None:
            return {}
        root = self.workdir / CHECKPOINTS
        env = {
            checkpoint.DIR_ENV: str(root / t.name),
            checkpoint.KEEP_ENV: str(checkpoints.keep),
            checkpoint.TERMINATION_LOG_ENV: str(self.executor.message_file(t.name, attempt)),
        }
        if t.continues is not None:
            env[checkpoint.RESUME_DIR_ENV] = str(root / t.continues)
        if t.curve:
            step = t.curve[-1][0]
            self.store.carry_metrics(t.name, attempt, step)
            env[checkpoint.RESUME_STEP_ENV] = str(step)
        elif t.resume_step is not None:
            env[checkpoint.RESUME_STEP_ENV] = str(t.resume_step)
        return env

    def _record_exit(self, name: str, ended: TrialExit, interrupted: bool = False) -> None:
        """Record how a trial's process ended; `interrupted`: the runner itself stopped it."""
        current = self.store.trial(name)
        state = current[1] if current else TrialState.running
        done = time.time()
        self.stop_marked.pop(name, None)
        started = self.started_at.pop(name, None)
        if not interrupted and started is not None:
            self.telemetry.trial_ended(done - started)
        if self.collector is not None and self.store.curve(name):
            self.store.note(name, None, SCRAPE_NOTE)  # it was scraped: an exit-time hiccup
        if state is TrialState.stopping:
            self.store.set_state(name, TrialState.stopped, exit_code=ended.code, finished=done)
        elif interrupted:  # restarts with the next run, uncounted
            self.store.set_state(name, TrialState.pending, exit_code=ended.code)
        elif ended.code == 0 and ended.error is None:
            self.store.set_state(name, TrialState.succeeded, exit_code=0, finished=done)
        else:
            reason = ended.error or _exit_reason(ended.code)
            attempt = self.store.row(name).attempts
            message = self.executor.message_file(name, attempt)
            with contextlib.suppress(OSError):
                reason = f"{message.read_text().strip()[:1024]} ({reason})"
            self.store.set_state(
                name, TrialState.failed, exit_code=ended.code, stop_reason=reason, finished=done
            )

    def _signal_stops(self) -> None:
        now = time.monotonic()
        running = self.executor.running()
        for name in self.store.names_in_state(TrialState.stopping):
            if name in running:
                marked = self.stop_marked.setdefault(name, now)
                if now - marked >= STOP_DELAY:
                    self.executor.terminate(name)

    def _interrupt(self) -> None:
        """Stop every process (a second signal skips the grace) and record each state; the
        interrupted trials restart with the next run."""
        exits = self.executor.stop_all(hurry=lambda: len(self.signals) > 1)
        for name, ended in exits.items():
            self._record_exit(name, ended, interrupted=True)
        self.store.close()

    def _catch_signals(self) -> Callable[[], None]:
        """Turn SIGINT and SIGTERM into a graceful stop (main thread only); undo function."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def note(signum: int, _frame: Any) -> None:
            self.signals.append(signum)
            self._woken = True

        previous = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for s, handler in previous.items():
                signal.signal(s, handler if handler is not None else signal.SIG_DFL)

        return restore

    def _view(self, t: TrialRow) -> TrialView:
        return engine_view(t)

    # -- Prometheus ------------------------------------------------------------------------
    def job_counts(self) -> list[JobCounts]:
        """This job as a scrape of `/metrics` shows it."""
        job = self.store.job()
        if job is None:
            return []
        trials = self.store.trials()
        counts = count_trials([t.state for t in trials])
        views = [self._view(t) for t in trials]
        best = best_trial(self.spec, views)
        front = pareto_front(self.spec, views) if self.spec.multi_objective else None
        phase = "Running"
        if job.get("finished") is not None:
            phase = "Succeeded" if job.get("succeeded") else "Failed"
        return [
            JobCounts(
                LOCAL_NAMESPACE,
                self.job.name,
                phase,
                counts,
                self.spec.max_trials,
                best.objective if best else None,
                len(front.trials) if front else None,
                front.hypervolume if front else None,
            )
        ]

    def _sync_targets(self) -> None:
        """Scrape the trials whose processes run (and stopping ones, until they exit)."""
        if self.collector is None:
            return
        collector = self.spec.collector
        names = (self.spec.objective.metric, *self.spec.objective.additional_metrics)
        running = set(self.executor.running())
        targets: dict[Any, Target] = {
            name: Target(
                f"http://127.0.0.1:{port}{collector.url_path}",
                names,
                collector.step_gauge,
                collector.interval_seconds,
                collector.timeout_seconds,
            )
            for name, port in self.ports.items()
            if name in running
        }
        self.collector.set_targets(self.job.name, targets)

    def _scrape_trouble(self, name: str, problem: ScrapeError | None) -> None:
        """Show a failing endpoint as the running trial's reason (cleared once it works)."""
        self.store.note(name, SCRAPE_NOTE + str(problem) if problem else None, SCRAPE_NOTE)
        self._dirty = True

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


def engine_view(t: TrialRow) -> TrialView:
    """A stored trial as the engine sees it."""
    return TrialView(t.name, t.index, t.params, t.state, t.curve, metrics=t.latest)


def _replace(text: str, swap: dict[str, str]) -> str:
    for old, new in swap.items():
        text = text.replace(old, new)
    return text


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def free_port() -> int:
    """A port free on loopback now, for a scraped trial to serve its metrics on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
