"""`kubetune.Client` and the CLI verbs against a cluster: the emulated API server with the operator
(kopf) running, the real trainer started by the tests' kubelet, the real kubectl beside them.

Progress that must not outrun the test is held at the kubelet (`hold`/`release`: pods wait as on
a full node), so nothing here depends on how fast a trainer runs.
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
from kubetune.client import AlreadyExists, JobFinished, JobStatus, NotFound
from kubetune.client._types import to_json

from .harness import OBJECTIVE, OPERATOR, Cluster, tuning_job, wait_for

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


def hold(cluster: Cluster) -> None:
    cluster.emulator.call(cluster.kubelet.hold)


def release(cluster: Cluster) -> None:
    cluster.emulator.call(cluster.kubelet.release)


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
        for obj in cluster.emulator.objects(plural, group):
            if (obj["metadata"].get("labels") or {}).get("kubetune.dev/job") == job:
                found.append(f"{plural}/{obj['metadata']['name']}")
    return found


def test_python_client_submits_waits_reads_follows_updates_and_deletes(
    cluster: Cluster, tmp_path: Path
) -> None:
    client = Client()  # KUBECONFIG of the emulated cluster
    doc = small_job("sdk")
    with KopfRunner(OPERATOR) as runner:
        hold(cluster)
        assert client.submit(doc) == "sdk"
        seen_by_kubectl = json.loads(cluster.kubectl("get", "tuningjob", "sdk", "-o", "json"))
        assert seen_by_kubectl["spec"] == doc["spec"]
        with pytest.raises(AlreadyExists, match="'sdk' already exists in namespace 'default'"):
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
        release(cluster)
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
    assert all(t.state.value == "Succeeded" and len(t.curve) == 3 for t in trials)
    best = client.best("sdk")
    assert best is not None and best.objective == max(t.objective or 0 for t in trials)
    assert [s.name for s in client.list()] == ["sdk"]
    pngs = client.plot("sdk", tmp_path / "plots")
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs) and len(pngs) == 4
    with pytest.raises(JobFinished, match="has finished"):
        client.update("sdk", parallelism=2)
    client.delete("sdk")
    wait_for(lambda: not owned_by(cluster, "sdk"), what="the job's trials, pods and secrets")
    with pytest.raises(NotFound, match="tuningjobs 'sdk' not found in namespace 'default'"):
        client.get("sdk")


def test_cli_verbs_against_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    manifest = tmp_path / "cli.yaml"
    doc = small_job("cli")
    manifest.write_text(json.dumps(doc))
    with KopfRunner(OPERATOR) as runner:
        hold(cluster)
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
        release(cluster)
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
    assert best.returncode == 0 and best.stdout.startswith(got["best"]["name"])
    assert "epoch 3:" in kubetune(cluster, "logs", "cli-0").stdout
    refused = kubetune(cluster, "update", "cli", "--parallelism", "2")
    assert refused.returncode == 1 and "has finished" in refused.stderr
    assert kubetune(cluster, "delete", "cli").returncode == 0
    wait_for(lambda: not owned_by(cluster, "cli"), what="the job's trials, pods and secrets")
    gone = kubetune(cluster, "get", "cli")
    assert gone.returncode == 1 and gone.stderr.strip().endswith("not found in namespace 'default'")


def test_wait_survives_an_expired_watch_on_a_job_applied_with_kubectl(cluster: Cluster) -> None:
    client = Client()
    with KopfRunner(OPERATOR) as runner:
        hold(cluster)
        cluster.apply(small_job("expiry"))
        seen: list[JobStatus] = []
        result: list[JobStatus] = []
        waiter = threading.Thread(
            target=lambda: result.append(client.wait("expiry", timeout=300, callback=seen.append))
        )
        waiter.start()
        wait_for(lambda: seen, what="the wait to see the job")
        cluster.emulator.call(cluster.emulator.emulator.expire_watches)  # 410 Gone mid-wait
        release(cluster)
        waiter.join(300)
    assert runner.exception is None, runner.output[-3000:]
    assert result and result[0].succeeded and result[0].name == "expiry"
    relisted = [
        r
        for r in cluster.emulator.emulator._requests
        if r.url.path.endswith("/tuningjobs")
        and r.params.get("fieldSelector") == "metadata.name=expiry"
        and r.params.get("watch") not in ("true", "1")
    ]
    assert len(relisted) >= 2  # the first list, and the list after 410 Gone
    assert client.trials("expiry")[0].state.value == "Succeeded"
