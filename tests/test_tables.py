"""Tables at 80 columns keep the point of the table: the name, the state and the objective are
never cut, the least useful columns go first, parameters wrap, hidden rows are counted, and a
failed trial's reason is shown with the command that prints its log."""

from __future__ import annotations

import io

from kubetune.cli._tables import jobs_table, trials_table
from kubetune.client._types import JobStatus, TrialInfo
from kubetune.spec import CurvePoint
from rich.console import Console, RenderableType

PARAMS = {
    "learning_rate": 0.000338,
    "hidden_layers": 3,
    "units_per_layer": 239,
    "dropout": 0.154,
    "optimizer": "adamw",
    "weight_decay": 1.5e-05,
}


def shown(renderable: RenderableType, width: int = 80, cut: bool = False) -> list[str]:
    """The lines printed at `width`; only with `cut` may a cell end in an ellipsis."""
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    lines = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert all(len(line.rstrip()) <= width for line in lines), lines
    assert cut or not any("…" in line for line in lines), lines
    return lines


def trial(i: int, state: str = "Succeeded", reason: str | None = None) -> TrialInfo:
    curve = [CurvePoint(step=s, value=0.9 + 0.001 * i + 0.0001 * s) for s in range(1, 28)]
    return TrialInfo(
        name=f"digits-bayesian-{i}",
        index=i,
        params=PARAMS,
        state=state,
        reason=reason,
        objective=0.9800000190734863 if i == 5 else max(p.value for p in curve),
        curve=curve,
    )


def test_the_trials_table_keeps_name_state_objective_and_every_parameter() -> None:
    lines = shown(trials_table([trial(i) for i in range(20)], "val_accuracy", 80))
    assert lines[0].split() == ["trial", "state", "val_accuracy", "params"]  # step, last dropped
    text = " ".join(lines)
    assert all(f"{k}=" in text for k in PARAMS)  # wrapped, not cut
    assert "digits-bayesian-5 Succeeded 0.98 learning_rate=0.000338" in " ".join(text.split())
    wide = shown(trials_table([trial(0)], "val_accuracy", 200), 200)
    assert wide[0].split() == ["trial", "state", "val_accuracy", "step", "last", "params"]


def test_a_live_table_says_how_many_trials_it_hides() -> None:
    table = trials_table([trial(i) for i in range(20)], "val_accuracy", 80, 15, wrap=False)
    lines = shown(table, cut=True)  # one line per trial: the parameters are cut, nothing else
    rows = [line for line in lines if line.startswith("digits-bayesian-")]
    assert all(row.split()[1:3] == ["Succeeded", "0.98" if "-5 " in row else row.split()[2]]
               for row in rows)  # fmt: skip
    assert all(row.index("…") > row.index("learning_rate=") for row in rows)
    assert [r.split()[0] for r in rows] == [f"digits-bayesian-{i}" for i in range(5, 20)]
    assert "5 earlier trials not shown" in lines


def test_failed_trials_show_their_reason_and_where_the_log_is() -> None:
    trials = [trial(0), trial(1, "Failed", "exit code 1"), trial(2, "Stopped", "early stopping")]
    logs = "kubetune logs {trial} --workdir .kubetune/demo"
    lines = shown(trials_table(trials, "val_accuracy", 80, logs=logs))
    assert lines[0].split()[:4] == ["trial", "state", "val_accuracy", "reason"]
    failed = next(line for line in lines if line.startswith("digits-bayesian-1"))
    assert "Failed" in failed and "exit code 1" in failed
    assert (
        lines[-1]
        == "1 failed; to see why: kubetune logs digits-bayesian-1 --workdir .kubetune/demo"
    )


def test_the_jobs_table_keeps_phase_progress_and_the_whole_best_value() -> None:
    job = JobStatus(
        name="digits-bayesian-with-a-long-name",
        phase="Running",
        algorithm="bayesian",
        metric="val_accuracy",
        direction="maximize",
        max_trials=200,
        parallelism=4,
        progress="120/200",
        best_trial={
            "name": "digits-bayesian-with-a-long-name-117",
            "params": {},
            "objective": 0.98125,
        },
        start_time="2026-01-01T00:00:00Z",
    )
    wide = shown(jobs_table([job], 200), 200)
    assert wide[0].split() == [
        "name", "phase", "trials", "running", "metric", "best", "best", "trial", "algorithm", "age"
    ]  # fmt: skip
    lines = shown(jobs_table([job], 80))  # age, algorithm, running and the best trial gave way
    assert lines[0].split() == ["name", "phase", "trials", "metric", "best"]
    assert lines[2].split() == [
        "digits-bayesian-with-a-long-name", "Running", "120/200", "val_accuracy", "0.98125"
    ]  # fmt: skip
    narrow = shown(jobs_table([job], 66), 66)
    assert narrow[0].split() == ["name", "phase", "trials", "best"]
