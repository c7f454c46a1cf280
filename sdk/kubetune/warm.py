"""Warm start: earlier results as observations for the search, from a file, inline points or
earlier jobs' trials.

`read_points` reads a CSV or JSON file (bad columns or values: a `SpecError` at
`spec.warmStart.fromFile`); `points_of_trials` turns an earlier job's trials into points;
`fitting` splits points into those that fit the new space (they feed the model) and those that
do not, each with its reason. Used by `kubetune run`, `Client.submit` and the operator.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .search import Observation
from .spec import (
    FieldError,
    SpecError,
    TrialState,
    TuningJob,
    TuningJobSpec,
    WarmPoint,
    WarmStartStatus,
)
from .spec._goals import MAX_WARM_POINTS

FILE_FIELD = "spec.warmStart.fromFile"
MAX_FILE_BYTES = 16 * 2**20
MAX_PRIOR = 2000  # earlier results the search takes (a GP conditions on all of them)


@dataclass(frozen=True)
class Fit:
    """Points that fit the space, as finished observations, and why the others do not."""

    observations: list[Observation]
    # "<source>: <reason>", one per point left out (one line for all beyond MAX_PRIOR)
    skipped: list[str]
    left_out: int = 0  # points left out in all

    def status(self, spec: TuningJobSpec) -> WarmStartStatus | None:
        """What the job's status says of its warm start (None: it has none)."""
        warm = spec.warm_start
        if warm is None:
            return None
        enqueued = len(warm.enqueue)
        return WarmStartStatus(
            points=len(self.observations), left_out=self.left_out, enqueued=enqueued
        )


def _fail(message: str, source: str | None = None) -> SpecError:
    return SpecError([FieldError(FILE_FIELD, message)], source)


