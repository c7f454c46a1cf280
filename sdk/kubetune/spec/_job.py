"""The `TuningJob` manifest: objective, parameters, algorithm, early stopping, trial template."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from ._algorithms import (
    Algorithm,
    AshaStopping,
    EarlyStopping,
    GridAlgorithm,
    HyperbandAlgorithm,
    NoStopping,
    PbtAlgorithm,
)
from ._base import SpecModel, field_error, field_errors_at
from ._checkpoints import RESUME_MOUNT_PATH, Checkpoints
from ._collector import PROMETHEUS_NAME, MetricsCollector
from ._errors import FieldError, SpecError, field_errors
from ._goals import MAX_OBJECTIVES, Constraint, ObjectiveGoal, WarmStart
from ._parameters import NAME_PATTERN, CategoricalParameter, FloatParameter, Parameter
from ._status import TuningJobStatus
from ._yaml import load_documents, read_manifest_text

JOB_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MAX_JOB_NAME = 52  # leaves room for "-<index>" within the 63 characters of a label value


def pbt_rounds(budget: float, interval: float) -> int:
    """How many intervals of PBT training reach `budget`."""
    return max(1, math.ceil(budget / interval - 1e-9))


class Direction(StrEnum):
    minimize = "minimize"
    maximize = "maximize"


class Objective(SpecModel):
    metric: str = Field(min_length=1, description="Name of the reported metric to optimize.")
    direction: Direction = Field(description="minimize or maximize.")
    target: float | None = Field(None, description="The job succeeds once a trial reaches this.")
    additional_metrics: list[str] = Field(
        default_factory=list, description="Metrics recorded with each trial but not optimized."
    )
    strategy: Literal["best", "latest"] = Field(
        "best",
        description="A trial's objective: the best value it reported (best), or its last "
        "one (latest: the value at the end of training).",
    )

    @model_validator(mode="after")
    def _check(self) -> Objective:
        if self.target is not None and not math.isfinite(self.target):
            raise field_error("target", f"must be a finite number (got {self.target})")
        for i, name in enumerate(self.additional_metrics):
            if name == self.metric:
                raise field_error(f"additionalMetrics[{i}]", f"{name!r} is already the objective")
        return self

    def summarize(self, values: Sequence[float]) -> float | None:
        """A trial's objective from its curve's values in step order (None if empty)."""
        if not values:
            return None
        if self.strategy == "latest":
            return values[-1]
        return max(values) if self.direction is Direction.maximize else min(values)

    def better(self, a: float, b: float) -> bool:
        """Whether value `a` is strictly better than `b`."""
        return a < b if self.direction is Direction.minimize else a > b

    def reached(self, value: float) -> bool:
        """Whether `value` meets the target (False when there is none)."""
        if self.target is None:
            return False
        return (
            value <= self.target if self.direction is Direction.minimize else value >= self.target
        )


class Resource(SpecModel):
    """The budget dimension (e.g. epochs) that Hyperband and ASHA allocate."""

    name: str = Field(pattern=NAME_PATTERN, description="Passed to trials as ${params.NAME}.")
    min: int | float = Field(gt=0, description="Smallest budget a trial gets.")
    max: int | float = Field(description="Largest budget a trial gets.")

    @model_validator(mode="after")
    def _check(self) -> Resource:
        if not self.max > self.min:
            raise field_error("max", f"must be greater than min (got {self.max} <= {self.min})")
        return self

    @property
    def integral(self) -> bool:
        return isinstance(self.min, int) and isinstance(self.max, int)

    def budget(self, value: float) -> int | float:
        """A budget value in the resource's type, clipped to [min, max]."""
        value = min(max(value, self.min), self.max)
        return round(value) if self.integral else value


class LocalOverride(SpecModel):
    """How `kubetune run` starts the primary container's process on the host instead."""

    command: list[str] | None = Field(None, description="Replaces the container's command.")
    args: list[str] | None = Field(None, description="Replaces the container's args.")
    working_dir: str | None = Field(
        None, description="Directory to run in, relative to the manifest's directory."
    )
    env: dict[str, str] | None = Field(None, description="Extra environment variables.")


