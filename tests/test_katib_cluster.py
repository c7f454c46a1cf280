"""Katib users on the real control plane: a trainer that only prints `epoch=N loss=X` lines, run
as a batch/v1 Job per trial, tuned with ASHA through the pod log stream (no sidecar, no webhook),
and a converted Experiment submitted with `kubetune convert katib --apply`."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner

from .harness import Cluster, wait_for

pytestmark = pytest.mark.slow
TRAINER = ["python", "katib_train.py"]


def katib_job(name: str, spec: dict[str, Any], args: list[str]) -> dict[str, Any]:
    container = {"name": "training", "image": "kubetune/trainer:latest", "command": TRAINER}
    pod = {"restartPolicy": "Never", "containers": [{**container, "args": args}]}
    job = {
        "spec": {
            "backoffLimit": 0,
            "template": {"metadata": {"labels": {"app": "katib"}}, "spec": pod},
        }
    }
    return {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": name},
        "spec": {**spec, "trialTemplate": {"job": job}},
    }


def test_printed_lines_tune_job_trials_with_asha(cluster: Cluster) -> None:
    spec = {
        "objective": {"metric": "loss", "direction": "minimize", "additionalMetrics": ["accuracy"]},
        "parameters": [{"name": "lr", "type": "float", "min": 0.0005, "max": 0.3, "scale": "log"}],
        "algorithm": {"name": "random", "seed": 3},
        "earlyStopping": {"name": "asha", "settings": {"reductionFactor": 3}},
        "resource": {"name": "epochs", "min": 1, "max": 9},
        "maxTrials": 4,
        "parallelism": 2,
        "metricsCollector": {"kind": "stdout", "stepMetric": "epoch"},
        "retainPods": True,
    }
    args = ["--lr=${params.lr}", "--epochs=${params.epochs}", "--epoch-delay=0.3"]
    with KopfRunner(cluster.operator) as runner:
        cluster.apply(katib_job("printed", spec, args))
        job = cluster.wait_phase("printed", "Succeeded", timeout=240)
        jobs = cluster.objects("jobs", group="batch")
    assert runner.exception is None, runner.output[-3000:]
    assert job["status"]["progress"] == "4/4"
    trials = cluster.objects("trials")
    states = {n: t["status"]["phase"] for n, t in trials.items()}
    assert "Succeeded" in states.values() and "Stopped" in states.values(), states
    for name, trial in trials.items():
        status = trial["status"]
        steps = [p["step"] for p in status["curve"]]
        assert steps == list(range(1, len(steps) + 1)), (name, steps)  # every printed line
        assert set(status["metrics"]) == {"loss", "accuracy"}
        if status["phase"] == "Succeeded":
            assert steps[-1] == 9, name  # the last line was stored before the result
        else:
            assert "early stopping" in status["message"]
    best = job["status"]["bestTrial"]
    assert best["objective"] == min(t["status"]["objective"] for t in trials.values())
    # each trial ran as a Job the operator owns through its Trial; the stopped ones' are gone
    # (foreground deletion), and the pod ran the user's command as written, with no sidecar
    for name, found in jobs.items():
        owner = found["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"]) == ("Trial", name)
        pod = found["spec"]["template"]["spec"]
        assert [c["name"] for c in pod["containers"]] == ["training"]
        assert "initContainers" not in pod
        assert pod["containers"][0]["command"] == TRAINER
        assert found["spec"]["backoffLimit"] == 0
    left = cluster.objects("jobs", group="batch")
    assert all(states[n] != "Stopped" for n in left), left.keys()
    # `kubetune logs` finds a Job trial's pod (named by the Job controller)
    done = next(n for n, state in states.items() if state == "Succeeded")
    logs = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "logs", done, "-n", cluster.namespace],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert logs.returncode == 0, logs.stderr
    assert "epoch=9 loss=" in logs.stdout


def test_a_converted_experiment_applies_and_runs(cluster: Cluster) -> None:
    experiment = {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "converted"},
        "spec": {
            "objective": {
                "type": "maximize",
                "objectiveMetricName": "accuracy",
                "metricStrategies": [{"name": "accuracy", "value": "latest"}],
            },
            "algorithm": {"algorithmName": "random"},
            "maxTrialCount": 2,
            "parallelTrialCount": 2,
            "parameters": [
                {
                    "name": "lr",
                    "parameterType": "double",
                    "feasibleSpace": {"min": "0.01", "max": "0.1"},
                }
            ],
            "metricsCollectorSpec": {"collector": {"kind": "StdOut"}},
            "trialTemplate": {
                "primaryContainerName": "training",
                "trialParameters": [{"name": "learningRate", "reference": "lr"}],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [
                                    {
                                        "name": "training",
                                        "image": "docker.io/kubeflowkatib/trainer:v1",
                                        "command": TRAINER,
                                        "args": [
                                            "--lr=${trialParameters.learningRate}",
                                            "--epochs=3",
                                            "--seed=${trialSpec.Name}".replace(
                                                "${trialSpec.Name}", "1"
                                            ),
                                        ],
                                    }
                                ],
                            }
                        }
                    },
                },
            },
        },
    }
    source = cluster.tmp / "experiment.yaml"
    source.write_text(yaml.safe_dump(experiment))
    with KopfRunner(cluster.operator) as runner:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "kubetune.cli",
                "convert",
                "katib",
                str(source),
                "--apply",
                "-o",
                str(cluster.tmp / "tj.yaml"),
                "-n",
                cluster.namespace,
            ],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        job = cluster.wait_phase("converted", "Succeeded", timeout=180)
    assert runner.exception is None, runner.output[-3000:]
    trials = cluster.objects("trials")
    assert len(trials) == 2
    for trial in trials.values():
        curve = trial["status"]["curve"]
        assert [p["step"] for p in curve] == [1, 2, 3]
        assert trial["status"]["objective"] == curve[-1]["value"]  # strategy latest
    assert job["spec"]["objective"]["strategy"] == "latest"


def test_file_collector_sidecar_reports_and_ends_with_the_trial(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBETUNE_COLLECTOR_IMAGE", "ghcr.io/kubetune/operator:test")
    spec = {
        "objective": {"metric": "accuracy", "direction": "maximize", "additionalMetrics": ["loss"]},
        "parameters": [{"name": "lr", "type": "float", "min": 0.01, "max": 0.1}],
        "algorithm": {"name": "random"},
        "maxTrials": 2,
        "parallelism": 2,
        "retainPods": True,
        "metricsCollector": {
            "kind": "file",
            "path": "/var/log/katib/metrics.json",
            "format": "json",
            "stepMetric": "epoch",
        },
    }
    args = ["--lr=${params.lr}", "--epochs=3", "--format=json"]
    args += ["--metrics-file=/var/log/katib/metrics.json"]
    with KopfRunner(cluster.operator) as runner:
        cluster.apply(katib_job("filed", spec, args))
        job = cluster.wait_phase("filed", "Succeeded", timeout=180)
    assert runner.exception is None, runner.output[-3000:]
    assert job["status"]["progress"] == "2/2"
    for trial in cluster.objects("trials").values():
        status = trial["status"]
        assert status["phase"] == "Succeeded"
        assert [p["step"] for p in status["curve"]] == [1, 2, 3]
        assert set(status["metrics"]) == {"accuracy", "loss"}
    pods = [
        p
        for p in cluster.objects("pods", group="").values()
        if p["metadata"]["name"].startswith("filed-")
    ]
    assert len(pods) == 2
    for pod in pods:
        (sidecar,) = pod["spec"]["initContainers"]
        assert sidecar["restartPolicy"] == "Always" and sidecar["name"] == "kubetune-metrics"
        (ended,) = pod["status"]["initContainerStatuses"]
        # the sidecar ended with the trial (SIGTERM, then exit 0), and the pod with it
        assert ended["state"]["terminated"]["exitCode"] == 0, ended
        assert pod["status"]["phase"] == "Succeeded"


COUNTER = "import sys, time\nfor i in range(1, 41):\n    print(f'loss={i}', flush=True)\n    time.sleep(0.2)\n"


def test_a_dropped_log_stream_loses_and_repeats_no_line(cluster: Cluster) -> None:
    """The API server restarts while the operator follows a trial's log: every printed line is
    taken once (the step is the count of lines, so a repeat or a gap would show)."""
    spec = {
        "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": [{"name": "k", "type": "int", "min": 1, "max": 2}],
        "algorithm": {"name": "grid"},
        "maxTrials": 1,
        "metricsCollector": {"kind": "stdout"},
    }
    doc = katib_job("counted", spec, [])
    container = doc["spec"]["trialTemplate"]["job"]["spec"]["template"]["spec"]["containers"][0]
    container.update(command=["python", "-c", COUNTER], args=[])
    with KopfRunner(cluster.operator) as runner:
        cluster.apply(doc)

        def some_lines_taken() -> bool:
            trials = cluster.objects("trials")
            curve = (trials.get("counted-0", {}).get("status") or {}).get("curve") or []
            return len(curve) >= 5

        wait_for(some_lines_taken, timeout=120, what="the first lines in the trial's status")
        cluster.plane.restart("kube-apiserver", down_for=2)
        cluster.wait_phase("counted", "Succeeded", timeout=180)
    assert runner.exception is None, runner.output[-3000:]
    status = cluster.objects("trials")["counted-0"]["status"]
    assert [(p["step"], p["value"]) for p in status["curve"]] == [
        (i, float(i)) for i in range(1, 41)
    ]
