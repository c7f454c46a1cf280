"""The operator's pure builders against expected dicts."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

from kubetune.engine import TrialLaunch
from kubetune.rpc.tokens import digest
from kubetune_operator.builders import (
    DefaultImage,
    build_event,
    build_token_secret,
    build_trial,
    build_trial_pod,
    harden,
    job_spec,
)
from kubetune_operator.cache import Cache

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
HARDENED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
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
    pod = build_trial_pod(JOB, trial, "kubetune-operator.kubetune:50051")
    env = [
        {"name": "MODE", "value": "lr-0.01"},
        {"name": "KUBETUNE_JOB", "value": "mnist"},
        {"name": "KUBETUNE_TRIAL", "value": "mnist-3"},
        {"name": "KUBETUNE_METRICS_ADDR", "value": "kubetune-operator.kubetune:50051"},
        {
            "name": "KUBETUNE_TRIAL_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "mnist-3-token", "key": "token"}},
        },
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
            "automountServiceAccountToken": False,
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "sidecar",
                    "image": "busybox",
                    "args": ["${params.lr}"],
                    "securityContext": HARDENED,
                },
                {
                    "name": "trainer",
                    "image": "kubetune/trainer:latest",
                    "command": ["python", "train.py"],
                    "args": ["--lr=0.01", "--opt=adam", "--epochs=9"],
                    "env": env,
                    "resources": {"limits": {"nvidia.com/gpu": "1"}},  # a quantity is a string
                    "securityContext": HARDENED,
                },
            ],
        },
    }
    assert JOB["spec"]["trialTemplate"]["spec"]["containers"][1]["args"][0] == "--lr=${params.lr}"


def test_build_trial_carries_the_token_digest_and_the_secret_the_token() -> None:
    job = {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": "j", "namespace": "ns", "uid": "u1"},
    }
    launch = TrialLaunch("j-0", 0, {"lr": 0.1}, None)
    trial = build_trial(job, launch, token_digest=digest("s3cret"))
    assert trial["metadata"]["annotations"] == {
        "kubetune.dev/token-sha256": hashlib.sha256(b"s3cret").hexdigest()
    }
    assert "s3cret" not in json.dumps(trial)
    trial["metadata"]["uid"] = "t-uid"
    assert build_token_secret(trial, "s3cret") == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "j-0-token",
            "namespace": "ns",
            "labels": {"kubetune.dev/job": "j", "kubetune.dev/trial": "j-0"},
            "ownerReferences": [
                {
                    "apiVersion": "kubetune.dev/v1alpha1",
                    "kind": "Trial",
                    "name": "j-0",
                    "uid": "t-uid",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "type": "Opaque",
        "immutable": True,
        "data": {"token": base64.b64encode(b"s3cret").decode()},
    }


def test_hardening_defaults_yield_to_what_the_template_sets() -> None:
    spec = {
        "automountServiceAccountToken": True,
        "securityContext": {"seccompProfile": {"type": "Localhost"}, "runAsUser": 5},
        "initContainers": [{"name": "init", "securityContext": {"privileged": True}}],
        "containers": [
            {
                "name": "c",
                "securityContext": {
                    "allowPrivilegeEscalation": True,
                    "capabilities": {"add": ["SYS_PTRACE"]},
                },
                "resources": {"requests": {"cpu": 0.5, "memory": "1Gi"}},
            }
        ],
    }
    assert harden(spec) == {
        "automountServiceAccountToken": True,
        "securityContext": {"seccompProfile": {"type": "Localhost"}, "runAsUser": 5},
        "initContainers": [{"name": "init", "securityContext": {"privileged": True, **HARDENED}}],
        "containers": [
            {
                "name": "c",
                "securityContext": {
                    "allowPrivilegeEscalation": True,
                    "capabilities": {"add": ["SYS_PTRACE"]},
                },
                "resources": {"requests": {"cpu": "0.5", "memory": "1Gi"}},
            }
        ],
    }


def test_the_default_trainer_image_fills_only_containers_without_one() -> None:
    job = json.loads(json.dumps(JOB))
    containers = job["spec"]["trialTemplate"]["spec"]["containers"]
    del containers[1]["image"]
    containers[0]["imagePullPolicy"] = "Never"
    trial = build_trial(job, LAUNCH)
    trial["metadata"]["uid"] = "u"
    default = DefaultImage("ghcr.io/kubetune/trainer:0.1.0", "IfNotPresent")
    sidecar, trainer = build_trial_pod(job, trial, "m:1", default)["spec"]["containers"]
    assert (sidecar["image"], sidecar["imagePullPolicy"]) == ("busybox", "Never")
    assert (trainer["image"], trainer["imagePullPolicy"]) == (default.image, "IfNotPresent")
    without = build_trial_pod(job, trial, "m:1")["spec"]["containers"][1]
    assert "image" not in without  # the API server then says what is missing


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


def test_a_spec_is_parsed_once_per_generation() -> None:
    first = {**JOB, "metadata": {**JOB["metadata"], "generation": 1}}
    assert job_spec(first) is job_spec(copy.deepcopy(first))  # same generation: cached
    changed = copy.deepcopy(first)
    changed["metadata"]["generation"] = 2
    changed["spec"]["algorithm"] = {"name": "bayesian"}
    assert job_spec(changed).algorithm.name == "bayesian"  # a new generation: parsed again
    assert job_spec(first).algorithm.name == "random"
    unsaved = {**JOB, "metadata": {"name": "mnist"}}  # no uid or generation: never cached
    assert job_spec(unsaved) is not job_spec(unsaved)


def test_the_cache_holds_its_own_copy_and_skips_a_version_it_has() -> None:
    cache = Cache()
    trial = {
        "metadata": {"name": "t-0", "namespace": "ml", "resourceVersion": "5"},
        "status": {"curve": [{"step": 1, "value": 0.5}]},
    }
    cache.put("trials", trial)
    trial["status"]["curve"].append({"step": 2, "value": 0.6})  # the caller's copy changes
    held = cache.get("trials", ("ml", "t-0"))
    assert held is not None and held["status"]["curve"] == [{"step": 1, "value": 0.5}]
    cache.put("trials", {**trial, "status": {"phase": "Succeeded"}})  # same version: kept
    assert cache.get("trials", ("ml", "t-0")) is held

    def version(v: str, phase: str) -> dict[str, Any]:
        return {
            **trial,
            "metadata": {**trial["metadata"], "resourceVersion": v},
            "status": {"phase": phase},
        }

    cache.put("trials", version("b", "Running"))  # versions are opaque: "b" after "5" is fine
    assert (cache.get("trials", ("ml", "t-0")) or {})["status"] == {"phase": "Running"}
    ours = version("a", "Stopping")  # our write's response: "a" sorts before "b", no matter
    cache.put("trials", ours, own=True)
    assert cache.echo("trials", ours)  # its watch event: nothing new
    assert not cache.echo("trials", version("c", "Stopped"))  # someone else's later write
    cache.put("trials", version("c", "Stopped"))
    assert (cache.get("trials", ("ml", "t-0")) or {})["status"] == {"phase": "Stopped"}
