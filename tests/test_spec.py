"""Spec models: valid manifests parse, invalid ones fail with field paths and reasons."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from kubetune.cli import main
from kubetune.spec import (
    AshaStopping,
    BayesianAlgorithm,
    Direction,
    SpecError,
    TuningJob,
    TuningJobSpec,
)

from .conftest import EXAMPLES, INVALID


def errors_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as info:
        TuningJob.parse(data)
    return [str(e) for e in info.value.errors]


def test_examples_parse_with_typed_settings() -> None:
    job = TuningJob.from_yaml(EXAMPLES / "digits-bayesian.yaml")
    assert job.name == "digits-bayesian"
    assert isinstance(job.spec.algorithm, BayesianAlgorithm)
    assert job.spec.algorithm.settings.initial_points == 8
    assert isinstance(job.spec.early_stopping, AshaStopping)
    assert job.spec.early_stopping.settings.reduction_factor == 3
    assert job.spec.objective.direction is Direction.maximize
    assert job.spec.objective.additional_metrics == ["val_loss"]
    assert job.spec.trial_template is not None
    assert job.spec.trial_template.primary()["name"] == "trainer"
    for path in EXAMPLES.glob("*.yaml"):
        TuningJob.from_yaml(path)


def test_manifest_round_trips_in_camel_case(base_manifest: dict[str, Any]) -> None:
    base_manifest["spec"]["maxFailedTrials"] = 2
    job = TuningJob.parse(base_manifest)
    assert job.spec.max_failed_trials == 2
    dumped = job.to_manifest()
    assert dumped["spec"]["maxFailedTrials"] == 2
    assert dumped["apiVersion"] == "kubetune.dev/v1alpha1"
    assert TuningJob.parse(dumped) == job


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda s: s["parameters"].__setitem__(
                1, {"name": "x", "type": "float", "min": 0.5, "max": 0.1}
            ),
            "spec.parameters[1].max: must be greater than min (got 0.1 <= 0.5)",
        ),
        (
            lambda s: s["parameters"].__setitem__(
                0, {"name": "lr", "type": "float", "min": 0, "max": 1, "scale": "log"}
            ),
            "spec.parameters[0].min: log scale needs a positive range",
        ),
        (
            lambda s: s["parameters"].append({"name": "lr", "type": "int", "min": 1, "max": 3}),
            "spec.parameters[5].name: duplicate parameter 'lr'",
        ),
        (
            lambda s: s["parameters"].__setitem__(2, {"name": "u", "type": "bogus"}),
            "spec.parameters[2].type: must be one of",
        ),
        (
            lambda s: s["parameters"].__setitem__(
                4, {"name": "o", "type": "categorical", "values": ["a", "a"]}
            ),
            "spec.parameters[4].values[1]: duplicate value 'a'",
        ),
        (
            lambda s: s["parameters"].__setitem__(
                4, {"name": "o", "type": "categorical", "values": ["a", True]}
            ),
            "spec.parameters[4].values[1]: must be a string or a number (got True)",
        ),
        (
            lambda s: s.__setitem__("algorithm", {"name": "grid"}),
            "spec.parameters[0].step: grid search needs a finite space",
        ),
        (
            lambda s: s.__setitem__("algorithm", {"name": "hyperband"}),
            "spec.resource: required by hyperband",
        ),
        (
            lambda s: s.__setitem__("earlyStopping", {"name": "asha"}),
            "spec.resource: required by asha",
        ),
        (
            lambda s: s.__setitem__("algorithm", {"name": "tpe"}),
            "spec.algorithm.name: must be one of",
        ),
        (
            lambda s: s.__setitem__("algorithm", {"name": "random", "settings": {"x": 1}}),
            "spec.algorithm.settings.x: unknown field",
        ),
        (
            lambda s: s.__setitem__("maxTrail", 3),
            "spec.maxTrail: unknown field (did you mean 'maxTrials'?)",
        ),
        (
            lambda s: s["parameters"][0].__setitem__("scael", "log"),
            "spec.parameters[0].scael: unknown field (did you mean 'scale'?)",
        ),
        (
            lambda s: s.__setitem__("earlyStopping", {"name": "asha", "settigns": {}}),
            "spec.earlyStopping.settigns: unknown field (did you mean 'settings'?)",
        ),
        (
            lambda s: s["objective"].__setitem__("direction", "up"),
            "spec.objective.direction: Input should be 'minimize' or 'maximize' (got 'up')",
        ),
        (
            lambda s: s.__setitem__("resource", {"name": "lr", "min": 1, "max": 3}),
            "spec.resource.name: 'lr' is also a parameter",
        ),
        (
            lambda s: s.__setitem__("parallelism", 0),
            "spec.parallelism: Input should be greater than or equal to 1 (got 0)",
        ),
        (
            lambda s: s.__setitem__("trialTemplate", {"spec": {"containers": []}}),
            "spec.trialTemplate.spec.containers: must be a non-empty list",
        ),
        (
            lambda s: s.__setitem__(
                "trialTemplate",
                {"spec": {"containers": [{"name": "a"}]}, "primaryContainer": "b"},
            ),
            "spec.trialTemplate.primaryContainer: no container named 'b'",
        ),
    ],
)
def test_invalid_specs_name_the_field(
    base_manifest: dict[str, Any], mutate: Any, expected: str
) -> None:
    mutate(base_manifest["spec"])
    errors = errors_of(base_manifest)
    assert any(e.startswith(expected) for e in errors), errors


def test_an_unknown_field_far_from_any_known_one_gets_no_guess(
    base_manifest: dict[str, Any],
) -> None:
    base_manifest["spec"]["zzz"] = 1
    assert "spec.zzz: unknown field" in errors_of(base_manifest)


def test_metadata_name_must_be_a_dns_label(base_manifest: dict[str, Any]) -> None:
    base_manifest["metadata"]["name"] = "Bad_Name"
    assert errors_of(base_manifest)[0].startswith("metadata.name: String should match pattern")


def test_every_problem_is_reported(base_manifest: dict[str, Any]) -> None:
    base_manifest["spec"]["maxTrials"] = 0
    base_manifest["spec"]["objective"]["direction"] = "up"
    assert len(errors_of(base_manifest)) == 2


def test_from_yaml_reports_syntax_errors_with_line(tmp_path: Any) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: TuningJob\nspec: [unclosed\n")
    with pytest.raises(SpecError, match="invalid YAML: line"):
        TuningJob.from_yaml(bad)
    with pytest.raises(SpecError, match="cannot read file"):
        TuningJob.from_yaml(tmp_path / "missing.yaml")


def test_from_yaml_picks_the_tuningjob_among_documents(tmp_path: Any) -> None:
    text = (EXAMPLES / "digits-grid.yaml").read_text()
    path = tmp_path / "multi.yaml"
    path.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: ml}\n---\n" + text)
    assert TuningJob.from_yaml(path).name == "digits-grid"


def test_space_size_and_finiteness() -> None:
    spec = TuningJob.from_yaml(EXAMPLES / "digits-grid.yaml").spec
    assert spec.is_finite() and spec.space_size() == 12
    assert TuningJob.from_yaml(EXAMPLES / "digits-random.yaml").spec.space_size() is None


def test_validate_cli_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    good = sorted(str(p) for p in EXAMPLES.glob("*.yaml"))
    assert main(["validate", *good]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(good) and all(": ok (TuningJob" in line for line in out)
    bad = str(INVALID / "several-errors.yaml")
    assert main(["validate", good[0], bad]) == 1
    lines = capsys.readouterr().out.splitlines()
    problems = [line for line in lines if line.startswith(bad)]
    assert len(problems) == 3
    assert f"{bad}: spec.objective.direction: Input should be" in problems[0]


def test_validate_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--json", str(INVALID / "bad-range.yaml")]) == 1
    result = yaml.safe_load(capsys.readouterr().out)
    assert result[0]["valid"] is False
    assert result[0]["errors"] == [
        "spec.parameters[1].max: must be greater than min (got 0.1 <= 0.5)"
    ]


# -- property tests -----------------------------------------------------------------------

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(lo=finite, hi=finite, log=st.booleans(), index=st.integers(0, 4))
def test_any_bad_float_range_is_rejected_with_its_path(
    lo: float, hi: float, log: bool, index: int
) -> None:
    valid = hi > lo and (not log or lo > 0)
    params: list[dict[str, Any]] = [
        {"name": f"p{i}", "type": "int", "min": 0, "max": 3} for i in range(5)
    ]
    params[index] = {
        "name": f"p{index}",
        "type": "float",
        "min": lo,
        "max": hi,
        "scale": "log" if log else "linear",
    }
    data = {
        "objective": {"metric": "m", "direction": "minimize"},
        "parameters": params,
        "algorithm": {"name": "random"},
    }
    if valid:
        TuningJobSpec.model_validate(copy.deepcopy(data))
        return
    errors = errors_of(
        {
            "apiVersion": "kubetune.dev/v1alpha1",
            "kind": "TuningJob",
            "metadata": {"name": "j"},
            "spec": data,
        }
    )
    assert len(errors) == 1
    assert errors[0].startswith(f"spec.parameters[{index}].m"), errors