PARAM_REF = re.compile(r"\$\{params\.([^}]*)\}")


class TrialTemplate(SpecModel):
    """A PodTemplateSpec (`metadata`, `spec`) or a batch/v1 Job (`job`), kept opaque except for
    naming the primary container."""

    model_config = ConfigDict(extra="allow")

    metadata: dict[str, Any] | None = None
    spec: dict[str, Any] | None = Field(
        None, description="A PodSpec; the primary container runs training."
    )
    job: dict[str, Any] | None = Field(
        None,
        description="Instead of spec: a batch/v1 Job whose spec.template runs one trial (a Job "
        "per trial; its Complete or Failed condition is the trial's result).",
    )
    primary_container: str | None = Field(
        None, description="Name of the container that trains; default: the first one."
    )
    local: LocalOverride | None = Field(
        None, description="Overrides for running trials as local processes (kubetune run)."
    )

    @model_validator(mode="after")
    def _shape(self) -> TrialTemplate:
        if (self.spec is None) == (self.job is None):
            raise field_error("spec", "give either spec (a pod) or job (a batch/v1 Job)")
        if self.job is not None:
            _check_job(self.job, self.metadata)
        containers = self.pod_spec.get("containers")
        if not isinstance(containers, list) or not containers:
            raise field_error(f"{self.pod_path}.containers", "must be a non-empty list")
        for i, c in enumerate(containers):
            if not isinstance(c, dict) or not isinstance(c.get("name"), str):
                raise field_error(
                    f"{self.pod_path}.containers[{i}].name", "every container needs a name"
                )
        names = [c["name"] for c in containers]
        if self.primary_container is not None and self.primary_container not in names:
            raise field_error(
                "primaryContainer", f"no container named {self.primary_container!r} (have {names})"
            )
        return self

    @property
    def pod_spec(self) -> dict[str, Any]:
        """The PodSpec a trial runs: `spec`, or the Job's `spec.template.spec`."""
        if self.job is not None:
            pod: dict[str, Any] = self.job["spec"]["template"]["spec"]
            return pod
        assert self.spec is not None
        return self.spec

    @property
    def pod_metadata(self) -> dict[str, Any]:
        """The metadata of a trial's pod (labels, annotations)."""
        if self.job is not None:
            return dict(self.job["spec"]["template"].get("metadata") or {})
        return dict(self.metadata or {})

    @property
    def pod_path(self) -> str:
        """Where the PodSpec is in the template, for error messages."""
        return "job.spec.template.spec" if self.job is not None else "spec"

    def texts(self) -> list[tuple[str, str]]:
        """(path, text) of every string that may hold ${params.NAME}: the primary container's
        command, args and env values, and the local override."""
        containers: list[dict[str, Any]] = self.pod_spec["containers"]
        index = next(
            (i for i, c in enumerate(containers) if c["name"] == self.primary()["name"]), 0
        )
        base = f"{self.pod_path}.containers[{index}]"
        texts: list[tuple[str, Any]] = []
        primary = self.primary()
        for key in ("command", "args"):
            for i, v in enumerate(primary.get(key) or []):
                texts.append((f"{base}.{key}[{i}]", v))
        for i, e in enumerate(primary.get("env") or []):
            if isinstance(e, dict):
                texts.append((f"{base}.env[{i}].value", e.get("value")))
        if self.local is not None:
            for key in ("command", "args"):
                for i, v in enumerate(getattr(self.local, key) or []):
                    texts.append((f"local.{key}[{i}]", v))
            for k, v in (self.local.env or {}).items():
                texts.append((f"local.env.{k}", v))
        return [(path, t) for path, t in texts if isinstance(t, str)]

    def placeholder_problems(self, known: set[str]) -> list[tuple[str, str]]:
        """(path, reason) of every malformed ${params...} or one naming no parameter."""
        problems = []
        for path, text in self.texts():
            starts = set()
            for match in PARAM_REF.finditer(text):
                starts.add(match.start())
                if match.group(1) not in known:
                    problems.append(
                        (
                            path,
                            f"${{params.{match.group(1)}}} names no parameter (have {sorted(known)})",
                        )
                    )
            for match in re.finditer(r"\$\{params\b", text):
                if match.start() not in starts:
                    fragment = text[match.start() : match.start() + 40]
                    problems.append(
                        (path, f"malformed placeholder {fragment!r}: write ${{params.NAME}}")
                    )
        return problems

    def primary(self) -> dict[str, Any]:
        """The primary container's dict."""
        containers: list[dict[str, Any]] = self.pod_spec["containers"]
        if self.primary_container is None:
            return containers[0]
        return next(c for c in containers if c["name"] == self.primary_container)


