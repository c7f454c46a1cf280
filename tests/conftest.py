"""Shared test helpers: spec builders for small search spaces, and the fixtures of the end-to-end
tests (`control_plane`, `cluster`), which load the e2e harness only when a test asks for them."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from kubetune.spec import TuningJobSpec

if TYPE_CHECKING:
    from .cluster.control_plane import ControlPlane
    from .harness import Cluster

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "manifests" / "examples"
INVALID = Path(__file__).parent / "data" / "invalid"

MIXED_PARAMETERS: list[dict[str, Any]] = [
    {"name": "lr", "type": "float", "min": 1e-4, "max": 0.3, "scale": "log"},
    {"name": "layers", "type": "int", "min": 1, "max": 4},
    {"name": "units", "type": "int", "min": 16, "max": 256, "scale": "log"},
    {"name": "dropout", "type": "float", "min": 0.0, "max": 0.5, "step": 0.1},
    {"name": "optimizer", "type": "categorical", "values": ["sgd", "adam", 3]},
]


def make_spec(
    algorithm: str = "random",
    parameters: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> TuningJobSpec:
    data: dict[str, Any] = {
        "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": copy.deepcopy(parameters if parameters is not None else MIXED_PARAMETERS),
        "algorithm": {"name": algorithm, "seed": extra.pop("seed", 0)},
    }
    if "settings" in extra:
        data["algorithm"]["settings"] = extra.pop("settings")
    if algorithm == "hyperband" and "resource" not in extra:
        data["resource"] = {"name": "epochs", "min": 1, "max": 9}
    data.update(extra)
    return TuningJobSpec.model_validate(data)


def manifest(spec: dict[str, Any], name: str = "job") -> dict[str, Any]:
    return {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": name},
        "spec": spec,
    }


@pytest.fixture
def base_manifest() -> dict[str, Any]:
    return manifest(
        {
            "objective": {"metric": "val_accuracy", "direction": "maximize"},
            "parameters": copy.deepcopy(MIXED_PARAMETERS),
            "algorithm": {"name": "random"},
        }
    )


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """The real control plane (tests/cluster), one for the session."""
    from .harness import run_control_plane

    yield from run_control_plane(tmp_path_factory)


@pytest.fixture
def cluster(
    control_plane: ControlPlane,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[Cluster]:
    """A namespace of its own on the control plane, with a kubeconfig pointing at it."""
    from .harness import run_cluster

    yield from run_cluster(control_plane, tmp_path, monkeypatch, request)
