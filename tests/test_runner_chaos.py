"""Chaos: SIGKILL the runner at random points, again and again, then let it finish.

Trainers leave children behind or ignore SIGTERM. Each reports its steps, then waits for a gate
file before exiting, so the job cannot end before the last kill; the gate opens while no runner
is alive, and the waiting trainers finish unwatched. Afterwards: exactly maxTrials trials, each
succeeded (none failed because the runner died), no process of the run left, and every report a
trainer saw acknowledged is in the store.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

import pytest

from .test_runner_lifecycle import (
    kill_runner,
    marked,
    result_of,
    run_id,
    start_runner,
    trials,
    wait_for,
    write_job,
)

KILLS = 6
MAX_TRIALS = 8


def progress(workdir: Path) -> int:
    """Reports stored plus trials ended: grows whenever the run gets anywhere."""
    db = workdir / "state.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            (metrics,) = conn.execute("SELECT COUNT(*) FROM metrics").fetchone()
        except sqlite3.OperationalError:
            return 0
    return int(metrics) + sum(t["state"] == "succeeded" for t in trials(workdir))


@pytest.mark.slow
def test_repeated_runner_kills_lose_nothing_and_leave_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # trainers whose runner is gone buffer their reports: give up on them quickly
    monkeypatch.setenv("KUBETUNE_REPORT_RETRY_SECONDS", "0.5")
    monkeypatch.setenv("KUBETUNE_REPORT_EXIT_SECONDS", "1")
    acked, gate = tmp_path / "acked", tmp_path / "gate"
    path = write_job(
        tmp_path,
        [
            "--x=${params.x}",
            "--steps=${params.steps}",
            "--step-seconds=0.1",
            "--extra=${params.extra}",
            f"--acked={acked}",
            f"--wait-file={gate}",
        ],
        parameters=[
            {"name": "x", "type": "float", "min": 0.0, "max": 1.0},
            {"name": "steps", "type": "int", "min": 2, "max": 8},
            {"name": "extra", "type": "categorical", "values": ["--child", "--ignore-term", ""]},
        ],
        maxTrials=MAX_TRIALS,
        parallelism=3,
    )
    workdir = tmp_path / "work"
    chance = random.Random(20261123)
    for kill in range(KILLS):
        before = progress(workdir)
        runner = start_runner(path, workdir, "--grace=1")
        wait_for(what=f"progress before kill {kill + 1}", check=lambda: progress(workdir) > before)  # noqa: B023
        time.sleep(chance.uniform(0, 1.5))  # a random point, once the run is under way
        kill_runner(runner)
    exits = workdir / "exits"
    finishing = {
        t["name"]: t["attempts"] for t in trials(workdir) if t["state"] == "running" and t["pid"]
    }
    gate.touch()  # the orphaned trainers now finish, unwatched
    wait_for(
        what="the unwatched trainers to record their exits",
        check=lambda: all((exits / f"{n}.{a}.json").exists() for n, a in finishing.items()),
    )
    code, result = result_of(start_runner(path, workdir, "--grace=1"), timeout=300)
    assert code == 0 and result["reason"] == "MaxTrialsReached"
    assert finishing, "no trial was running at the last kill"
    rows = trials(workdir)
    assert {t["name"]: t["attempts"] for t in rows if t["name"] in finishing} == finishing
    assert [t["idx"] for t in rows] == list(range(MAX_TRIALS))
    assert [t["state"] for t in rows] == ["succeeded"] * MAX_TRIALS
    assert marked(run_id(workdir)) == []
    with sqlite3.connect(workdir / "state.db") as conn:
        stored = set(conn.execute("SELECT trial, step FROM metrics WHERE name = 'score'"))
    seen = {(line.split()[0], int(line.split()[1])) for line in acked.read_text().splitlines()}
    assert seen and seen <= stored, sorted(seen - stored)
