"""One credential loader for the client and the operator, with kubectl's precedence."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubetune import kubeconfig
from kubetune.client import ConfigError
from kubetune_operator.kube import load_configuration


def write_kubeconfig(path: Path, servers: dict[str, str], current: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": n, "cluster": {"server": s}} for n, s in servers.items()],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [
                    {"name": n, "context": {"cluster": n, "user": "u", "namespace": f"ns-{n}"}}
                    for n in servers
                ],
                "current-context": current,
            }
        )
    )
    return path


def test_kubeconfig_wins_over_home_and_context_picks_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    write_kubeconfig(home / ".kube" / "config", {"home": "https://home:6443"}, "home")
    listed = write_kubeconfig(
        tmp_path / "a.yaml", {"a": "https://a:6443", "b": "https://b:6443"}, "a"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert kubeconfig.load()[0].host == "https://home:6443"  # ~/.kube/config without KUBECONFIG
    monkeypatch.setenv("KUBECONFIG", str(listed))
    configuration, namespace = kubeconfig.load()
    assert (configuration.host, namespace) == ("https://a:6443", "ns-a")
    assert kubeconfig.load("b")[0].host == "https://b:6443"
    # the operator reads credentials the same way, --context included
    assert load_configuration().host == "https://a:6443"
    assert load_configuration("b").host == "https://b:6443"


def test_no_credentials_names_what_was_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing.yaml"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigError, match=r"missing\.yaml \(no such file\) and the in-cluster"):
        load_configuration()
