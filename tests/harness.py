"""The real control plane the cluster tests share (tests/cluster), one namespace per test, real
kubectl; and small builders of TuningJobs that run the real trainer.

One control plane serves the whole session (it starts in about 10 s). Each test gets a fresh
namespace, a kubeconfig whose context points at it, and its own operator; at the end the
namespace is deleted, so no test sees another's objects.
"""

from __future__ import annotations

import contextlib
import itertools
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .cluster.api import Api
from .cluster.control_plane import ControlPlane
from .conftest import ROOT
from .tools import ensure_tools
from .waiting import free_port, wait_for

__all__ = [
    "Cluster",
    "free_port",
    "install_crds",
    "persistent_volume",
    "remove_namespace",
    "tuning_job",
    "wait_for",
]

VERSIONS = {
    "kubetune.dev": "v1alpha1",
    "": "v1",
    "apps": "v1",
    "batch": "v1",
    "policy": "v1",
    "rbac.authorization.k8s.io": "v1",
    "apiextensions.k8s.io": "v1",
}
_names = itertools.count()


class Cluster:
    """One test's view of the shared control plane: its namespace, kubeconfig and kubectl."""

    def __init__(self, plane: ControlPlane, namespace: str, tmp: Path) -> None:
        self.plane, self.namespace, self.tmp = plane, namespace, tmp
        self.kubelet = plane.kubelet
        self.api = Api(plane.admin)
        config = yaml.safe_load(plane.admin.read_text())
        config["contexts"][0]["context"]["namespace"] = namespace
        self.kubeconfig = str(tmp / "kubeconfig")
        Path(self.kubeconfig).write_text(yaml.safe_dump(config))
        self.kubectl_bin = str(ensure_tools()["kubectl"])
        self.last_error = ""
        self.cache = str(tmp / "kube-cache")  # discovery: CRDs come and go between tests
        self.operator = ["run", "--standalone", "-n", namespace, "-m", "kubetune_operator.handlers"]

    def kubectl(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            [self.kubectl_bin, "--kubeconfig", self.kubeconfig, "--cache-dir", self.cache, *args],
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.last_error = result.stderr
        if check:
            assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def apply(self, doc: dict[str, Any]) -> None:
        path = self.tmp / f"{doc['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(doc))
        self.kubectl("apply", "-f", str(path))

    def objects(
        self,
        plural: str,
        group: str = "kubetune.dev",
        namespace: str | None = None,
        cluster_scope: bool = False,
    ) -> dict[str, dict[str, Any]]:
        """A namespace's objects of one kind (the test's by default; or cluster-scoped ones), by
        name, as the API server has them now."""
        base = f"/apis/{group}/{VERSIONS[group]}" if group else "/api/v1"
        scope = "" if cluster_scope else f"/namespaces/{namespace or self.namespace}"
        listed = self.api.request("GET", f"{base}{scope}/{plural}")
        return {o["metadata"]["name"]: o for o in listed["items"]}

    def job(self, name: str) -> dict[str, Any]:
        return self.objects("tuningjobs")[name]

    def wait_phase(self, name: str, phase: str, timeout: int = 180) -> dict[str, Any]:
        self.kubectl(
            "wait",
            f"--for=jsonpath={{.status.phase}}={phase}",
            f"tuningjob/{name}",
            f"--timeout={timeout}s",
        )
        return self.job(name)

    # -- the node --------------------------------------------------------------------------------

    def hold(self) -> None:
        """Cordon the node: new pods stay Pending (as on a full cluster) until `release()`."""
        self.kubelet.cordon(True)

    def release(self) -> None:
        self.kubelet.cordon(False)

    def running(self) -> set[str]:
        """Names of this namespace's pods with a container process alive on the node."""
        return self.kubelet.running(self.namespace)

    def started(self) -> list[str]:
        """Names of this namespace's pods, once each time the node started one."""
        return [name for ns, name in self.kubelet.started if ns == self.namespace]

    def signalled(self, pod: str) -> list[str]:
        return self.kubelet.signalled.get((self.namespace, pod), [])

    def audit_mark(self) -> int:
        """A mark in the API server's audit log: `audit` reads what comes after it."""
        return len(self.plane.audit_events())

    def audit(self, user: str, since: int = 0) -> list[dict[str, Any]]:
        """The audit records of one user's requests after a mark (control_plane.AUDIT_POLICY)."""
        return [e for e in self.plane.audit_events()[since:] if e["user"]["username"] == user]


def run_control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """The session's control plane (conftest's `control_plane` fixture)."""
    plane = ControlPlane(tmp_path_factory.mktemp("control-plane")).start()
    try:
        yield plane
    finally:
        plane.stop()


def install_crds(cluster: Cluster) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "manifests" / "crds"))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/tuningjobs.kubetune.dev",
        "crd/trials.kubetune.dev",
        "--timeout=60s",
    )


def run_cluster(
    control_plane: ControlPlane,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[Cluster]:
    """One test's namespace on it (conftest's `cluster` fixture)."""
    namespace = f"t{next(_names)}-{request.node.name.split('[')[0][5:][:40]}".rstrip("-_")
    namespace = namespace.replace("_", "-").lower()
    c = Cluster(control_plane, namespace, tmp_path)
    c.api.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    wait_for(
        lambda: c.api.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/default"),
        timeout=30,
        what="the namespace's default ServiceAccount",
    )
    install_crds(c)
    monkeypatch.setenv("KUBECONFIG", c.kubeconfig)
    # the operator's report port must be reachable from pods: the node's address on the bridge
    monkeypatch.setenv("KUBETUNE_METRICS_BIND", f"{control_plane.network.gateway}:{free_port()}")
    monkeypatch.setenv("KUBETUNE_EXPORTER_BIND", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("KUBETUNE_STATUS_INTERVAL", "0.2")
    monkeypatch.setenv("KUBETUNE_MAX_BACKOFF", "2")
    try:
        yield c
    finally:
        c.release()
        remove_namespace(c, namespace)


def remove_namespace(c: Cluster, namespace: str) -> None:
    """Delete a test's namespace; TuningJobs and Trials lose their finalizers first, as their
    operator has gone with the test."""
    for plural in ("tuningjobs", "trials"):
        try:
            items = c.objects(plural, namespace=namespace)
        except Exception:  # the CRDs were removed by the test
            continue
        for name in items:
            path = f"/apis/kubetune.dev/v1alpha1/namespaces/{namespace}/{plural}/{name}"
            patch = {"metadata": {"finalizers": None}}
            with contextlib.suppress(Exception):
                c.api.request("PATCH", path, patch, content_type="application/merge-patch+json")
    c.api.request("DELETE", f"/api/v1/namespaces/{namespace}", {"propagationPolicy": "Background"})


def persistent_volume(name: str, path: Path) -> dict[str, object]:
    """A hostPath PersistentVolume of its own storage class `name` (the test kubelet mounts it)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": name,
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": str(path)},
        },
    }


def tuning_job(name: str, spec: dict[str, Any], args: list[str]) -> dict[str, Any]:
    container = {
        "name": "trainer",
        "image": "kubetune/trainer:latest",
        "command": ["python", "train.py"],
        "args": ["--units=32", "--hidden-layers=1", *args],
        "resources": {"limits": {"nvidia.com/gpu": 1}},
    }
    return {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": name},
        "spec": {**spec, "trialTemplate": {"spec": {"containers": [container]}}},
    }


OBJECTIVE = {"metric": "val_accuracy", "direction": "maximize"}
