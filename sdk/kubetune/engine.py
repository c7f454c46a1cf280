"""The decision core: given a TuningJob and its trials, decide what happens next.

One pure function, `decide`, used by both drivers (the local runner and the Kubernetes operator):
which trials to start (names, params, budgets), which running trials to stop and why, and whether
the job is finished, with its reason and best trial. Drivers only carry the decision out and
record state; no tuning logic lives anywhere else. Imports no I/O library.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .front import feasible, pareto_front
from .lineage import Continuation, continuation
from .search import Observation, Params, create_suggester
from .spec import (
    BayesianAlgorithm,
    BestTrial,
    HyperbandAlgorithm,
    PbtAlgorithm,
    TrialState,
    TuningJobSpec,
)
from .stopping import BaseStopper, create_stopper

# Without maxFailedTrials, a job whose first this-many trials all failed ends as failed.
FIRST_FAILURES = 5
SuggestFn = Callable[[TuningJobSpec, Sequence[Observation], int], list[Params]]


class FinishReason(StrEnum):
    max_trials = "MaxTrialsReached"
    target = "TargetReached"
    exhausted = "SearchSpaceExhausted"
    failures = "TooManyFailedTrials"


@dataclass(frozen=True)
class TrialView:
    """What the core needs to know of one trial. `curve` holds (step, objective) pairs."""

    name: str
    index: int
    params: Mapping[str, Any]
    state: TrialState
    curve: Sequence[tuple[int, float]] = ()
    objective: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)  # the latest of each metric

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", TrialState(self.state))  # a plain string is fine

    @property
    def active(self) -> bool:
        return self.state.active


@dataclass(frozen=True)
class TrialLaunch:
    name: str
    index: int
    params: Params
    budget: float | None
    continues: Continuation | None = None  # the trial whose checkpoint it starts from


@dataclass(frozen=True)
class StopOrder:
    name: str
    reason: str


@dataclass(frozen=True)
class Finish:
    reason: FinishReason
    succeeded: bool
    message: str


@dataclass(frozen=True)
class Decision:
    start: list[TrialLaunch] = field(default_factory=list)
    stop: list[StopOrder] = field(default_factory=list)
    finish: Finish | None = None
    best: BestTrial | None = None


def trial_name(job: str, index: int) -> str:
    """Deterministic trial names: two drivers, or a restarted one, never create duplicates."""
    return f"{job}-{index}"


def default_suggest(
    spec: TuningJobSpec, history: Sequence[Observation], count: int
) -> list[Params]:
    return create_suggester(spec).suggest(history, count)


def decide(
    job: str,
    spec: TuningJobSpec,
    trials: Sequence[TrialView],
    suggest: SuggestFn = default_suggest,
    stopper: BaseStopper | None = None,
    prior: Sequence[Observation] = (),
) -> Decision:
    """What happens next for job `job` with these trials (any order). `prior`: earlier results
    (warm start) the Bayesian search learns from; they are not trials and use up no maxTrials."""
    trials = sorted(trials, key=lambda t: t.index)
    stops = _early_stops(trials, stopper or create_stopper(spec))
    told = {s.name for s in stops}
    states = {t.name: (TrialState.stopping if t.name in told else t.state) for t in trials}
    best = best_trial(spec, trials)
    active = [t for t in trials if states[t.name].active]

    finish = _finish_now(spec, trials, states, best)
    if finish is None and len(trials) >= spec.max_trials and not active:
        finish = _final(
            spec, trials, best, FinishReason.max_trials, f"all {spec.max_trials} trials finished"
        )
    if finish is not None:
        stops += [
            StopOrder(t.name, f"job finished: {finish.reason.value}")
            for t in active
            if states[t.name] is not TrialState.stopping
        ]
        return Decision(stop=stops, finish=finish, best=best)

    slots = min(spec.parallelism - len(active), spec.max_trials - len(trials))
    if slots <= 0:
        return Decision(stop=stops, best=best)
    learns = isinstance(spec.algorithm, BayesianAlgorithm)  # the only one with a model
    history = [*(prior if learns else ()), *(_observation(spec, t, states[t.name]) for t in trials)]
    next_index = trials[-1].index + 1 if trials else 0
    queued = _enqueued(spec, next_index, slots)
    history += [Observation(params, None, TrialState.running) for params in queued]
    suggestions = queued + (
        suggest(spec, history, slots - len(queued)) if slots > len(queued) else []
    )
    if not suggestions and not active:
        reason = FinishReason.exhausted
        finish = _final(spec, trials, best, reason, "no configuration left")
        return Decision(stop=stops, finish=finish, best=best)
    launches = [
        _launch(
            spec,
            job,
            next_index + i,
            params,
            continuation(spec, trials, history, next_index + i, params),
        )
        for i, params in enumerate(suggestions[:slots])
    ]
    return Decision(start=launches, stop=stops, best=best)


def _enqueued(spec: TuningJobSpec, next_index: int, slots: int) -> list[Params]:
    """The configurations of `warmStart.enqueue` that the next `slots` trials run, in order:
    trial i runs entry i."""
    queue = spec.warm_start.enqueue if spec.warm_start is not None else []
    return [dict(c) for c in queue[next_index : next_index + slots]]


def objective_of(spec: TuningJobSpec, trial: TrialView) -> float | None:
    """A trial's objective: as recorded, else from its curve (objective.strategy)."""
    if trial.objective is not None:
        return trial.objective
    return spec.objective.summarize([v for _, v in trial.curve])


