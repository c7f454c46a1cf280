"""Katib-style training code tuned unchanged by `kubetune run`: the trainer only prints its
metrics (or writes them to a file), and the runner reads them as they are written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from kubetune import Client
from kubetune.spec import TrialState

from .conftest import ROOT

TRAINER = ROOT / "trainer-image" / "katib_train.py"
OBJECTIVE = {"metric": "loss", "direction": "minimize", "additionalMetrics": ["accuracy"]}
LR = {"name": "lr", "type": "float", "min": 0.0005, "max": 0.3, "scale": "log"}


def run(tmp_path: Path, spec: dict[str, Any], args: list[str], name: str = "katib") -> Client:
    container = {"name": "training", "command": ["python", str(TRAINER)], "args": args}
    doc = {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": name},
        "spec": {**spec, "trialTemplate": {"spec": {"containers": [container]}}},
    }
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    workdir = tmp_path / "work"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubetune.cli",
            "run",
            str(path),
            "--workdir",
            str(workdir),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["succeeded"] is True
    return Client(workdir=workdir)


def test_printed_lines_with_asha_stop_within_a_line_of_the_rung(tmp_path: Path) -> None:
    spec = {
        "objective": OBJECTIVE,
        "parameters": [LR],
        "algorithm": {"name": "random", "seed": 0},
        "earlyStopping": {"name": "asha", "settings": {"reductionFactor": 3}},
        "resource": {"name": "epochs", "min": 1, "max": 9},
        "maxTrials": 6,
        "parallelism": 2,
        "metricsCollector": {"kind": "stdout", "stepMetric": "epoch"},
    }
    args = ["--lr=${params.lr}", "--epochs=${params.epochs}", "--epoch-delay=0.8"]
    client = run(tmp_path, spec, args)
    trials = client.trials("katib")
    stopped = [t for t in trials if t.state is TrialState.stopped]
    assert stopped and any(t.state is TrialState.succeeded for t in trials)
    for t in trials:
        steps = [p.step for p in t.curve]
        assert steps == list(range(1, len(steps) + 1)), (t.name, steps)
        assert set(t.metrics) == {"loss", "accuracy"}
    for t in stopped:
        rung = int(t.reason.split("rung ")[1].split()[0]) if "rung " in (t.reason or "") else 1
        assert t.curve[-1].step <= rung + 1, (t.name, t.reason, [p.step for p in t.curve])
    best = client.best("katib")
    assert best is not None and best.objective == min(t.objective for t in trials if t.objective)


def test_file_collector_text_and_json_lines(tmp_path: Path) -> None:
    for form in ("text", "json"):
        spec = {
            "objective": {**OBJECTIVE, "strategy": "latest"},
            "parameters": [LR],
            "algorithm": {"name": "random"},
            "maxTrials": 2,
            "parallelism": 2,
            "metricsCollector": {
                "kind": "file",
                "path": "/var/log/katib/metrics.log",
                "format": form,
                **({"stepMetric": "epoch"} if form == "json" else {}),
            },
        }
        args = ["--lr=${params.lr}", "--epochs=3", "--metrics-file=/var/log/katib/metrics.log"]
        client = run(tmp_path / form, spec, [*args, f"--format={form}"], name=f"file-{form}")
        for t in client.trials(f"file-{form}"):
            assert [p.step for p in t.curve] == [1, 2, 3], (form, t.name)
            assert t.objective == t.curve[-1].value  # strategy: latest
            assert (tmp_path / form / "work" / "metrics" / t.name / "metrics.log").is_file()


def test_nan_is_a_failed_measurement_not_a_result(tmp_path: Path) -> None:
    script = tmp_path / "printer.py"
    script.write_text(
        "import sys\n"
        "print('epoch=1 loss=nan accuracy=0.1')\n"
        "sys.stdout.buffer.write(b'\\xff\\xfe epoch=2 loss=0.5\\n')\n"
        "print('x' * 1_000_000 + ' loss=0.0001')\n"
        "print('epoch=3 loss=0.4 accuracy=0.8')\n"
    )
    spec = {
        "objective": OBJECTIVE,
        "parameters": [{"name": "k", "type": "int", "min": 1, "max": 2}],
        "algorithm": {"name": "grid"},
        "maxTrials": 1,
        "metricsCollector": {"kind": "stdout", "stepMetric": "epoch"},
    }
    container = {"name": "p", "command": ["python", str(script)]}
    doc = {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": "odd"},
        "spec": {**spec, "trialTemplate": {"spec": {"containers": [container]}}},
    }
    path = tmp_path / "odd.yaml"
    path.write_text(yaml.safe_dump(doc))
    done = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "run", str(path), "--workdir", str(tmp_path / "w")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (trial,) = Client(workdir=tmp_path / "w").trials("odd")
    # nan is no value; the non-UTF-8 line still counts; the 1 MB line is dropped whole
    assert [(p.step, p.value) for p in trial.curve] == [(2, 0.5), (3, 0.4)]
    assert trial.objective == 0.4


def test_converted_metadata_references_expand_locally(tmp_path: Path) -> None:
    """`$(KUBETUNE_TRIAL)` (from ${trialSpec.Name}) means the trial's name on both drivers."""
    from kubetune.local._executor import build_local_command
    from kubetune.spec import TrialTemplate

    container = {"name": "c", "command": ["python", "x.py"]}
    container["args"] = ["--run=$(KUBETUNE_TRIAL)", "--cost=$$(5)", "--keep=$(UNSET)"]
    template = TrialTemplate.model_validate({"spec": {"containers": [container]}})
    command = build_local_command(template, tmp_path, "job", "job-3", {}, "127.0.0.1:1", "tok")
    assert command.argv[1:] == ["x.py", "--run=job-3", "--cost=$(5)", "--keep=$(UNSET)"]
