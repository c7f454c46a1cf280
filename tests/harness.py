"""The emulated cluster the end-to-end tests share: API server, kubelet, kubeconfig, real kubectl;
and small builders of TuningJobs that run the real trainer."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import ROOT
from .emulator.kubelet import Kubelet
from .emulator.server import EmulatorThread
from .tools import ensure_tools

OPERATOR = ["run", "--standalone", "-n", "default", "-m", "kubetune_operator.handlers"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """An emulated cluster: API server, kubelet, kubeconfig and real kubectl."""

    def __init__(self, emulator: EmulatorThread, kubelet: Kubelet, tmp: Path) -> None:
        self.emulator, self.kubelet, self.tmp = emulator, kubelet, tmp
        self.kubeconfig = emulator.kubeconfig(str(tmp / "kubeconfig"))
        self.kubectl_bin = str(ensure_tools()["kubectl"])

    def kubectl(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            [self.kubectl_bin, "--kubeconfig", self.kubeconfig, *args],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check:
            assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def apply(self, doc: dict[str, Any]) -> None:
        path = self.tmp / f"{doc['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(doc))
        self.kubectl("apply", "-f", str(path))

    def objects(self, plural: str, group: str = "kubetune.dev") -> dict[str, dict[str, Any]]:
        return {o["metadata"]["name"]: o for o in self.emulator.objects(plural, group)}

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


def wait_for(check: Callable[[], Any], timeout: float = 120, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    with EmulatorThread() as emulator:
        kubelet: Kubelet = emulator.call(
            lambda: Kubelet(emulator.emulator, ROOT / "trainer-image", tmp_path / "logs")
        )
        c = Cluster(emulator, kubelet, tmp_path)
        monkeypatch.setenv("KUBECONFIG", c.kubeconfig)
        monkeypatch.setenv("KUBETUNE_METRICS_BIND", f"127.0.0.1:{free_port()}")
        monkeypatch.setenv("KUBETUNE_EXPORTER_BIND", f"127.0.0.1:{free_port()}")
        monkeypatch.setenv("KUBETUNE_STATUS_INTERVAL", "0.2")
        monkeypatch.setenv("KUBETUNE_MAX_BACKOFF", "2")
        c.kubectl("apply", "-f", str(ROOT / "manifests" / "crds"))
        try:
            yield c
        finally:
            emulator.call(kubelet.stop)


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