JOB_RESTART_POLICIES = ("Never", "OnFailure")


def _check_job(job: dict[str, Any], metadata: dict[str, Any] | None) -> None:
    """A batch/v1 Job with a pod template (field errors relative to the trial template)."""
    if metadata is not None:
        raise field_error("metadata", "with job, set the pod's metadata in job.spec.template")
    if job.get("apiVersion", "batch/v1") != "batch/v1":
        raise field_error("job.apiVersion", f"must be batch/v1 (got {job['apiVersion']!r})")
    if job.get("kind", "Job") != "Job":
        raise field_error("job.kind", f"must be Job (got {job['kind']!r})")
    spec = job.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
        raise field_error("job.spec.template.spec", "required: the PodSpec of the Job's pod")
    policy = template["spec"].get("restartPolicy")
    if policy is not None and policy not in JOB_RESTART_POLICIES:
        raise field_error(
            "job.spec.template.spec.restartPolicy",
            f"a Job's pod restarts Never or OnFailure (got {policy!r})",
        )
    backoff = spec.get("backoffLimit")  # type: ignore[union-attr]
    if backoff is not None and (isinstance(backoff, bool) or not isinstance(backoff, int)):
        raise field_error("job.spec.backoffLimit", f"must be a whole number (got {backoff!r})")
    if isinstance(backoff, int) and backoff < 0:
        raise field_error("job.spec.backoffLimit", f"must be >= 0 (got {backoff})")


