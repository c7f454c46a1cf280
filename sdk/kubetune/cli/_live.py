"""Live progress of a local run (a rich table), and the final summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from ..client._local import job_status, trial_info
from ..client._types import TrialInfo, logs_command, objective_text
from ..engine import Decision
from ..local import LocalRunner, RunResult, TrialRow
from ..spec import Objective
from ..trialenv import short_value as short
from ._tables import Progress


class LiveView:
    """`on_update` callback of LocalRunner: the job's progress as `kubetune wait` shows it (a
    live table on a terminal, one line per finished trial elsewhere)."""

    def __init__(self, console: Console, workdir: Path) -> None:
        self.console = console
        self.logs = logs_command(["--workdir", str(workdir)])
        self.progress: Progress | None = None
        self.rows: list[TrialRow] = []
        self.objective: Objective | None = None

    def __enter__(self) -> LiveView:
        self.progress = Progress(self._trials, 0.0, self.console, self.logs)
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def __call__(self, runner: LocalRunner, decision: Decision | None) -> None:
        job = runner.store.job()
        if self.progress is None or job is None:
            return
        self.rows = runner.store.trials()
        self.objective = runner.spec.objective
        self.progress.update(job_status(job, self.rows, running=True), force=True)

    def _trials(self) -> list[TrialInfo]:
        objective = self.objective
        return [trial_info(t, objective) for t in self.rows] if objective else []


def summary(result: RunResult) -> Text:
    lines = [f"\njob {result.name}: "]
    if result.finished:
        outcome = "succeeded" if result.succeeded else "failed"
        lines.append(f"{outcome} ({result.reason}) - {result.message}")
    else:
        lines.append("not finished (run the same command again to resume)")
    if result.best is not None:
        params = ", ".join(f"{k}={short(v)}" for k, v in result.best.params.items())
        objective = objective_text(result.best.objective)
        lines.append(f"\nbest trial {result.best.name}: objective {objective}")
        lines.append(f" at step {result.best.step}\n  {params}")
    failed = [t.name for t in result.trials if t.state == "failed"]
    if failed:
        hint = logs_command(["--workdir", str(result.workdir)]).replace("{trial}", failed[-1])
        lines.append(f"\n{len(failed)} trials failed; to see why: {hint}")
    lines.append(f"\nstate and logs: {result.workdir}")
    return Text("".join(lines))


def result_json(result: RunResult) -> str:
    return json.dumps(
        {
            "job": result.name,
            "finished": result.finished,
            "succeeded": result.succeeded,
            "reason": result.reason,
            "message": result.message,
            "best": result.best.model_dump(mode="json") if result.best else None,
            "workdir": str(result.workdir),
            "trials": [trial_json(t) for t in result.trials],
        },
        indent=2,
    )


def trial_json(t: TrialRow) -> dict[str, Any]:
    return {
        "name": t.name,
        "index": t.index,
        "state": t.state,
        "params": t.params,
        "budget": t.budget,
        "attempts": t.attempts,
        "exitCode": t.exit_code,
        "reason": t.stop_reason,
        "curve": [[s, v] for s, v in t.curve],
        "metrics": t.latest,
    }
