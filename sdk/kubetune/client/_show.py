"""Tables of jobs and trials (rich), the same for both backends, and the live progress table."""

from __future__ import annotations

import datetime
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..trialenv import short_value as short
from ._types import JobStatus, TrialInfo

STATE_STYLE = {
    "Running": "cyan",
    "Succeeded": "green",
    "Stopped": "yellow",
    "Failed": "red",
    "Pending": "dim",
}


def trials_table(
    trials: Sequence[TrialInfo], metric: str, maximize: bool, limit: int = 40, width: int = 120
) -> Table:
    """One row per trial (the last `limit`): state, params, latest step and value, best."""
    shown = list(trials)[-limit:]
    table = Table(expand=False, header_style="bold")
    widest = max((len(t.name) for t in shown), default=5)
    numbers = [max(4, len(c)) for c in ("step", metric, "best  ")]
    params_width = max(8, width - widest - 9 - sum(numbers) - 3 * 6 - 1)
    table.add_column("trial", no_wrap=True, min_width=widest)
    table.add_column("state", no_wrap=True, min_width=9)
    table.add_column("params", no_wrap=True, overflow="ellipsis", max_width=params_width)
    for column, w in zip(("step", metric, "best"), numbers, strict=True):
        table.add_column(column, no_wrap=True, justify="right", min_width=w)
    for t in shown:
        last = t.curve[-1] if t.curve else None
        table.add_row(
            t.name,
            Text(t.state.value, style=STATE_STYLE.get(t.state.value, "")),
            " ".join(f"{k}={short(v)}" for k, v in t.params.items()),  # one line per trial
            str(last.step) if last else "-",
            short(last.value) if last else "-",
            short(t.objective) if t.objective is not None else "-",
        )
    return table


def headline(status: JobStatus) -> Text:
    done = status.progress or "-"
    best = status.best
    return Text.assemble(
        (status.name, "bold"),
        f"  {status.phase.value}  {status.algorithm}  trials {done} done, "
        f"{status.trials.running} running",
        f"  best {status.metric} = {best.objective:.4g} ({best.name})" if best else "",
    )


def jobs_table(jobs: Sequence[JobStatus]) -> Table:
    table = Table(expand=False, header_style="bold")
    for column in ("name", "phase", "trials", "running", "best", "best trial", "age"):
        table.add_column(column, no_wrap=True)
    for j in jobs:
        table.add_row(
            j.name,
            Text(j.phase.value, style=STATE_STYLE.get(j.phase.value, "")),
            j.progress or "-",
            str(j.trials.running),
            short(j.best.objective) if j.best else "-",
            j.best.name if j.best else "-",
            _age(j.start_time),
        )
    return table


def status_view(status: JobStatus, trials: Sequence[TrialInfo], width: int) -> Group:
    """What `kubetune status` prints: headline, outcome, conditions and the trial table."""
    parts: list[Any] = [headline(status)]
    if status.reason or status.message:
        parts.append(Text(f"{status.reason or ''}: {status.message or ''}".strip(": ")))
    for c in status.conditions:
        parts.append(Text(f"  {c.type}={c.status} {c.reason} {c.message}".rstrip(), style="dim"))
    parts.append(trials_table(trials, status.metric, status.maximize, 40, width))
    return Group(*parts)


def _age(start: str | None) -> str:
    if not start:
        return "-"
    try:
        began = datetime.datetime.fromisoformat(start.replace("Z", "+00:00"))
    except ValueError:
        return "-"
    seconds = int((datetime.datetime.now(datetime.UTC) - began).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


class ProgressTable:
    """A live table on stderr, redrawn from each new status (at most every `interval` s)."""

    def __init__(self, trials: Callable[[], Sequence[TrialInfo]], interval: float) -> None:
        self.trials, self.interval = trials, interval
        self.console = Console(file=sys.stderr)
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)
        self.drawn = 0.0

    def __enter__(self) -> ProgressTable:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def update(self, status: JobStatus, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.drawn < self.interval and not status.finished:
            return
        self.drawn = now
        trials = self.trials()
        table = trials_table(trials, status.metric, status.maximize, 15, self.console.width)
        self.live.update(Group(headline(status), table))
