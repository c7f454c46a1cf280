"""Define a TuningJob in Python, without YAML.

    import kubetune as kt

    job = kt.tuning_job(
        "digits",
        objective=kt.maximize("val_accuracy"),
        parameters={"lr": kt.loguniform(1e-4, 0.3), "units": kt.integer(16, 256, log=True),
                    "optimizer": kt.choice(["sgd", "adam"])},
        algorithm=kt.bayesian(seed=7),
        trial=kt.container("kubetune/trainer:0.1.0", ["python", "train.py"], gpus=1),
        max_trials=20, parallelism=2,
    )

Each helper returns the manifest fragment it names; `tuning_job` assembles and validates them and
returns a `TuningJob` (a `SpecError` with field paths if something is wrong). A container given
without `args` receives every parameter as `--NAME=${params.NAME}`.
"""

from __future__ import annotations

from typing import Any

from .spec import TuningJob

Fragment = dict[str, Any]


def uniform(low: float, high: float, *, step: float | None = None) -> Fragment:
    """A float parameter, sampled on a linear scale (quantized to `step` if given)."""
    return _drop_none({"type": "float", "min": low, "max": high, "step": step})


def loguniform(low: float, high: float) -> Fragment:
    """A positive float parameter, sampled on a log scale (learning rates, weight decay)."""
    return {"type": "float", "min": low, "max": high, "scale": "log"}


def integer(low: int, high: int, *, log: bool = False, step: int | None = None) -> Fragment:
    """An int parameter in [low, high]; `log` samples on a log scale."""
    return _drop_none(
        {"type": "int", "min": low, "max": high, "scale": "log" if log else None, "step": step}
    )


def choice(values: list[Any]) -> Fragment:
    """A categorical parameter."""
    return {"type": "categorical", "values": list(values)}


def maximize(
    metric: str, *, target: float | None = None, also: list[str] | None = None
) -> Fragment:
    """The objective: maximize `metric` (the job succeeds early once a trial reaches `target`);
    `also` names metrics recorded beside it."""
    return _objective(metric, "maximize", target, also)


def minimize(
    metric: str, *, target: float | None = None, also: list[str] | None = None
) -> Fragment:
    """The objective: minimize `metric`."""
    return _objective(metric, "minimize", target, also)


def _objective(
    metric: str, direction: str, target: float | None, also: list[str] | None
) -> Fragment:
    return _drop_none(
        {"metric": metric, "direction": direction, "target": target, "additionalMetrics": also}
    )


def bayesian(
    *, seed: int | None = None, initial_points: int | None = None, acquisition: str | None = None
) -> Fragment:
    """Gaussian-process Bayesian optimization."""
    settings = _drop_none({"initialPoints": initial_points, "acquisition": acquisition})
    return _drop_none({"name": "bayesian", "seed": seed, "settings": settings or None})


def random(*, seed: int | None = None) -> Fragment:
    return _drop_none({"name": "random", "seed": seed})


def grid(*, points: int | None = None) -> Fragment:
    """Every combination; `points` per float parameter without a step."""
    return _drop_none({"name": "grid", "settings": {"points": points} if points else None})


def hyperband(
    *, reduction_factor: int | None = None, iterations: int | None = None, seed: int | None = None
) -> Fragment:
    """Hyperband; needs `resource=`."""
    settings = _drop_none({"reductionFactor": reduction_factor, "iterations": iterations})
    return _drop_none({"name": "hyperband", "seed": seed, "settings": settings or None})


def median(*, min_trials: int | None = None, start_step: int | None = None) -> Fragment:
    """Stop a trial whose best so far is worse than the median of the others at that step."""
    settings = _drop_none({"minTrials": min_trials, "startStep": start_step})
    return _drop_none({"name": "median", "settings": settings or None})


def asha(*, reduction_factor: int | None = None) -> Fragment:
    """Asynchronous successive halving; needs `resource=`."""
    settings = _drop_none({"reductionFactor": reduction_factor})
    return _drop_none({"name": "asha", "settings": settings or None})


def resource(name: str, low: float, high: float) -> Fragment:
    """The budget dimension (epochs, steps) that Hyperband and ASHA hand out."""
    return {"name": name, "min": low, "max": high}


def container(
    image: str,
    command: list[str],
    args: list[str] | None = None,
    *,
    gpus: int = 0,
    env: dict[str, str] | None = None,
    local_dir: str | None = None,
) -> Fragment:
    """The trial: this image, this command. `local_dir`: where `kubetune run` starts the
    command on this machine instead (relative to the working directory)."""
    main: dict[str, Any] = {"name": "trainer", "image": image, "command": list(command)}
    if args is not None:
        main["args"] = list(args)
    if env:
        main["env"] = [{"name": k, "value": v} for k, v in env.items()]
    if gpus:
        main["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
    template: dict[str, Any] = {"spec": {"containers": [main]}}
    if local_dir is not None:
        template["local"] = {"workingDir": local_dir}
    return template


def tuning_job(
    name: str,
    *,
    objective: Fragment,
    parameters: dict[str, Fragment],
    trial: Fragment,
    algorithm: Fragment | str = "bayesian",
    early_stopping: Fragment | None = None,
    resource: Fragment | None = None,
    max_trials: int = 10,
    parallelism: int = 1,
    max_failed_trials: int | None = None,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
) -> TuningJob:
    """A validated TuningJob (for a generated name, submit a manifest dict with
    metadata.generateName)."""
    template = {**trial, "spec": {**trial["spec"]}}
    main = dict(template["spec"]["containers"][0])
    if "args" not in main:
        names = list(parameters) + ([resource["name"]] if resource else [])
        main["args"] = [f"--{n}=${{params.{n}}}" for n in names]
    template["spec"]["containers"] = [main, *template["spec"]["containers"][1:]]
    spec = _drop_none(
        {
            "objective": objective,
            "parameters": [{"name": n, **p} for n, p in parameters.items()],
            "algorithm": {"name": algorithm} if isinstance(algorithm, str) else algorithm,
            "earlyStopping": early_stopping,
            "resource": resource,
            "maxTrials": max_trials,
            "parallelism": parallelism,
            "maxFailedTrials": max_failed_trials,
            "trialTemplate": template,
        }
    )
    meta = _drop_none({"name": name, "namespace": namespace, "labels": labels})
    manifest = {"apiVersion": "kubetune.dev/v1alpha1", "kind": "TuningJob", "metadata": meta}
    return TuningJob.parse({**manifest, "spec": spec})


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}
