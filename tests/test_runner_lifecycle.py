"""The local runner as a process supervisor: the real CLI, real processes, real gRPC.

Trainers here are `tests/data/scripted_trainer.py`, which reports through `kubetune.report` and
behaves as each test needs (children left behind, SIGTERM ignored, waiting for a file). Every
test waits for state (a row in state.db, a process gone, an exit) with a deadline.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from kubetune.local import Store
from kubetune.spec import TuningJob

from .conftest import ROOT
from .waiting import wait_for

TRAINER = ROOT / "tests" / "data" / "scripted_trainer.py"
MARKER = "KUBETUNE_RUN_ID"
RUN = [sys.executable, "-m", "kubetune.cli", "run"]


def write_job(
    tmp_path: Path,
    args: list[str],
    name: str = "t",
    command: list[str] | None = None,
    working_dir: str | None = None,
    parameters: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> Path:
    local: dict[str, Any] = {"workingDir": working_dir or str(tmp_path)}
    if command is not None:
        local["command"] = command
    doc = {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": name},
        "spec": {
            "objective": {"metric": "score", "direction": "maximize"},
            "parameters": parameters or [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
            "algorithm": {"name": "random", "seed": 1},
            "maxTrials": 1,
            **spec,
            "trialTemplate": {
                "local": local,
                "spec": {
                    "containers": [
                        {
                            "name": "trainer",
                            "image": "kubetune/trainer",
                            "command": ["python", str(TRAINER)],
                            "args": args,
                        }
                    ]
                },
            },
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubetune.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_runner(path: Path, workdir: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*RUN, str(path), "--workdir", str(workdir), "--json", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def trials(workdir: Path) -> list[dict[str, Any]]:
    db = workdir / "state.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        try:
            rows = conn.execute("SELECT * FROM trials ORDER BY idx").fetchall()
        except sqlite3.OperationalError:  # not created yet
            return []
    return [dict(r) for r in rows]


def reporting_trials(workdir: Path) -> int:
    with sqlite3.connect(workdir / "state.db") as conn:
        return int(conn.execute("SELECT COUNT(DISTINCT trial) FROM metrics").fetchone()[0])


def run_id(workdir: Path) -> str:
    with sqlite3.connect(workdir / "state.db") as conn:
        return str(conn.execute("SELECT run_id FROM job").fetchone()[0])


def marked(marker: str) -> list[psutil.Process]:
    """Live processes carrying this run's marker."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARKER) == marker and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def running_with_pid(workdir: Path, name: str = "t-0") -> dict[str, Any] | None:
    for t in trials(workdir):
        if t["name"] == name and t["state"] == "running" and t["pid"]:
            return t
    return None


def kill_runner(runner: subprocess.Popen[str]) -> None:
    runner.send_signal(signal.SIGKILL)
    runner.communicate()


def result_of(runner: subprocess.Popen[str], timeout: float = 120) -> tuple[int, dict[str, Any]]:
    out, err = runner.communicate(timeout=timeout)
    assert "Traceback" not in err, err
    return runner.returncode, json.loads(out) if out.strip() else {}


def test_resume_never_signals_a_process_it_cannot_prove_is_ours(tmp_path: Path) -> None:
    path = write_job(tmp_path, ["--x=${params.x}"])
    workdir = tmp_path / "work"
    stranger = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        # A state file saying the trial runs as PID `stranger`, even with its exact start time:
        # what a resume sees once the trial's PID has been reused by someone else's process.
        job = TuningJob.from_yaml(path)
        store = Store(workdir / "state.db", "score")
        store.init_job(job.name, job.spec.model_dump(mode="json", by_alias=True))
        store.add_trial("t-0", 0, {"x": 0.5}, None, "token")
        started = psutil.Process(stranger.pid).create_time()
        store.set_state("t-0", "running", attempts=1, pid=stranger.pid, pid_started=started)
        store.close()
        code, result = result_of(start_runner(path, workdir))
        assert stranger.poll() is None, "the resume signalled a process that is not its own"
        assert code == 0 and result["trials"][0]["state"] == "succeeded"
        assert trials(workdir)[0]["attempts"] == 2  # restarted, as it could not be proved alive
    finally:
        stranger.kill()
        stranger.wait()


