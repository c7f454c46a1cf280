"""SQLite state of one local run: the job, its trials and every reported metric.

Everything the runner knows lives here, written before it is acted on or acknowledged, so a
killed runner loses nothing: `kubetune run` on the same work directory resumes from this file.
Thread-safe (the gRPC threads and the runner loop share one connection under a lock).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS job (
    name TEXT PRIMARY KEY, spec TEXT NOT NULL, created REAL NOT NULL,
    finished REAL, reason TEXT, succeeded INTEGER, message TEXT
);
CREATE TABLE IF NOT EXISTS trials (
    name TEXT PRIMARY KEY, idx INTEGER NOT NULL UNIQUE, params TEXT NOT NULL, budget REAL,
    token TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    stop_reason TEXT, exit_code INTEGER, created REAL NOT NULL, started REAL, finished REAL,
    pid INTEGER
);
CREATE TABLE IF NOT EXISTS metrics (
    trial TEXT NOT NULL, attempt INTEGER NOT NULL, step INTEGER NOT NULL, name TEXT NOT NULL,
    value REAL, received REAL NOT NULL, PRIMARY KEY (trial, attempt, step, name)
);
"""


@dataclass
class TrialRow:
    name: str
    index: int
    params: dict[str, Any]
    budget: float | None
    token: str
    state: str
    attempts: int
    stop_reason: str | None
    exit_code: int | None
    started: float | None
    finished: float | None
    curve: list[tuple[int, float]] = field(default_factory=list)
    latest: dict[str, float] = field(default_factory=dict)


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.lock = threading.RLock()
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

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
            row = self.db.execute(
                "SELECT name, spec, finished, reason, succeeded, message FROM job"
            ).fetchone()
        if row is None:
            return None
        keys = ("name", "spec", "finished", "reason", "succeeded", "message")
        return dict(zip(keys, row, strict=True))

    def init_job(self, name: str, spec: Mapping[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO job (name, spec, created) VALUES (?, ?, ?)",
                (name, json.dumps(spec, sort_keys=True), time.time()),
            )

    def finish_job(self, reason: str, succeeded: bool, message: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE job SET finished = ?, reason = ?, succeeded = ?, message = ?",
                (time.time(), reason, int(succeeded), message),
            )

    def reopen_job(self) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE job SET finished = NULL, reason = NULL, succeeded = NULL, message = NULL"
            )

    # -- trials ------------------------------------------------------------------------------
    def add_trial(
        self, name: str, index: int, params: Mapping[str, Any], budget: float | None, token: str
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO trials (name, idx, params, budget, token, state, created)"
                " VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                (name, index, json.dumps(params), budget, token, time.time()),
            )

    def set_state(self, name: str, state: str, **fields: Any) -> None:
        allowed = {"stop_reason", "exit_code", "started", "finished", "attempts", "pid"}
        assert set(fields) <= allowed, fields
        sets = ", ".join(["state = ?", *(f"{k} = ?" for k in fields)])
        with self.transaction() as db:
            db.execute(f"UPDATE trials SET {sets} WHERE name = ?", (state, *fields.values(), name))

    def request_stop(self, name: str, reason: str) -> bool:
        """Mark a running trial for stopping; False if it was not running."""
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE trials SET state = 'stopping', stop_reason = ? WHERE name = ? AND state = 'running'",
                (reason, name),
            )
            return cur.rowcount > 0

    def trials(self, objective: str | None = None) -> list[TrialRow]:
        with self.lock:
            rows = self.db.execute(
                "SELECT name, idx, params, budget, token, state, attempts, stop_reason, exit_code,"
                " started, finished FROM trials ORDER BY idx"
            ).fetchall()
            metrics = self.db.execute(
                "SELECT m.trial, m.step, m.name, m.value FROM metrics m JOIN trials t"
                " ON m.trial = t.name AND m.attempt = t.attempts ORDER BY m.trial, m.step"
            ).fetchall()
        out = {
            r[0]: TrialRow(
                r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10]
            )
            for r in rows
        }
        for trial, step, name, value in metrics:
            row = out.get(trial)
            if row is None or value is None:
                continue
            row.latest[name] = value
            if name == objective:
                row.curve.append((step, value))
        return list(out.values())

    def names_in_state(self, state: str) -> list[str]:
        with self.lock:
            rows = self.db.execute("SELECT name FROM trials WHERE state = ?", (state,)).fetchall()
        return [r[0] for r in rows]

    def leftover_pids(self) -> list[int]:
        """Process ids recorded for trials that a previous runner left running."""
        with self.lock:
            rows = self.db.execute(
                "SELECT pid FROM trials WHERE pid IS NOT NULL AND state IN ('running', 'stopping')"
            ).fetchall()
        return [int(r[0]) for r in rows]

    def trial(self, name: str) -> tuple[str, str] | None:
        """(token, state) of a trial, or None."""
        with self.lock:
            row = self.db.execute(
                "SELECT token, state FROM trials WHERE name = ?", (name,)
            ).fetchone()
        return (row[0], row[1]) if row else None

    # -- metrics -----------------------------------------------------------------------------
    def add_metrics(self, trial: str, step: int, metrics: Mapping[str, float | None]) -> None:
        """Record a report under the trial's current attempt (a restart keeps earlier ones)."""
        now = time.time()
        with self.transaction() as db:
            (attempt,) = db.execute(
                "SELECT attempts FROM trials WHERE name = ?", (trial,)
            ).fetchone()
            db.executemany(
                "INSERT OR REPLACE INTO metrics (trial, attempt, step, name, value, received)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(trial, attempt, step, k, v, now) for k, v in metrics.items()],
            )

    def metric_names(self, trial: str) -> set[str]:
        """Every metric name the trial has reported, in any attempt."""
        with self.lock:
            rows = self.db.execute(
                "SELECT DISTINCT name FROM metrics WHERE trial = ?", (trial,)
            ).fetchall()
        return {name for (name,) in rows}

    def curves(self, objective: str) -> dict[str, list[tuple[int, float]]]:
        with self.lock:
            rows = self.db.execute(
                "SELECT m.trial, m.step, m.value FROM metrics m JOIN trials t"
                " ON m.trial = t.name AND m.attempt = t.attempts"
                " WHERE m.name = ? AND m.value IS NOT NULL ORDER BY m.trial, m.step",
                (objective,),
            ).fetchall()
        out: dict[str, list[tuple[int, float]]] = {}
        for trial, step, value in rows:
            out.setdefault(trial, []).append((step, value))
        return out

    def metric_count(self) -> int:
        with self.lock:
            return int(self.db.execute("SELECT COUNT(*) FROM metrics").fetchone()[0])
