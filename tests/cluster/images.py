"""How the test kubelet runs our two images without a container runtime.

| image: the repository's last part   | runs from                | command when the pod gives none |
| (any registry, path, tag or digest) |                          |                                 |
|-------------------------------------|--------------------------|---------------------------------|
| `trainer` (ghcr.io/kubetune/trainer) | `trainer-image/` (/app) | `python train.py`               |
| `operator` (ghcr.io/kubetune/operator) | `/`                   | `kubetune-operator --all-namespaces` |

`prom-trainer` (the tests' Prometheus-serving trainer) runs as `trainer` does. A user's own
trainer image (`registry.example.com/ml/trainer:v7`, as the chart's
`images.trainer` may name) runs as ours does.

Both run on this checkout's `.venv` Python, which has the project installed as the images do:
`python`/`python3` is that interpreter, and other commands are looked up on a PATH that puts
`.venv/bin` first (`kubetune-operator`, `kubetune-suggestion`, ...). Any other image is an
`ErrImagePull`, as on a node that cannot pull it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
VENV_BIN = Path(sys.executable).parent
PATH = f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Image:
    workdir: Path | None  # None: / (the image sets no WORKDIR)
    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


IMAGES = {
    "trainer": Image(
        ROOT / "trainer-image",
        ("python", "train.py"),
        {"PYTHONUNBUFFERED": "1", "CUBLAS_WORKSPACE_CONFIG": ":4096:8"},
    ),
    "prom-trainer": Image(
        ROOT / "trainer-image", ("python", "train.py"), {"PYTHONUNBUFFERED": "1"}
    ),
    "operator": Image(
        None,
        ("kubetune-operator", "--all-namespaces"),
        {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"},
    ),
}


def lookup(reference: str) -> Image | None:
    """The local stand-in for an image reference such as ghcr.io/kubetune/trainer:0.1@sha256:..."""
    name = reference.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    return IMAGES.get(name.rsplit("/", 1)[-1])


def executable(command: str) -> str:
    if command in ("python", "python3"):
        return sys.executable
    return command  # found on PATH, .venv/bin first
