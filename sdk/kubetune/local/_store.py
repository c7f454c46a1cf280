"""SQLite state of one local run: the job, its trials and every reported metric.

Everything the runner knows lives here, written before it is acted on or acknowledged, so a
killed runner loses nothing: `kubetune run` on the same work directory resumes from this file.
Decisions read an in-memory view (trial rows, objective curves, latest values, metric names) that
is loaded once and then kept in step with every write, so no decision re-reads the metrics table.
Thread-safe: the gRPC threads and the runner loop share one connection and the view under a lock.
`StoreTrials` is this file as the metrics intake's store (`kubetune.intake.TrialStore`); readers
beside a running runner use `peek_job`, `peek_trial` or a read-only `Store`.
"""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..intake import Rule
from ..rpc import tokens
from ..rpc.limits import LimitExceeded, check_trial_names
from ..rpc.metrics import BadToken, Point, TrialEnded, UnknownTrial
from ..spec import TrialState, TuningJobSpec
from ..stopping._base import Curve

SCHEMA = """
CREATE TABLE IF NOT EXISTS job (
    name TEXT PRIMARY KEY, spec TEXT NOT NULL, created REAL NOT NULL,
    finished REAL, reason TEXT, succeeded INTEGER, message TEXT, run_id TEXT, warm TEXT
);
CREATE TABLE IF NOT EXISTS trials (
    name TEXT PRIMARY KEY, idx INTEGER NOT NULL UNIQUE, params TEXT NOT NULL, budget REAL,
    token TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    stop_reason TEXT, exit_code INTEGER, created REAL NOT NULL, started REAL, finished REAL,
    pid INTEGER, pid_started REAL, continues TEXT, resume_step INTEGER
);
CREATE TABLE IF NOT EXISTS metrics (
    trial TEXT NOT NULL, attempt INTEGER NOT NULL, step INTEGER NOT NULL, name TEXT NOT NULL,
    value REAL, received REAL NOT NULL, PRIMARY KEY (trial, attempt, step, name)
);
"""
ADDED_COLUMNS = {
    "job": {"run_id": "TEXT", "warm": "TEXT"},
    "trials": {"pid_started": "REAL", "continues": "TEXT", "resume_step": "INTEGER"},
}
TRIAL_COLUMNS = (
    "name, idx, params, budget, token, state, attempts, stop_reason, exit_code, started, finished,"
    " pid, pid_started, continues, resume_step"
)
# States that earlier versions wrote and what they mean now.
LEGACY_STATES = {"interrupted": TrialState.pending}


@dataclass
class TrialRow:
    name: str
    index: int
    params: dict[str, Any]
    budget: float | None
    token: str
    state: TrialState
    attempts: int
    stop_reason: str | None
    exit_code: int | None
    started: float | None
    finished: float | None
    pid: int | None = None
    pid_started: float | None = None  # the process's start time, to recognize it after a restart
    continues: str | None = None  # the trial whose checkpoint this one starts from
    resume_step: int | None = None  # and that trial's step it starts after
    curve: list[tuple[int, float]] = field(default_factory=list)
    latest: dict[str, float] = field(default_factory=dict)


@dataclass
class _View:
    """What the store holds in memory for one trial (current attempt only, but every name)."""

    row: TrialRow
    points: dict[int, float] = field(default_factory=dict)  # objective by step
    latest: dict[str, tuple[int, float]] = field(default_factory=dict)  # name: (step, value)
    names: set[str] = field(default_factory=set)  # every metric name, in any attempt
    # sorted `points`, appended to in order, rebuilt after an out-of-order step; handed out copied
    curve: list[tuple[int, float]] | None = None

    def sorted_curve(self) -> list[tuple[int, float]]:
        if self.curve is None:
            self.curve = sorted(self.points.items())
        return self.curve

    def record(self, step: int, values: Mapping[str, float | None], objective: str) -> None:
        self.names.update(values)
        for name, value in values.items():
            if value is None:
                continue
            if name not in self.latest or step >= self.latest[name][0]:
                self.latest[name] = (step, value)
            if name == objective:
                if self.curve is not None and step not in self.points:
                    if not self.curve or step > self.curve[-1][0]:
                        self.curve.append((step, value))  # in order: no re-sort
                    else:
                        self.curve = None
                elif self.curve is not None:
                    self.curve = None
                self.points[step] = value

    def snapshot(self) -> TrialRow:
        copied = copy.copy(self.row)  # dataclasses.replace costs several times more
        copied.params = dict(self.row.params)
        copied.curve = list(self.sorted_curve())
        copied.latest = {k: v for k, (_, v) in self.latest.items()}
        return copied


