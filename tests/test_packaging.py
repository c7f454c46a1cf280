"""The dependency split is real: each image's `pip install` line, run verbatim in a fresh venv.

operator/Dockerfile installs `kubetune[operator]` (kopf, no torch); trainer-image/Dockerfile
installs plain `kubetune` (the SDK and CLI: no kopf; torch comes from its base image). Their
COPY lines are replayed into a source tree, so a file the build would miss fails here too. The
SDK venv then takes the `trainer` extra (torch, pinned to the CPU build at hand) and runs a
small local job with the real trainer: the laptop path, `pip install 'kubetune[trainer]'`.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT
from .test_local_run import LOG_LR, OBJECTIVE, write_job

pytestmark = pytest.mark.slow
TORCH = "torch==2.13.0"  # the CPU build on this machine class (Makefile TORCH)


def build_steps(dockerfile: Path, src: Path) -> list[str]:
    """Replay the COPY lines into `src` (standing for /src); the `pip install` arguments."""
    text = dockerfile.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not words[1].startswith("--") and words[-1].startswith("/src"):
            dest = src / words[-1].removeprefix("/src").strip("/")
            for name in words[1:-1]:
                origin = ROOT / name
                if origin.is_dir():
                    shutil.copytree(origin, dest, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    dest.mkdir(parents=True, exist_ok=True)
                    shutil.copy(origin, dest / origin.name)
    (args,) = re.findall(r"pip install ([^&\n]+)", text)
    return [a.replace("/src", str(src)) for a in shlex.split(args)]


def venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return path / "bin"


def run(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def importable(bin_dir: Path, module: str) -> bool:
    return run(bin_dir / "python", "-c", f"import {module}").returncode == 0


def test_each_image_installs_only_what_it_needs(tmp_path: Path) -> None:
    sets = {
        "sdk": ROOT / "trainer-image" / "Dockerfile",
        "operator": ROOT / "operator" / "Dockerfile",
    }
    installs = {}
    for name, dockerfile in sets.items():
        bin_dir = venv(tmp_path / name)
        args = build_steps(dockerfile, tmp_path / f"src-{name}")
        installs[name] = (
            bin_dir,
            subprocess.Popen(  # both at once: two cores
                [str(bin_dir / "pip"), "install", "-q", *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ),
        )
    for name, (_, process) in installs.items():
        out, _ = process.communicate(timeout=900)
        assert process.returncode == 0, f"{name}: {out}"
    sdk, operator = installs["sdk"][0], installs["operator"][0]

    # the SDK and CLI: local runs, the cluster client, plots; no kopf, no torch
    assert run(sdk / "pip", "check").returncode == 0
    assert run(sdk / "kubetune", "--help").returncode == 0
    for module in (
        "kubetune.client",
        "kubetune.local",
        "kubetune.plots",
        "kubernetes",
        "matplotlib",
    ):
        assert importable(sdk, module), module
    assert not importable(sdk, "kopf") and not importable(sdk, "torch")
    refused = run(sdk / "kubetune-operator", "--help")
    assert refused.returncode != 0 and "pip install 'kubetune[operator]'" in refused.stderr

    # the operator image: both services and the helm test check; no torch
    assert run(operator / "pip", "check").returncode == 0
    for command in (
        ["kubetune-operator"],
        ["kubetune-suggestion"],
        ["python", "-m", "kubetune_operator.selftest"],
    ):
        out = run(operator / command[0], *command[1:], "--help")
        assert out.returncode == 0, (command, out.stderr)
    assert importable(operator, "kopf") and importable(operator, "kubetune_operator.handlers")
    assert not importable(operator, "torch")
    # the chart's in-cluster dashboard runs on this image: its assets are in the package
    assets = "from kubetune.dashboard._server import static_dir as d; print(sorted(" + (
        "str(p.relative_to(d())) for p in d().rglob('*') if p.is_file()))"
    )
    shipped = run(operator / "python", "-c", assets)
    assert shipped.returncode == 0, shipped.stderr
    for asset in ("index.html", "app.js", "app.css", "vendor/echarts.min.js"):
        assert asset in shipped.stdout, shipped.stdout
    assert run(operator / "kubetune", "dashboard", "--help").returncode == 0

    # the trainer extra on top of the SDK: torch, and a local run of the real trainer
    constraints = tmp_path / "torch.txt"
    constraints.write_text(TORCH + "\n")
    source = tmp_path / "src-sdk"
    added = run(
        sdk / "pip", "install", "-q", "--no-compile", "-c", constraints, f"{source}[trainer]"
    )
    assert added.returncode == 0, added.stdout + added.stderr
    assert importable(sdk, "torch") and not importable(sdk, "kopf")
    spec = {
        "objective": OBJECTIVE,
        "parameters": [LOG_LR],
        "algorithm": {"name": "random"},
        "maxTrials": 2,
        "parallelism": 2,
    }
    manifest = write_job(tmp_path, spec, ["--lr=${params.lr}", "--epochs=1"], name="laptop")
    workdir = tmp_path / "runs"
    done = run(sdk / "kubetune", "run", manifest, "--workdir", workdir, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    best = json.loads(
        run(sdk / "kubetune", "best", "laptop", "--workdir", workdir, "--json").stdout
    )
    assert best["objective"] > 0.5, best
    report = tmp_path / "laptop.html"
    wrote = run(sdk / "kubetune", "report", "laptop", "--workdir", workdir, "--html", report)
    assert wrote.returncode == 0, wrote.stderr
    assert "echarts" in report.read_text() and '"laptop-1"' in report.read_text()
