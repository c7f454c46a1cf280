"""Bad input to the CLI: one clear line and exit 1 (or 2 for a wrong command line), never a
traceback, never unbounded output. Includes a hypothesis fuzz of the manifest loader."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubetune import cli
from kubetune.local import Store
from kubetune.spec import SpecError, TuningJob

from .conftest import EXAMPLES

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


def kubetune(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubetune.cli", *args], capture_output=True, text=True, timeout=60
    )


def one_clean_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_manifest_problems_are_one_line_each(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"kind: TuningJob\nmetadata: {name: \xff\xfe}\n")
    assert "not UTF-8 text (byte 33)" in one_clean_line(kubetune("run", str(binary)), 1)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    proc = kubetune("validate", str(bomb))
    assert proc.returncode == 1 and len(proc.stdout) < 10_000  # it was 226 MB
    assert f"{bomb}: b[0]: YAML alias to the anchor on line 1: not supported" in proc.stdout
    doc = (EXAMPLES / "digits-random.yaml").read_text()
    duplicated = tmp_path / "dup.yaml"
    duplicated.write_text(doc.replace("  maxTrials:", "  parallelism: 9\n  maxTrials:", 1))
    proc = kubetune("validate", str(duplicated))
    assert proc.returncode == 1 and "spec.parallelism: duplicate key on line" in proc.stdout


def test_placeholder_errors_are_all_reported(tmp_path: Path) -> None:
    data = yaml.safe_load((EXAMPLES / "digits-random.yaml").read_text())
    container = data["spec"]["trialTemplate"]["spec"]["containers"][0]
    container["args"] = ["--lr=${params.lr", "--x=${params.nope}", "--y=${params.other}"]
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    proc = kubetune("validate", str(path))
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 3, proc.stdout
    assert "args[0]: malformed placeholder '${params.lr'" in lines[0]
    assert "args[1]: ${params.nope} names no parameter" in lines[1]
    assert "args[2]: ${params.other} names no parameter" in lines[2]


def test_a_workdir_that_is_a_file_is_a_usage_error(tmp_path: Path) -> None:
    afile = tmp_path / "file"
    afile.write_text("")
    line = one_clean_line(
        kubetune("run", str(EXAMPLES / "digits-random.yaml"), "--workdir", str(afile)), 2
    )
    assert line == f"kubetune: --workdir {afile}: not a directory"
    # an empty work directory is not a wrong command line: exit 1, as for any missing job
    assert f"no job in {tmp_path}" in one_clean_line(
        kubetune("best", "--workdir", str(tmp_path)), 1
    )


def test_two_jobs_of_one_name_under_a_root_are_an_error_naming_both(tmp_path: Path) -> None:
    stored_run(tmp_path / "demo", 1, {0: [0.5]})
    stored_run(tmp_path / "digits-random", 1, {0: [0.9]})
    for args in (("best",), ("best", "digits-random"), ("list",)):
        line = one_clean_line(kubetune(*args, "--workdir", str(tmp_path)), 1)
        assert "two jobs named 'digits-random'" in line
        assert f"{tmp_path / 'demo'} and {tmp_path / 'digits-random'}" in line
    proc = kubetune("best", "--workdir", str(tmp_path / "demo"))  # one job's directory still works
    assert proc.returncode == 0 and proc.stdout.startswith("t-0  val_accuracy=0.5")


def stored_run(workdir: Path, trials: int, curves: dict[int, list[float]]) -> None:
    job = TuningJob.from_yaml(EXAMPLES / "digits-random.yaml")  # maximizes val_accuracy
    store = Store(workdir / "state.db", "val_accuracy")
    store.init_job(job.name, job.spec.model_dump(mode="json", by_alias=True))
    for i in range(trials):
        store.add_trial(f"t-{i}", i, {"lr": 0.01 * (i + 1)}, None, "token")
        store.set_state(f"t-{i}", "running", attempts=1)
        for step, value in enumerate(curves.get(i, []), 1):
            store.add_metrics(f"t-{i}", [(step, {"val_accuracy": value})])
        store.set_state(f"t-{i}", "succeeded")
    store.close()


def test_trials_without_the_manifest_use_the_stored_direction(tmp_path: Path) -> None:
    stored_run(tmp_path, 1, {0: [0.2, 0.9, 0.5]})
    proc = kubetune("trials", "--workdir", str(tmp_path))
    row = next(line for line in proc.stdout.splitlines() if "t-0" in line)
    assert row.split() == ["t-0", "Succeeded", "0.9", "3", "0.5", "lr=0.01"]  # best (not 0.2)


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    stored_run(tmp_path, 500, {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubetune.cli", "trials", "--workdir", str(tmp_path), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(100)  # `| head -c 100`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and err == ""


# -- fuzz ----------------------------------------------------------------------------------
VALID = yaml.safe_load((EXAMPLES / "digits-bayesian.yaml").read_text())
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["float", "int", "categorical", "grid", "asha", "${params.lr}", "-1", "1e309"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated_manifests(draw: st.DrawFn) -> Any:
    """The example manifest with a few subtrees replaced by random values."""
    doc = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        node: Any = doc
        while isinstance(node, dict | list) and node and draw(st.booleans()):
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            key = draw(st.sampled_from(keys))
            if not isinstance(node[key], dict | list) or draw(st.booleans()):
                node[key] = draw(VALUES)
                break
            node = node[key]
    return doc


def validate_in_process(data: bytes) -> tuple[int, str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "job.yaml"
        path.write_bytes(data)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["validate", str(path)])
            json_code = cli.main(["validate", "--json", str(path)])
        with contextlib.suppress(SpecError):
            TuningJob.from_yaml(path)
    assert code == json_code
    return code, out.getvalue() + err.getvalue()


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=3000))
def test_fuzz_random_bytes(data: bytes) -> None:
    code, output = validate_in_process(data)
    assert code in (0, 1) and len(output) < 1_000_000 and "Traceback" not in output


@FUZZ
@given(
    st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#%@`,? \n\t0123456789.")), max_size=400)
)
def test_fuzz_yaml_punctuation(text: str) -> None:
    code, output = validate_in_process(text.encode())
    assert code in (0, 1) and len(output) < 1_000_000


@FUZZ
@given(mutated_manifests())
def test_fuzz_mutated_manifests(doc: Any) -> None:
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:
        return
    code, output = validate_in_process(text.encode())
    assert code in (0, 1) and len(output) < 1_000_000
    if code == 0:
        json.loads(json.dumps(TuningJob.parse(doc).to_manifest()))


def test_version_is_the_installed_distribution() -> None:
    from importlib.metadata import version

    proc = kubetune("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"kubetune {version('kubetune')}"


def test_verbs_run_inside_a_job_directory_read_it_and_plot_into_it(tmp_path: Path) -> None:
    stored_run(tmp_path, 2, {0: [0.2, 0.9], 1: [0.4]})
    proc = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "trials"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},  # no kubeconfig anywhere
    )
    assert proc.returncode == 0, proc.stderr
    assert "t-0" in proc.stdout and "t-1" in proc.stdout
    plotted = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "plot", "--workdir", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    paths = [Path(p) for p in json.loads(plotted.stdout)]
    assert {p.parent for p in paths} == {tmp_path / "plots"}, paths  # not the current directory
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def test_json_mode_reports_errors_as_json(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no kubeconfig anywhere
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubetune.cli",
            "submit",
            "-f",
            str(EXAMPLES / "digits-random.yaml"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 1
    error = json.loads(proc.stdout)["error"]
    assert error["type"] == "ConfigError" and "no Kubernetes credentials" in error["message"]
    bad = tmp_path / "bad.yaml"
    bad.write_text((EXAMPLES / "digits-random.yaml").read_text().replace("maxTrials", "maxTrail"))
    proc = kubetune("submit", "-f", str(bad), "--workdir", str(tmp_path / "w"), "--json")
    error = json.loads(proc.stdout)["error"]
    assert proc.returncode == 1 and error["type"] == "SpecError"
    assert error["errors"] == ["spec.maxTrail: unknown field (did you mean 'maxTrials'?)"]
