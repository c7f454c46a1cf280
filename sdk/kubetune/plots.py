"""PNG plots of a job, from either backend (matplotlib): optimization history, learning curves
(stopped trials marked, ASHA/Hyperband rungs drawn), parallel coordinates, one slice plot per
parameter, and for jobs whose trials continue each other (PBT, Hyperband with checkpoints) the
schedule of each parameter over the steps of every lineage. Each plot explains itself: real values on every axis, a legend or a colour bar for
every colour and line style, trials named where lines would be ambiguous."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from .client._types import JobStatus, TrialInfo, objective_text
from .spec import (
    AshaStopping,
    CategoricalParameter,
    HyperbandAlgorithm,
    Parameter,
    Scale,
    TuningJobSpec,
)
from .stopping._asha import rungs as rung_positions
from .trialenv import short_value as short

STATE_COLORS = {
    "Succeeded": "tab:green",
    "Stopped": "tab:orange",
    "Stopping": "tab:orange",
    "Failed": "tab:red",
}
STATE_LABELS = {
    "Succeeded": "finished",
    "Stopped": "stopped early",
    "Stopping": "stopped early",
    "Running": "running",
}
LABELLED_CURVES = 10  # the best this-many learning curves are named at their ends
AXIS_TICKS = 5  # value labels on each numeric axis of the parallel-coordinates plot


def plot_job(
    spec: TuningJobSpec, status: JobStatus, trials: Sequence[TrialInfo], out: Path
) -> list[Path]:
    """Write history.png, curves.png, parallel.png and slices.png into `out` (with several
    objectives also pareto.png and hypervolume.png); their paths."""
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in figures(spec, status, trials):
        path = out / f"{name}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def figures(
    spec: TuningJobSpec, status: JobStatus, trials: Sequence[TrialInfo]
) -> Iterator[tuple[str, Any]]:
    """(name, matplotlib figure) of each plot; the caller closes them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [t for t in trials if t.objective is not None and t.state.phase != "Failed"]
    for name, title, draw in (
        ("history", "optimization history", _history),
        ("curves", "learning curves", _curves),
        ("parallel", "parallel coordinates", _parallel),
        ("slices", "objective by parameter", _slices),
    ):
        fig = draw(plt, spec, status, trials if name == "curves" else scored)
        fig.suptitle(f"{status.name}: {title}")
        yield name, fig
    if spec.multi_objective:
        from .frontplots import hypervolume_figure, pareto_figure

        fig = pareto_figure(plt, spec, trials)
        fig.suptitle(f"{status.name}: Pareto front", y=1.02)
        yield "pareto", fig
        fig = hypervolume_figure(plt, spec, trials)
        fig.suptitle(f"{status.name}: hypervolume history")
        yield "hypervolume", fig
    if any(t.continues for t in trials):
        fig = _lineages(plt, spec, status, trials)
        fig.suptitle(f"{status.name}: parameters over the steps of each lineage")
        yield "lineage", fig


def lineages(trials: Sequence[TrialInfo]) -> list[list[TrialInfo]]:
    """Each chain of trials that continue one another, root first, one per trial that nobody
    continues (a PBT member's whole life, a Hyperband configuration's promotions)."""
    by_name = {t.name: t for t in trials}
    continued = {t.continues for t in trials if t.continues}
    chains = []
    for leaf in sorted(trials, key=lambda t: t.index):
        if leaf.name in continued:
            continue
        chain, at = [leaf], leaf
        while at.continues and at.continues in by_name and len(chain) <= len(trials):
            at = by_name[at.continues]
            chain.append(at)
        chains.append(chain[::-1])
    return chains


def _lineages(plt: Any, spec: TuningJobSpec, status: JobStatus, trials: Sequence[TrialInfo]) -> Any:
    """One panel per parameter: its value over the steps of each lineage, coloured by the
    objective the lineage ended with; the best lineage drawn thick."""
    chains = [c for c in lineages(trials) if c[-1].objective is not None]
    params = spec.parameters
    fig, axes = plt.subplots(len(params), 1, figsize=(8, 2.4 * len(params) + 0.6), squeeze=False)
    values = [float(c[-1].objective) for c in chains if c[-1].objective is not None]
    norm = plt.Normalize(min(values, default=0.0), max(values, default=1.0))
    cmap = plt.get_cmap("viridis" if status.maximize else "viridis_r")
    best = status.best.name if status.best else None
    for p, ax in zip(params, (a[0] for a in axes), strict=True):
        for chain in chains:
            xs: list[float] = []
            ys: list[float] = []
            for t in chain:
                start = t.resume_step or 0
                end = t.curve[-1].step if t.curve else start
                y = _lineage_value(p, t.params.get(p.name))
                if y is not None:
                    xs += [start, end]
                    ys += [y, y]
            top = chain[-1].name == best
            color = cmap(norm(float(chain[-1].objective or 0.0)))
            ax.plot(xs, ys, color="black" if top else color, lw=2.5 if top else 1.2)
        if isinstance(p, CategoricalParameter):
            ticks = _axis_labels(p)
            ax.set_yticks([v for v, _ in ticks], [label for _, label in ticks])
        elif p.scale is Scale.log:
            ax.set_yscale("log")
        ax.set(ylabel=p.name)
    axes[-1][0].set_xlabel(spec.resource.name if spec.resource else "step")
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=[a[0] for a in axes])
    bar.set_label(f"{status.metric} at the end of the lineage")
    if best is not None:
        axes[0][0].plot([], [], color="black", lw=2.5, label=f"best: {best}")
        axes[0][0].legend(loc="best", fontsize=8)
    return fig


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


