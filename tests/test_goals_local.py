"""Several objectives, constraints and warm start with `kubetune run` and the real trainer
(issue 32): the front, `kubetune best`, and a second job that starts from the first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from kubetune import Client
from kubetune.pareto import front_mask
from kubetune.spec import TrialState

from .browser import Dashboard, browser, new_tab
from .test_local_run import kubetune, write_job

UNITS = {"name": "units", "type": "int", "min": 8, "max": 256, "scale": "log"}
LR = {"name": "lr", "type": "float", "min": 1e-3, "max": 0.1, "scale": "log"}
ARGS = ["--units=${params.units}", "--lr=${params.lr}", "--epochs=2"]
# digits: 64 inputs, 10 classes, one hidden layer: 75 * units + 10 parameters
MAX_PARAMETERS = 75 * 100 + 10


def multi_spec(**extra: Any) -> dict[str, Any]:
    return {
        "objectives": [
            {"metric": "val_accuracy", "direction": "maximize"},
            {"metric": "num_parameters", "direction": "minimize"},
        ],
        "constraints": [{"metric": "num_parameters", "max": MAX_PARAMETERS}],
        "parameters": [UNITS, LR],
        "algorithm": {"name": "bayesian", "seed": 4, "settings": {"initialPoints": 3}},
        "maxTrials": 6,
        "parallelism": 2,
        **extra,
    }


def test_the_front_of_accuracy_against_size(tmp_path: Path) -> None:
    root = tmp_path / "work"
    path = write_job(tmp_path, multi_spec(), ARGS, name="sizes")
    done = kubetune("run", str(path), "--workdir", str(root / "sizes"), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["succeeded"] is True

    client = Client(workdir=root)
    trials = [t for t in client.trials("sizes") if t.state is TrialState.succeeded]
    assert len(trials) == 6
    feasible = [t for t in trials if t.metrics["num_parameters"] <= MAX_PARAMETERS]
    assert all(t.feasible is (t in feasible) for t in trials)  # marked in every trial view
    losses = np.array([[-t.metrics["val_accuracy"], t.metrics["num_parameters"]] for t in feasible])
    expected = {t.name for t, on in zip(feasible, front_mask(losses), strict=True) if on}

    front = client.best("sizes")
    assert isinstance(front, list)
    assert {t.name for t in front} == expected
    status = client.get("sizes")
    assert status.pareto_front_size == len(expected)
    assert status.hypervolume is not None and status.hypervolume > 0
    assert status.best_trial is None

    shown = kubetune("best", "sizes", "--workdir", str(root), "--json")
    assert shown.returncode == 0, shown.stderr
    assert {t["name"] for t in json.loads(shown.stdout)} == expected
    text = kubetune("best", "sizes", "--workdir", str(root))
    assert f"{len(expected)} trials on the Pareto front" in text.stdout
    assert "num_parameters" in text.stdout.splitlines()[1]

    plotted = kubetune("plot", "sizes", "--workdir", str(root), "-o", str(tmp_path / "p"), "--json")
    assert plotted.returncode == 0, plotted.stderr
    names = {Path(p).name for p in json.loads(plotted.stdout)}
    assert {"pareto.png", "hypervolume.png"} <= names
    assert (tmp_path / "p" / "pareto.png").stat().st_size > 10_000

    with Dashboard("--workdir", str(root)) as board, browser() as chromium:
        tab = new_tab(chromium)
        tab.goto(f"{board.url}/jobs/sizes")
        tab.wait(
            "n => document.getElementById('pareto').dataset.points === String(n)", len(expected)
        )
        assert tab.page.locator("#pareto").is_visible()
        names = tab.value(
            "() => echarts.getInstanceByDom(document.getElementById('pareto')).getOption()"
            ".series.map(s => [s.name, s.data.length])"
        )
        infeasible = len(trials) - len(feasible)
        assert dict(names) == {
            "trial": len(feasible) - len(expected),
            "infeasible": infeasible,
            "Pareto front": len(expected),
        }
        assert not tab.errors, tab.errors


def test_a_job_starts_from_an_earlier_one(tmp_path: Path) -> None:
    root = tmp_path / "work"
    first = write_job(tmp_path, multi_spec(maxTrials=4), ARGS, name="first")
    assert kubetune("run", str(first), "--workdir", str(root / "first"), "--json").returncode == 0
    earlier = Client(workdir=root).trials("first")

    narrower = {**UNITS, "max": 64}  # some earlier trials no longer fit
    enqueued = {"units": 16, "lr": 0.01}
    spec = multi_spec(
        parameters=[narrower, LR],
        maxTrials=3,
        warmStart={"fromJobs": ["first"], "enqueue": [enqueued]},
    )
    second = write_job(tmp_path, spec, ARGS, name="second")
    done = kubetune("run", str(second), "--workdir", str(root / "second"), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    trials = Client(workdir=root).trials("second")
    assert len(trials) == 3  # warm-start points use up no trials
    assert trials[0].params == enqueued
    outside = [t for t in earlier if int(t.params["units"]) > 64]
    left_out = [
        line for line in done.stderr.splitlines() if line.startswith("warm start: left out")
    ]
    assert len(left_out) == len(outside), done.stderr
    assert all("outside the space (units:" in line for line in left_out)
    assert f"warm start: {len(earlier) - len(outside)} earlier results feed" in done.stderr
    # Marked in the views: the status counts the points, the enqueued trial says so.
    status = Client(workdir=root).get("second")
    assert status.warm_start is not None
    assert status.warm_start.points == len(earlier) - len(outside) > 0
    assert (status.warm_start.left_out, status.warm_start.enqueued) == (len(outside), 1)
    assert [t.enqueued for t in trials] == [True, False, False]
    shown = kubetune("status", "second", "--workdir", str(root))
    assert f"warm start: {status.warm_start.points} earlier results" in shown.stdout, shown.stdout
    assert "(enqueued" in shown.stdout
    with Dashboard("--workdir", str(root)) as board, browser() as chromium:
        tab = new_tab(chromium)
        tab.goto(f"{board.url}/jobs/second")
        tab.wait("() => document.querySelector('tr[data-trial=\"second-2\"]') !== null")
        warm = tab.value("() => document.getElementById('warm-start').textContent")
        assert f"{status.warm_start.points} earlier results feed the model" in warm, warm
        rows = tab.value(
            "() => [...document.querySelectorAll('tr[data-trial]')]"
            ".map(r => [r.dataset.trial, r.textContent.includes('enqueued')])"
        )
        assert dict(rows) == {"second-0": True, "second-1": False, "second-2": False}
        tab.goto(f"{board.url}/jobs/second/trials/second-0")
        tab.wait("() => document.body.textContent.includes('enqueued (warm start)')")
        assert not tab.errors, tab.errors

    # Resuming it after the earlier job is gone is no error: the points only stop counting.
    assert kubetune("delete", "first", "--workdir", str(root)).returncode == 0
    again = kubetune("run", str(second), "--workdir", str(root / "second"), "--json")
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(Client(workdir=root).trials("second")) == 3

    missing = write_job(tmp_path, multi_spec(warmStart={"fromJobs": ["nope"]}), ARGS, name="third")
    refused = kubetune("run", str(missing), "--workdir", str(root / "third"), "--json")
    assert refused.returncode == 1
    assert "spec.warmStart.fromJobs[0]" in refused.stderr and "'nope'" in refused.stderr


def test_bad_warm_start_files_name_the_field(tmp_path: Path) -> None:
    cases = {
        "no_column.csv": (
            "units,lr,val_accuracy\n16,0.01,0.9\n",
            "missing columns ['num_parameters']",
        ),
        "text.csv": (
            "units,lr,val_accuracy,num_parameters\n16,0.01,high,1210\n",
            "val_accuracy is not a finite number (got 'high')",
        ),
        "shape.json": ('{"units": 16}', "must hold a list of objects"),
    }
    for name, (text, reason) in cases.items():
        (tmp_path / name).write_text(text)
        path = write_job(
            tmp_path,
            multi_spec(warmStart={"fromFile": name}),
            ARGS,
            name=name.split(".")[0].replace("_", "-"),
        )
        done = kubetune("run", str(path), "--workdir", str(tmp_path / "w" / name), "--json")
        assert done.returncode == 1, name
        assert "spec.warmStart.fromFile" in done.stderr and reason in done.stderr, done.stderr
