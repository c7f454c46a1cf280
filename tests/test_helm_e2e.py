"""The chart with the real helm binary against the emulated cluster: `helm install --wait` runs
the chart's operator and suggestion service as pods (the tests' kubelet runs their commands
locally), a TuningJob runs to the end through them, then `helm upgrade` with changed values,
`helm test` and `helm uninstall`, with the CRDs kept or not as crds.keep says."""

from __future__ import annotations

import base64
import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .chart import CHART
from .conftest import ROOT
from .emulator.kubelet import Kubelet
from .emulator.server import EmulatorThread
from .emulator.workloads import DeploymentController, ServiceProxy
from .harness import OBJECTIVE, Cluster, wait_for
from .tools import ensure_tools

pytestmark = pytest.mark.slow
NS = "kubetune-system"
QUICKSTART = "## The same on a cluster"
TRAINER = "registry.example.com/ml/trainer:v7"


class HelmCluster(Cluster):
    def helm(self, *args: str) -> str:
        home = self.tmp / "helm"
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }
        result = subprocess.run(
            [str(ensure_tools()["helm"]), "--kubeconfig", self.kubeconfig, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=400,
        )
        logs = (
            "".join(
                f"\n--- {p.name}\n{p.read_text()[-2000:]}"
                for p in sorted((self.tmp / "logs").glob("*.log"))
            )
            if (self.tmp / "logs").exists()
            else ""
        )
        assert result.returncode == 0, f"helm {' '.join(args)}: {result.stderr}{logs}"
        return result.stdout

    def pods(self, component: str) -> dict[str, dict[str, Any]]:
        return {
            n: p
            for n, p in self.objects("pods", "").items()
            if p["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
            and not p["metadata"].get("deletionTimestamp")
        }


@pytest.fixture
def helm_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HelmCluster]:
    """An emulated cluster with Deployments, Services and in-pod credentials."""
    with EmulatorThread() as emulator:
        proxy: ServiceProxy = emulator.call(lambda: ServiceProxy(emulator.emulator))
        emulator.call(lambda: DeploymentController(emulator.emulator))
        kubelet: Kubelet = emulator.call(
            lambda: Kubelet(
                emulator.emulator,
                ROOT / "trainer-image",
                tmp_path / "logs",
                api_url=emulator.url,
                resolve=proxy.address,
            )
        )
        c = HelmCluster(emulator, kubelet, tmp_path)
        monkeypatch.setenv("KUBECONFIG", c.kubeconfig)
        try:
            yield c
        finally:
            emulator.call(kubelet.stop)
            emulator.call(proxy.close)


def readme_quickstart() -> list[str]:
    """The command lines of the README's cluster quickstart, as documented."""
    section = (ROOT / "README.md").read_text().split(QUICKSTART, 1)[1]
    return section.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()


def readme_quickstart_job() -> dict[str, Any]:
    """The manifest the quickstart submits."""
    (line,) = [ln for ln in readme_quickstart() if " submit -f " in ln]
    path = shlex.split(line.split("#", 1)[0]).pop(shlex.split(line).index("-f") + 1)
    return dict(yaml.safe_load((ROOT / path).read_text()))


def readme_install() -> list[str]:
    """The `helm install` line of the README's cluster quickstart, as documented."""
    (line,) = [ln for ln in readme_quickstart() if ln.startswith("helm install ")]
    argv = shlex.split(line.split("#", 1)[0])
    assert argv[:4] == ["helm", "install", "kubetune", "charts/kubetune"], argv
    return [argv[0], argv[1], argv[2], str(ROOT / argv[3]), *argv[4:]]


def small_job(name: str) -> dict[str, Any]:
    """Two trials of the real trainer; the template names no image: the chart's trainer image."""
    container = {
        "name": "trainer",
        "command": ["python", "train.py"],
        "args": ["--units=16", "--hidden-layers=1", "--lr=${params.lr}", "--epochs=2"],
    }
    return {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": name},
        "spec": {
            "objective": OBJECTIVE,
            "parameters": [{"name": "lr", "type": "categorical", "values": [0.05, 0.01]}],
            "algorithm": {"name": "grid"},
            "maxTrials": 2,
            "parallelism": 2,
            "trialTemplate": {"spec": {"containers": [container]}},
            "retainPods": True,
        },
    }


def test_helm_install_run_upgrade_test_and_uninstall(helm_cluster: HelmCluster) -> None:
    c = helm_cluster
    values = c.tmp / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "images": {
                    "trainer": {
                        "registry": "registry.example.com",
                        "repository": "ml/trainer",
                        "tag": "v7",
                    }
                }
            }
        )
    )
    notes = c.helm(*readme_install()[1:], "--values", str(values), "--timeout", "240s")
    assert f"helm test kubetune -n {NS}" in notes and "kubetune submit" in notes
    deployments = c.objects("deployments", "apps")
    for name, replicas in [("kubetune-operator", 1), ("kubetune-suggestion", 2)]:
        status = deployments[name]["status"]
        assert status["readyReplicas"] == status["updatedReplicas"] == replicas, status
    assert "kubetune-suggestion" in c.objects("poddisruptionbudgets", "policy")
    (operator,) = c.pods("operator")
    assert "--all-namespaces" in c.objects("pods", "")[operator]["spec"]["containers"][0]["args"]

    # the chart's operator (a pod, as its service account, under the chart's RBAC) runs the
    # README quickstart's job (its template names no image: the chart's trainer image)
    quickstart = readme_quickstart_job()
    quickstart["spec"] |= {"maxTrials": 2, "retainPods": True}
    c.apply(quickstart)
    job = c.wait_phase("digits-kind", "Succeeded", timeout=240)
    assert job["status"]["progress"] == "2/2", job["status"]
    trial_pods = [
        p for p in c.objects("pods", "").values() if "kubetune.dev/trial" in p["metadata"]["labels"]
    ]
    assert trial_pods and all(p["spec"]["containers"][0]["image"] == TRAINER for p in trial_pods)
    denied = c.emulator.call(lambda: list(c.emulator.emulator.auth.denied))
    assert denied == [], denied

    token = c.objects("secrets", "")["kubetune-suggestion-token"]["data"]["token"]
    c.helm(
        "upgrade",
        "kubetune",
        str(CHART),
        "-n",
        NS,
        "--reuse-values",
        "--set",
        "suggestion.replicas=1",
        "--set",
        "operator.verbose=true",
        "--wait",
        "--timeout",
        "240s",
    )
    assert "kubetune-suggestion" not in c.objects("poddisruptionbudgets", "policy")
    assert len(c.pods("suggestion")) == 1
    (upgraded,) = c.pods("operator")
    assert upgraded != operator
    assert "--verbose" in c.objects("pods", "")[upgraded]["spec"]["containers"][0]["args"]
    assert c.objects("secrets", "")["kubetune-suggestion-token"]["data"]["token"] == token
    assert len(base64.b64decode(token)) >= 32

    out = c.helm("test", "kubetune", "-n", NS, "--logs")
    assert "ok: suggestion service" in out and "ok: CRDs in kubetune.dev/v1alpha1" in out, out

    c.helm("uninstall", "kubetune", "-n", NS, "--wait", "--timeout", "120s")
    wait_for(lambda: not c.objects("deployments", "apps"), 60, "the Deployments gone")
    wait_for(lambda: not c.pods("operator") and not c.pods("suggestion"), 120, "the pods gone")
    crds = c.objects("customresourcedefinitions", "apiextensions.k8s.io")
    assert set(crds) == {"tuningjobs.kubetune.dev", "trials.kubetune.dev"}  # crds.keep
    assert "digits-kind" in c.objects("tuningjobs")


