"""Live progress of a local run (a rich table), and the final summary."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from ..client._local import trial_info
from ..client._show import trials_table
from ..engine import Decision
from ..trialenv import short_value as short
from ._runner import LocalRunner, RunResult
from ._store import TrialRow


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
        infos = [trial_info(t, maximize) for t in trials]
        table = trials_table(infos, spec.objective.metric, maximize, 15, self.console.width)
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