def _integer_ticks(axis: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _history(plt: Any, spec: TuningJobSpec, status: JobStatus, trials: Sequence[TrialInfo]) -> Any:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ordered = sorted(trials, key=lambda t: t.index)
    better = max if status.maximize else min
    best: list[float] = []
    for t in ordered:
        assert t.objective is not None
        best.append(better(best[-1], t.objective) if best else t.objective)
    for state, label in STATE_LABELS.items():
        shown = [t for t in ordered if t.state.phase == state]
        if shown:
            ax.scatter(
                [t.index for t in shown],
                [t.objective for t in shown],
                color=STATE_COLORS.get(state, "tab:blue"),
                s=24,
                zorder=3,
                label=f"trial ({label})",
            )
    enqueued = [t for t in ordered if t.enqueued]
    if enqueued:
        ax.scatter(
            [t.index for t in enqueued],
            [t.objective for t in enqueued],
            facecolors="none",
            edgecolors="black",
            s=90,
            zorder=4,
            label="enqueued (warm start)",
        )
    if ordered:
        ax.step([t.index for t in ordered], best, where="post", color="black", label="best so far")
    if status.best is not None:
        top = next((t for t in ordered if t.name == status.best.name), None)
        if top is not None:
            ax.annotate(
                f"best: {top.name}\n{status.metric}={objective_text(top.objective)}",
                (top.index, top.objective),
                xytext=(8, -24 if status.maximize else 12),
                textcoords="offset points",
                fontsize=8,
                arrowprops={"arrowstyle": "-", "color": "grey"},
            )
    _integer_ticks(ax.xaxis)
    ax.set(xlabel="trial number", ylabel=f"{status.metric} (objective)")
    ax.legend(loc="best", fontsize=8)
    return fig


def _curves(plt: Any, spec: TuningJobSpec, status: JobStatus, trials: Sequence[TrialInfo]) -> Any:
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(9, 5))
    drawn = [t for t in trials if t.curve]
    sign = -1.0 if status.maximize else 1.0
    ranked = sorted(
        (t for t in drawn if t.objective is not None), key=lambda t: sign * (t.objective or 0)
    )
    named = {t.name for t in ranked[:LABELLED_CURVES]}
    for t in drawn:
        steps = [p.step for p in t.curve]
        values = [p.value for p in t.curve]
        color = STATE_COLORS.get(t.state.phase, "tab:blue")
        stopped = t.state.phase in ("Stopping", "Stopped")
        ax.plot(steps, values, "--" if stopped else "-", color=color, alpha=0.7, linewidth=1)
        if stopped:
            ax.plot(steps[-1], values[-1], "x", color=color, markersize=6)
        if t.name in named:
            ax.annotate(
                f"#{t.index}",
                (steps[-1], values[-1]),
                xytext=(3, 0),
                textcoords="offset points",
                fontsize=7,
                color=color,
                va="center",
            )
    styles: dict[str, tuple[str, Literal["-", "--"], str]] = {  # label, line style, marker
        "Succeeded": ("finished", "-", ""),
        "Stopped": ("stopped early", "--", "x"),
        "Failed": ("failed", "-", ""),
        "Running": ("running", "-", ""),
    }
    states = {t.state.phase for t in drawn}
    handles = [
        Line2D([], [], color=STATE_COLORS.get(s, "tab:blue"), label=lab, linestyle=ls, marker=m)
        for s, (lab, ls, m) in styles.items()
        if s in states
    ]
    for rung in rungs(spec):
        ax.axvline(rung, color="grey", linestyle=":", linewidth=1)
    if rungs(spec):
        handles.append(Line2D([], [], color="grey", linestyle=":", label="rung (trials compared)"))
    shown = min(len(named), LABELLED_CURVES)
    ax.set(
        xlabel="step",
        ylabel=status.metric,
        title=f"#N at a line's end: trial N (the best {shown} are named)",
    )
    ax.title.set_fontsize(9)
    _integer_ticks(ax.xaxis)
    ax.legend(handles=handles, loc="best", fontsize=8)
    return fig


def _lineage_value(p: Parameter, value: Any) -> float | None:
    """A numeric parameter's own value; a categorical one's place on its axis."""
    if isinstance(p, CategoricalParameter):
        return _position(p, value)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return float(value)


def _position(p: Parameter, value: Any) -> float | None:
    """Where a value sits on its parameter's axis, in [0, 1] (None: not a value of it)."""
    if isinstance(p, CategoricalParameter):
        values = [str(v) for v in p.values]
        if str(value) not in values:
            return None
        return values.index(str(value)) / max(1, len(values) - 1) if len(values) > 1 else 0.5
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    lo, hi, v = float(p.min), float(p.max), float(value)
    if p.scale is Scale.log:
        lo, hi, v = math.log(lo), math.log(hi), math.log(v)
    return (v - lo) / (hi - lo) if hi > lo else 0.5