def test_a_command_that_cannot_start_fails_its_trial_with_the_reason(tmp_path: Path) -> None:
    not_executable = tmp_path / "train.sh"
    not_executable.write_text("#!/bin/sh\nexit 0\n")
    commands = ["/nonexistent/bin/train", str(not_executable), sys.executable]
    path = write_job(
        tmp_path,
        [str(TRAINER), "--x=0.5"],
        command=["${params.cmd}"],
        parameters=[{"name": "cmd", "type": "categorical", "values": commands}],
        algorithm={"name": "grid"},
        maxTrials=3,
        maxFailedTrials=2,
    )
    code, result = result_of(start_runner(path, tmp_path / "work"))
    reasons = {
        json.loads(t["params"])["cmd"]: (t["state"], t["stop_reason"])
        for t in trials(tmp_path / "work")
    }
    assert reasons == {
        "/nonexistent/bin/train": ("failed", "command not found: /nonexistent/bin/train"),
        str(not_executable): ("failed", f"permission denied: {not_executable}"),
        sys.executable: ("succeeded", None),
    }
    assert code == 0 and result["reason"] == "MaxTrialsReached"  # the job carried on
    log = (tmp_path / "work" / "logs" / "t-0.log").read_text()
    assert "command not found: /nonexistent/bin/train" in log

    missing = write_job(tmp_path, ["--x=1"], name="m", working_dir=str(tmp_path / "gone"))
    code, result = result_of(start_runner(missing, tmp_path / "work-m"))
    (trial,) = trials(tmp_path / "work-m")
    assert trial["state"] == "failed"
    assert trial["stop_reason"] == f"working directory missing: {tmp_path / 'gone'}"
    assert code == 1 and result["succeeded"] is False


def test_children_die_with_their_trial_and_late_reports_change_nothing(tmp_path: Path) -> None:
    go, late = tmp_path / "go", tmp_path / "late"
    path = write_job(
        tmp_path,
        ["--x=${params.x}", "--extra=${params.extra}"],
        parameters=[
            {"name": "x", "type": "categorical", "values": [0.1]},
            {
                "name": "extra",
                "type": "categorical",
                "values": [f"--child --escape={late}", f"--wait-file={go}"],
            },
        ],
        algorithm={"name": "grid"},
        maxTrials=2,
    )
    workdir = tmp_path / "work"
    runner = start_runner(path, workdir)
    try:
        wait_for(what="t-0 to end and t-1 to run", check=lambda: running_with_pid(workdir, "t-1"))
        assert trials(workdir)[0]["state"] == "succeeded"
        marker = run_id(workdir)
        sleepers = [p for p in marked(marker) if p.cmdline()[:1] == ["sleep"]]
        assert sleepers == [], "a child outlived its trial"
        # a child in its own session outlives the trial, then reports score=123 at step 99
        late.touch()
        wait_for(
            what="the escaped child to report and exit",
            check=lambda: not any("score=123.0" in " ".join(p.cmdline()) for p in marked(marker)),
        )
        go.touch()
        code, result = result_of(runner)
    finally:
        if runner.poll() is None:
            kill_runner(runner)
    assert code == 0
    best = result["best"]
    assert best["objective"] < 1 and best["step"] != 99, best
    with sqlite3.connect(workdir / "state.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM metrics WHERE step = 99").fetchone() == (0,)
    assert marked(marker) == []


def test_a_runner_killed_while_a_finished_job_stops_its_trials(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        ["--x=${params.x}", "--ignore-term", "--steps=100000", "--step-seconds=0.1"],
        parameters=[{"name": "x", "type": "float", "min": 0.9, "max": 1.0}],
        objective={"metric": "score", "direction": "maximize", "target": 2.5},  # at step 3
        maxTrials=2,
        parallelism=2,
    )
    workdir = tmp_path / "work"
    runner = start_runner(path, workdir, "--grace=600")  # trainers ignore SIGTERM
    wait_for(
        what="the job to finish with both trials stopping",
        check=lambda: [t["state"] for t in trials(workdir)] == ["stopping", "stopping"],
    )
    kill_runner(runner)
    marker = run_id(workdir)
    assert len(marked(marker)) >= 2  # supervisors and trainers, still alive
    code, result = result_of(start_runner(path, workdir, "--grace=0.5"))
    assert code == 0 and result["reason"] == "TargetReached"
    assert [t["state"] for t in result["trials"]] == ["stopped", "stopped"]
    assert marked(marker) == []