class TuningJobSpec(SpecModel):
    """What to tune, how to search, and how to run one trial."""

    single_objective: Objective | None = Field(
        None, alias="objective", description="The metric to optimize (or give objectives)."
    )
    objectives: list[ObjectiveGoal] | None = Field(
        None,
        description=f"Instead of objective: 2 to {MAX_OBJECTIVES} metrics to optimize at once; "
        "the result is the Pareto front. A trial's values are the latest it reported.",
    )
    additional_metrics: list[str] = Field(
        default_factory=list,
        description="With objectives: metrics recorded with each trial but not optimized "
        "(with objective, use objective.additionalMetrics).",
    )
    constraints: list[Constraint] = Field(
        default_factory=list,
        description="Bounds on reported metrics (latest values); a trial outside one is "
        "infeasible: never the best, never on the front.",
    )
    warm_start: WarmStart | None = Field(
        None, description="Earlier results that feed the model, and configurations to run first."
    )
    parameters: list[Parameter] = Field(min_length=1, description="The search space.")
    algorithm: Algorithm = Field(description="Search algorithm and its settings.")
    early_stopping: EarlyStopping = Field(
        default_factory=lambda: NoStopping(name="none"), description="Early-stopping rule."
    )
    resource: Resource | None = Field(None, description="Budget dimension (epochs, steps...).")
    max_trials: int = Field(10, ge=1, description="Trials to run in total.")
    parallelism: int = Field(1, ge=1, description="Trials running at once.")
    max_failed_trials: int | None = Field(
        None,
        ge=0,
        description="The job fails once more trials than this have failed. Unset: failures "
        "are not limited, except that a job whose first 5 trials all fail ends as failed.",
    )
    trial_template: TrialTemplate | None = Field(None, description="Pod template of a trial.")
    retain_pods: bool = Field(
        False, description="Keep the pods of finished trials (by default they are deleted)."
    )
    metrics_collector: MetricsCollector | None = Field(
        None, description="How metrics reach kubetune: grpc (pushed, the default) or prometheus."
    )
    checkpoints: Checkpoints | None = Field(
        None, description="Trials save checkpoints and resume from them (promotions, retries, PBT)."
    )
    trial_retries: int = Field(
        2,
        ge=0,
        description="Times a trial whose pod was evicted, preempted or lost is started "
        "again (from its checkpoint, if any) before it counts as failed.",
    )

    @model_validator(mode="after")
    def _check(self) -> TuningJobSpec:
        self._check_goals()
        names: dict[str, int] = {}
        for i, p in enumerate(self.parameters):
            if p.name in names:
                raise field_error(f"parameters[{i}].name", f"duplicate parameter {p.name!r}")
            names[p.name] = i
        if self.resource is not None and self.resource.name in names:
            raise field_error(
                "resource.name",
                f"{self.resource.name!r} is also a parameter; the budget sets it, rename one",
            )
        needs_resource = isinstance(
            self.algorithm, HyperbandAlgorithm | PbtAlgorithm
        ) or isinstance(self.early_stopping, AshaStopping)
        if needs_resource and self.resource is None:
            budgeted = isinstance(self.algorithm, HyperbandAlgorithm | PbtAlgorithm)
            which = self.algorithm.name if budgeted else "asha"
            raise field_error(
                "resource", f"required by {which} (e.g. {{name: epochs, min: 1, max: 27}})"
            )
        if isinstance(self.algorithm, PbtAlgorithm):
            self._check_pbt(self.algorithm)
        if self.checkpoints is not None:
            self._check_checkpoints(self.checkpoints)
        if isinstance(self.algorithm, GridAlgorithm):
            self._check_grid(self.algorithm)
        if self.collector.kind == "prometheus":
            self._check_scraped_names()
        if self.trial_template is not None:
            known = set(names) | ({self.resource.name} if self.resource else set())
            problems = self.trial_template.placeholder_problems(known)
            if problems:  # all of them at once
                raise field_errors_at([(f"trialTemplate.{p}", m) for p, m in problems])
        if self.warm_start is not None:
            self._check_enqueued(self.warm_start)
        return self

    def _check_goals(self) -> None:
        """objective XOR objectives; distinct metrics; constraints and the early-stopping
        metric name known metrics."""
        if (self.single_objective is None) == (self.objectives is None):
            raise field_error(
                "objective", "give either objective (one metric) or objectives (2 to 4 metrics)"
            )
        if self.objectives is not None:
            if not 2 <= len(self.objectives) <= MAX_OBJECTIVES:
                raise field_error(
                    "objectives",
                    f"give 2 to {MAX_OBJECTIVES} objectives (got {len(self.objectives)}); "
                    "for one metric use objective",
                )
            first: dict[str, int] = {}
            for i, goal in enumerate(self.objectives):
                if goal.metric in first:
                    raise field_error(
                        f"objectives[{i}].metric",
                        f"{goal.metric!r} is already objectives[{first[goal.metric]}]",
                    )
                first[goal.metric] = i
            for i, name in enumerate(self.additional_metrics):
                if name in first:
                    raise field_error(f"additionalMetrics[{i}]", f"{name!r} is an objective")
            if isinstance(self.algorithm, PbtAlgorithm):
                raise field_error(
                    "algorithm.name", "pbt ranks members by one metric: use objective with pbt"
                )
        elif self.additional_metrics:
            raise field_error(
                "additionalMetrics", "with objective, list them in objective.additionalMetrics"
            )
        known = self.metric_names
        for i, c in enumerate(self.constraints):
            if c.metric not in known:
                raise field_error(
                    f"constraints[{i}].metric",
                    f"{c.metric!r} is not an objective or additional metric (have {known})",
                )
        judged = getattr(self.early_stopping, "metric", None)
        if self.objectives is not None and not isinstance(self.early_stopping, NoStopping):
            goals = [g.metric for g in self.objectives]
            if judged is None:
                raise field_error(
                    "earlyStopping.metric",
                    f"with several objectives, name the one early stopping judges (one of {goals})",
                )
            if judged not in goals:
                raise field_error(
                    "earlyStopping.metric", f"{judged!r} is not an objective (have {goals})"
                )
        elif self.single_objective is not None and judged not in (
            None,
            self.single_objective.metric,
        ):
            raise field_error(
                "earlyStopping.metric",
                f"early stopping judges the objective {self.single_objective.metric!r} "
                f"(got {judged!r})",
            )

    def _check_enqueued(self, warm: WarmStart) -> None:
        if warm.enqueue and isinstance(self.algorithm, HyperbandAlgorithm | PbtAlgorithm):
            raise field_error(
                "warmStart.enqueue",
                f"{self.algorithm.name} schedules every trial's budget; enqueue works with "
                "bayesian, random and grid",
            )
        params = {p.name: p for p in self.parameters}
        for i, config in enumerate(warm.enqueue):
            path = f"warmStart.enqueue[{i}]"
            missing = [n for n in params if n not in config]
            if missing:
                raise field_error(path, f"missing parameters {missing}")
            for name, value in config.items():
                if name not in params:
                    raise field_error(
                        f"{path}.{name}", f"not a parameter of the space (have {list(params)})"
                    )
                why = params[name].outside(value)
                if why is not None:
                    raise field_error(f"{path}.{name}", why)

    @property
    def objective(self) -> Objective:
        """The objective the curves, early stopping and the single-metric views use: the one
        objective, or with several the one early stopping judges (else the first). Its
        additional metrics are every other metric to collect (objectives, constraints)."""
        if self.single_objective is not None:
            return self.single_objective
        assert self.objectives is not None
        judged = getattr(self.early_stopping, "metric", None) or self.objectives[0].metric
        goal = next(g for g in self.objectives if g.metric == judged)
        others = [g.metric for g in self.objectives if g.metric != judged]
        return Objective(
            metric=goal.metric,
            direction=Direction(goal.direction),
            strategy="latest",
            additional_metrics=[*others, *self.additional_metrics],
        )

    @property
    def goals(self) -> list[ObjectiveGoal]:
        """Every objective, as `objectives` lists them (one for a single objective)."""
        if self.objectives is not None:
            return list(self.objectives)
        one = self.single_objective
        assert one is not None
        return [ObjectiveGoal(metric=one.metric, direction=one.direction.value)]

    @property
    def multi_objective(self) -> bool:
        return self.objectives is not None

    @property
    def metric_names(self) -> list[str]:
        """Every metric a trial's reports are kept for: objectives, then additional metrics."""
        if self.objectives is not None:
            return [g.metric for g in self.objectives] + list(self.additional_metrics)
        one = self.single_objective
        assert one is not None
        return [one.metric, *one.additional_metrics]

    def _check_pbt(self, algorithm: PbtAlgorithm) -> None:
        if self.checkpoints is None:
            raise field_error(
                "checkpoints",
                "required by pbt: members copy each other's checkpoints (e.g. {keep: 2})",
            )
        if not isinstance(self.early_stopping, NoStopping):
            raise field_error(
                "earlyStopping", "pbt stops no member early; its exploit step replaces the weak"
            )
        assert self.resource is not None
        rounds = pbt_rounds(self.resource.max, algorithm.settings.perturbation_interval)
        needed = algorithm.settings.population_size * rounds
        if self.max_trials < needed:
            raise field_error(
                "maxTrials",
                f"pbt needs populationSize x rounds = "
                f"{algorithm.settings.population_size} x {rounds} = {needed} trials "
                f"(a trial per member per perturbationInterval up to resource.max); got "
                f"{self.max_trials}",
            )

    def _check_checkpoints(self, checkpoints: Checkpoints) -> None:
        storage = checkpoints.storage
        if (
            storage is not None
            and storage.single_node
            and self.parallelism > 1
            and not checkpoints.trials_share_node
        ):
            raise field_error(
                "checkpoints.storage.volumeClaimTemplate.accessModes",
                f"a ReadWriteOnce claim mounts on one node only, but parallelism is "
                f"{self.parallelism}: use ReadWriteMany, or set checkpoints.trialsShareNode",
            )
        if self.trial_template is None:
            return
        template = self.trial_template
        for i, c in enumerate(template.pod_spec["containers"]):
            if c["name"] != template.primary()["name"]:
                continue
            for j, mount in enumerate(c.get("volumeMounts") or []):
                if isinstance(mount, dict) and mount.get("mountPath") in (
                    checkpoints.mount_path,
                    RESUME_MOUNT_PATH,
                ):
                    raise field_error(
                        f"trialTemplate.{template.pod_path}.containers[{i}].volumeMounts[{j}]"
                        ".mountPath",
                        f"{mount['mountPath']} is where kubetune mounts checkpoints; mount "
                        "elsewhere or set checkpoints.mountPath",
                    )

    def _check_grid(self, algorithm: GridAlgorithm) -> None:
        for i, p in enumerate(self.parameters):
            if (
                isinstance(p, FloatParameter)
                and p.step is None
                and algorithm.settings.points is None
            ):
                raise field_error(
                    f"parameters[{i}].step",
                    f"grid search needs a finite space: give float parameter {p.name!r} a step, "
                    "or set algorithm.settings.points",
                )

    def _check_scraped_names(self) -> None:
        """Scraped metrics are Prometheus gauges: their names must be valid, and the step's
        gauge must be another one."""
        named = [("objective.metric", self.objective.metric)] + [
            (f"objective.additionalMetrics[{i}]", m)
            for i, m in enumerate(self.objective.additional_metrics)
        ]
        for path, name in named:
            if PROMETHEUS_NAME.match(name) is None:
                raise field_error(
                    path,
                    f"{name!r} is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), "
                    "which metricsCollector.kind prometheus needs",
                )
            if name == self.collector.step_gauge:
                raise field_error(
                    "metricsCollector.stepMetric", f"{name!r} is also {path}; name another gauge"
                )

    @property
    def collector(self) -> MetricsCollector:
        """The metrics collector (the gRPC default when the spec names none)."""
        return self.metrics_collector or MetricsCollector()

    @property
    def parameter_names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def is_finite(self) -> bool:
        """Whether the space has finitely many points (ints, stepped floats, categoricals)."""
        return all(not isinstance(p, FloatParameter) or p.step is not None for p in self.parameters)

    def space_size(self) -> int | None:
        """Number of distinct configurations, or None for an infinite space."""
        if not self.is_finite():
            return None
        size = 1
        for p in self.parameters:
            values = p.grid_values(None) if not isinstance(p, CategoricalParameter) else p.values
            size *= len(values or [])
        return size


