"""Live progress of a local run (a rich table), and the final summary."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..engine import Decision
from ..trialenv import short_value as short
from ._runner import LocalRunner, RunResult
from ._store import TrialRow

STATE_STYLE = {
    "running": "cyan",
    "stopping": "yellow",
    "succeeded": "green",
    "stopped": "yellow",
    "failed": "red",
    "interrupted": "magenta",
    "pending": "dim",
}


def trials_table(
    trials: list[TrialRow], objective: str, maximize: bool, limit: int = 40, width: int = 120
) -> Table:
    table = Table(expand=False, header_style="bold")
    widest = max((len(t.name) for t in trials[-limit:]), default=5)
    numbers = [max(4, len(c)) for c in ("step", objective, "best  ")]
    params_width = max(8, width - widest - 9 - sum(numbers) - 3 * 6 - 1)
    table.add_column("trial", no_wrap=True, min_width=widest)
    table.add_column("state", no_wrap=True, min_width=9)
    table.add_column("params", no_wrap=True, overflow="ellipsis", max_width=params_width)
    for column, w in zip(("step", objective, "best"), numbers, strict=True):
        table.add_column(column, no_wrap=True, justify="right", min_width=w)
    for t in trials[-limit:]:
        values = [v for _, v in t.curve]
        best = (max(values) if maximize else min(values)) if values else None
        step = str(t.curve[-1][0]) if t.curve else "-"
        table.add_row(
            t.name,
            Text(t.state, style=STATE_STYLE.get(t.state, "")),
            " ".join(f"{k}={short(v)}" for k, v in t.params.items()),  # one line per trial
            step,
            short(values[-1]) if values else "-",
            short(best) if best is not None else "-",
        )
    return table


class LiveView:
    """`on_update` callback of LocalRunner that redraws a table a few times a second."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live: Live | None = None

    def __enter__(self) -> LiveView:
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def __call__(self, runner: LocalRunner, decision: Decision | None) -> None:
        if self.live is None:
            return
        spec = runner.spec
        trials = runner.store.trials()
        done = sum(t.state in ("succeeded", "failed", "stopped") for t in trials)
        running = sum(t.state in ("running", "stopping") for t in trials)
        best = decision.best if decision else None
        head = Text.assemble(
            (f"{runner.job.name}", "bold"),
            f"  {spec.algorithm.name}  trials {done}/{spec.max_trials} done, {running} running",
            f"  best {spec.objective.metric} = {best.objective:.4g} ({best.name})" if best else "",
        )
        maximize = spec.objective.direction.value == "maximize"
        table = trials_table(trials, spec.objective.metric, maximize, 15, self.console.width)
        self.live.update(Group(head, table))


def summary(result: RunResult) -> Text:
    lines = [f"\njob {result.name}: "]
    if result.finished:
        outcome = "succeeded" if result.succeeded else "failed"
        lines.append(f"{outcome} ({result.reason}) - {result.message}")
    else:
        lines.append("not finished (run the same command again to resume)")
    if result.best is not None:
        params = ", ".join(f"{k}={short(v)}" for k, v in result.best.params.items())
        lines.append(f"\nbest trial {result.best.name}: objective {result.best.objective:.6g}")
        lines.append(f" at step {result.best.step}\n  {params}")
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
