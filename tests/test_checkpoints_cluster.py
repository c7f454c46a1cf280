"""Checkpoints on the real control plane: an evicted trial resumes from its checkpoint.

The job's claim comes from its volumeClaimTemplate and is bound by kube-controller-manager to a
hostPath PersistentVolume; the test node's kubelet mounts each trial's subPath. The trial pod is
evicted through the Eviction API, as a node drain does: the API server marks it with a
DisruptionTarget condition and deletes it; the operator starts the trial again from its last
stored step, without counting a failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kopf.testing import KopfRunner

from .harness import OBJECTIVE, Cluster, persistent_volume, tuning_job, wait_for

pytestmark = pytest.mark.slow
EPOCHS = 8


def curve_steps(cluster: Cluster, trial: str) -> list[int]:
    status = cluster.objects("trials").get(trial, {}).get("status") or {}
    return [int(p["step"]) for p in status.get("curve") or []]


def test_an_evicted_trial_resumes_from_its_checkpoint(cluster: Cluster, tmp_path: Path) -> None:
    volume = f"kt-{cluster.namespace}"[:63]
    cluster.api.request("POST", "/api/v1/persistentvolumes", persistent_volume(volume, tmp_path))
    storage = {"volumeClaimTemplate": {"storageClassName": volume, "size": "1Gi"}}
    doc = tuning_job(
        "evicted",
        {
            "objective": OBJECTIVE,
            "parameters": [{"name": "lr", "type": "categorical", "values": [0.01]}],
            "algorithm": {"name": "grid"},
            "maxTrials": 1,
            "maxFailedTrials": 0,  # an eviction counted as a failure would fail the job
            "retainPods": True,  # for its log
            "checkpoints": {"keep": 2, "storage": storage},
        },
        ["--lr=${params.lr}", f"--epochs={EPOCHS}", "--epoch-delay=0.5"],
    )
    try:
        with KopfRunner(cluster.operator) as runner:
            cluster.apply(doc)
            wait_for(lambda: len(curve_steps(cluster, "evicted-0")) >= 3, what="3 epochs stored")
            pod = cluster.objects("pods", "")["evicted-0"]
            eviction = {
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": "evicted-0", "namespace": cluster.namespace},
            }
            path = f"/api/v1/namespaces/{cluster.namespace}/pods/evicted-0/eviction"
            cluster.api.request("POST", path, eviction)
            wait_for(
                lambda: (
                    cluster.objects("pods", "").get("evicted-0", {}).get("metadata", {}).get("uid")
                    not in (None, pod["metadata"]["uid"])
                ),
                what="a new pod for the trial",
            )
            job = cluster.wait_phase("evicted", "Succeeded")
            log = cluster.kubectl("logs", "evicted-0")
        assert runner.exception is None, runner.output[-3000:]
        trial = cluster.objects("trials")["evicted-0"]
        status = trial["status"]
        assert status["phase"] == "Succeeded" and status["retries"] == 1
        assert job["status"]["trials"].get("failed", 0) == 0
        assert curve_steps(cluster, "evicted-0") == list(range(1, EPOCHS + 1))  # no gap, no dup
        resumed = [line for line in log.splitlines() if line.startswith("resumed from")]
        assert resumed and int(resumed[-1].split()[-1]) == status["resumeStep"] >= 3, log
        assert (tmp_path / "evicted-0" / f"step-{EPOCHS:012d}.ckpt").exists()
        claim = cluster.objects("persistentvolumeclaims", "")["evicted-checkpoints"]
        assert claim["status"]["phase"] == "Bound"
        owners = claim["metadata"]["ownerReferences"]
        assert [o["kind"] for o in owners] == ["TuningJob"]  # deleted with the job
        events = [
            e for e in cluster.objects("events", "").values() if e["reason"] == "TrialRetrying"
        ]
        assert [e["type"] for e in events] == ["Warning"]
        assert "EvictionByEvictionAPI" in events[0]["message"], events[0]["message"]
    finally:
        cluster.api.request("DELETE", f"/api/v1/persistentvolumes/{volume}")


def test_pbt_members_read_their_parents_checkpoints_on_the_cluster(
    cluster: Cluster, tmp_path: Path
) -> None:
    volume = f"kt-{cluster.namespace}"[:63]
    cluster.api.request("POST", "/api/v1/persistentvolumes", persistent_volume(volume, tmp_path))
    storage = {"volumeClaimTemplate": {"storageClassName": volume, "size": "1Gi"}}
    settings = {"populationSize": 2, "perturbationInterval": 2, "truncation": 0.5}
    doc = tuning_job(
        "pbt",
        {
            "objective": OBJECTIVE,
            "parameters": [
                {"name": "lr", "type": "float", "min": 1e-3, "max": 0.3, "scale": "log"}
            ],
            "algorithm": {"name": "pbt", "seed": 3, "settings": settings},
            "resource": {"name": "epochs", "min": 1, "max": 4},
            "maxTrials": 4,
            "parallelism": 2,
            "retainPods": True,  # for their logs
            "checkpoints": {"storage": storage, "trialsShareNode": True},
        },
        ["--lr=${params.lr}", "--epochs=${params.epochs}"],
    )
    try:
        with KopfRunner(cluster.operator) as runner:
            cluster.apply(doc)
            cluster.wait_phase("pbt", "Succeeded")
            logs = {n: cluster.kubectl("logs", n) for n in ("pbt-2", "pbt-3")}
        assert runner.exception is None, runner.output[-3000:]
        trials = cluster.objects("trials")
        first = {n: trials[n]["status"]["objective"] for n in ("pbt-0", "pbt-1")}
        best = max(first, key=lambda n: first[n])
        for name in ("pbt-2", "pbt-3"):
            trial = trials[name]
            assert trial["status"]["phase"] == "Succeeded"
            assert trial["spec"]["continues"]["step"] == 2
            assert [p["step"] for p in trial["status"]["curve"]] == [3, 4]
            assert "resumed from the checkpoint of epoch 2" in logs[name]
        # truncation 0.5 of 2: the weaker copies the stronger, which goes on as it was
        assert {trials[n]["spec"]["continues"]["trial"] for n in ("pbt-2", "pbt-3")} == {best}
        for name in trials:  # each wrote only its own directory
            assert (
                tmp_path / name / f"step-{trials[name]['status']['curve'][-1]['step']:012d}.ckpt"
            ).exists()
    finally:
        cluster.api.request("DELETE", f"/api/v1/persistentvolumes/{volume}")
