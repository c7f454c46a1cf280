"""`kubetune.Client` and the CLI verbs against a cluster: the real control plane (tests/cluster)
with the operator (kopf) running, the real trainer started by the test node's kubelet, the real
kubectl beside them.

Progress that must not outrun the test is held at the node (`hold`/`release` cordon it: pods stay
Pending as on a full cluster), so nothing here depends on how fast a trainer runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubetune import Client
from kubetune.client import AlreadyExists, JobFinished, JobStatus, NotFound, TrialState
from kubetune.client._types import to_json

from .harness import OBJECTIVE, Cluster, tuning_job, wait_for

pytestmark = pytest.mark.slow
LR = {"name": "lr", "type": "float", "min": 0.01, "max": 0.1, "scale": "log"}


def small_job(name: str, max_trials: int = 1) -> dict[str, Any]:
    spec = {
        "objective": OBJECTIVE,
        "parameters": [LR],
        "algorithm": {"name": "random", "seed": 1},
        "maxTrials": max_trials,
        "parallelism": 1,
        "retainPods": True,  # so that logs stay readable after a trial ends
    }
    return tuning_job(name, spec, ["--lr=${params.lr}", "--epochs=3"])


def kubetune(
    cluster: Cluster, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": cluster.kubeconfig, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "kubetune.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def owned_by(cluster: Cluster, job: str) -> list[str]:
    """Names of the trials, pods and secrets still labelled with the job."""
    found = []
    for plural, group in (("trials", "kubetune.dev"), ("pods", ""), ("secrets", "")):
        for obj in cluster.objects(plural, group).values():
            if (obj["metadata"].get("labels") or {}).get("kubetune.dev/job") == job:
                found.append(f"{plural}/{obj['metadata']['name']}")
    return found


def test_python_client_submits_waits_reads_follows_updates_and_deletes(
    cluster: Cluster, tmp_path: Path
) -> None:
    client = Client()  # KUBECONFIG: the test's namespace on the control plane
    doc = small_job("sdk")
    with KopfRunner(cluster.operator) as runner:
        cluster.hold()
        assert client.submit(doc) == "sdk"
        seen_by_kubectl = json.loads(cluster.kubectl("get", "tuningjob", "sdk", "-o", "json"))
        assert seen_by_kubectl["spec"] == doc["spec"]
        with pytest.raises(
            AlreadyExists, match=f"'sdk' already exists in namespace '{cluster.namespace}'"
        ):
            client.submit(doc)
        updated = client.update("sdk", max_trials=2)  # before any trial has run
        assert updated.max_trials == 2
        assert cluster.kubectl("get", "tj", "sdk", "-o", "jsonpath={.spec.maxTrials}") == "2"
        followed: list[Any] = []

        def follow() -> None:  # the trial may not exist yet: follow waits for its pod
            try:
                followed.extend(client.logs("sdk-0", follow=True))
            except Exception as exc:  # shown by the assertion below
                followed.append(exc)

        follower = threading.Thread(target=follow)
        follower.start()
        seen: list[JobStatus] = []
        cluster.release()
        final = client.wait("sdk", timeout=300, progress=True, callback=seen.append)
        follower.join(60)
    assert runner.exception is None, runner.output[-3000:]
    assert not follower.is_alive()
    assert final.succeeded and final.reason == "MaxTrialsReached" and final.progress == "2/2"
    assert final.trials.created == 2  # the operator followed the new budget
    assert seen[-1] == final and len({s.phase for s in seen}) >= 2
    assert all(isinstance(line, str) for line in followed), followed[-1:]
    assert [line for line in followed if line.startswith("epoch ")][-1].startswith("epoch 3:")
    assert list(client.logs("sdk-0")) == followed
    trials = client.trials("sdk")
    assert [t.name for t in trials] == ["sdk-0", "sdk-1"]
    assert all(t.state is TrialState.succeeded and len(t.curve) == 3 for t in trials)
    best = client.best("sdk")
    assert best is not None and best.objective == max(t.objective or 0 for t in trials)
    assert [s.name for s in client.list()] == ["sdk"]
    pngs = client.plot("sdk", tmp_path / "plots")
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs) and len(pngs) == 4
    with pytest.raises(JobFinished, match="has finished"):
        client.update("sdk", parallelism=2)
    client.delete("sdk")
    wait_for(lambda: not owned_by(cluster, "sdk"), what="the job's trials, pods and secrets")
    # Foreground deletion: the garbage collector removes the job after its dependents.
    wait_for(lambda: not client.list(), what="the job itself")
    with pytest.raises(
        NotFound, match=f"tuningjobs 'sdk' not found in namespace '{cluster.namespace}'"
    ):
        client.get("sdk")


def test_cli_verbs_against_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    manifest = tmp_path / "cli.yaml"
    doc = small_job("cli")
    manifest.write_text(json.dumps(doc))
    with KopfRunner(cluster.operator) as runner:
        cluster.hold()
        submitted = kubetune(cluster, "submit", "-f", str(manifest))
        assert submitted.returncode == 0 and "tuningjob cli created" in submitted.stdout
        assert kubetune(cluster, "submit", "-f", str(manifest)).returncode == 1
        updated = kubetune(cluster, "update", "cli", "--max-trials", "2", "--json")
        assert updated.returncode == 0 and json.loads(updated.stdout)["maxTrials"] == 2
        follower = subprocess.Popen(
            [sys.executable, "-m", "kubetune.cli", "logs", "cli-0", "-f"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "KUBECONFIG": cluster.kubeconfig},
        )
        cluster.release()
        waited = kubetune(cluster, "wait", "cli", "--timeout", "300")
        followed, _ = follower.communicate(timeout=60)
    assert runner.exception is None, runner.output[-3000:]
    assert waited.returncode == 0 and "job cli succeeded (MaxTrialsReached)" in waited.stdout
    assert follower.returncode == 0 and "epoch 3:" in followed
    got = json.loads(kubetune(cluster, "get", "cli", "--json").stdout)
    assert got["phase"] == "Succeeded" and got["trials"]["created"] == 2
    listed = kubetune(cluster, "list")
    assert listed.returncode == 0 and "cli" in listed.stdout and "Succeeded" in listed.stdout
    status = kubetune(cluster, "status", "cli")
    assert status.returncode == 0 and "cli-1" in status.stdout
    trials = json.loads(kubetune(cluster, "trials", "cli", "--json").stdout)
    assert trials == to_json(Client().trials("cli"))  # the CLI prints what the SDK returns
    best = kubetune(cluster, "best", "cli")
    assert best.returncode == 0 and best.stdout.startswith(got["bestTrial"]["name"])
    assert "epoch 3:" in kubetune(cluster, "logs", "cli-0").stdout
    refused = kubetune(cluster, "update", "cli", "--parallelism", "2")
    assert refused.returncode == 1 and "has finished" in refused.stderr
    assert kubetune(cluster, "delete", "cli").returncode == 0
    wait_for(lambda: not owned_by(cluster, "cli"), what="the job's trials, pods and secrets")
    wait_for(lambda: not Client().list(), what="the job itself (deleted in the foreground)")
    gone = kubetune(cluster, "get", "cli")
    assert gone.returncode == 1 and gone.stderr.strip().endswith(
        f"not found in namespace '{cluster.namespace}'"
    )


def test_wait_survives_a_compacted_watch_on_a_job_applied_with_kubectl(cluster: Cluster) -> None:
    """Mid-wait, etcd compacts its history and the API server restarts: the wait's watch resumes
    from a revision that is gone, gets a real `410 Gone`, lists again and follows the job."""
    client = Client()
    with KopfRunner(cluster.operator) as runner:
        cluster.hold()
        cluster.apply(small_job("expiry"))
        seen: list[JobStatus] = []
        result: list[JobStatus] = []
        waiter = threading.Thread(
            target=lambda: result.append(client.wait("expiry", timeout=300, callback=seen.append))
        )
        since = cluster.audit_mark()
        waiter.start()
        wait_for(lambda: seen, what="the wait to see the job")
        for i in range(3):  # history after the wait's revision, then compacted away
            cluster.kubectl("create", "configmap", f"churn-{i}")
        cluster.plane.compact_etcd()
        cluster.plane.restart("kube-apiserver")
        cluster.release()
        waiter.join(300)
    assert runner.exception is None, runner.output[-3000:]
    assert result and result[0].succeeded and result[0].name == "expiry"
    lists = [
        c
        for c in cluster.audit("admin", since)
        if c["verb"] == "list"
        and c.get("objectRef", {}).get("resource") == "tuningjobs"
        and "metadata.name%3Dexpiry" in c["requestURI"]
    ]
    assert len(lists) >= 2, [c["requestURI"] for c in lists]  # the first, and after 410 Gone
    assert client.trials("expiry")[0].state is TrialState.succeeded