def read_points(path: Path, spec: TuningJobSpec) -> list[WarmPoint]:
    """The points of a CSV (a header row of parameter and metric names) or JSON file (a list of
    {params: {...}, metrics: {...}} objects, or of flat {name: value} objects)."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise _fail(f"{path}: larger than {MAX_FILE_BYTES // 2**20} MiB")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise _fail(f"{path}: not UTF-8 text") from None
    if path.suffix.lower() == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _fail(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise _fail(f"{path}: must hold a list of objects")
        return [_point(spec, r, f"{path.name}[{i}]") for i, r in enumerate(rows)]
    if path.suffix.lower() != ".csv":
        raise _fail(f"{path}: give a .csv or .json file")
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    wanted = [*spec.parameter_names, *(g.metric for g in spec.goals)]
    missing = [name for name in wanted if name not in header]
    if missing:
        raise _fail(f"{path}: missing columns {missing} (the header has {header})")
    return [_point(spec, row, f"{path.name} line {i + 2}") for i, row in enumerate(reader)]


def _point(spec: TuningJobSpec, row: dict[str, Any], where: str) -> WarmPoint:
    if isinstance(row.get("params"), dict) and isinstance(row.get("metrics"), dict):
        params, metrics = dict(row["params"]), dict(row["metrics"])
    else:
        metric_names = set(spec.metric_names)
        params = {k: v for k, v in row.items() if k not in metric_names}
        metrics = {k: v for k, v in row.items() if k in metric_names}
    for goal in spec.goals:
        if goal.metric not in metrics or metrics[goal.metric] in ("", None):
            raise _fail(f"{where}: no value of the objective {goal.metric!r}")
    numbers: dict[str, float] = {}
    for name, value in metrics.items():
        if value in ("", None):
            continue
        number = _number(value)
        if number is None or not math.isfinite(number):
            raise _fail(f"{where}: {name} is not a finite number (got {value!r})")
        numbers[name] = number
    return WarmPoint(params=_typed(spec, params, where), metrics=numbers, source=where)


def _typed(spec: TuningJobSpec, params: dict[str, Any], where: str) -> dict[str, Any]:
    """CSV cells are text: numbers for numeric parameters (and numeric-looking choices)."""
    typed: dict[str, Any] = {}
    kinds = {p.name: p.type for p in spec.parameters}
    for name, value in params.items():
        kind = kinds.get(name)
        if isinstance(value, str) and kind in ("float", "int"):
            number = _number(value)
            if number is None:
                raise _fail(f"{where}: parameter {name} is not a number (got {value!r})")
            value = int(number) if kind == "int" and number.is_integer() else number
        typed[name] = value
    return typed


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def points_of_trials(trials: Iterable[Any], source: str) -> list[WarmPoint]:
    """Finished, not-failed trials (`TrialInfo`s) that reported something, as points."""
    return [
        WarmPoint(params=dict(t.params), metrics=dict(t.metrics), source=f"{source}/{t.name}")
        for t in trials
        if t.state.final and t.state is not TrialState.failed and t.metrics
    ]


def fitting(spec: TuningJobSpec, points: Sequence[WarmPoint]) -> Fit:
    """Which points fit the space (same parameter names, every value inside it) and report
    every objective; those as observations, the rest with their reasons."""
    parameters = {p.name: p for p in spec.parameters}
    budget = spec.resource.name if spec.resource is not None else None  # set per trial
    observations, skipped = [], []
    for point in points:
        source = point.source or "warmStart.points"
        params = {k: v for k, v in point.params.items() if k != budget}
        names = set(params)
        if names != set(parameters):
            extra, lost = sorted(names - set(parameters)), sorted(set(parameters) - names)
            skipped.append(f"{source}: parameters differ (extra {extra}, missing {lost})")
            continue
        why = next(
            (f"{n}: {r}" for n, p in parameters.items() if (r := p.outside(params[n]))),
            None,
        )
        if why is not None:
            skipped.append(f"{source}: outside the space ({why})")
            continue
        absent = [g.metric for g in spec.goals if g.metric not in point.metrics]
        if absent:
            skipped.append(f"{source}: no value of {absent}")
            continue
        value = point.metrics[spec.objective.metric]
        observations.append(
            Observation(params, value, TrialState.succeeded, dict(point.metrics), prior=True)
        )
    left_out = len(skipped)
    if len(observations) > MAX_PRIOR:
        beyond = len(observations) - MAX_PRIOR
        skipped.append(f"{beyond} more points: left out (the model takes at most {MAX_PRIOR})")
        observations = observations[:MAX_PRIOR]
        left_out += beyond
    return Fit(observations, skipped, left_out)


def inline_file(job: TuningJob, base_dir: Path) -> TuningJob:
    """The job with `warmStart.fromFile` read into `warmStart.points` (relative paths: from
    `base_dir`); unchanged without one."""
    warm = job.spec.warm_start
    if warm is None or warm.from_file is None:
        return job
    path = Path(warm.from_file)
    read = read_points(path if path.is_absolute() else base_dir / path, job.spec)
    if len(warm.points) + len(read) > MAX_WARM_POINTS:
        raise _fail(f"{path}: {len(read)} points; at most {MAX_WARM_POINTS} in all")
    merged = warm.model_copy(update={"from_file": None, "points": [*warm.points, *read]})
    return job.model_copy(update={"spec": job.spec.model_copy(update={"warm_start": merged})})


def no_such_job(index: int, name: str, where: str) -> SpecError:
    return SpecError(
        [FieldError(f"spec.warmStart.fromJobs[{index}]", f"no job named {name!r} in {where}")]
    )


def local_points(job: TuningJob, root: Path, resuming: bool = False) -> list[WarmPoint]:
    """The inline points and the trials of `warmStart.fromJobs` in the work root `root` (a
    name that is not there: a `SpecError` at its field, unless `resuming` a job that already
    began: then an earlier job deleted since only stops contributing)."""
    warm = job.spec.warm_start
    if warm is None:
        return []
    from .client._errors import NotFound
    from .client._local import LocalBackend

    backend = LocalBackend(root)
    points = list(warm.points)
    for i, name in enumerate(warm.from_jobs):
        if name == job.name:
            raise SpecError([FieldError(f"spec.warmStart.fromJobs[{i}]", "names this job itself")])
        try:
            trials = backend.trials(name)
        except NotFound:
            if resuming:
                continue
            raise no_such_job(i, name, str(root)) from None
        points += points_of_trials(trials, name)
    return points
