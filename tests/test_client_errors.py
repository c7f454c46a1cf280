"""What `kubetune.Client` and the CLI say when the cluster is missing, unreachable, refuses, or
lacks the CRDs: one line naming what was tried, never a traceback. Against the emulated API
server (no operator needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubetune import Client
from kubetune.client import ConfigError, Forbidden, NotFound, Unavailable
from kubetune.spec import SpecError

from .conftest import EXAMPLES, ROOT
from .emulator.server import EmulatorThread
from .harness import free_port
from .tools import ensure_tools


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread() as emulated:
        yield emulated


def kubeconfig(tmp_path: Path, server: str, token: str = "admin") -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": "ml"}}],
        "current-context": "ctx",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def cli_line(config: Path | str, *args: str) -> str:
    """The one line `kubetune` prints on stderr for a failing command (exit 1)."""
    env = {**os.environ, "KUBECONFIG": str(config)}
    proc = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_no_kubeconfig_says_what_was_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope"
    monkeypatch.setenv("KUBECONFIG", str(missing))
    with pytest.raises(ConfigError, match=f"tried KUBECONFIG={missing}.*in-cluster"):
        Client()
    assert "--workdir for local runs" in cli_line(missing, "list")


def test_an_unreachable_api_server_is_one_line(tmp_path: Path) -> None:
    server = f"http://127.0.0.1:{free_port()}"
    line = cli_line(kubeconfig(tmp_path, server), "get", "job")
    assert line.startswith(f"kubetune: cannot reach the Kubernetes API at {server}")


def test_missing_crds_forbidden_and_not_found(
    emulator: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = kubeconfig(tmp_path, emulator.url)
    monkeypatch.setenv("KUBECONFIG", str(config))
    client = Client()
    assert client.backend.namespace == "ml"  # the context's namespace
    emulator.call(
        lambda: emulator.emulator.store.create(
            emulator.emulator.store.kind("", "namespaces"), "", {"metadata": {"name": "ml"}}
        )
    )
    with pytest.raises(Unavailable, match="CRDs are not installed"):
        client.list()
    assert "CRDs are not installed" in cli_line(config, "list")

    subprocess.run(
        [
            str(ensure_tools()["kubectl"]),
            "--kubeconfig",
            str(config),
            "apply",
            "-f",
            str(ROOT / "manifests" / "crds"),
        ],
        check=True,
        capture_output=True,
    )
    with pytest.raises(NotFound, match="tuningjobs 'ghost' not found in namespace 'ml'"):
        client.get("ghost")
    assert cli_line(config, "trials", "ghost").endswith("not found in namespace 'ml'")
    with pytest.raises(SpecError, match=r"spec\.parameters\[1\]\.max: must be greater than min"):
        client.submit(ROOT / "tests" / "data" / "invalid" / "bad-range.yaml")

    emulator.emulator.auth.users["reader"] = "system:serviceaccount:ml:nobody"
    refused = kubeconfig(tmp_path, emulator.url, token="reader")
    monkeypatch.setenv("KUBECONFIG", str(refused))
    with pytest.raises(Forbidden, match="forbidden: cannot create tuningjobs in namespace 'ml'"):
        Client().submit(EXAMPLES / "digits-random.yaml")
    assert cli_line(refused, "list").startswith(
        "kubetune: forbidden: cannot list tuningjobs in namespace 'ml'"
    )
