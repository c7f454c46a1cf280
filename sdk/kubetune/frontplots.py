"""Plots of a job with several objectives (matplotlib): the Pareto front (2-D, or one panel per
pair of objectives) and the hypervolume after each trial. Used by `kubetune plot` and reports
through `plots.figures`."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from .client._types import TrialInfo
from .engine import TrialView
from .front import feasible, goal_values, pareto_front, reference_losses
from .pareto import hypervolume, to_losses
from .spec import TrialState, TuningJobSpec


def _views(trials: Sequence[TrialInfo]) -> list[TrialView]:
    return [TrialView(t.name, t.index, t.params, t.state, metrics=t.metrics) for t in trials]


def _label(spec: TuningJobSpec, j: int) -> str:
    goal = spec.goals[j]
    return f"{goal.metric} ({'lower' if goal.minimize else 'higher'} is better)"


def pareto_figure(plt: Any, spec: TuningJobSpec, trials: Sequence[TrialInfo]) -> Any:
    """Every trial that reported all objectives: feasible ones grey, infeasible ones as red
    crosses, the front as a staircase of named points. One panel per pair of objectives."""
    views = _views(trials)
    on = {t.name for t in pareto_front(spec, views).trials}
    rows = [(t, goal_values(spec, t.metrics)) for t in views if t.state is not TrialState.failed]
    known = [(t, v) for t, v in rows if v is not None]
    pairs = list(itertools.combinations(range(len(spec.goals)), 2))
    cols = min(3, len(pairs))
    fig, axes = plt.subplots(
        (len(pairs) + cols - 1) // cols, cols, figsize=(6 * cols, 5), squeeze=False
    )
    for ax in axes.flat[len(pairs) :]:
        ax.set_visible(False)
    for ax, (a, b) in zip(axes.flat, pairs, strict=False):
        groups = {
            "feasible": [v for t, v in known if t.name not in on and feasible(spec, t.metrics)],
            "infeasible": [v for t, v in known if not feasible(spec, t.metrics)],
            "front": [v for t, v in known if t.name in on],
        }
        style: dict[str, dict[str, Any]] = {
            "feasible": {"color": "0.6", "marker": "o", "label": "trial"},
            "infeasible": {"color": "tab:red", "marker": "x", "label": "infeasible"},
            "front": {"color": "tab:blue", "marker": "o", "label": "Pareto front", "zorder": 3},
        }
        for key, values in groups.items():
            if values:
                xs, ys = zip(*((v[a], v[b]) for v in values), strict=True)
                ax.scatter(xs, ys, s=28, linestyle="none", **style[key])
        if len(spec.goals) == 2 and groups["front"]:
            # the staircase the front attains: by the first objective's loss, best first
            first = 1.0 if spec.goals[a].minimize else -1.0
            ordered = sorted(((v[a], v[b]) for v in groups["front"]), key=lambda p: first * p[0])
            ax.step(*zip(*ordered, strict=True), where="post", color="tab:blue", alpha=0.5)
        for t, v in known:
            if t.name in on and len(on) <= 12:
                ax.annotate(
                    t.name, (v[a], v[b]), fontsize=7, xytext=(3, 3), textcoords="offset points"
                )
        ax.set_xlabel(_label(spec, a))
        ax.set_ylabel(_label(spec, b))
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def hypervolume_history(
    spec: TuningJobSpec, trials: Sequence[TrialInfo]
) -> list[tuple[int, float]]:
    """(trial index, hypervolume of the front of the trials up to it), with the reference point
    of the whole job, so that the values compare."""
    views = sorted(_views(trials), key=lambda t: t.index)
    minimize = [g.minimize for g in spec.goals]
    counted = [
        (t.index, v)
        for t in views
        if t.state is not TrialState.failed
        and feasible(spec, t.metrics)
        and (v := goal_values(spec, t.metrics)) is not None
    ]
    if not counted:
        return []
    losses = to_losses(np.array([v for _, v in counted]), minimize)
    reference = reference_losses(spec, losses)
    return [
        (index, hypervolume(losses[: k + 1], reference)) for k, (index, _) in enumerate(counted)
    ]


def hypervolume_figure(plt: Any, spec: TuningJobSpec, trials: Sequence[TrialInfo]) -> Any:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    history = hypervolume_history(spec, trials)
    if history:
        xs, ys = zip(*history, strict=True)
        ax.step(xs, ys, where="post", color="tab:blue", label="hypervolume of the front so far")
        ax.scatter(xs, ys, s=12, color="tab:blue")
    ax.set_xlabel("trial")
    ax.set_ylabel("hypervolume (higher is better)")
    ax.grid(alpha=0.3)
    if history:
        ax.legend(loc="lower right", fontsize=8)
    return fig