def _axis_labels(p: Parameter) -> list[tuple[float, str]]:
    """(position, text) of the value labels on a parameter's axis."""
    if isinstance(p, CategoricalParameter):
        return [(_position(p, v) or 0.0, str(v)) for v in p.values]
    lo, hi = float(p.min), float(p.max)
    values: list[float] = []
    for k in range(AXIS_TICKS):
        f = k / (AXIS_TICKS - 1)
        value = lo * (hi / lo) ** f if p.scale is Scale.log else lo + f * (hi - lo)
        value = float(round(value)) if _is_int(p) else value
        if value not in values:
            values.append(value)
    return [(_position(p, v) or 0.0, short(int(v) if _is_int(p) else v)) for v in values]


def _is_int(p: Parameter) -> bool:
    return getattr(p, "type", "") == "int"


def _parallel(plt: Any, spec: TuningJobSpec, status: JobStatus, trials: Sequence[TrialInfo]) -> Any:
    import matplotlib as mpl

    params = list(spec.parameters)
    fig, ax = plt.subplots(figsize=(max(7, 1.8 * (len(params) + 1)), 5))
    values = [t.objective for t in trials if t.objective is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    norm = mpl.colors.Normalize(lo, hi)
    cmap = plt.get_cmap("viridis" if status.maximize else "viridis_r")
    xs = list(range(len(params) + 1))
    sign = 1.0 if status.maximize else -1.0
    for t in sorted(trials, key=lambda t: sign * (t.objective or 0.0)):  # best drawn last
        assert t.objective is not None
        points = [(x, _position(p, t.params.get(p.name))) for x, p in zip(xs, params, strict=False)]
        points.append((xs[-1], norm(t.objective)))
        kept = [(x, y) for x, y in points if y is not None]
        ax.plot(*zip(*kept, strict=True), color=cmap(norm(t.objective)), alpha=0.8, linewidth=1.2)
    for x, p in zip(xs, params, strict=False):
        for y, text in _axis_labels(p):
            ax.text(x - 0.04, y, text, fontsize=7, ha="right", va="center")
    for k in range(AXIS_TICKS):
        f = k / (AXIS_TICKS - 1)
        ax.text(xs[-1] + 0.04, f, f"{lo + f * (hi - lo):.4g}", fontsize=7, va="center")
    scale = {p.name: " (log)" for p in params if getattr(p, "scale", None) is Scale.log}
    ax.set_xticks(xs, [p.name + scale.get(p.name, "") for p in params] + [status.metric])
    for x in xs:
        ax.axvline(x, color="grey", linewidth=0.8)
    ax.set(ylim=(-0.05, 1.05), xlim=(-0.6, xs[-1] + 0.5), yticks=[])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    bar = fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.02)
    bar.set_label(f"{status.metric} ({'higher' if status.maximize else 'lower'} is better)")
    return fig


def _slices(plt: Any, spec: TuningJobSpec, status: JobStatus, trials: Sequence[TrialInfo]) -> Any:
    import matplotlib as mpl

    params = list(spec.parameters)
    cols = min(3, len(params))
    rows = math.ceil(len(params) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.4 * cols, 3.6 * rows), squeeze=False, layout="constrained"
    )
    last = max((t.index for t in trials), default=1)
    norm = mpl.colors.Normalize(0, max(1, last))
    for ax, p in zip(axes.flat, params, strict=False):
        shown = [t for t in trials if _position(p, t.params.get(p.name)) is not None]
        ys = [t.objective for t in shown]
        if isinstance(p, CategoricalParameter):
            labels = [str(v) for v in p.values]
            xs: list[float] = [labels.index(str(t.params[p.name])) for t in shown]
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        else:
            xs = [float(t.params[p.name]) for t in shown]
            if p.scale is Scale.log:
                ax.set_xscale("log")
                decades = math.log10(float(p.max) / float(p.min))
                subs = (1.0, 2.0, 5.0) if decades < 2 else (1.0,)
                ax.xaxis.set_major_locator(mpl.ticker.LogLocator(subs=subs))
                ax.xaxis.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: short(v)))
                ax.xaxis.set_minor_formatter(mpl.ticker.NullFormatter())
            else:  # few ticks, so that labels never overlap
                ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(4, integer=_is_int(p)))
        colors = [t.index for t in shown]
        ax.scatter(xs, ys, c=colors, cmap="viridis", norm=norm, edgecolors="black", linewidths=0.3)
        ax.set(xlabel=p.name + (" (log scale)" if getattr(p, "scale", None) is Scale.log else ""))
        ax.set_ylabel(status.metric)
    for ax in list(axes.flat)[len(params) :]:
        ax.axis("off")
    bar = fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=axes, shrink=0.8)
    bar.set_label("trial number (colour: when it ran)")
    _integer_ticks(bar.ax.yaxis)
    return fig
