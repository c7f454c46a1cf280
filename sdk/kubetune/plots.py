"""PNG plots of a job, from either backend (matplotlib): optimization history, learning curves
(stopped trials marked, ASHA/Hyperband rungs drawn), parallel coordinates, and one slice plot per
parameter."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .client._types import JobStatus, TrialInfo
from .spec import (
    AshaStopping,
    CategoricalParameter,
    HyperbandAlgorithm,
    Parameter,
    Scale,
    TuningJobSpec,
)
from .stopping._asha import rungs as rung_positions

STATE_COLORS = {"Succeeded": "tab:green", "Stopped": "tab:orange", "Failed": "tab:red"}


def plot_job(
    spec: TuningJobSpec, status: JobStatus, trials: Sequence[TrialInfo], out: Path
) -> list[Path]:
    """Write history.png, curves.png, parallel.png and slices.png into `out`; their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    scored = [t for t in trials if t.objective is not None]
    written = []
    for name, draw in (
        ("history", _history),
        ("curves", _curves),
        ("parallel", _parallel),
        ("slices", _slices),
    ):
        fig = draw(plt, spec, status, trials if name == "curves" else scored)
        fig.suptitle(f"{status.name}: {name}")
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def rungs(spec: TuningJobSpec) -> list[float]:
    """The budgets at which ASHA or Hyperband compare trials (none for other rules)."""
    if spec.resource is None:
        return []
    if isinstance(spec.early_stopping, AshaStopping):
        eta = spec.early_stopping.settings.reduction_factor
    elif isinstance(spec.algorithm, HyperbandAlgorithm):
        eta = spec.algorithm.settings.reduction_factor
    else:
        return []
    return rung_positions(spec.resource.min, spec.resource.max, eta)


def _history(plt: Any, spec: TuningJobSpec, status: JobStatus, trials: Sequence[TrialInfo]) -> Any:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ordered = sorted(trials, key=lambda t: t.index)
    better = max if status.maximize else min
    best: list[float] = []
    for t in ordered:
        assert t.objective is not None
        best.append(better(best[-1], t.objective) if best else t.objective)
    ax.scatter(
        [t.index for t in ordered],
        [t.objective for t in ordered],
        c=[STATE_COLORS.get(t.state.value, "tab:blue") for t in ordered],
        s=22,
        zorder=3,
        label="trial objective",
    )
    ax.step([t.index for t in ordered], best, where="post", color="black", label="best so far")
    ax.set(xlabel="trial", ylabel=status.metric)
    ax.legend(loc="best")
    return fig


def _curves(plt: Any, spec: TuningJobSpec, status: JobStatus, trials: Sequence[TrialInfo]) -> Any:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for t in trials:
        if not t.curve:
            continue
        steps = [p.step for p in t.curve]
        values = [p.value for p in t.curve]
        color = STATE_COLORS.get(t.state.value, "tab:blue")
        stopped = t.state.value == "Stopped"
        ax.plot(steps, values, "--" if stopped else "-", color=color, alpha=0.7, linewidth=1)
        if stopped:
            ax.plot(steps[-1], values[-1], "x", color=color, markersize=6)
    for i, rung in enumerate(rungs(spec)):
        ax.axvline(rung, color="grey", linestyle=":", linewidth=1, label="rung" if i == 0 else None)
    ax.set(xlabel="step", ylabel=status.metric, title="dashed and x: stopped early")
    if rungs(spec):
        ax.legend(loc="best")
    return fig


def _position(p: Parameter, value: Any) -> float:
    """Where a value sits on its parameter's axis, in [0, 1]."""
    if isinstance(p, CategoricalParameter):
        values = list(p.values)
        return values.index(value) / max(1, len(values) - 1) if value in values else 0.5
    lo, hi, v = float(p.min), float(p.max), float(value)
    if p.scale is Scale.log:
        lo, hi, v = math.log(lo), math.log(hi), math.log(v)
    return (v - lo) / (hi - lo) if hi > lo else 0.5


def _parallel(plt: Any, spec: TuningJobSpec, status: JobStatus, trials: Sequence[TrialInfo]) -> Any:
    params = [p for p in spec.parameters]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * (len(params) + 1)), 4.5))
    values = [t.objective for t in trials if t.objective is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    cmap = plt.get_cmap("viridis" if status.maximize else "viridis_r")
    xs = list(range(len(params) + 1))
    sign = 1.0 if status.maximize else -1.0
    for t in sorted(trials, key=lambda t: sign * (t.objective or 0.0)):  # best drawn last
        assert t.objective is not None
        level = (t.objective - lo) / (hi - lo) if hi > lo else 0.5
        ys = [_position(p, t.params.get(p.name)) for p in params] + [level]
        ax.plot(xs, ys, color=cmap(level), alpha=0.8, linewidth=1.2)
    ax.set_xticks(xs, [p.name for p in params] + [status.metric])
    for x in xs:
        ax.axvline(x, color="grey", linewidth=0.8)
    ax.set(ylabel="position in range (log where the scale is log)", ylim=(-0.05, 1.05))
    return fig


def _slices(plt: Any, spec: TuningJobSpec, status: JobStatus, trials: Sequence[TrialInfo]) -> Any:
    params = list(spec.parameters)
    cols = min(3, len(params))
    rows = math.ceil(len(params) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, p in zip(axes.flat, params, strict=False):
        shown = [t for t in trials if p.name in t.params]
        ys = [t.objective for t in shown]
        colors = [t.index for t in shown]
        if isinstance(p, CategoricalParameter):
            labels = [str(v) for v in p.values]
            xs: list[float] = [labels.index(str(t.params[p.name])) for t in shown]
            ax.set_xticks(range(len(labels)), labels)
        else:
            xs = [float(t.params[p.name]) for t in shown]
            if p.scale is Scale.log:
                ax.set_xscale("log")
        ax.scatter(xs, ys, c=colors, cmap="Blues", edgecolors="black", linewidths=0.3, s=24)
        ax.set(xlabel=p.name, ylabel=status.metric)
    for ax in list(axes.flat)[len(params) :]:
        ax.axis("off")
    return fig
