"""Tables of jobs and trials (rich), the same for both backends, and live progress.

Tables fit the terminal: the least useful columns go first (a trial's latest step and value, a
job's age), never the name, the state or the objective; parameters wrap or are cut last.
Failed trials show their reason, with the command that prints their log. When the output is not
a terminal, progress is one line per finished trial instead of a redrawn table.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..client._types import JobStatus, TrialInfo, objective_text
from ..spec import WarmStartStatus
from ..trialenv import short_value as short

STATE_STYLE = {
    "Running": "cyan",
    "Succeeded": "green",
    "Stopping": "yellow",
    "Stopped": "yellow",
    "Failed": "red",
    "Pending": "dim",
}
GAP = 3  # columns between two table columns (padding and the divider)
FLEX_WANT = 40  # narrower columns are dropped before the wrapping one (parameters) gets less
FLEX_MIN = 16  # the narrowest the wrapping column is allowed to get
REASON_MAX = 32  # a failure reason longer than this is cut in tables (the log has it all)
LIVE_ROWS = 15  # trials shown by a live table


@dataclass
class Column:
    header: str
    cells: Sequence[str | Text]
    justify: str = "left"
    keep: bool = False  # never dropped
    flex: bool = False  # takes the width left over, wrapping or cut
    cap: int | None = None  # at most this wide (cut with an ellipsis)
    width: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        natural = max([len(self.header)] + [len(str(c)) for c in self.cells])
        self.width = min(natural, self.cap) if self.cap else natural


def fit(columns: list[Column], drop_first: Sequence[str], width: int) -> list[Column]:
    """The columns that fit `width`: drop those named in `drop_first`, in order, while the
    flexible column would get less than FLEX_WANT; it then gets what is left (at least
    FLEX_MIN, at most what it needs)."""
    shown = list(columns)

    def needed(flex: int) -> int:
        fixed = sum(min(c.width, flex) if c.flex else c.width for c in shown)
        return fixed + GAP * (len(shown) - 1)

    for header in drop_first:
        if needed(FLEX_WANT) <= width:
            break
        shown = [c for c in shown if c.header != header or c.keep]
    for c in shown:
        if c.flex:
            c.width = max(FLEX_MIN, min(c.width, width - needed(0)))
    return shown


def render(columns: list[Column], wrap: bool) -> Table:
    table = Table(
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold", expand=False
    )
    for c in columns:
        table.add_column(
            c.header,
            justify=c.justify,  # type: ignore[arg-type]
            width=c.width,
            no_wrap=not (c.flex and wrap),
            overflow="fold" if c.flex and wrap else "ellipsis",
        )
    for row in zip(*(c.cells for c in columns), strict=True):
        table.add_row(*row)
    return table


def trials_table(
    trials: Sequence[TrialInfo],
    metric: str,
    width: int,
    limit: int | None = None,
    wrap: bool = True,
    logs: str | None = None,
) -> Group:
    """One row per trial (the last `limit`): state, objective, parameters, the latest step and
    value, and a failed trial's reason. Below: how many rows are hidden, and for failed trials
    the command that prints a log (`logs`, with {trial} in it)."""
    shown = list(trials)[-limit:] if limit else list(trials)
    failed = [t for t in shown if t.state.phase == "Failed"]
    last = [t.curve[-1] if t.curve else None for t in shown]
    columns = [
        Column("trial", [t.name for t in shown], keep=True),
        Column("state", [_state(_phase(t)) for t in shown], keep=True),
        Column(metric, [objective_text(t.objective) for t in shown], "right", keep=True),
        Column("step", [str(p.step) if p else "-" for p in last], "right"),
        Column("last", [short(p.value) if p else "-" for p in last], "right"),
    ]
    if failed:
        reasons = [(t.reason or "failed") if t in failed else "" for t in shown]
        columns.append(Column("reason", reasons, keep=True, cap=REASON_MAX))
    if any(t.continues for t in shown):  # lineage: the checkpoint each trial started from
        lineage = [f"← {t.continues}@{t.resume_step}" if t.continues else "" for t in shown]
        columns.append(Column("from", lineage))
    params = [" ".join(f"{k}={short(v)}" for k, v in t.params.items()) for t in shown]
    columns.append(Column("params", params, flex=True))
    parts: list[RenderableType] = [render(fit(columns, ("last", "step"), width), wrap)]
    hidden = len(trials) - len(shown)
    if hidden:
        parts.append(Text(f"{hidden} earlier trials not shown", style="dim"))
    if failed and logs:
        example = logs.replace("{trial}", failed[-1].name)
        parts.append(Text(f"{len(failed)} failed; to see why: {example}", style="red"))
    return Group(*parts)


def _phase(trial: TrialInfo) -> str:
    """The trial's phase, marked when it breaks a constraint or runs an enqueued configuration."""
    marks = [
        m for m, on in (("enqueued", trial.enqueued), ("infeasible", trial.feasible is False)) if on
    ]
    return f"{trial.state.phase} ({', '.join(marks)})" if marks else trial.state.phase


def _state(value: str) -> Text:
    return Text(value, style=STATE_STYLE.get(value.split(" ")[0], ""))


def front_table(status: JobStatus) -> str:
    """The Pareto front as aligned plain text: a line saying how many trials are on it (and
    the hypervolume), then one row per trial: its objective values and parameters."""
    front = status.pareto_front or []
    names = list(front[0].values) if front else []
    rows = [["trial", *names, "params"]]
    for t in front:
        params = " ".join(f"{k}={short(v)}" for k, v in t.params.items())
        rows.append([t.name, *(short(t.values.get(n)) for n in names), params])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]) for r in rows
    ]
    volume = f", hypervolume {short(status.hypervolume)}" if status.hypervolume is not None else ""
    size = status.pareto_front_size or 0
    shown = f" (the {len(front)} most spread shown)" if size > len(front) else ""
    head = f"{status.name}: {size} trials on the Pareto front{shown}{volume}"
    return "\n".join([head, *(line.rstrip() for line in lines)]) + "\n"


