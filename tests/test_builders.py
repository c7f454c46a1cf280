"""The operator's pure builders against expected dicts."""

from __future__ import annotations

import json
from typing import Any

from kubetune.engine import TrialLaunch
from kubetune_operator.builders import build_event, build_trial, build_trial_pod

JOB: dict[str, Any] = {
    "apiVersion": "kubetune.dev/v1alpha1",
    "kind": "TuningJob",
    "metadata": {"name": "mnist", "namespace": "ml", "uid": "job-uid", "resourceVersion": "7"},
    "spec": {
        "objective": {"metric": "acc", "direction": "maximize"},
        "parameters": [
            {"name": "lr", "type": "float", "min": 1e-4, "max": 0.3, "scale": "log"},
            {"name": "opt", "type": "categorical", "values": ["sgd", "adam"]},
        ],
        "algorithm": {"name": "random"},
        "resource": {"name": "epochs", "min": 1, "max": 9},
        "trialTemplate": {
            "metadata": {"labels": {"team": "vision"}, "annotations": {"a": "b"}},
            "primaryContainer": "trainer",
            "spec": {
                "nodeSelector": {"gpu": "a100"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                "containers": [
                    {"name": "sidecar", "image": "busybox", "args": ["${params.lr}"]},
                    {
                        "name": "trainer",
                        "image": "kubetune/trainer:latest",
                        "command": ["python", "train.py"],
                        "args": [
                            "--lr=${params.lr}",
                            "--opt=${params.opt}",
                            "--epochs=${params.epochs}",
                        ],
                        "env": [
                            {"name": "MODE", "value": "lr-${params.lr}"},
                            {"name": "KUBETUNE_JOB", "value": "x"},
                        ],
                        "resources": {"limits": {"nvidia.com/gpu": 1}},
                    },
                ],
            },
        },
    },
}
LAUNCH = TrialLaunch(
    name="mnist-3", index=3, params={"lr": 0.01, "opt": "adam", "epochs": 9}, budget=9.0
)


def test_build_trial() -> None:
    assert build_trial(JOB, LAUNCH) == {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "Trial",
        "metadata": {
            "name": "mnist-3",
            "namespace": "ml",
            "labels": {"kubetune.dev/job": "mnist", "kubetune.dev/trial": "mnist-3"},
            "ownerReferences": [
                {
                    "apiVersion": "kubetune.dev/v1alpha1",
                    "kind": "TuningJob",
                    "name": "mnist",
                    "uid": "job-uid",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "job": "mnist",
            "index": 3,
            "params": {"lr": 0.01, "opt": "adam", "epochs": 9},
            "budget": 9.0,
        },
    }


def test_build_trial_pod() -> None:
    trial = build_trial(JOB, LAUNCH)
    trial["metadata"]["uid"] = "trial-uid"
    pod = build_trial_pod(JOB, trial, "kubetune-operator.kubetune:50051", "secret-token")
    env = [
        {"name": "MODE", "value": "lr-0.01"},
        {"name": "KUBETUNE_JOB", "value": "mnist"},
        {"name": "KUBETUNE_TRIAL", "value": "mnist-3"},
        {"name": "KUBETUNE_METRICS_ADDR", "value": "kubetune-operator.kubetune:50051"},
        {"name": "KUBETUNE_TRIAL_TOKEN", "value": "secret-token"},
        {
            "name": "KUBETUNE_PARAMS",
            "value": json.dumps({"epochs": 9, "lr": 0.01, "opt": "adam"}, sort_keys=True),
        },
        {"name": "KUBETUNE_PARAM_LR", "value": "0.01"},
        {"name": "KUBETUNE_PARAM_OPT", "value": "adam"},
        {"name": "KUBETUNE_PARAM_EPOCHS", "value": "9"},
    ]
    assert pod == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "annotations": {"a": "b"},
            "name": "mnist-3",
            "namespace": "ml",
            "labels": {
                "team": "vision",
                "kubetune.dev/job": "mnist",
                "kubetune.dev/trial": "mnist-3",
            },
            "ownerReferences": [
                {
                    "apiVersion": "kubetune.dev/v1alpha1",
                    "kind": "Trial",
                    "name": "mnist-3",
                    "uid": "trial-uid",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "nodeSelector": {"gpu": "a100"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
            "restartPolicy": "Never",
            "containers": [
                {"name": "sidecar", "image": "busybox", "args": ["${params.lr}"]},
                {
                    "name": "trainer",
                    "image": "kubetune/trainer:latest",
                    "command": ["python", "train.py"],
                    "args": ["--lr=0.01", "--opt=adam", "--epochs=9"],
                    "env": env,
                    "resources": {"limits": {"nvidia.com/gpu": 1}},
                },
            ],
        },
    }
    assert JOB["spec"]["trialTemplate"]["spec"]["containers"][1]["args"][0] == "--lr=${params.lr}"


def test_build_trial_with_a_token_annotates_it() -> None:
    job = {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": "j", "namespace": "ns", "uid": "u1"},
    }
    trial = build_trial(job, TrialLaunch("j-0", 0, {"lr": 0.1}, None), token="s3cret")
    assert trial["metadata"]["annotations"] == {"kubetune.dev/token": "s3cret"}


def test_build_event() -> None:
    job = {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": "j", "namespace": "ns", "uid": "u1"},
    }
    event = build_event(job, "Warning", "TrialFailed", "j-0: exit 1", "T", "abc")
    assert event == {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "j.abc", "namespace": "ns"},
        "involvedObject": {
            "apiVersion": "kubetune.dev/v1alpha1",
            "kind": "TuningJob",
            "name": "j",
            "namespace": "ns",
            "uid": "u1",
        },
        "type": "Warning",
        "reason": "TrialFailed",
        "message": "j-0: exit 1",
        "source": {"component": "kubetune-operator"},
        "reportingComponent": "kubetune-operator",
        "firstTimestamp": "T",
        "lastTimestamp": "T",
        "count": 1,
    }
