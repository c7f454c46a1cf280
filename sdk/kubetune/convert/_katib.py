"""Katib `kubeflow.org/v1beta1` Experiments as TuningJobs, field by field.

`convert_experiment(doc)` returns the TuningJob manifest, a note for every decision that is not
one-to-one (keyed by the output field's path, written beside it as a comment), and the problems:
fields that cannot be converted, each with its path in the Experiment and the reason.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

Path = tuple[str | int, ...]

NEAREST = {  # Katib algorithms kubetune has no twin of: (kubetune algorithm, why it is nearest)
    "tpe": (
        "bayesian",
        "TPE is model-based search; kubetune's nearest is GP Bayesian optimization",
    ),
    "multivariate-tpe": (
        "bayesian",
        "multivariate TPE models parameters jointly; so does kubetune's GP Bayesian optimization",
    ),
    "cmaes": ("bayesian", "CMA-ES has no kubetune twin; GP Bayesian optimization is nearest"),
    "sobol": ("random", "Sobol is quasi-random; kubetune's random search samples uniformly"),
}
REFUSED = {
    "enas": "neural architecture search (ENAS) is not hyperparameter tuning; kubetune has none",
    "darts": "neural architecture search (DARTS) is not hyperparameter tuning; kubetune has none",
}
ACQUISITIONS = {"ei": "ei", "lcb": "lcb", "gp_hedge": "ei", "pi": "ei"}
TRIAL_PARAM = re.compile(r"\$\{trialParameters\.([^}]*)\}")
META_REF = re.compile(
    r"\$\{trialSpec\.(Name|Namespace|Kind|APIVersion|Labels|Annotations)(?:\[([^\]]+)\])?\}"
)


@dataclass
class Conversion:
    manifest: dict[str, Any]
    notes: dict[Path, str] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)


class _Converter:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.spec: dict[str, Any] = doc.get("spec") or {}
        self.notes: dict[Path, str] = {}
        self.problems: list[tuple[str, str]] = []
        self.out: dict[str, Any] = {}
        self.resource_param: str | None = None  # the parameter hyperband's budget replaces

    def note(self, path: Path, text: str) -> None:
        self.notes[path] = f"{self.notes[path]}; {text}" if path in self.notes else text

    def refuse(self, path: str, reason: str) -> None:
        self.problems.append((path, reason))

    # -- the whole Experiment ---------------------------------------------------------------------
    def convert(self) -> Conversion:
        meta = self.doc.get("metadata") or {}
        metadata = {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta}
        self.out = {"objective": self.objective()}
        self.out["parameters"] = []  # after the algorithm: hyperband takes its budget parameter
        self.out["algorithm"] = self.algorithm()
        self.out["parameters"] = self.parameters()
        stopping = self.early_stopping()
        if stopping is not None:
            self.out["earlyStopping"] = stopping
        for katib, ours in (
            ("maxTrialCount", "maxTrials"),
            ("parallelTrialCount", "parallelism"),
            ("maxFailedTrialCount", "maxFailedTrials"),
        ):
            if katib in self.spec:
                self.out[ours] = self.count(f"spec.{katib}", self.spec[katib])
        if "maxTrialCount" not in self.spec:
            self.out["maxTrials"] = 10
            self.note(("spec", "maxTrials"), "Katib leaves it unbounded; kubetune needs a budget")
        self.collector()
        self.trial_template()
        if "resumePolicy" in self.spec:
            self.note(
                ("spec",),
                f"resumePolicy {self.spec['resumePolicy']} dropped: a TuningJob is always resumable",
            )
        if "nasConfig" in self.spec:
            self.refuse("spec.nasConfig", "neural architecture search has no kubetune equivalent")
        manifest = {
            "apiVersion": "kubetune.dev/v1alpha1",
            "kind": "TuningJob",
            "metadata": metadata,
            "spec": self.out,
        }
        return Conversion(manifest, self.notes, self.problems)

    def count(self, path: str, value: Any) -> int:
        number = _int(value)
        if number is None or number < 0:
            self.refuse(path, f"must be a whole number (got {value!r})")
            return 0
        return number

    # -- objective --------------------------------------------------------------------------------
    def objective(self) -> dict[str, Any]:
        source = self.spec.get("objective") or {}
        metric = source.get("objectiveMetricName")
        if not metric:
            self.refuse("spec.objective.objectiveMetricName", "required")
        direction = str(source.get("type", "")).lower()
        if direction not in ("minimize", "maximize"):
            self.refuse("spec.objective.type", f"must be minimize or maximize (got {direction!r})")
        objective: dict[str, Any] = {"metric": metric or "", "direction": direction or "maximize"}
        if "goal" in source:
            goal = _float(source["goal"])
            if goal is None:
                self.refuse("spec.objective.goal", f"not a number: {source['goal']!r}")
            else:
                objective["target"] = goal
        extra = list(source.get("additionalMetricNames") or [])
        if extra:
            objective["additionalMetrics"] = extra
        for i, strategy in enumerate(source.get("metricStrategies") or []):
            self.strategy(objective, i, strategy)
        return objective

    def strategy(self, objective: dict[str, Any], i: int, strategy: dict[str, Any]) -> None:
        path = f"spec.objective.metricStrategies[{i}]"
        value = str(strategy.get("value", "")).lower()
        if value not in ("min", "max", "latest"):
            self.refuse(f"{path}.value", f"must be min, max or latest (got {value!r})")
            return
        if strategy.get("name") != objective["metric"]:
            self.note(
                ("spec", "objective", "additionalMetrics"),
                f"{strategy.get('name')}: kubetune records each additional metric's latest "
                f"value (Katib strategy {value})",
            )
            return
        if value == "latest":
            objective["strategy"] = "latest"
            return
        best = "max" if objective["direction"] == "maximize" else "min"
        if value != best:
            self.refuse(
                f"{path}.value",
                f"{value} of a metric to {objective['direction']}: kubetune takes a trial's "
                "best value in the objective's direction (or its latest)",
            )

    # -- algorithm --------------------------------------------------------------------------------
    def algorithm(self) -> dict[str, Any]:
        source = self.spec.get("algorithm") or {}
        name = str(source.get("algorithmName", ""))
        settings = {
            str(s.get("name")): s.get("value") for s in source.get("algorithmSettings") or []
        }
        path = ("spec", "algorithm")
        if name in REFUSED:
            self.refuse("spec.algorithm.algorithmName", REFUSED[name])
            return {"name": "random"}
        seed = settings.pop("random_state", None)
        out: dict[str, Any]
        if name in ("random", "grid"):
            out = {"name": name}
        elif name == "bayesianoptimization":
            out = {"name": "bayesian", "settings": self.bayesian(settings)}
        elif name == "hyperband":
            out = {"name": "hyperband", "settings": self.hyperband(settings)}
        elif name == "pbt":
            out = {"name": "pbt", "settings": self.pbt(settings)}
        elif name in NEAREST:
            ours, why = NEAREST[name]
            out = {"name": ours}
            self.note((*path, "name"), f"Katib {name}: {why}")
            startup = settings.pop("n_startup_trials", None)
            if ours == "bayesian" and startup is not None:
                out["settings"] = {"initialPoints": self.setting("n_startup_trials", startup)}
            if settings:
                self.note(path, f"{name} settings without a kubetune meaning: {sorted(settings)}")
            settings = {}
        else:
            self.refuse("spec.algorithm.algorithmName", f"unknown Katib algorithm {name!r}")
            return {"name": "random"}
        if seed is not None:
            out["seed"] = self.setting("random_state", seed)
        if settings:
            self.note(path, f"settings without a kubetune meaning, dropped: {sorted(settings)}")
        return out

    def setting(self, name: str, value: Any) -> int:
        number = _int(value)
        if number is None or number < 0:
            self.refuse(f"spec.algorithm.algorithmSettings[{name}]", f"not a count: {value!r}")
            return 1
        return number

    def bayesian(self, settings: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        path = ("spec", "algorithm", "settings")
        if "n_initial_points" in settings:
            out["initialPoints"] = self.setting(
                "n_initial_points", settings.pop("n_initial_points")
            )
        if "acq_func" in settings:
            katib = str(settings.pop("acq_func"))
            ours = ACQUISITIONS.get(katib.lower())
            if ours is None:
                self.refuse("spec.algorithm.algorithmSettings[acq_func]", f"unknown: {katib!r}")
            else:
                out["acquisition"] = ours
                if katib.lower() in ("gp_hedge", "pi"):
                    self.note((*path, "acquisition"), f"Katib {katib}: kubetune has ei and lcb")
        estimator = settings.pop("base_estimator", None)
        if estimator is not None and str(estimator).upper() != "GP":
            self.note(path, f"base_estimator {estimator}: kubetune's model is a GP")
        settings.pop("acq_optimizer", None)
        return out

    def hyperband(self, settings: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "eta" in settings:
            out["reductionFactor"] = self.setting("eta", settings.pop("eta"))
        name = settings.pop("resource_name", None)
        r_l = settings.pop("r_l", None)
        if not name:
            self.refuse("spec.algorithm.algorithmSettings[resource_name]", "hyperband needs it")
            return out
        self.resource_param = str(name)
        param = next((p for p in self.spec.get("parameters") or [] if p.get("name") == name), None)
        space = (param or {}).get("feasibleSpace") or {}
        high = _float(r_l) if r_l is not None else _float(space.get("max"))
        low = _float(space.get("min")) if space.get("min") is not None else 1.0
        if high is None or low is None or not high > low > 0:
            self.refuse(
                "spec.algorithm.algorithmSettings[r_l]",
                f"the budget of {name} needs 0 < min < r_l (got min {low}, r_l {high})",
            )
            return out
        integral = param is None or param.get("parameterType") == "int"
        self.out["resource"] = {
            "name": str(name),
            "min": int(low) if integral else low,
            "max": int(high) if integral else high,
        }
        self.note(
            ("spec", "resource"),
            f"Katib parameter {name} with r_l: the budget Hyperband allocates, no longer searched",
        )
        return out

    def pbt(self, settings: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "n_population" in settings:
            out["populationSize"] = self.setting("n_population", settings.pop("n_population"))
        for katib, ours in (
            ("truncation_threshold", "truncation"),
            ("resample_probability", "resampleProbability"),
        ):
            if katib in settings:
                out[ours] = _float(settings.pop(katib))
        settings.pop("suggestion_trial_dir", None)
        self.refuse(
            "spec.algorithm",
            "pbt converts, but kubetune's pbt trains each member in budget intervals: add "
            "spec.resource, algorithm.settings.perturbationInterval and spec.checkpoints",
        )
        return out

    # -- parameters ---------------------------------------------------------------------------------
    def parameters(self) -> list[dict[str, Any]]:
        params: list[dict[str, Any]] = []
        for i, p in enumerate(self.spec.get("parameters") or []):
            if p.get("name") == self.resource_param:
                continue
            converted = self.parameter(f"spec.parameters[{i}]", p, len(params))
            if converted is not None:
                params.append(converted)
        return params

    def parameter(self, path: str, p: dict[str, Any], index: int) -> dict[str, Any] | None:
        name, kind = p.get("name"), p.get("parameterType")
        space = p.get("feasibleSpace") or {}
        here = ("spec", "parameters", index)
        if kind in ("discrete", "categorical"):
            values = space.get("list") or []
            if not values:
                self.refuse(f"{path}.feasibleSpace.list", "required for " + str(kind))
                return None
            if kind == "discrete":
                numbers = [_number(v) for v in values]
                if any(v is None for v in numbers):
                    self.refuse(
                        f"{path}.feasibleSpace.list", f"discrete values are numbers: {values}"
                    )
                    return None
                self.note((*here, "type"), "Katib discrete: its choices are unordered here")
                return {"name": name, "type": "categorical", "values": numbers}
            return {"name": name, "type": "categorical", "values": [str(v) for v in values]}
        if kind not in ("double", "int"):
            self.refuse(f"{path}.parameterType", f"unknown type {kind!r}")
            return None
        out: dict[str, Any] = {"name": name, "type": "float" if kind == "double" else "int"}
        cast = _float if kind == "double" else _int
        for key in ("min", "max", "step"):
            if key in space:
                value = cast(space[key])
                if value is None:
                    self.refuse(f"{path}.feasibleSpace.{key}", f"not a number: {space[key]!r}")
                    return None
                out[key] = value
        for key in ("min", "max"):
            if key not in out:
                self.refuse(f"{path}.feasibleSpace.{key}", "required")
                return None
        distribution = space.get("distribution")
        if distribution in ("logUniform",):
            out["scale"] = "log"
        elif distribution in ("normal", "logNormal"):
            self.refuse(
                f"{path}.feasibleSpace.distribution",
                f"{distribution}: kubetune samples uniformly, on a linear or log scale",
            )
            return None
        elif distribution not in (None, "uniform"):
            self.refuse(f"{path}.feasibleSpace.distribution", f"unknown {distribution!r}")
            return None
        return out

    # -- early stopping -----------------------------------------------------------------------------
    def early_stopping(self) -> dict[str, Any] | None:
        source = self.spec.get("earlyStopping")
        if not source:
            return None
        name = source.get("algorithmName")
        if name != "medianstop":
            self.refuse("spec.earlyStopping.algorithmName", f"unknown Katib rule {name!r}")
            return None
        settings = {
            str(s.get("name")): s.get("value") for s in source.get("algorithmSettings") or []
        }
        out: dict[str, Any] = {}
        for katib, ours in (("min_trials_required", "minTrials"), ("start_step", "startStep")):
            if katib in settings:
                number = _int(settings.pop(katib))
                if number is None or number < 0:
                    self.refuse(f"spec.earlyStopping.algorithmSettings[{katib}]", "not a count")
                else:
                    out[ours] = number
        if settings:
            self.note(("spec", "earlyStopping"), f"settings dropped: {sorted(settings)}")
        return {"name": "median", "settings": out} if out else {"name": "median"}

    # -- metrics collector --------------------------------------------------------------------------
    def collector(self) -> None:
        source = self.spec.get("metricsCollectorSpec") or {}
        kind = (source.get("collector") or {}).get("kind", "StdOut")
        src = source.get("source") or {}
        path = ("spec", "metricsCollector")
        filters = ((src.get("filter") or {}).get("metricsFormat")) or []
        named = [self.named_filter(i, f) for i, f in enumerate(filters)]
        if kind == "StdOut":
            out: dict[str, Any] = {"kind": "stdout"}
            self.note(
                path, "read from the pod's log through the API server: no sidecar, no webhook"
            )
        elif kind == "File":
            fs = src.get("fileSystemPath") or {}
            form = str(fs.get("format", "TEXT")).lower()
            out = {"kind": "file", "path": fs.get("path")}
            if form == "json":
                out["format"] = "json"
            if fs.get("kind") == "Directory":
                self.refuse(
                    "spec.metricsCollectorSpec.source.fileSystemPath.kind",
                    "a directory: kubetune reads one file",
                )
            self.note(path, "a native sidecar tails the file; it ends with the trial")
        elif kind == "PrometheusMetric":
            get = src.get("httpGet") or {}
            out = {
                "kind": "prometheus",
                "port": _int(get.get("port")) or 8080,
                "path": get.get("path", "/metrics"),
            }
            self.note(path, "scraped every 5s; the trial serves a `step` gauge beside its metrics")
        elif kind == "Push":
            out = {"kind": "grpc"}
            self.note(path, "Katib's report_metrics becomes kubetune.report(step, **metrics)")
        elif kind == "None":
            out = {"kind": "grpc"}
        else:
            self.refuse(
                "spec.metricsCollectorSpec.collector.kind",
                f"{kind}: kubetune reads stdout, a file, Prometheus or gRPC reports",
            )
            return
        if named and out["kind"] in ("stdout", "file") and out.get("format") != "json":
            out["filter"] = [f for f in named if f is not None]
            self.note((*path, "filter"), "Katib's groups (name, value) became named groups")
        if out["kind"] in ("stdout", "file"):
            self.note(
                (*path, "kind"),
                "the step is the count of lines with a metric; if the trainer prints its epoch "
                "(epoch=3 loss=0.4), set stepMetric: epoch",
            )
        self.out["metricsCollector"] = out

    def named_filter(self, i: int, text: str) -> str | None:
        """Katib's filter (metric name in group 1, value in group 2) with named groups."""
        try:
            re.compile(text)
        except re.error as exc:
            self.refuse(
                f"spec.metricsCollectorSpec.source.filter.metricsFormat[{i}]",
                f"not a regular expression: {exc}",
            )
            return None
        starts = [m.start() for m in re.finditer(r"(?<!\\)\((?!\?)", text)]
        if len(starts) < 2:
            self.refuse(
                f"spec.metricsCollectorSpec.source.filter.metricsFormat[{i}]",
                "needs two groups: the metric's name, then its value",
            )
            return None
        a, b = starts[0], starts[1]
        return text[:a] + "(?P<name>" + text[a + 1 : b] + "(?P<value>" + text[b + 1 :]

    # -- trial template -------------------------------------------------------------------------------
    def trial_template(self) -> None:
        source = self.spec.get("trialTemplate") or {}
        if "configMap" in source:
            self.refuse("spec.trialTemplate.configMap", "inline the template as trialSpec")
            return
        trial = source.get("trialSpec")
        if not isinstance(trial, dict):
            self.refuse("spec.trialTemplate.trialSpec", "required (a batch/v1 Job or a Pod)")
            return
        kind, api = trial.get("kind"), trial.get("apiVersion")
        refs = {
            str(p.get("name")): str(p.get("reference")) for p in source.get("trialParameters") or []
        }
        known = {p.get("name") for p in self.spec.get("parameters") or []}  # refused ones too
        for name, reference in refs.items():
            if reference not in known:
                self.refuse(
                    "spec.trialTemplate.trialParameters",
                    f"{name} refers to {reference!r}, which is no parameter",
                )
        template: dict[str, Any] = {}
        if (api, kind) == ("batch/v1", "Job"):
            job = _substituted(trial, refs, self)
            job.pop("apiVersion", None)
            job.pop("kind", None)
            template["job"] = job
            pod = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
            at = "spec.trialTemplate.trialSpec.spec.template.spec"
        elif (api, kind) == ("v1", "Pod"):
            pod_doc = _substituted(trial, refs, self)
            template["metadata"] = pod_doc.get("metadata")
            template["spec"] = pod_doc.get("spec") or {}
            if template["metadata"] is None:
                del template["metadata"]
            pod = template["spec"]
            at = "spec.trialTemplate.trialSpec.spec"
        else:
            self.refuse(
                "spec.trialTemplate.trialSpec.kind",
                f"{api}/{kind}: kubetune runs trials as Pods or batch/v1 Jobs",
            )
            return
        primary = source.get("primaryContainerName")
        if primary:
            template["primaryContainer"] = primary
        containers = pod.get("containers") or []
        main = next(
            (c for c in containers if c.get("name") == primary),
            containers[0] if containers else None,
        )
        for c in containers:
            if c is not main and _mentions_params(c):
                self.refuse(
                    f"{at}.containers[{c.get('name')}]",
                    "kubetune substitutes parameters in the primary container only",
                )
        if main is not None:
            self.metadata_env(main, str(kind))
        if pod.get("initContainers") and any(_mentions_params(c) for c in pod["initContainers"]):
            self.refuse(
                f"{at}.initContainers",
                "kubetune substitutes parameters in the primary container only",
            )
        if source.get("retain"):
            self.out["retainPods"] = True
        for cond in ("successCondition", "failureCondition"):
            if cond in source:
                self.note(
                    ("spec", "trialTemplate"),
                    f"{cond} dropped: kubetune reads the Job's Complete/Failed conditions",
                )
        self.out["trialTemplate"] = template

    def metadata_env(self, container: dict[str, Any], kind: str) -> None:
        """${trialSpec.*} in the primary container: env from the downward API, used as $(VAR)."""
        wanted: dict[str, dict[str, Any]] = {}

        def swap(match: re.Match[str]) -> str:
            what, key = match.group(1), match.group(2)
            if what == "Name":
                return "$(KUBETUNE_TRIAL)"
            if what == "Kind":
                return kind
            if what == "APIVersion":
                return "batch/v1" if kind == "Job" else "v1"
            var = (
                "KUBETUNE_NAMESPACE"
                if what == "Namespace"
                else f"KUBETUNE_{what.upper()}_{re.sub(r'[^A-Za-z0-9]', '_', key or '').upper()}"
            )
            field_path = (
                "metadata.namespace" if what == "Namespace" else f"metadata.{what.lower()}['{key}']"
            )
            wanted[var] = {"name": var, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}
            return f"$({var})"

        for key in ("command", "args"):
            if key in container:
                container[key] = [META_REF.sub(swap, str(v)) for v in container[key]]
        for e in container.get("env") or []:
            if isinstance(e.get("value"), str):
                e["value"] = META_REF.sub(swap, e["value"])
        if wanted:
            container["env"] = list(wanted.values()) + list(container.get("env") or [])
            self.note(
                ("spec", "trialTemplate"), "${trialSpec.*} became $(VAR) from the downward API"
            )


