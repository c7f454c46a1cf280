"""The plots explain themselves: real values on the axes, category names, a colour bar for every
colour scale, a legend for every line style, named curves and whole trial numbers."""

from __future__ import annotations

from typing import Any

import pytest
from kubetune.client._types import JobStatus, TrialInfo
from kubetune.plots import figures
from kubetune.spec import CurvePoint, TuningJob

from .conftest import EXAMPLES


@pytest.fixture(scope="module")
def plotted() -> dict[str, Any]:
    import matplotlib.pyplot as plt

    job = TuningJob.from_yaml(EXAMPLES / "digits-bayesian.yaml")  # log, int, categorical, ASHA
    trials = []
    for i in range(7):
        state = ("Succeeded", "Stopped", "Failed")[i % 3]
        params = {"lr": 10 ** (-4 + i / 2), "hidden_layers": 1 + i % 4, "units": 16 * (1 + i)}
        params |= {"dropout": 0.05 * i, "optimizer": ("sgd", "adam", "adamw")[i % 3], "epochs": 27}
        curve = [CurvePoint(step=s, value=0.1 * i + 0.01 * s) for s in range(1, 4 + 3 * (i % 2))]
        objective = max(p.value for p in curve)
        trials.append(
            TrialInfo(name=f"d-{i}", index=i, params=params, state=state, curve=curve,
                      objective=objective, reason="exit code 1" if state == "Failed" else None)
        )  # fmt: skip
    best = max((t for t in trials if t.state.phase != "Failed"), key=lambda t: t.objective or 0)
    status = JobStatus(
        name="d",
        phase="Succeeded",
        algorithm="bayesian",
        metric="val_accuracy",
        direction="maximize",
        max_trials=7,
        parallelism=1,
        best_trial={"name": best.name, "params": best.params, "objective": best.objective},
    )
    figs = dict(figures(job.spec, status, trials))
    for fig in figs.values():
        fig.canvas.draw()
    yield figs
    for fig in figs.values():
        plt.close(fig)


def texts(fig: Any) -> set[str]:
    found = {t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text"))}
    return {t for t in found if t}


def test_history_has_whole_trial_numbers_and_a_legend_for_each_colour(plotted: Any) -> None:
    ax = plotted["history"].axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert ticks and all(t.lstrip("\N{MINUS SIGN}-").isdigit() for t in ticks), ticks
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["trial (finished)", "trial (stopped early)", "best so far"]
    assert "best: d-6\nval_accuracy=0.63" in texts(plotted["history"])


def test_learning_curves_are_named_and_their_styles_explained(plotted: Any) -> None:
    ax = plotted["curves"].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["finished", "stopped early", "failed", "rung (trials compared)"]
    assert {f"#{i}" for i in range(7)} <= texts(plotted["curves"])


def test_parallel_coordinates_show_real_values_categories_and_a_colour_bar(plotted: Any) -> None:
    fig = plotted["parallel"]
    assert len(fig.axes) == 2  # the plot and its colour bar
    assert fig.axes[1].get_ylabel() == "val_accuracy (higher is better)"
    shown = texts(fig)
    assert {"sgd", "adam", "adamw"} <= shown  # category names
    assert {"0.0001", "0.3", "16", "256", "1", "4"} <= shown  # real bounds of lr, units, layers
    assert len([t for t in shown if t in {"1", "2", "3", "4"}]) == 4  # no repeated int label
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks[0] == "lr (log)" and ticks[-1] == "val_accuracy"


def test_slices_explain_their_colours_and_keep_log_ticks_apart(plotted: Any) -> None:
    fig = plotted["slices"]
    bar = fig.axes[-1]
    assert bar.get_ylabel() == "trial number (colour: when it ran)"
    units = next(ax for ax in fig.axes if ax.get_xlabel() == "units (log scale)")
    ticks = [t.get_text() for t in units.get_xticklabels(minor=True) if t.get_text()]
    assert ticks == []  # no minor labels to overlap the major ones
    optimizer = next(ax for ax in fig.axes if ax.get_xlabel() == "optimizer")
    assert [t.get_text() for t in optimizer.get_xticklabels()] == ["sgd", "adam", "adamw"]
