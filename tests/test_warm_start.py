"""Warm start (issue 32): reading points from files, which points fit a new space, the search
using them and dropping them once the optimum has moved, and gRPC carrying them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubetune.engine import TrialView, decide
from kubetune.rpc.server import serve
from kubetune.rpc.suggestion import SuggestionClient
from kubetune.search import Observation, create_suggester
from kubetune.search._bayesian import BayesianSuggester
from kubetune.spec import SpecError, TuningJobSpec, WarmPoint, WarmStartStatus
from kubetune.warm import fitting, read_points


def spec_of(**extra: Any) -> TuningJobSpec:
    return TuningJobSpec.model_validate(
        {
            "objective": {"metric": "loss", "direction": "minimize", "additionalMetrics": ["ms"]},
            "parameters": [
                {"name": "x", "type": "float", "min": 0.0, "max": 1.0},
                {"name": "n", "type": "int", "min": 1, "max": 8},
                {"name": "opt", "type": "categorical", "values": ["sgd", "adam"]},
            ],
            "algorithm": {"name": "bayesian", "seed": 1, "settings": {"initialPoints": 4}},
            "maxTrials": 10,
            **extra,
        }
    )


def test_csv_and_json_files_become_typed_points(tmp_path: Path) -> None:
    spec = spec_of()
    (tmp_path / "a.csv").write_text("x,n,opt,loss,ms\n0.5,3,adam,0.25,12\n0.1,8,sgd,0.9,\n")
    points = read_points(tmp_path / "a.csv", spec)
    assert [p.params for p in points] == [
        {"x": 0.5, "n": 3, "opt": "adam"},
        {"x": 0.1, "n": 8, "opt": "sgd"},
    ]
    assert points[0].metrics == {"loss": 0.25, "ms": 12.0} and points[1].metrics == {"loss": 0.9}
    (tmp_path / "b.json").write_text(
        '[{"params": {"x": 0.5, "n": 3, "opt": "adam"}, "metrics": {"loss": 0.25}},'
        ' {"x": 0.2, "n": 2, "opt": "sgd", "loss": 0.4}]'
    )
    assert [p.metrics["loss"] for p in read_points(tmp_path / "b.json", spec)] == [0.25, 0.4]


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("c.csv", "x,n,loss\n0.5,3,0.2\n", "missing columns ['opt']"),
        ("d.csv", "x,n,opt,loss\nhalf,3,adam,0.2\n", "parameter x is not a number (got 'half')"),
        ("e.csv", "x,n,opt,loss\n0.5,3,adam,nan\n", "loss is not a finite number"),
        ("f.csv", "x,n,opt,loss\n0.5,3,adam,\n", "no value of the objective 'loss'"),
        ("g.json", "{", "not JSON"),
        ("h.txt", "x", "give a .csv or .json file"),
        ("missing.csv", None, "cannot read"),
    ],
)
def test_bad_files_are_field_errors(
    tmp_path: Path, name: str, text: str | None, reason: str
) -> None:
    if text is not None:
        (tmp_path / name).write_text(text)
    with pytest.raises(SpecError) as info:
        read_points(tmp_path / name, spec_of())
    assert str(info.value.errors[0]).startswith("spec.warmStart.fromFile")
    assert reason in str(info.value), str(info.value)


def test_points_that_do_not_fit_are_listed_with_the_reason() -> None:
    spec = spec_of(resource={"name": "epochs", "min": 1, "max": 9})
    points = [
        WarmPoint(params={"x": 0.5, "n": 3, "opt": "adam", "epochs": 9}, metrics={"loss": 0.2}),
        WarmPoint(params={"x": 1.5, "n": 3, "opt": "adam"}, metrics={"loss": 0.2}, source="j/j-1"),
        WarmPoint(params={"x": 0.5, "n": 3, "opt": "rmsprop"}, metrics={"loss": 0.2}, source="k"),
        WarmPoint(params={"x": 0.5, "n": 3}, metrics={"loss": 0.2}, source="f line 4"),
        WarmPoint(params={"x": 0.5, "n": 3, "opt": "sgd"}, metrics={"ms": 3.0}, source="g"),
    ]
    fit = fitting(spec, points)
    assert len(fit.observations) == 1  # the resource's budget is no parameter of the space
    assert fit.observations[0].prior and fit.observations[0].value == 0.2
    assert fit.skipped == [
        "j/j-1: outside the space (x: 1.5 is outside [0.0, 1.0])",
        "k: outside the space (opt: 'rmsprop' is not one of ['sgd', 'adam'])",
        "f line 4: parameters differ (extra [], missing ['opt'])",
        "g: no value of ['loss']",
    ]
    assert fit.left_out == 4


def quadratic(p: dict[str, Any], centre: float) -> float:
    return (float(p["x"]) - centre) ** 2 + 0.01 * (int(p["n"]) - 4) ** 2 + (p["opt"] == "sgd") * 0.1


def earlier_points(centre: float, count: int = 20) -> list[Observation]:
    spec = spec_of()
    suggester = create_suggester(spec)
    history: list[Observation] = []
    for _ in range(count):
        p = suggester.suggest(history, 1)[0]
        history.append(
            Observation(p, quadratic(p, centre), "succeeded", {"loss": quadratic(p, centre)})
        )
    points = [WarmPoint(params=dict(o.params), metrics=dict(o.metrics)) for o in history]
    return fitting(spec, points).observations


def test_earlier_results_skip_the_design_and_lead_to_the_optimum() -> None:
    prior = earlier_points(0.3)
    spec = spec_of(algorithm={"name": "bayesian", "seed": 9})
    first = create_suggester(spec).suggest(prior, 1)[0]
    cold = create_suggester(spec).suggest([], 1)[0]
    assert quadratic(first, 0.3) < 0.02 < quadratic(cold, 0.3)  # no random design point first


def test_earlier_results_are_dropped_once_the_optimum_has_moved() -> None:
    prior = earlier_points(0.2)
    suggester = BayesianSuggester(spec_of(algorithm={"name": "bayesian", "seed": 9}))

    def own(centre: float) -> list[Observation]:
        points = [{"x": x, "n": 4, "opt": "adam"} for x in (0.15, 0.25, 0.2)]
        return [
            Observation(p, quadratic(p, centre), "succeeded", {"loss": quadratic(p, centre)})
            for p in points
        ]

    same = suggester._without_stale_prior([*prior, *own(0.2)])
    assert sum(o.prior for o in same) == len(prior)
    moved = suggester._without_stale_prior([*prior, *own(0.9)])
    assert not any(o.prior for o in moved) and len(moved) == 3


def test_one_confident_miss_is_enough_to_drop_them() -> None:
    """The earlier optimum turns out bad while the rest agree: the median of the errors says
    nothing, their squared sum is far beyond chance."""
    prior = earlier_points(0.2)
    suggester = BayesianSuggester(spec_of(algorithm={"name": "bayesian", "seed": 9}))
    best = min(prior, key=lambda o: o.value)
    elsewhere = [{"x": x, "n": 4, "opt": "adam"} for x in (0.75, 0.85, 0.95)]
    agreeing = [Observation(p, quadratic(p, 0.2), "succeeded", {}) for p in elsewhere]
    kept = suggester._without_stale_prior([*prior, *agreeing])
    assert sum(o.prior for o in kept) == len(prior)
    missed = Observation(dict(best.params), best.value + 0.5, "succeeded", {})
    dropped = suggester._without_stale_prior([*prior, missed, *agreeing[:2]])
    assert not any(o.prior for o in dropped)


def test_decide_uses_prior_points_and_enqueued_configurations_first() -> None:
    spec = spec_of(
        parallelism=3,
        warmStart={
            "enqueue": [{"x": 0.9, "n": 1, "opt": "sgd"}, {"x": 0.1, "n": 2, "opt": "adam"}]
        },
    )
    prior = earlier_points(0.3)
    first = decide("j", spec, [], prior=prior)
    assert [s.params for s in first.start[:2]] == [dict(c) for c in spec.warm_start.enqueue]  # type: ignore[union-attr]
    assert len(first.start) == 3 and quadratic(first.start[2].params, 0.3) < 0.05
    views = [TrialView(s.name, s.index, s.params, "running") for s in first.start]
    later = decide("j", spec.model_copy(update={"parallelism": 4}), views, prior=prior)
    assert [s.index for s in later.start] == [3]  # the queue is used up; prior uses no trials


def test_grpc_carries_metrics_and_the_prior_flag() -> None:
    server = serve(suggestions=True)
    try:
        spec = TuningJobSpec.model_validate(
            {
                "objectives": [
                    {"metric": "loss", "direction": "minimize"},
                    {"metric": "ms", "direction": "minimize"},
                ],
                "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
                "algorithm": {"name": "bayesian", "seed": 3, "settings": {"initialPoints": 2}},
                "maxTrials": 1,
            }
        )
        history = [
            Observation({"x": x}, x, "succeeded", {"loss": x, "ms": 1 - x}, prior=True)
            for x in (0.1, 0.4, 0.6, 0.9)
        ]
        client = SuggestionClient(server.address)
        # maxTrials is 1 and four points came before: the prior uses up no trials
        assert client.suggest(spec, history, 1) == create_suggester(spec).suggest(history, 1)
        client.close()
    finally:
        server.stop(0)


def test_at_most_max_prior_points_feed_the_model_and_the_rest_are_counted() -> None:
    from kubetune.warm import MAX_PRIOR

    spec = spec_of()
    points = [
        WarmPoint(params={"x": i / (MAX_PRIOR + 5), "n": 3, "opt": "sgd"}, metrics={"loss": 1.0})
        for i in range(MAX_PRIOR + 5)
    ]
    fit = fitting(spec, points)
    assert len(fit.observations) == MAX_PRIOR
    assert fit.skipped == [f"5 more points: left out (the model takes at most {MAX_PRIOR})"]
    assert fit.left_out == 5
    with_queue = spec_of(warmStart={"enqueue": [{"x": 0.1, "n": 2, "opt": "adam"}]})
    assert fit.status(with_queue) == WarmStartStatus(points=MAX_PRIOR, left_out=5, enqueued=1)
    assert fit.status(spec) is None  # no warmStart: nothing to show