def best_trial(spec: TuningJobSpec, trials: Sequence[TrialView]) -> BestTrial | None:
    """The best feasible finished-or-running trial with an objective (ties: the earliest).
    None with several objectives: their result is the Pareto front (`front.pareto_front`)."""
    if spec.multi_objective:
        return None
    best: tuple[float, TrialView] | None = None
    for t in sorted(trials, key=lambda t: t.index):
        value = objective_of(spec, t)
        if value is None or t.state is TrialState.failed or not feasible(spec, t.metrics):
            continue
        if best is None or spec.objective.better(value, best[0]):
            best = (value, t)
    if best is None:
        return None
    value, t = best
    curve = reversed(t.curve) if spec.objective.strategy == "latest" else iter(t.curve)
    step = next((s for s, v in curve if v == value), None)
    return BestTrial(name=t.name, params=dict(t.params), objective=value, step=step)


def _early_stops(trials: Sequence[TrialView], stopper: BaseStopper) -> list[StopOrder]:
    orders = []
    for t in trials:
        if t.state is not TrialState.running or not t.curve:
            continue
        others = [o.curve for o in trials if o.name != t.name and o.curve]
        verdict = stopper.should_stop(t.curve, others)
        if verdict.stop:
            orders.append(StopOrder(t.name, f"early stopping: {verdict.reason}"))
    return orders


def _finish_now(
    spec: TuningJobSpec,
    trials: Sequence[TrialView],
    states: Mapping[str, TrialState],
    best: BestTrial | None,
) -> Finish | None:
    failed = sum(1 for t in trials if states[t.name] is TrialState.failed)
    if spec.max_failed_trials is not None and failed > spec.max_failed_trials:
        message = f"{failed} trials failed, more than maxFailedTrials={spec.max_failed_trials}"
        return Finish(FinishReason.failures, False, message)
    ended = sum(1 for t in trials if states[t.name].final)
    if spec.max_failed_trials is None and failed >= FIRST_FAILURES and failed == ended:
        message = (
            f"the first {failed} trials all failed and none succeeded, so the training code is "
            "probably broken (see a trial's log); set maxFailedTrials to allow more failures"
        )
        return Finish(FinishReason.failures, False, message)
    if best is not None and spec.objective.reached(best.objective):
        metric, target = spec.objective.metric, spec.objective.target
        message = f"{best.name} reached {metric}={best.objective:g} (target {target:g})"
        return Finish(FinishReason.target, True, message)
    return None


def _final(
    spec: TuningJobSpec,
    trials: Sequence[TrialView],
    best: BestTrial | None,
    reason: FinishReason,
    message: str,
) -> Finish:
    if spec.multi_objective:
        front = pareto_front(spec, trials).trials
        if not front:
            return Finish(
                reason, False, f"{message}, but no feasible trial reported every objective"
            )
        return Finish(reason, True, f"{message}; {len(front)} trials on the Pareto front")
    if best is None:
        if spec.constraints and any(objective_of(spec, t) is not None for t in trials):
            return Finish(reason, False, f"{message}, but no trial met the constraints")
        return Finish(reason, False, f"{message}, but no trial reported the objective")
    return Finish(reason, True, f"{message}; best {best.name} with {best.objective:g}")


def _observation(spec: TuningJobSpec, t: TrialView, state: TrialState) -> Observation:
    """What the search learns of a trial: a stopping one was judged, so it counts as stopped."""
    if state is TrialState.stopping:
        state = TrialState.stopped
    if state.active:
        return Observation(params=t.params, value=None, state=TrialState.running)
    if state is TrialState.failed:
        return Observation(params=t.params, value=None, state=state)
    return Observation(params=t.params, value=objective_of(spec, t), state=state, metrics=t.metrics)


def _launch(
    spec: TuningJobSpec, job: str, index: int, params: Params, continues: Continuation | None
) -> TrialLaunch:
    budget: float | None = None
    if spec.resource is not None:
        if isinstance(spec.algorithm, HyperbandAlgorithm | PbtAlgorithm):
            budget = float(params[spec.resource.name])
        else:
            budget = spec.resource.max
            params = {**params, spec.resource.name: spec.resource.budget(spec.resource.max)}
    return TrialLaunch(trial_name(job, index), index, params, budget, continues)
