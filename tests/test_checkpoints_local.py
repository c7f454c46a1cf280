"""Checkpoints with `kubetune run`: the real trainer resumes where it left off.

A runner SIGKILLed mid-trial and run again continues the trial from its checkpoint, bit for bit;
Hyperband promotions continue their configuration instead of training it again; PBT members
copy their parents' checkpoints; a checkpoint directory that cannot be written is the trial's
reason. Every test waits for state in state.db or an exit, with a deadline.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import torch

from .test_local_run import kubetune, write_job
from .test_runner_lifecycle import kill_runner, result_of, start_runner, trials
from .waiting import wait_for

ONE_CONFIG = [{"name": "lr", "type": "categorical", "values": [0.01]}]
TRAIN = ["--lr=${params.lr}", "--dropout=0.2", "--schedule=cosine", "--epochs=10"]


def stored(workdir: Path, trial: str) -> dict[int, tuple[float, float]]:
    """(val_loss, val_accuracy) by step of a trial's current attempt; asserts one row each."""
    if not (workdir / "state.db").exists():
        return {}
    with sqlite3.connect(workdir / "state.db") as db:
        try:
            rows = db.execute(
                "SELECT m.step, m.name, m.value FROM metrics m JOIN trials t ON m.trial = t.name"
                " WHERE m.trial = ? AND m.attempt = t.attempts"
                " AND m.name IN ('val_loss', 'val_accuracy') ORDER BY m.step",
                (trial,),
            ).fetchall()
        except sqlite3.OperationalError:  # the tables are not there yet
            return {}
    by_step: dict[int, dict[str, float]] = {}
    for step, name, value in rows:
        assert name not in by_step.setdefault(step, {}), (step, name)
        by_step[step][name] = value
    return {s: (v["val_loss"], v["val_accuracy"]) for s, v in by_step.items()}


def weights(workdir: Path, trial: str, step: int) -> dict[str, torch.Tensor]:
    path = workdir / "checkpoints" / trial / f"step-{step:012d}.ckpt"
    state: dict[str, Any] = torch.load(path, weights_only=False)
    return state["model"]  # type: ignore[no-any-return]


def job(tmp_path: Path, name: str, args: list[str], **spec: Any) -> Path:
    base = {
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "parameters": ONE_CONFIG,
        "algorithm": {"name": "random"},
        "maxTrials": 1,
        "checkpoints": {"keep": 2},
    }
    return write_job(tmp_path, {**base, **spec}, args, name=name)


def test_a_runner_killed_mid_trial_resumes_it_bit_for_bit(tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    done = kubetune("run", str(job(tmp_path, "straight", TRAIN)), "--workdir", str(straight))
    assert done.returncode == 0, done.stderr
    path = job(tmp_path, "killed", [*TRAIN, "--epoch-delay=0.4"])
    workdir = tmp_path / "killed"
    runner = start_runner(path, workdir)
    wait_for(lambda: len(stored(workdir, "killed-0")) >= 4, what="4 epochs stored", timeout=180)
    kill_runner(runner)  # SIGKILL: the trial's process outlives it, unwatched
    code, result = result_of(start_runner(path, workdir, "--grace=2"), timeout=240)
    assert code == 0 and result["reason"] == "MaxTrialsReached", result
    (row,) = trials(workdir)
    assert row["state"] == "succeeded" and row["attempts"] == 2
    log = (workdir / "logs" / "killed-0.log").read_text()
    resumed = [line for line in log.splitlines() if line.startswith("resumed from")]
    assert len(resumed) == 1, log
    assert stored(workdir, "killed-0") == stored(straight, "straight-0")  # no gap, no duplicate
    assert sorted(stored(workdir, "killed-0")) == list(range(1, 11))
    mine, theirs = weights(workdir, "killed-0", 10), weights(straight, "straight-0", 10)
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)


def epochs_trained(workdir: Path) -> int:
    logs = (workdir / "logs").glob("*.log")
    return sum(line.startswith("epoch ") for log in logs for line in log.read_text().splitlines())


