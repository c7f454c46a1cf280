"""The README's snippets run as written (the real trainer, the local backend), and every link in
the README and docs/ points at something in the repository."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

DOCS = [ROOT / "README.md", ROOT / "DEVELOPERS.md", *sorted((ROOT / "docs").glob("*.md"))]


def section(name: str) -> str:
    text = (ROOT / "README.md").read_text()
    return text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]


def blocks(name: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section(name), re.S)


@pytest.mark.slow
def test_the_from_python_snippet_runs_as_written(tmp_path: Path) -> None:
    (tmp_path / "trainer-image").symlink_to(ROOT / "trainer-image")  # as from the repository
    proc = subprocess.run(
        [sys.executable, "-c", blocks("From Python", "python")[0]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Succeeded name='digits-py-")
    trials = [line for line in lines if line.startswith("digits-py-")]
    assert len(trials) == 8  # the updated budget
    assert all(line.split()[1] in ("succeeded", "stopped") for line in trials)  # all final
    assert "slices.png" in lines[-1]
    assert not (tmp_path / ".kubetune" / "digits-py").exists()  # deleted at the end


def run_section(name: str, script: str, manifest: str, tmp_path: Path) -> list[str]:
    """Write a section's python and yaml blocks as `script` and `manifest`, run its bash
    block's `kubetune` lines there as written; the output of each."""
    (code,) = blocks(name, "python")
    (job,) = blocks(name, "yaml")
    (commands,) = blocks(name, "bash")
    (tmp_path / script).write_text(code)
    (tmp_path / manifest).write_text(job)
    kubetune = Path(sys.executable).parent / "kubetune"
    outputs = []
    for line in commands.splitlines():
        argv = line.split("#", 1)[0].split()
        assert argv[0] == "kubetune", line
        proc = subprocess.run(
            [str(kubetune), *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, (line, proc.stdout[-2000:], proc.stderr[-2000:])
        outputs.append(proc.stdout)
    return outputs


@pytest.mark.slow
def test_tune_your_own_script_runs_as_written(tmp_path: Path) -> None:
    outputs = run_section("Tune your own script (locally)", "my_train.py", "my-job.yaml", tmp_path)
    validated, ran, trials, best, plotted = outputs
    assert validated.startswith("my-job.yaml: ok")
    assert "job my-job: succeeded (MaxTrialsReached)" in ran
    assert sum(line.startswith("my-job-") for line in trials.splitlines()) == 8
    assert best.startswith("my-job-") and " loss=" in best
    assert len(list((tmp_path / ".kubetune" / "my-job" / "plots").glob("*.png"))) == 4
    assert plotted.split()[0].startswith(".kubetune/my-job/plots/")


@pytest.mark.slow
def test_the_checkpoint_example_runs_as_written(tmp_path: Path) -> None:
    ran, trials = run_section("Checkpoints and resume", "ckpt_train.py", "ckpt-job.yaml", tmp_path)
    assert "job ckpt-job: succeeded (MaxTrialsReached)" in ran
    rows = [line for line in trials.splitlines() if line.startswith("ckpt-job-")]
    assert len(rows) == 7
    assert sum("← ckpt-job-" in row for row in rows) == 3  # 2 promoted to 2 epochs, 1 to 4
    checkpoints = tmp_path / ".kubetune" / "ckpt-job" / "checkpoints"
    assert len(list(checkpoints.iterdir())) == 7


def test_every_link_stays_inside_the_repository() -> None:
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            assert not re.match(r"[a-z]+:", target), f"{doc.name}: {target} leaves the repository"
            path = target.split("#", 1)[0]
            if path:
                resolved = (doc.parent / path).resolve()
                assert resolved.is_relative_to(ROOT), f"{doc.name}: {target} leaves the repo"
                assert resolved.exists(), f"{doc.name}: {target} does not exist"
    assert "shared/design.md" not in (ROOT / "README.md").read_text()


def test_the_readme_starts_with_the_two_commands_and_the_quickstarts() -> None:
    text = (ROOT / "README.md").read_text()
    first_screen = "\n".join(text.splitlines()[:20])
    assert "make demo" in first_screen and "make test" in first_screen
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings[:3] == [
        "Tune your own script (locally)",
        "The same on a cluster (kind quickstart)",
        "From Python",
    ]
    assert "pip install kubetune" not in text


def test_the_katib_section_shows_the_converter_output_as_written(tmp_path: Path) -> None:
    experiment, tuningjob = blocks("Coming from Katib", "yaml")
    (tmp_path / "experiment.yaml").write_text(experiment)
    proc = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "convert", "katib", "experiment.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == tuningjob


def test_the_objectives_constraints_and_warm_start_examples_are_valid() -> None:
    import yaml
    from kubetune.spec import TuningJobSpec

    space = [
        {"name": "lr", "type": "float", "min": 1e-4, "max": 0.3, "scale": "log"},
        {"name": "units", "type": "int", "min": 16, "max": 256},
        {"name": "optimizer", "type": "categorical", "values": ["sgd", "adam"]},
    ]
    examples = blocks("Several objectives, constraints and warm start", "yaml")
    assert len(examples) == 3
    for example in examples:
        given = yaml.safe_load(example)["spec"]
        spec = {"parameters": space, "algorithm": {"name": "bayesian"}, **given}
        if "objective" not in spec and "objectives" not in spec:
            spec["objective"] = {"metric": "val_accuracy", "direction": "maximize"}
        TuningJobSpec.model_validate(spec)