@pytest.mark.parametrize("second_signal", [False, True])
def test_sigterm_stops_every_trial_and_records_it(tmp_path: Path, second_signal: bool) -> None:
    args = ["--x=${params.x}", "--steps=100000", "--step-seconds=0.1", "--child"]
    if second_signal:
        args.append("--ignore-term")
    path = write_job(tmp_path, args, maxTrials=2, parallelism=2)
    workdir = tmp_path / "work"
    runner = start_runner(path, workdir, "--grace=600")
    wait_for(what="both trials to run", check=lambda: running_with_pid(workdir, "t-1"))
    wait_for(what="both trials to report", check=lambda: reporting_trials(workdir) == 2)
    marker = run_id(workdir)
    runner.send_signal(signal.SIGTERM)
    if second_signal:  # another kind, so that the kernel cannot merge the two
        runner.send_signal(signal.SIGINT)
    _, err = runner.communicate(timeout=60)  # well inside the 600 s grace
    # Which of two signals the runner handles first depends on whether it was on a CPU when
    # they arrived (pending ones are delivered lowest number first): either is right.
    first = {signal.SIGTERM, signal.SIGINT} if second_signal else {signal.SIGTERM}
    assert runner.returncode - 128 in first and "Traceback" not in err
    assert "every trial process was stopped" in err
    assert marked(marker) == []
    assert [t["state"] for t in trials(workdir)] == ["pending", "pending"]  # restart next run


def test_resume_keeps_finished_work_and_crashes_never_use_up_attempts(tmp_path: Path) -> None:
    go = tmp_path / "go"
    acked = tmp_path / "acked"
    path = write_job(tmp_path, ["--x=${params.x}", f"--wait-file={go}", f"--acked={acked}"])
    workdir = tmp_path / "work"
    for attempt in range(1, 6):  # more runner crashes than any retry budget
        runner = start_runner(path, workdir)
        wait_for(
            what=f"attempt {attempt} to run",
            check=lambda: (t := running_with_pid(workdir)) and t["attempts"] == attempt,  # noqa: B023
        )
        wait_for(
            what="its reports",
            check=lambda: acked.exists() and len(acked.read_text().split("\n")) > 3,
        )
        kill_runner(runner)
        acked.unlink()
    exit_file = workdir / "exits" / "t-0.5.json"
    go.touch()  # the trainer finishes while no runner watches
    wait_for(what="the trainer's recorded exit", check=exit_file.exists)
    assert json.loads(exit_file.read_text()) == {"code": 0, "error": None}
    code, result = result_of(start_runner(path, workdir))
    (trial,) = trials(workdir)
    assert code == 0 and (trial["state"], trial["attempts"]) == ("succeeded", 5)
    assert [step for step, _ in result["trials"][0]["curve"]] == [1, 2, 3]


def test_trial_logs_are_capped_and_rotated(tmp_path: Path) -> None:
    path = write_job(tmp_path, ["--x=${params.x}", f"--spew={3 * 1024 * 1024}"])
    workdir = tmp_path / "work"
    code, _ = result_of(start_runner(path, workdir, f"--max-log-bytes={1024 * 1024}"))
    log, older = workdir / "logs" / "t-0.log", workdir / "logs" / "t-0.log.1"
    assert code == 0
    assert log.stat().st_size <= 1024 * 1024 and older.stat().st_size <= 1024 * 1024
    head = log.read_bytes()[:300].decode()
    assert "log rotated" in head and "bytes before that were dropped (log truncated)" in head


def test_a_state_file_from_an_older_version_still_reads(tmp_path: Path) -> None:
    """Job columns added since (run_id, warm) read as None, whether peeked at or opened."""
    from kubetune.local._store import SCHEMA, peek_job

    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    older = SCHEMA.replace(", run_id TEXT, warm TEXT", "")
    assert older != SCHEMA
    db.executescript(older)
    db.execute("INSERT INTO job (name, spec, created) VALUES ('old', '{}', 1.0)")
    db.commit()
    db.close()
    peeked = peek_job(path)
    assert peeked is not None and peeked["name"] == "old"
    assert peeked["warm"] is None and peeked["run_id"] is None
    reader = Store(path, readonly=True)
    assert reader.job() == peeked
    reader.close()
    store = Store(path)  # a runner adds the columns
    store.set_warm({"points": 3, "leftOut": 0, "enqueued": 0})
    assert json.loads(store.job()["warm"])["points"] == 3  # type: ignore[index]
    store.close()