def test_hyperband_promotions_continue_instead_of_training_again(tmp_path: Path) -> None:
    spec = {
        "parameters": [{"name": "lr", "type": "float", "min": 1e-3, "max": 0.3, "scale": "log"}],
        "algorithm": {"name": "hyperband", "seed": 4, "settings": {"reductionFactor": 3}},
        "resource": {"name": "epochs", "min": 1, "max": 3},
        "maxTrials": 4,  # the first bracket: 3 configurations at 1 epoch, the best at 3
        "parallelism": 1,  # the schedule's order, whatever the timing
    }
    args = ["--lr=${params.lr}", "--epochs=${params.epochs}"]
    runners = {}
    for name, checkpoints in (("with", {"keep": 2}), ("without", None)):  # side by side
        path = job(tmp_path, name, args, **{**spec, "checkpoints": checkpoints})
        runners[name] = start_runner(path, tmp_path / name)
    for name, runner in runners.items():
        code, result = result_of(runner, timeout=240)
        assert code == 0 and result["reason"] == "MaxTrialsReached", (name, result)
    runs = {name: trials(tmp_path / name) for name in runners}
    assert [t["params"] for t in runs["with"]] == [t["params"] for t in runs["without"]]
    lineage = [(t["continues"], t["resume_step"]) for t in runs["with"]]
    best = max(runs["with"][:3], key=lambda t: stored(tmp_path / "with", t["name"])[1][1])
    assert lineage == [(None, None)] * 3 + [(best["name"], 1)]  # promoted after 1 epoch
    assert sorted(stored(tmp_path / "with", "with-3")) == [2, 3]  # only the new epochs
    assert epochs_trained(tmp_path / "without") == 3 * 1 + 1 * 3
    assert epochs_trained(tmp_path / "with") == 3 * 1 + 1 * 2  # what the schedule says


def test_pbt_members_continue_their_parents_and_the_weak_copy_the_strong(tmp_path: Path) -> None:
    spec = {
        "parameters": [{"name": "lr", "type": "float", "min": 1e-4, "max": 0.3, "scale": "log"}],
        "algorithm": {
            "name": "pbt",
            "seed": 2,
            "settings": {"populationSize": 4, "perturbationInterval": 2, "truncation": 0.25},
        },
        "resource": {"name": "epochs", "min": 1, "max": 4},
        "maxTrials": 8,
        "parallelism": 4,
    }
    path = job(tmp_path, "pbt", ["--lr=${params.lr}", "--epochs=${params.epochs}"], **spec)
    done = kubetune("run", str(path), "--workdir", str(tmp_path / "w"))
    assert done.returncode == 0, done.stderr
    rows = {t["name"]: t for t in trials(tmp_path / "w")}
    assert [rows[f"pbt-{i}"]["state"] for i in range(8)] == ["succeeded"] * 8
    first = [rows[f"pbt-{i}"] for i in range(4)]
    best = max(first, key=lambda t: stored(tmp_path / "w", t["name"])[2][1])
    worst = min(first, key=lambda t: stored(tmp_path / "w", t["name"])[2][1])
    for i in range(4, 8):
        member, before = rows[f"pbt-{i}"], rows[f"pbt-{i - 4}"]
        assert member["resume_step"] == 2 and '"epochs": 4' in member["params"]
        if before["name"] == worst["name"]:  # exploit: the best one's weights, perturbed lr
            assert member["continues"] == best["name"]
            assert member["params"] != best["params"].replace('"epochs": 2', '"epochs": 4')
        else:  # the others go on as they were
            assert member["continues"] == before["name"]
            assert member["params"] == before["params"].replace('"epochs": 2', '"epochs": 4')
        assert sorted(stored(tmp_path / "w", member["name"])) == [3, 4]
    table = kubetune("trials", "--workdir", str(tmp_path / "w"))
    assert f"← {best['name']}@2" in table.stdout, table.stdout
    plotted = kubetune("plot", "--workdir", str(tmp_path / "w"), "--output", str(tmp_path / "p"))
    assert plotted.returncode == 0, plotted.stderr
    assert (tmp_path / "p" / "lineage.png").stat().st_size > 10_000


def test_an_unwritable_checkpoint_directory_is_the_trials_reason(tmp_path: Path) -> None:
    workdir = tmp_path / "w"
    workdir.mkdir()
    (workdir / "checkpoints").write_text("a file where the directory should be")
    path = job(tmp_path, "t", TRAIN, maxFailedTrials=0)
    done = kubetune("run", str(path), "--workdir", str(workdir))
    assert done.returncode != 0
    (row,) = trials(workdir)
    assert row["state"] == "failed"
    assert "cannot create the checkpoint directory" in row["stop_reason"], row["stop_reason"]
    assert "Not a directory" in row["stop_reason"] and "exit code 1" in row["stop_reason"]