class ObjectMeta(SpecModel):
    model_config = ConfigDict(extra="allow", alias_generator=None)

    name: str = Field(pattern=JOB_NAME_PATTERN, max_length=MAX_JOB_NAME)
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class TuningJob(SpecModel):
    """The whole manifest: apiVersion, kind, metadata, spec and (optional) status."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["kubetune.dev/v1alpha1"] = Field(
        "kubetune.dev/v1alpha1", alias="apiVersion"
    )
    kind: Literal["TuningJob"] = "TuningJob"
    metadata: ObjectMeta
    spec: TuningJobSpec
    status: TuningJobStatus | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    @classmethod
    def parse(cls, data: Any, source: str | None = None) -> TuningJob:
        """Validate a manifest dict; raise `SpecError` listing every problem by field path."""
        if not isinstance(data, dict):
            raise SpecError([FieldError("", "a TuningJob manifest must be a mapping")], source)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise SpecError(field_errors(exc, model=cls), source) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> TuningJob:
        """Load the one TuningJob in a YAML file (other kinds in the file are ignored)."""
        source = str(path)
        docs = load_yaml_documents(path)
        jobs = [d for d in docs if isinstance(d, dict) and d.get("kind") == "TuningJob"]
        if len(jobs) != 1:
            if not jobs and len(docs) == 1:
                return cls.parse(docs[0], source)
            found = f"found {len(jobs)}"
            raise SpecError(
                [FieldError("kind", f"expected one TuningJob document, {found}")], source
            )
        return cls.parse(jobs[0], source)


def load_yaml_documents(path: str | Path) -> list[Any]:
    """All documents of a YAML file; `SpecError` naming the line (and path) of any problem."""
    return load_documents(read_manifest_text(path), str(path))
