"""`kubetune convert katib`: every field of our own Katib-format Experiments, checked one by one."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubetune.convert import convert_experiment, render
from kubetune.spec import TuningJob

DATA = Path(__file__).parent / "data" / "katib"
KUBETUNE = [sys.executable, "-m", "kubetune.cli"]


def experiment(**spec: Any) -> dict[str, Any]:
    """A minimal valid Experiment (random search, one double, a Pod trial), with `spec` over it."""
    base: dict[str, Any] = {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "exp"},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
            "algorithm": {"algorithmName": "random"},
            "maxTrialCount": 4,
            "parameters": [
                {
                    "name": "lr",
                    "parameterType": "double",
                    "feasibleSpace": {"min": "0.01", "max": "0.1"},
                }
            ],
            "trialTemplate": {
                "trialParameters": [{"name": "learningRate", "reference": "lr"}],
                "trialSpec": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "spec": {
                        "containers": [
                            {
                                "name": "main",
                                "image": "trainer",
                                "args": ["--lr=${trialParameters.learningRate}"],
                            }
                        ]
                    },
                },
            },
        },
    }
    base["spec"].update(copy.deepcopy(spec))
    return base


def converted(doc: dict[str, Any]) -> dict[str, Any]:
    """The TuningJob spec of a conversion that must succeed, validated."""
    result = convert_experiment(doc)
    assert result.problems == []
    TuningJob.parse(yaml.safe_load(render(result, "test")))
    spec: dict[str, Any] = result.manifest["spec"]
    return spec


def refused(doc: dict[str, Any]) -> dict[str, str]:
    return dict(convert_experiment(doc).problems)


def algorithm(name: str, **settings: str) -> dict[str, Any]:
    return {
        "algorithmName": name,
        "algorithmSettings": [{"name": k, "value": v} for k, v in settings.items()],
    }


def test_the_hyperband_job_experiment_field_by_field() -> None:
    doc = yaml.safe_load((DATA / "hyperband-job.yaml").read_text())
    result = convert_experiment(doc)
    assert result.problems == []
    manifest = result.manifest
    assert manifest["metadata"] == {"name": "digits-hyperband", "namespace": "team-a"}
    spec = manifest["spec"]
    assert spec["objective"] == {
        "metric": "loss",
        "direction": "minimize",
        "target": 0.05,
        "additionalMetrics": ["accuracy"],
        "strategy": "latest",
    }
    assert spec["algorithm"] == {"name": "hyperband", "settings": {"reductionFactor": 3}, "seed": 7}
    assert spec["resource"] == {"name": "epochs", "min": 1, "max": 9}
    assert spec["parameters"] == [
        {"name": "lr", "type": "float", "min": 0.001, "max": 0.3, "scale": "log"},
        {"name": "units", "type": "int", "min": 16, "max": 64, "step": 16},
        {"name": "batch", "type": "categorical", "values": [32, 64, 128]},
        {"name": "optimizer", "type": "categorical", "values": ["sgd", "adam"]},
    ]
    assert (spec["maxTrials"], spec["parallelism"], spec["maxFailedTrials"]) == (12, 3, 2)
    assert spec["metricsCollector"] == {"kind": "stdout"}
    assert spec["retainPods"] is True
    template = spec["trialTemplate"]
    assert template["primaryContainer"] == "training"
    job = template["job"]
    assert "apiVersion" not in job and job["spec"]["backoffLimit"] == 1
    pod = job["spec"]["template"]
    assert pod["metadata"] == {"labels": {"team": "a"}}
    container = pod["spec"]["containers"][0]
    assert container["args"] == [
        "--lr=${params.lr}",
        "--units=${params.units}",
        "--epochs=${params.epochs}",
        "--run-name=$(KUBETUNE_TRIAL)",
        "--ns=$(KUBETUNE_NAMESPACE)",
        "--team=$(KUBETUNE_LABELS_TEAM)",
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["KUBETUNE_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["KUBETUNE_LABELS_TEAM"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['team']"
    )
    assert env["BATCH"]["value"] == "${params.batch}"
    assert env["OPT"]["value"] == "${params.optimizer}"
    # the decisions that are not one-to-one are comments beside their fields
    text = render(result, "hyperband-job.yaml")
    assert "resource:  # Katib parameter epochs with r_l" in text
    assert "type: categorical  # Katib discrete" in text
    assert "no sidecar, no webhook" in text
    parsed = TuningJob.parse(yaml.safe_load(text))
    assert parsed.spec.trial_template is not None and parsed.spec.trial_template.job is not None


@pytest.mark.parametrize(
    ("katib", "expected", "noted"),
    [
        (algorithm("random", random_state="3"), {"name": "random", "seed": 3}, False),
        (algorithm("grid"), {"name": "grid"}, False),
        (
            algorithm("bayesianoptimization", n_initial_points="5", acq_func="LCB"),
            {"name": "bayesian", "settings": {"initialPoints": 5, "acquisition": "lcb"}},
            False,
        ),
        (
            algorithm("bayesianoptimization", acq_func="gp_hedge", base_estimator="RF"),
            {"name": "bayesian", "settings": {"acquisition": "ei"}},
            True,
        ),
        (
            algorithm("tpe", n_startup_trials="4"),
            {"name": "bayesian", "settings": {"initialPoints": 4}},
            True,
        ),
        (algorithm("multivariate-tpe"), {"name": "bayesian"}, True),
        (algorithm("cmaes", sigma="0.2"), {"name": "bayesian"}, True),
        (algorithm("sobol"), {"name": "random"}, True),
    ],
)
def test_each_search_algorithm(
    katib: dict[str, Any], expected: dict[str, Any], noted: bool
) -> None:
    result = convert_experiment(experiment(algorithm=katib))
    assert result.problems == []
    assert result.manifest["spec"]["algorithm"] == expected
    assert any(p[:2] == ("spec", "algorithm") for p in result.notes) is noted


@pytest.mark.parametrize(
    ("name", "field", "reason"),
    [
        ("enas", "spec.algorithm.algorithmName", "neural architecture search"),
        ("darts", "spec.algorithm.algorithmName", "neural architecture search"),
        ("annealing", "spec.algorithm.algorithmName", "unknown Katib algorithm 'annealing'"),
        ("pbt", "spec.algorithm", "perturbationInterval"),
    ],
)
def test_refused_algorithms_name_the_field(name: str, field: str, reason: str) -> None:
    problems = refused(experiment(algorithm=algorithm(name, n_population="8")))
    assert reason in problems[field]


def test_pbt_settings_carry_over() -> None:
    katib = algorithm("pbt", n_population="6", truncation_threshold="0.2")
    result = convert_experiment(experiment(algorithm=katib))
    assert result.manifest["spec"]["algorithm"] == {
        "name": "pbt",
        "settings": {"populationSize": 6, "truncation": 0.2},
    }


@pytest.mark.parametrize(
    ("katib", "ours"),
    [
        (
            {"parameterType": "double", "feasibleSpace": {"min": "0.5", "max": "2", "step": "0.5"}},
            {"type": "float", "min": 0.5, "max": 2.0, "step": 0.5},
        ),
        (
            {
                "parameterType": "double",
                "feasibleSpace": {"min": "0.5", "max": "2", "distribution": "uniform"},
            },
            {"type": "float", "min": 0.5, "max": 2.0},
        ),
        (
            {
                "parameterType": "int",
                "feasibleSpace": {"min": "1", "max": "64", "distribution": "logUniform"},
            },
            {"type": "int", "min": 1, "max": 64, "scale": "log"},
        ),
        (
            {"parameterType": "discrete", "feasibleSpace": {"list": ["0.1", "1", "10"]}},
            {"type": "categorical", "values": [0.1, 1, 10]},
        ),
        (
            {"parameterType": "categorical", "feasibleSpace": {"list": ["relu", "tanh"]}},
            {"type": "categorical", "values": ["relu", "tanh"]},
        ),
    ],
)
def test_each_parameter_type_and_distribution(katib: dict[str, Any], ours: dict[str, Any]) -> None:
    spec = converted(experiment(parameters=[{"name": "lr", **katib}]))
    assert spec["parameters"] == [{"name": "lr", **ours}]


@pytest.mark.parametrize("distribution", ["normal", "logNormal"])
def test_normal_distributions_are_refused_by_field(distribution: str) -> None:
    space = {"min": "0.1", "max": "1", "distribution": distribution}
    problems = refused(
        experiment(parameters=[{"name": "lr", "parameterType": "double", "feasibleSpace": space}])
    )
    assert "samples uniformly" in problems["spec.parameters[0].feasibleSpace.distribution"]


def test_bad_parameters_name_the_field() -> None:
    problems = refused(
        experiment(
            parameters=[
                {
                    "name": "lr",
                    "parameterType": "double",
                    "feasibleSpace": {"min": "x", "max": "1"},
                },
                {"name": "n", "parameterType": "bool", "feasibleSpace": {}},
                {"name": "d", "parameterType": "discrete", "feasibleSpace": {"list": ["a"]}},
            ]
        )
    )
    assert "not a number: 'x'" in problems["spec.parameters[0].feasibleSpace.min"]
    assert "unknown type 'bool'" in problems["spec.parameters[1].parameterType"]
    assert "numbers" in problems["spec.parameters[2].feasibleSpace.list"]


def test_objective_strategies() -> None:
    def objective(**fields: Any) -> dict[str, Any]:
        return {"type": "maximize", "objectiveMetricName": "accuracy", **fields}

    best = converted(
        experiment(objective=objective(metricStrategies=[{"name": "accuracy", "value": "max"}]))
    )
    assert "strategy" not in best["objective"]
    latest = converted(
        experiment(objective=objective(metricStrategies=[{"name": "accuracy", "value": "latest"}]))
    )
    assert latest["objective"]["strategy"] == "latest"
    problems = refused(
        experiment(objective=objective(metricStrategies=[{"name": "accuracy", "value": "min"}]))
    )
    assert "best value" in problems["spec.objective.metricStrategies[0].value"]
    problems = refused(experiment(objective={"objectiveMetricName": "a", "type": "up"}))
    assert "minimize or maximize" in problems["spec.objective.type"]


def test_median_stop_and_counts() -> None:
    stopping = {
        "algorithmName": "medianstop",
        "algorithmSettings": [
            {"name": "min_trials_required", "value": "4"},
            {"name": "start_step", "value": "2"},
        ],
    }
    spec = converted(
        experiment(earlyStopping=stopping, parallelTrialCount=2, maxFailedTrialCount=1)
    )
    assert spec["earlyStopping"] == {"name": "median", "settings": {"minTrials": 4, "startStep": 2}}
    assert (spec["maxTrials"], spec["parallelism"], spec["maxFailedTrials"]) == (4, 2, 1)
    problems = refused(experiment(earlyStopping={"algorithmName": "hyperband-stop"}))
    assert "unknown Katib rule" in problems["spec.earlyStopping.algorithmName"]


@pytest.mark.parametrize(
    ("collector", "ours"),
    [
        ({"collector": {"kind": "StdOut"}}, {"kind": "stdout"}),
        (
            {
                "collector": {"kind": "StdOut"},
                "source": {"filter": {"metricsFormat": [r"([\w|-]+)\s*:\s*(\d+(\.\d+)?)"]}},
            },
            {"kind": "stdout", "filter": [r"(?P<name>[\w|-]+)\s*:\s*(?P<value>\d+(\.\d+)?)"]},
        ),
        (
            {
                "collector": {"kind": "File"},
                "source": {
                    "fileSystemPath": {
                        "path": "/var/log/katib/m.log",
                        "kind": "File",
                        "format": "TEXT",
                    }
                },
            },
            {"kind": "file", "path": "/var/log/katib/m.log"},
        ),
        (
            {
                "collector": {"kind": "File"},
                "source": {"fileSystemPath": {"path": "/out/m.json", "format": "JSON"}},
            },
            {"kind": "file", "path": "/out/m.json", "format": "json"},
        ),
        (
            {
                "collector": {"kind": "PrometheusMetric"},
                "source": {"httpGet": {"port": 9090, "path": "/prom"}},
            },
            {"kind": "prometheus", "port": 9090, "path": "/prom"},
        ),
        ({"collector": {"kind": "Push"}}, {"kind": "grpc"}),
    ],
)
def test_each_metrics_collector(collector: dict[str, Any], ours: dict[str, Any]) -> None:
    spec = converted(experiment(metricsCollectorSpec=collector))
    assert spec["metricsCollector"] == ours


def test_collector_refusals() -> None:
    problems = refused(experiment(metricsCollectorSpec={"collector": {"kind": "TensorFlowEvent"}}))
    assert "TensorFlowEvent" in problems["spec.metricsCollectorSpec.collector.kind"]
    bad = {"collector": {"kind": "StdOut"}, "source": {"filter": {"metricsFormat": ["([a-z"]}}}
    problems = refused(experiment(metricsCollectorSpec=bad))
    assert (
        "not a regular expression"
        in problems["spec.metricsCollectorSpec.source.filter.metricsFormat[0]"]
    )


def test_trial_template_refusals() -> None:
    spec = experiment()["spec"]
    template = spec["trialTemplate"]
    tfjob = copy.deepcopy(template)
    tfjob["trialSpec"] = {"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "spec": {}}
    assert (
        "Pods or batch/v1 Jobs"
        in refused(experiment(trialTemplate=tfjob))["spec.trialTemplate.trialSpec.kind"]
    )
    unknown = copy.deepcopy(template)
    unknown["trialSpec"]["spec"]["containers"][0]["args"] = ["${trialParameters.nope}"]
    assert (
        "not in trialParameters"
        in refused(experiment(trialTemplate=unknown))["spec.trialTemplate.trialSpec"]
    )
    dangling = copy.deepcopy(template)
    dangling["trialParameters"] = [{"name": "x", "reference": "missing"}]
    assert (
        "no parameter"
        in refused(experiment(trialTemplate=dangling))["spec.trialTemplate.trialParameters"]
    )
    configmap = {"configMap": {"configMapName": "templates", "templatePath": "t.yaml"}}
    assert "inline" in refused(experiment(trialTemplate=configmap))["spec.trialTemplate.configMap"]


def test_pod_template_and_metadata_kinds() -> None:
    doc = experiment()
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["containers"][0]
    container["args"] += ["--kind=${trialSpec.Kind}", "--api=${trialSpec.APIVersion}"]
    container["env"] = [{"name": "NOTE", "value": "${trialSpec.Annotations[owner]}"}]
    spec = converted(doc)
    pod = spec["trialTemplate"]["spec"]["containers"][0]
    assert pod["args"] == ["--lr=${params.lr}", "--kind=Pod", "--api=v1"]
    env = {e["name"]: e for e in pod["env"]}
    assert env["NOTE"]["value"] == "$(KUBETUNE_ANNOTATIONS_OWNER)"
    assert env["KUBETUNE_ANNOTATIONS_OWNER"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['owner']"
    )


def test_not_an_experiment() -> None:
    problems = dict(convert_experiment({"apiVersion": "v1", "kind": "Pod"}).problems)
    assert "not a Katib Experiment" in problems["kind"]
    problems = dict(
        convert_experiment(experiment() | {"apiVersion": "kubeflow.org/v1alpha3"}).problems
    )
    assert "v1beta1" in problems["apiVersion"]


def test_cli_writes_validates_and_applies(tmp_path: Path) -> None:
    out = tmp_path / "tj.yaml"
    done = subprocess.run(
        [*KUBETUNE, "convert", "katib", str(DATA / "hyperband-job.yaml"), "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert subprocess.run([*KUBETUNE, "validate", str(out)], capture_output=True).returncode == 0
    # a refusal: exit 1, one line per field on stderr, and still the output for the rest
    doc = experiment(algorithm=algorithm("darts"))
    doc["spec"]["parameters"][0]["feasibleSpace"]["distribution"] = "normal"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    done = subprocess.run(
        [*KUBETUNE, "convert", "katib", str(bad), "--json"], capture_output=True, text=True
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{bad}: spec.algorithm.algorithmName: neural architecture")
    assert lines[1].startswith(f"{bad}: spec.parameters[0].feasibleSpace.distribution: normal")
    assert [p["path"] for p in json.loads(done.stdout)["problems"]] == [
        "spec.algorithm.algorithmName",
        "spec.parameters[0].feasibleSpace.distribution",
    ]
    # not YAML of an Experiment at all
    other = tmp_path / "pod.yaml"
    other.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
    done = subprocess.run(
        [*KUBETUNE, "convert", "katib", str(other)], capture_output=True, text=True
    )
    assert done.returncode == 1 and "not a Katib Experiment" in done.stderr
