"""Committed generated files must match their sources (the chart's copies: tests/test_chart.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

GENERATED = ["kubetune_pb2.py", "kubetune_pb2.pyi", "kubetune_pb2_grpc.py"]


def test_grpc_stubs_are_fresh(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'sdk'}",
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            str(ROOT / "sdk" / "kubetune" / "rpc" / "kubetune.proto"),
        ],
        check=True,
    )
    for name in GENERATED:
        fresh = (tmp_path / "kubetune" / "rpc" / name).read_text()
        committed = (ROOT / "sdk" / "kubetune" / "rpc" / name).read_text()
        assert committed == fresh, f"sdk/kubetune/rpc/{name} is stale: run `make proto`"


def _walk(node: object, path: str = "") -> list[str]:
    """Places that break Kubernetes' structural-schema rules."""
    if not isinstance(node, dict):
        return []
    problems = [
        f"{path}: {key}" for key in ("$ref", "anyOf", "oneOf", "allOf", "const") if key in node
    ]
    if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(f"{path}: no type")
    for name, child in (node.get("properties") or {}).items():
        problems += _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        problems += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        problems += _walk(node["additionalProperties"], f"{path}{{}}")
    return problems


def test_crd_schemas_are_structural_and_documented() -> None:
    from kubetune_operator.crds import trial_crd, tuningjob_crd

    for crd in (tuningjob_crd(), trial_crd()):
        version = crd["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        schema = version["schema"]["openAPIV3Schema"]
        assert _walk(schema) == []
    spec = tuningjob_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["parameters"]["items"]["properties"]["scale"]["enum"] == [
        "linear",
        "log",
    ]
    assert "description" in spec["properties"]["maxTrials"]
    template = spec["properties"]["trialTemplate"]["properties"]["spec"]
    assert template["x-kubernetes-preserve-unknown-fields"] is True  # any PodSpec passes
    assert tuningjob_crd()["spec"]["names"]["shortNames"] == ["tj"]
