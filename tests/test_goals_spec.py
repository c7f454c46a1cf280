"""Several objectives, constraints and warm start in the spec: what parses, and each bad input's
field error (issue 32)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubetune.spec import Direction, SpecError, TuningJob

Mutation = Callable[[dict[str, Any]], None]

TWO = [
    {"metric": "val_accuracy", "direction": "maximize"},
    {"metric": "params_m", "direction": "minimize", "reference": 5.0},
]


def multi(base: dict[str, Any]) -> dict[str, Any]:
    spec = base["spec"]
    del spec["objective"]
    spec["objectives"] = [dict(g) for g in TWO]
    return base


def errors_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as info:
        TuningJob.parse(data)
    return [str(e) for e in info.value.errors]


def test_several_objectives_parse_and_round_trip(base_manifest: dict[str, Any]) -> None:
    data = multi(base_manifest)
    data["spec"]["additionalMetrics"] = ["gpu_gb"]
    data["spec"]["constraints"] = [{"metric": "gpu_gb", "max": 16}]
    data["spec"]["earlyStopping"] = {"name": "median", "metric": "params_m"}
    job = TuningJob.parse(data)
    spec = job.spec
    assert spec.multi_objective
    assert [g.metric for g in spec.goals] == ["val_accuracy", "params_m"]
    assert spec.metric_names == ["val_accuracy", "params_m", "gpu_gb"]
    # The curves and early stopping follow the objective early stopping judges.
    assert spec.objective.metric == "params_m"
    assert spec.objective.direction is Direction.minimize
    assert spec.objective.additional_metrics == ["val_accuracy", "gpu_gb"]
    dumped = job.to_manifest()
    assert "objective" not in dumped["spec"]
    assert TuningJob.parse(dumped) == job


def test_a_single_objective_reads_as_before(base_manifest: dict[str, Any]) -> None:
    base_manifest["spec"]["objective"]["additionalMetrics"] = ["latency_ms"]
    base_manifest["spec"]["constraints"] = [{"metric": "latency_ms", "max": 20}]
    spec = TuningJob.parse(base_manifest).spec
    assert not spec.multi_objective
    assert spec.objective.metric == "val_accuracy"
    assert spec.metric_names == ["val_accuracy", "latency_ms"]
    assert [(g.metric, g.direction) for g in spec.goals] == [("val_accuracy", "maximize")]
    assert TuningJob.parse(base_manifest).to_manifest()["spec"]["objective"]["metric"] == (
        "val_accuracy"
    )


def test_constraint_violation() -> None:
    from kubetune.spec import Constraint

    c = Constraint(metric="m", max=16.0)
    assert c.violation(15.0) == 0.0 and c.violation(18.0) == 2.0
    assert c.violation(None) == float("inf") and c.violation(float("nan")) == float("inf")
    ranged = Constraint(metric="m", min=1.0, max=2.0)
    assert ranged.violation(1.5) == 0.0 and ranged.violation(0.5) == 0.5


def _set(path: list[str | int], value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        node: Any = data["spec"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


BAD: list[tuple[str, Mutation, str, str]] = [
    (
        "both objective and objectives",
        lambda d: d["spec"].__setitem__("objective", {"metric": "a", "direction": "maximize"}),
        "spec.objective",
        "either objective",
    ),
    ("one entry in objectives", _set(["objectives"], TWO[:1]), "spec.objectives", "2 to 4"),
    (
        "five objectives",
        _set(["objectives"], [{"metric": f"m{i}", "direction": "minimize"} for i in range(5)]),
        "spec.objectives",
        "2 to 4",
    ),
    (
        "the same metric twice",
        _set(["objectives", 1, "metric"], "val_accuracy"),
        "spec.objectives[1].metric",
        "already objectives[0]",
    ),
    (
        "a constraint on an unknown metric",
        _set(["constraints"], [{"metric": "gpu_gb", "max": 16}]),
        "spec.constraints[0].metric",
        "'gpu_gb' is not an objective or additional metric",
    ),
    (
        "a constraint without bounds",
        _set(["constraints"], [{"metric": "params_m"}]),
        "spec.constraints[0].max",
        "give max, min or both",
    ),
    (
        "a constraint with min above max",
        _set(["constraints"], [{"metric": "params_m", "min": 3, "max": 2}]),
        "spec.constraints[0].min",
        "must be <= max",
    ),
    (
        "early stopping without its metric",
        _set(["earlyStopping"], {"name": "median"}),
        "spec.earlyStopping.metric",
        "name the one early stopping judges",
    ),
    (
        "early stopping on a metric that is no objective",
        _set(["earlyStopping"], {"name": "median", "metric": "loss"}),
        "spec.earlyStopping.metric",
        "'loss' is not an objective",
    ),
    (
        "an enqueued configuration outside the space",
        _set(
            ["warmStart"],
            {
                "enqueue": [
                    {"lr": 0.01, "layers": 9, "units": 32, "dropout": 0.1, "optimizer": "sgd"}
                ]
            },
        ),
        "spec.warmStart.enqueue[0].layers",
        "9 is outside [1, 4]",
    ),
    (
        "an enqueued configuration off the step",
        _set(
            ["warmStart"],
            {
                "enqueue": [
                    {"lr": 0.01, "layers": 2, "units": 32, "dropout": 0.15, "optimizer": "sgd"}
                ]
            },
        ),
        "spec.warmStart.enqueue[0].dropout",
        "not min + k * step",
    ),
    (
        "an enqueued configuration with an unknown choice",
        _set(
            ["warmStart"],
            {
                "enqueue": [
                    {"lr": 0.01, "layers": 2, "units": 32, "dropout": 0.1, "optimizer": "rmsprop"}
                ]
            },
        ),
        "spec.warmStart.enqueue[0].optimizer",
        "'rmsprop' is not one of",
    ),
    (
        "an enqueued configuration missing a parameter",
        _set(["warmStart"], {"enqueue": [{"lr": 0.01}]}),
        "spec.warmStart.enqueue[0]",
        "missing parameters ['layers', 'units', 'dropout', 'optimizer']",
    ),
    (
        "an enqueued configuration with an extra parameter",
        _set(
            ["warmStart"],
            {
                "enqueue": [
                    {
                        "lr": 0.01,
                        "layers": 2,
                        "units": 32,
                        "dropout": 0.1,
                        "optimizer": "sgd",
                        "momentum": 0.9,
                    }
                ]
            },
        ),
        "spec.warmStart.enqueue[0].momentum",
        "not a parameter of the space",
    ),
    (
        "a job named twice in fromJobs",
        _set(["warmStart"], {"fromJobs": ["a", "a"]}),
        "spec.warmStart.fromJobs[1]",
        "already fromJobs[0]",
    ),
    (
        "pbt with several objectives",
        _set(["algorithm"], {"name": "pbt", "settings": {"perturbationInterval": 1}}),
        "spec.algorithm.name",
        "pbt ranks members by one metric",
    ),
]


@pytest.mark.parametrize(("case", "mutate", "path", "reason"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_the_field(
    base_manifest: dict[str, Any], case: str, mutate: Mutation, path: str, reason: str
) -> None:
    data = multi(base_manifest)
    mutate(data)
    errors = errors_of(data)
    assert any(e.startswith(path) and reason in e for e in errors), errors


def test_additional_metrics_belong_to_the_objective_with_one(
    base_manifest: dict[str, Any],
) -> None:
    base_manifest["spec"]["additionalMetrics"] = ["gpu_gb"]
    errors = errors_of(base_manifest)
    assert any("objective.additionalMetrics" in e for e in errors), errors


def test_early_stopping_with_one_objective_judges_it(base_manifest: dict[str, Any]) -> None:
    base_manifest["spec"]["earlyStopping"] = {"name": "median", "metric": "val_accuracy"}
    TuningJob.parse(base_manifest)
    base_manifest["spec"]["earlyStopping"]["metric"] = "loss"
    errors = errors_of(base_manifest)
    assert any(e.startswith("spec.earlyStopping.metric") for e in errors), errors