def _substituted(obj: Any, refs: dict[str, str], conv: _Converter) -> Any:
    """A deep copy with ${trialParameters.X} as ${params.<reference>}."""
    if isinstance(obj, dict):
        return {k: _substituted(v, refs, conv) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_substituted(v, refs, conv) for v in obj]
    if isinstance(obj, str):

        def swap(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in refs:
                conv.refuse(
                    "spec.trialTemplate.trialSpec",
                    f"${{trialParameters.{name}}} is not in trialParameters",
                )
                return match.group(0)
            return f"${{params.{refs[name]}}}"

        return TRIAL_PARAM.sub(swap, obj)
    return obj


def _mentions_params(container: dict[str, Any]) -> bool:
    return "${params." in repr(container)


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    number = _float(value)
    if number is None or number != int(number):
        return None
    return int(number)


def _number(value: Any) -> int | float | None:
    number = _float(value)
    if number is None:
        return None
    return int(number) if number == int(number) and "." not in str(value) else number


def convert_experiment(doc: Any) -> Conversion:
    """The TuningJob of a Katib Experiment; see the module docstring."""
    if (
        not isinstance(doc, dict)
        or doc.get("kind") != "Experiment"
        or not str(doc.get("apiVersion", "")).startswith("kubeflow.org/")
    ):
        kind = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
        found = f"{doc.get('apiVersion')}/{kind}" if isinstance(doc, dict) else kind
        return Conversion(
            {},
            {},
            [("kind", f"not a Katib Experiment (kubeflow.org/v1beta1 Experiment); found {found}")],
        )
    if doc.get("apiVersion") != "kubeflow.org/v1beta1":
        return Conversion(
            {},
            {},
            [
                (
                    "apiVersion",
                    f"kubetune converts kubeflow.org/v1beta1 (got {doc.get('apiVersion')})",
                )
            ],
        )
    return _Converter(doc).convert()
