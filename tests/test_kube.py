"""The operator's API access through the official client: credentials that rotate (real bound
service-account tokens on the test control plane), and key material that never stays on disk."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubetune_operator.kube import KubeApi, connection_info, load_configuration

from .harness import Cluster, wait_for


def secret(name: str, namespace: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
    }


def refused(cluster: Cluster, token: str) -> bool:
    """Whether the API server answers this token with 401 Unauthorized."""
    request = urllib.request.Request(
        f"{cluster.plane.server}/api", headers={"Authorization": f"Bearer {token}"}
    )
    context = ssl.create_default_context(cafile=str(cluster.plane.ca))
    try:
        urllib.request.urlopen(request, context=context, timeout=10).close()
    except urllib.error.HTTPError as exc:
        return exc.code == 401
    return False


def test_a_rotated_token_is_reloaded_after_a_401(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The token file holds a token bound to a Secret; deleting that Secret makes the API server
    refuse it (401), as when a projected token expires. A new token is then in the file."""
    caplog.set_level(logging.INFO, "kubetune.operator.kube")
    ns = cluster.namespace
    cluster.kubectl("create", "serviceaccount", "writer")
    cluster.kubectl("create", "role", "writer", "--verb=create", "--resource=secrets")
    cluster.kubectl(
        "create", "rolebinding", "writer", "--role=writer", f"--serviceaccount={ns}:writer"
    )
    tokens = []
    for binding in ("first", "second"):
        cluster.kubectl("create", "secret", "generic", binding)
        bound = ["--bound-object-kind=Secret", f"--bound-object-name={binding}"]
        tokens.append(cluster.kubectl("create", "token", "writer", *bound).strip())
    token_file = cluster.tmp / "token"
    token_file.write_text(tokens[0])
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    config["users"][0]["user"] = {"tokenFile": str(token_file)}
    (cluster.tmp / "token-kubeconfig").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(cluster.tmp / "token-kubeconfig"))

    async def scenario() -> list[str]:
        api = KubeApi(attempts=2)
        try:
            names = [(await api.create(secret("a", ns), "secrets") or {})["metadata"]["name"]]
            cluster.kubectl("delete", "secret", "first")  # the first token is void from now on
            wait_for(lambda: refused(cluster, tokens[0]), timeout=30, what="a 401 for the token")
            token_file.write_text(tokens[1])
            names.append((await api.create(secret("b", ns), "secrets") or {})["metadata"]["name"])
            return names
        finally:
            await api.close()

    assert asyncio.run(scenario()) == ["a", "b"]
    assert "401 from the API server: reloading credentials" in caplog.text
    assert {"a", "b"} <= set(cluster.objects("secrets", ""))
    info = connection_info(load_configuration())  # kopf's login sees the new token too
    assert info.token == tokens[1] and info.server == cluster.plane.server


KEY = "-----BEGIN PRIVATE KEY-----\nMIIBVAIBADANBgkqhkiG9w0BAQEFAASCAT4wggE6AgEAAkEA\n-----END PRIVATE KEY-----\n"
CERT = "-----BEGIN CERTIFICATE-----\nMIIBVAIBADANBgkqhkiG9w0BAQEFAASCAT4wggE6AgEAAkEA\n-----END CERTIFICATE-----\n"
PROBE = """
import json, os
from kubetune_operator.kube import KubeApi, connection_info, load_configuration
configuration = load_configuration()
info = connection_info(configuration)
files = [configuration.cert_file, configuration.key_file]
print(json.dumps({"files": files, "existed": [os.path.exists(f) for f in files]}))
"""


def test_client_certificate_files_are_the_librarys_and_removed_at_exit(tmp_path: Path) -> None:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [
            {
                "name": "u",
                "user": {"client-certificate-data": b64(CERT), "client-key-data": b64(KEY)},
            }
        ],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "kubeconfig"), "TMPDIR": str(scratch)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["existed"] == [True, True]  # the client library needed the key as a file...
    assert all(Path(f).parent == scratch for f in seen["files"])
    assert list(scratch.iterdir()) == []  # ...and nothing is left once the process exits
