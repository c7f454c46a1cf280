"""What `kubetune.Client` and the CLI say when the cluster is missing, unreachable, refuses, or
lacks the CRDs: one line naming what was tried, never a traceback. Against the real control
plane (tests/cluster; no operator needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubetune import Client
from kubetune.client import ConfigError, Forbidden, NotFound, Unavailable
from kubetune.spec import SpecError

from .conftest import EXAMPLES, ROOT
from .harness import Cluster, free_port, install_crds


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


def with_token(cluster: Cluster, token: str) -> Path:
    """The test's kubeconfig with a bearer token instead of the admin's certificate."""
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    config["users"][0]["user"] = {"token": token}
    path = cluster.tmp / "token-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_missing_crds_forbidden_and_not_found(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = cluster.namespace
    client = Client()  # KUBECONFIG: the test's namespace
    assert client.backend.namespace == ns  # the context's namespace
    cluster.kubectl("delete", "-f", str(ROOT / "manifests" / "crds"), "--wait")
    try:
        with pytest.raises(Unavailable, match="CRDs are not installed"):
            client.list()
        assert "CRDs are not installed" in cli_line(cluster.kubeconfig, "list")
    finally:
        install_crds(cluster)
    with pytest.raises(NotFound, match=f"tuningjobs 'ghost' not found in namespace '{ns}'"):
        client.get("ghost")
    assert cli_line(cluster.kubeconfig, "trials", "ghost").endswith(
        f"not found in namespace '{ns}'"
    )
    with pytest.raises(SpecError, match=r"spec\.parameters\[1\]\.max: must be greater than min"):
        client.submit(ROOT / "tests" / "data" / "invalid" / "bad-range.yaml")

    cluster.kubectl("create", "serviceaccount", "nobody")  # no role: the authorizer refuses
    refused = with_token(cluster, cluster.kubectl("create", "token", "nobody").strip())
    monkeypatch.setenv("KUBECONFIG", str(refused))
    with pytest.raises(Forbidden, match=f"forbidden: cannot create tuningjobs in namespace '{ns}'"):
        Client().submit(EXAMPLES / "digits-random.yaml")
    assert cli_line(refused, "list").startswith(
        f"kubetune: forbidden: cannot list tuningjobs in namespace '{ns}'"
    )