def _create(path: Path) -> None:
    """Write an empty state file beside `path` and link it into place, so that a reader who
    sees the file also sees its tables. An existing file is never replaced."""
    fresh = path.with_name(f".{path.name}.{os.getpid()}.new")
    fresh.unlink(missing_ok=True)
    db = sqlite3.connect(str(fresh), isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")  # kept in the file's header
        db.executescript(SCHEMA)
    finally:
        db.close()
    try:
        os.link(fresh, path)
    except FileExistsError:
        pass
    finally:
        fresh.unlink()


class Store:
    def __init__(self, path: Path, objective: str = "", readonly: bool = False) -> None:
        """Open (or create) the state file; `objective` names the metric whose curves to keep.
        `readonly`: a reader beside a running runner; it never writes or creates the file."""
        self.path = path
        self.objective = objective
        self.lock = threading.RLock()
        if readonly:
            uri = f"file:{path}?mode=ro"
            self.db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                _create(path)
            self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)  # tables added since a file was written
            self._migrate()
        self.views: dict[str, _View] = {}
        self._load()

    def _migrate(self) -> None:
        """Columns added since the first release, for state files written by older versions."""
        for table, columns in ADDED_COLUMNS.items():
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
            for column, kind in columns.items():
                if column not in have:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def _load(self) -> None:
        rows = self.db.execute(f"SELECT {TRIAL_COLUMNS} FROM trials ORDER BY idx").fetchall()
        for r in rows:
            state = LEGACY_STATES.get(r[5]) or TrialState(r[5])
            row = TrialRow(r[0], r[1], json.loads(r[2]), r[3], r[4], state, *r[6:])
            self.views[row.name] = _View(row)
        metrics = self.db.execute(
            "SELECT m.trial, m.step, m.name, m.value, m.attempt = t.attempts FROM metrics m"
            " JOIN trials t ON m.trial = t.name ORDER BY m.trial, m.step"
        )
        for trial, step, name, value, current in metrics:
            view = self.views[trial]
            if current:
                view.record(step, {name: value}, self.objective)
            else:
                view.names.add(name)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def close(self) -> None:
        with self.lock:
            self.db.close()

    # -- job ---------------------------------------------------------------------------------
    def job(self) -> dict[str, Any] | None:
        with self.lock:
            return _job_row(self.db)

    def init_job(self, name: str, spec: Mapping[str, Any]) -> str:
        """Record the job once; the run's marker (a random id every trial process carries)."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO job (name, spec, created) VALUES (?, ?, ?)",
                (name, json.dumps(spec, sort_keys=True), time.time()),
            )
            db.execute("UPDATE job SET run_id = ? WHERE run_id IS NULL", (uuid.uuid4().hex,))
            (run_id,) = db.execute("SELECT run_id FROM job").fetchone()
        return str(run_id)

    def update_spec(self, spec: Mapping[str, Any]) -> None:
        """Replace the stored spec (a budget change); a running runner picks it up."""
        with self.transaction() as db:
            db.execute("UPDATE job SET spec = ?", (json.dumps(spec, sort_keys=True),))

    def set_warm(self, status: Mapping[str, Any] | None) -> None:
        """What the warm start brought in (`WarmStartStatus` as JSON), for the job's status."""
        with self.transaction() as db:
            db.execute("UPDATE job SET warm = ?", (json.dumps(status) if status else None,))

    def finish_job(self, reason: str, succeeded: bool, message: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE job SET finished = ?, reason = ?, succeeded = ?, message = ?",
                (time.time(), reason, int(succeeded), message),
            )

    # -- trials ------------------------------------------------------------------------------
    def add_trial(
        self,
        name: str,
        index: int,
        params: Mapping[str, Any],
        budget: float | None,
        token: str,
        continues: tuple[str, int] | None = None,
    ) -> None:
        """A new pending trial; `continues`: (trial, step) whose checkpoint it starts from."""
        created = time.time()
        parent, step = continues or (None, None)
        with self.transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO trials (name, idx, params, budget, token, state, created,"
                " continues, resume_step) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                (name, index, json.dumps(params), budget, token, created, parent, step),
            )
            if cur.rowcount:
                pending = TrialState.pending
                row = TrialRow(
                    name, index, dict(params), budget, token, pending, 0, None, None, None, None
                )
                row.continues, row.resume_step = parent, step
                self.views[name] = _View(row)

    def row(self, name: str) -> TrialRow:
        """One trial, as `trials()` gives it."""
        with self.lock:
            return self.views[name].snapshot()

    def carry_metrics(self, name: str, attempt: int, upto: int) -> None:
        """Copy the steps up to `upto` of the trial's current attempt into `attempt`, which then
        becomes current: a trial resumed from a checkpoint continues its curve."""
        with self.transaction() as db:
            view = self.views[name]
            db.execute(
                "INSERT OR REPLACE INTO metrics (trial, attempt, step, name, value, received)"
                " SELECT trial, ?, step, name, value, received FROM metrics"
                " WHERE trial = ? AND attempt = ? AND step <= ?",
                (attempt, name, view.row.attempts, upto),
            )
            db.execute("UPDATE trials SET attempts = ? WHERE name = ?", (attempt, name))
            fresh = _View(replace(view.row, attempts=attempt), names=view.names)
            for step, metric, value in db.execute(
                "SELECT step, name, value FROM metrics WHERE trial = ? AND attempt = ?"
                " ORDER BY step",
                (name, attempt),
            ):
                fresh.record(step, {metric: value}, self.objective)
            self.views[name] = fresh

    def set_state(self, name: str, state: TrialState | str, **fields: Any) -> None:
        state = TrialState(state)
        allowed = {
            "stop_reason",
            "exit_code",
            "started",
            "finished",
            "attempts",
            "pid",
            "pid_started",
        }
        assert set(fields) <= allowed, fields
        sets = ", ".join(["state = ?", *(f"{k} = ?" for k in fields)])
        with self.transaction() as db:
            values = (state.value, *fields.values(), name)
            db.execute(f"UPDATE trials SET {sets} WHERE name = ?", values)
            view = self.views[name]
            if fields.get("attempts", view.row.attempts) != view.row.attempts:
                self.views[name] = view = _View(view.row, names=view.names)  # a new attempt
            view.row = replace(view.row, state=state, **fields)

    def request_stop(self, name: str, reason: str) -> bool:
        """Mark a running trial for stopping (a pending one is stopped at once, it has no
        process); False if it was neither."""
        with self.lock:
            state = self.views[name].row.state
            if state is TrialState.running:
                self.set_state(name, TrialState.stopping, stop_reason=reason)
            elif state is TrialState.pending:
                self.set_state(name, TrialState.stopped, stop_reason=reason, finished=time.time())
            else:
                return False
            return True

    def note(self, name: str, reason: str | None, prefix: str) -> None:
        """Set a running trial's reason to `reason`, or clear a reason starting with `prefix`."""
        with self.transaction() as db:
            view = self.views.get(name)
            if view is None or view.row.state is not TrialState.running:
                return
            current = view.row.stop_reason
            if reason is None and not (current or "").startswith(prefix):
                return
            db.execute("UPDATE trials SET stop_reason = ? WHERE name = ?", (reason, name))
            view.row = replace(view.row, stop_reason=reason)

    def trials(self) -> list[TrialRow]:
        """Every trial, by index, with its current attempt's objective curve and latest values."""
        with self.lock:
            views = sorted(self.views.values(), key=lambda v: v.row.index)
            return [v.snapshot() for v in views]

    def names_in_state(self, state: TrialState) -> list[str]:
        with self.lock:
            return [n for n, v in self.views.items() if v.row.state is state]

    def trial(self, name: str) -> tuple[str, TrialState] | None:
        """(token, state) of a trial, or None."""
        with self.lock:
            view = self.views.get(name)
            return (view.row.token, view.row.state) if view else None

    # -- metrics -----------------------------------------------------------------------------
    def add_metrics(
        self, trial: str, points: Sequence[tuple[int, Mapping[str, float | None]]]
    ) -> tuple[TrialState, dict[int, LimitExceeded]]:
        """Record reports under the trial's current attempt (a restart keeps earlier ones) in one
        commit, if the trial is running or stopping. Returns the trial's state and the points
        refused because the trial would have too many distinct metric names (by index). A step
        reported again replaces its values, so a retried batch stores nothing twice."""
        now = time.time()
        with self.lock:
            view = self.views[trial]
            if not view.row.state.reporting:
                return view.row.state, {}
            refused: dict[int, LimitExceeded] = {}
            rows, kept = [], []
            names = set(view.names)
            for i, (step, metrics) in enumerate(points):
                try:
                    check_trial_names(names, list(metrics))
                except LimitExceeded as exc:
                    refused[i] = exc
                    continue
                names.update(metrics)
                kept.append((step, metrics))
                rows += [(trial, view.row.attempts, step, k, v, now) for k, v in metrics.items()]
            with self.transaction() as db:
                db.executemany(
                    "INSERT OR REPLACE INTO metrics (trial, attempt, step, name, value, received)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
            for step, metrics in kept:
                view.record(step, metrics, self.objective)
            return view.row.state, refused

    def curve(self, trial: str) -> list[tuple[int, float]]:
        """The objective curve of a trial's current attempt, by step."""
        with self.lock:
            return list(self.views[trial].sorted_curve())

    def curves(self) -> dict[str, list[tuple[int, float]]]:
        """Objective curves of every trial that has one."""
        with self.lock:
            return {n: list(c) for n, v in self.views.items() if (c := v.sorted_curve())}

    def metric_count(self) -> int:
        with self.lock:
            return int(self.db.execute("SELECT COUNT(*) FROM metrics").fetchone()[0])


JOB_COLUMNS = ("name", "spec", "finished", "reason", "succeeded", "message", "run_id", "warm")


def peek_job(path: Path) -> dict[str, Any] | None:
    """The job recorded in a state file (None: not yet), without loading its trials: a cheap
    read-only look for listings and waits beside a running runner."""
    return _peek(path, _job_row)


def _job_row(db: sqlite3.Connection) -> dict[str, Any] | None:
    """The job row; columns a file from an older version lacks read as None."""
    cursor = db.execute("SELECT * FROM job")
    row = cursor.fetchone()
    if row is None:
        return None
    found = dict(zip((d[0] for d in cursor.description), row, strict=True))
    return {c: found.get(c) for c in JOB_COLUMNS}


def peek_trial(path: Path, name: str) -> TrialState | None:
    """The state of one trial of a state file (None: no such trial), without loading the rest."""
    row = _peek(
        path, lambda db: db.execute("SELECT state FROM trials WHERE name = ?", (name,)).fetchone()
    )
    return (LEGACY_STATES.get(row[0]) or TrialState(row[0])) if row else None


def _peek(path: Path, read: Callable[[sqlite3.Connection], Any]) -> Any:
    """`read` on a read-only connection to the state file."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return read(db)
    finally:
        db.close()


class StoreTrials:
    """The local runner's `kubetune.intake.TrialStore`: trials and reports in this state file,
    each batch one SQLite commit (WAL) before the reply goes out."""

    def __init__(self, store: Store, spec: TuningJobSpec) -> None:
        self.store = store
        self._rule = Rule.of(spec)

    def find(self, trial: str, token: str) -> Hashable:
        known = self.store.trial(trial)
        if known is None:
            raise UnknownTrial(trial)
        if not tokens.matches(known[0], token):
            raise BadToken(trial)
        return trial

    def rule(self, key: Hashable) -> Rule:
        if self.store.trial(str(key)) is None:
            raise UnknownTrial(str(key))
        return self._rule

    def persist(
        self, key: Hashable, points: Sequence[Point]
    ) -> tuple[TrialState, dict[int, LimitExceeded]]:
        rows = [(p.step, {**p.metrics, **dict.fromkeys(p.invalid)}) for p in points]
        state, refused = self.store.add_metrics(str(key), rows)
        if not state.reporting:
            raise TrialEnded(str(key), state.value)
        return state, refused

    def curve(self, key: Hashable) -> list[tuple[int, float]]:
        return self.store.curve(str(key))

    def rivals(self, key: Hashable) -> list[Curve]:
        return [c for name, c in self.store.curves().items() if name != key]

    def stop(self, key: Hashable, reason: str) -> bool:
        return self.store.request_stop(str(key), reason)
