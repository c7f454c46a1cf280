"""`kubetune.Client(workdir=...)` and the CLI verbs on local runs: detached runs from Python,
typed results, logs that follow, budget updates the runner follows, deletes that stop everything.

Trainers are `tests/data/scripted_trainer.py`; where a test needs a run to be still going, the
trainer waits for a gate file, so nothing depends on timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from kubetune import Client
from kubetune import define as kt
from kubetune.client import AlreadyExists, ClientError, JobStatus, NotFound, TrialState, WaitTimeout
from kubetune.client._local import _follow
from kubetune.client._types import to_json
from kubetune.spec import SpecError

from .conftest import ROOT
from .waiting import wait_for

TRAINER = ROOT / "tests" / "data" / "scripted_trainer.py"


def manifest(name: str, args: list[str], generate: bool = False, **spec: Any) -> dict[str, Any]:
    container = {
        "name": "trainer",
        "image": "kubetune/trainer",
        "command": [sys.executable, str(TRAINER)],
        "args": ["--x=${params.x}", *args],
    }
    return {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"generateName" if generate else "name": name},
        "spec": {
            "objective": {"metric": "score", "direction": "maximize"},
            "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
            "algorithm": {"name": "random", "seed": 1},
            "maxTrials": 1,
            **spec,
            "trialTemplate": {"spec": {"containers": [container]}},
        },
    }


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubetune.cli", *args, "--workdir", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )


def no_processes_of(root: Path) -> bool:
    for proc in psutil.process_iter():
        try:
            if any(str(root) in part for part in proc.cmdline()):
                return False
        except psutil.Error:
            continue
    return True


def test_submit_wait_read_and_follow_a_local_run(tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    client = Client(workdir=root)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(manifest("demo-", ["--steps=3"], generate=True, maxTrials=2)))
    name = client.submit(path)
    assert name.startswith("demo-") and len(name) == len("demo-") + 5
    followed = list(client.logs(f"{name}-0", follow=True))  # returns once the trial has ended
    seen: list[JobStatus] = []
    final = client.wait(name, timeout=120, callback=seen.append)
    assert final.succeeded and final.reason == "MaxTrialsReached" and seen[-1] == final
    trials = client.trials(name)
    assert [t.state for t in trials] == [TrialState.succeeded] * 2
    assert [len(t.curve) for t in trials] == [3, 3]
    assert all(t.objective == 3 * t.params["x"] for t in trials)  # score = x * step
    best = client.best(name)
    assert best is not None and best.objective == max(t.objective or 0 for t in trials)
    assert list(client.logs(f"{name}-0")) == followed
    assert [j.name for j in client.list()] == [name]
    # the CLI prints the same, from the root or from the job's own directory
    assert json.loads(cli(root, "trials", name, "--json").stdout) == to_json(trials)
    assert json.loads(cli(root / name, "get", "--json").stdout) == to_json(final)
    assert cli(root, "best", name).stdout.startswith(best.name)
    status = cli(root, "status", name)
    assert status.returncode == 0 and f"{name}-1" in status.stdout
    with pytest.raises(NotFound):
        client.get("other")


def test_update_raises_the_budget_of_a_running_job_and_delete_stops_it(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    client = Client(workdir=tmp_path / "jobs")
    doc = manifest("grow", ["--steps=2", f"--wait-file={gate}"], maxTrials=1)
    assert client.submit(doc) == "grow"
    with pytest.raises(AlreadyExists, match="job 'grow' already exists"):
        client.submit(doc)
    with pytest.raises(SpecError, match=r"spec\.parallelism: Input should be greater than or"):
        client.update("grow", parallelism=0)
    assert client.update("grow", max_trials=2).max_trials == 2
    with pytest.raises(WaitTimeout):
        client.wait("grow", timeout=0.5)
    followed: list[Any] = []

    def follow() -> None:  # grow-1 does not exist yet: follow waits for it while the job runs
        try:
            followed.extend(client.logs("grow-1", follow=True))
            followed.append("ended")
        except ClientError as exc:
            followed.append(exc)

    follower = threading.Thread(target=follow)
    follower.start()
    gate.touch()
    final = client.wait("grow", timeout=120)
    follower.join(60)
    assert followed[-1:] == ["ended"]
    assert final.succeeded and final.trials.created == 2  # the runner followed the update
    with pytest.raises(ClientError, match="has finished"):
        client.update("grow", max_trials=3)

    stuck = tmp_path / "never"
    doc = manifest("stuck", ["--steps=1", f"--wait-file={stuck}"], maxTrials=2, parallelism=2)
    client.submit(doc)
    client.delete("stuck")  # stops the runner, which stops its trials
    assert not (tmp_path / "jobs" / "stuck").exists()
    assert no_processes_of(tmp_path / "jobs" / "stuck")
    with pytest.raises(NotFound):
        client.get("stuck")


def test_a_job_defined_in_python_runs_from_the_cli_and_the_sdk(tmp_path: Path) -> None:
    job = kt.tuning_job(
        "py",
        objective=kt.maximize("score"),
        parameters={"x": kt.uniform(0.0, 1.0, step=0.5), "steps": kt.choice([2, 3])},
        algorithm=kt.grid(),
        trial=kt.container("kubetune/trainer", [sys.executable, str(TRAINER)]),
        max_trials=6,
        parallelism=2,
    )
    assert job.spec.trial_template is not None
    assert job.spec.trial_template.spec["containers"][0]["args"] == [
        "--x=${params.x}",
        "--steps=${params.steps}",
    ]
    root = tmp_path / "jobs"
    client = Client(workdir=root)
    assert client.submit(job) == "py"
    waited = cli(root, "wait", "py", "--json")
    assert waited.returncode == 0 and json.loads(waited.stdout)["phase"] == "Succeeded"
    params = sorted((t.params["x"], t.params["steps"]) for t in client.trials("py"))
    assert params == [(x, s) for x in (0.0, 0.5, 1.0) for s in (2, 3)]
    plotted = cli(root, "plot", "py", "-o", str(tmp_path / "plots"))
    assert plotted.returncode == 0 and len(plotted.stdout.split()) == 4
    deleted = cli(root, "delete", "py")
    assert deleted.returncode == 0 and not (root / "py").exists()


def test_a_submitted_run_that_cannot_start_says_why(tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    (root / "busy").mkdir(parents=True)
    doc = manifest("busy", [])
    with pytest.raises(AlreadyExists):
        Client(workdir=root).submit(doc)
    no_template = manifest("bare", [])
    del no_template["spec"]["trialTemplate"]
    with pytest.raises(SpecError, match=r"spec\.trialTemplate: required to run trials"):
        Client(workdir=root).submit(no_template)
    assert not (root / "bare").exists()


def test_follow_reads_across_a_rotation(tmp_path: Path) -> None:
    log = tmp_path / "t.log"
    log.write_text("one\ntwo\n")
    ended = threading.Event()
    lines: list[str] = []

    def read() -> None:
        lines.extend(_follow(log, ended.is_set))

    reader = threading.Thread(target=read)
    reader.start()
    wait_for(lambda: len(lines) == 2, what="two lines")
    with open(log, "a") as f:
        f.write("three\n")
    wait_for(lambda: len(lines) == 3, what="the third line")
    log.rename(tmp_path / "t.log.1")  # what the supervisor does at its size limit
    log.write_text("four\nfive")
    ended.set()
    reader.join(10)
    assert lines == ["one", "two", "three", "four", "five"]


def test_cli_submit_wait_shows_the_table_and_the_outcome(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(manifest("shown", ["--steps=2"], maxTrials=2)))
    root = tmp_path / "jobs"
    done = cli(root, "submit", "-f", str(path), "--wait")
    assert done.returncode == 0, done.stderr
    assert "job shown succeeded (MaxTrialsReached)" in done.stdout
    assert "shown-1" in done.stderr and "Succeeded" in done.stderr  # the live table
    failing = manifest("sad", ["--exit=3"], maxFailedTrials=0)
    path.write_text(yaml.safe_dump(failing))
    failed = cli(root, "submit", "-f", str(path), "--wait", "--json")
    assert failed.returncode == 1 and json.loads(failed.stdout)["phase"] == "Failed"


def test_wait_returns_only_once_the_trials_stopped_by_the_finish_have_ended(
    tmp_path: Path,
) -> None:
    # The first report reaches the target, which finishes the job; both trials then take
    # 1.5 s to stop. wait() must not return while one of them is still being stopped.
    doc = manifest(
        "target", ["--steps=100", "--step-seconds=0.1", "--linger=1.5"], maxTrials=2, parallelism=2
    )
    doc["spec"]["objective"]["target"] = 0.0
    client = Client(workdir=tmp_path / "jobs")
    client.submit(doc)
    final = client.wait("target", timeout=120)
    trials = client.trials("target")
    assert final.finished and final.reason == "TargetReached"
    assert final.trials.running == 0
    assert trials and all(t.finished for t in trials), [(t.name, t.state) for t in trials]


def test_a_broken_trainer_fails_the_job_after_five_trials_and_says_where_to_look(
    tmp_path: Path,
) -> None:
    # no maxFailedTrials: the default ends the job once its first 5 trials have all failed
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(manifest("broken", ["--exit=3"], maxTrials=50)))
    root = tmp_path / "jobs"
    proc = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "run", str(path), "--workdir", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert proc.returncode == 1, proc.stderr
    hint = f"kubetune logs broken-4 --workdir {root}"
    assert "failed (TooManyFailedTrials) - the first 5 trials all failed" in proc.stdout
    assert f"5 trials failed; to see why: {hint}" in proc.stdout
    # not a terminal: one line per finished trial, each with its reason
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert len(lines) == 5 and all("Failed" in line and "(exit code 3)" in line for line in lines)
    table = cli(root, "trials").stdout
    rows = [line for line in table.splitlines() if line.startswith("broken-")]
    assert len(rows) == 5 and all("exit code 3" in row for row in rows), table
    assert f"5 failed; to see why: {hint}" in table
    status = cli(root, "status").stdout
    assert "exit code 3" in status and hint in status