def test_uninstall_removes_the_crds_unless_kept(helm_cluster: HelmCluster) -> None:
    c = helm_cluster
    c.helm(
        "install",
        "kubetune",
        str(CHART),
        "-n",
        NS,
        "--create-namespace",
        "--set",
        "crds.keep=false",
        "--set",
        "suggestion.replicas=1",
        "--wait",
        "--timeout",
        "240s",
    )
    assert len(c.objects("customresourcedefinitions", "apiextensions.k8s.io")) == 2
    c.helm("uninstall", "kubetune", "-n", NS, "--wait", "--timeout", "120s")
    assert not c.objects("customresourcedefinitions", "apiextensions.k8s.io")
    assert not c.objects("secrets", "")  # the release record and the generated token


def test_a_namespaced_install_runs_jobs_in_its_namespace_under_roles(
    helm_cluster: HelmCluster,
) -> None:
    c = helm_cluster
    c.kubectl("create", "namespace", "team-a")
    c.helm(
        "install",
        "kubetune",
        str(CHART),
        "-n",
        NS,
        "--create-namespace",
        "--set",
        "watchNamespaces={team-a}",
        "--set",
        "suggestion.replicas=1",
        "--wait",
        "--timeout",
        "240s",
    )
    assert not c.objects("clusterroles", "rbac.authorization.k8s.io")
    assert [
        r["metadata"]["namespace"] for r in c.objects("roles", "rbac.authorization.k8s.io").values()
    ] == ["team-a"]
    elsewhere = small_job("elsewhere")
    c.apply(elsewhere)  # in default: not watched
    job = small_job("scoped")
    job["metadata"]["namespace"] = "team-a"
    c.apply(job)
    c.kubectl(
        "wait",
        "-n",
        "team-a",
        "--for=jsonpath={.status.phase}=Succeeded",
        "tuningjob/scoped",
        "--timeout=240s",
    )
    denied = c.emulator.call(lambda: list(c.emulator.emulator.auth.denied))
    assert denied == [], denied  # the Role in team-a is all the operator needed
    assert "status" not in c.objects("tuningjobs")["elsewhere"]