def best_text(status: JobStatus) -> str:
    """The best trial's value, or with several objectives the size of the front."""
    if status.pareto_front is not None:
        return f"front {status.pareto_front_size or 0}"
    return objective_text(status.best.objective if status.best else None)


def headline(status: JobStatus) -> Text:
    best = status.best
    if status.pareto_front is not None:
        return Text.assemble(
            (status.name, "bold"),
            f"  {status.phase.value}  {status.algorithm}  trials {status.progress or '-'} done, "
            f"{status.trials.running} running  Pareto front: {status.pareto_front_size} trials",
        )
    return Text.assemble(
        (status.name, "bold"),
        f"  {status.phase.value}  {status.algorithm}  trials {status.progress or '-'} done, "
        f"{status.trials.running} running",
        f"  best {status.metric} = {objective_text(best.objective)} ({best.name})" if best else "",
    )


def jobs_table(jobs: Sequence[JobStatus], width: int) -> Table:
    """One row per job; at 80 columns the age, the running count and the best trial's name
    give way first."""
    columns = [
        Column("name", [j.name for j in jobs], keep=True),
        Column("phase", [_state(j.phase.value) for j in jobs], keep=True),
        Column("trials", [j.progress or "-" for j in jobs], "right", keep=True),
        Column("running", [str(j.trials.running) for j in jobs], "right"),
        Column("metric", [j.metric for j in jobs]),
        Column("best", [best_text(j) for j in jobs], "right", keep=True),
        Column("best trial", [j.best.name if j.best else "-" for j in jobs]),
        Column("algorithm", [j.algorithm for j in jobs]),
        Column("age", [_age(j.start_time) for j in jobs], "right"),
    ]
    drop = ("age", "algorithm", "running", "best trial", "metric")
    return render(fit(columns, drop, width), wrap=False)


def status_view(
    status: JobStatus, trials: Sequence[TrialInfo], width: int, logs: str | None = None
) -> Group:
    """What `kubetune status` prints: headline, outcome, conditions and the trial table."""
    parts: list[Any] = [headline(status)]
    if status.reason or status.message:
        parts.append(Text(f"{status.reason or ''}: {status.message or ''}".strip(": ")))
    if status.warm_start is not None:
        parts.append(Text(warm_text(status.warm_start)))
    for c in status.conditions:
        parts.append(Text(f"  {c.type}={c.status} {c.reason} {c.message}".rstrip(), style="dim"))
    parts.append(trials_table(trials, status.metric, width, 40, logs=logs))
    return Group(*parts)


def warm_text(warm: WarmStartStatus) -> str:
    """What the warm start brought in, in one line."""
    fed = "result feeds" if warm.points == 1 else "results feed"
    text = f"warm start: {warm.points} earlier {fed} the model"
    if warm.left_out:
        text += f", {warm.left_out} left out"
    if warm.enqueued:
        text += f", {warm.enqueued} trial{'s' if warm.enqueued > 1 else ''} enqueued"
    return text


def finished_line(trial: TrialInfo, status: JobStatus) -> str:
    """One finished trial, for progress that is not a terminal: count, name, state, objective,
    a failure's reason or a new best, and the parameters."""
    text = f"[{status.progress}] {trial.name}  {trial.state.phase}"
    text += f"  {status.metric}={objective_text(trial.objective)}"
    if trial.state.phase == "Failed":
        text += f"  ({trial.reason or 'failed'})"
    elif status.best is not None and status.best.name == trial.name:
        text += "  (best so far)"
    params = " ".join(f"{k}={short(v)}" for k, v in trial.params.items())
    return f"{text}  {params}"


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


class Progress:
    """Live progress of one job: on a terminal a table redrawn at most every `interval` s; on
    anything else one line per finished trial, as it finishes, and the failures' hint once."""

    def __init__(
        self,
        trials: Callable[[], Sequence[TrialInfo]],
        interval: float,
        console: Console,
        logs: str | None = None,
    ) -> None:
        self.trials, self.interval, self.logs = trials, interval, logs
        self.console = console
        self.live = (
            Live(console=self.console, refresh_per_second=4, transient=False)
            if self.console.is_terminal
            else None
        )
        self.drawn = 0.0
        self.printed: set[str] = set()
        self.hinted = False
        self.started = False

    def __enter__(self) -> Progress:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def update(self, status: JobStatus, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.drawn < self.interval and not status.finished:
            return
        self.drawn = now
        trials = self.trials()
        if self.live is not None:
            table = trials_table(
                trials, status.metric, self.console.width, LIVE_ROWS, wrap=False, logs=self.logs
            )
            self.live.update(Group(headline(status), table))
            return
        if not self.started:
            self.started = True
            self.console.print(
                f"{status.name}: {status.algorithm}, {status.max_trials} trials, "
                f"{status.parallelism} at a time; one line per finished trial",
                highlight=False,
                soft_wrap=True,
            )
        for t in trials:
            if t.finished and t.name not in self.printed:
                self.printed.add(t.name)
                self.console.print(finished_line(t, status), highlight=False, soft_wrap=True)
                if t.state.phase == "Failed" and self.logs and not self.hinted:
                    self.hinted = True
                    self.console.print(f"  to see why: {self.logs.replace('{trial}', t.name)}")
