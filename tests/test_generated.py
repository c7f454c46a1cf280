"""Committed generated files must match their sources."""

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
