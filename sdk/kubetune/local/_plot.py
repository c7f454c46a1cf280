"""Plots of a run: optimization history and learning curves, as one PNG (matplotlib)."""

from __future__ import annotations

from pathlib import Path

from ._store import TrialRow

STATE_COLORS = {"succeeded": "tab:green", "stopped": "tab:orange", "failed": "tab:red"}


def plot_run(trials: list[TrialRow], objective: str, maximize: bool, out: Path, title: str) -> Path:
    """Left: each trial's objective and the best so far. Right: every trial's curve over steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (history, curves) = plt.subplots(1, 2, figsize=(12, 4.5))
    best_so_far: list[float] = []
    xs, ys, colors = [], [], []
    for t in trials:
        values = [v for _, v in t.curve]
        if not values:
            continue
        value = max(values) if maximize else min(values)
        xs.append(t.index)
        ys.append(value)
        colors.append(STATE_COLORS.get(t.state, "tab:blue"))
        previous = best_so_far[-1] if best_so_far else value
        best_so_far.append(max(previous, value) if maximize else min(previous, value))
        steps = [s for s, _ in t.curve]
        style = "-" if t.state == "succeeded" else "--"
        curves.plot(steps, values, style, color=colors[-1], alpha=0.7, linewidth=1)
    history.scatter(xs, ys, c=colors, s=18, zorder=3, label="trial objective")
    history.step(xs, best_so_far, where="post", color="black", label="best so far")
    history.set(xlabel="trial", ylabel=objective, title="optimization history")
    history.legend(loc="best")
    curves.set(xlabel="step", ylabel=objective, title="learning curves (dashed: stopped early)")
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
