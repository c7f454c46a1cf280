"""The operator's API access through the official client: credentials that rotate, and key
material that never stays on disk."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubetune_operator.kube import KubeApi, connection_info, load_configuration

from .emulator.server import EmulatorThread


def secret(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "default"},
    }


def test_a_rotated_token_is_reloaded_after_a_401(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "kubetune.operator.kube")
    token_file = tmp_path / "token"
    token_file.write_text("first")
    with EmulatorThread() as emu:
        config = yaml.safe_load(Path(emu.kubeconfig(str(tmp_path / "kubeconfig"))).read_text())
        config["users"][0]["user"] = {"tokenFile": str(token_file)}
        (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
        monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
        emu.emulator.auth.valid_tokens = {"first"}

        async def scenario() -> list[str]:
            api = KubeApi(attempts=2)
            try:
                names = [(await api.create(secret("a"), "secrets") or {})["metadata"]["name"]]
                token_file.write_text("second")  # the token rotates; the old one is refused
                emu.emulator.auth.valid_tokens = {"second"}
                names.append((await api.create(secret("b"), "secrets") or {})["metadata"]["name"])
                return names
            finally:
                await api.close()

        assert asyncio.run(scenario()) == ["a", "b"]
        assert "401 from the API server: reloading credentials" in caplog.text
        assert {s["metadata"]["name"] for s in emu.objects("secrets", "")} == {"a", "b"}
        info = connection_info(load_configuration())  # kopf's login sees the new token too
        assert info.token == "second" and info.server == emu.url


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
