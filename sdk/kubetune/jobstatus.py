"""One job status: a TuningJob's `status` built from its spec and its trials, for both drivers.

The operator writes it into the resource; the local client builds the same model from the state
file, so `kubetune get` reads alike on a laptop and on a cluster. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from .engine import Decision, Finish, TrialView
from .front import pareto_front
from .spec import (
    BestTrial,
    Condition,
    JobPhase,
    TrialCounts,
    TrialState,
    TuningJobSpec,
    TuningJobStatus,
    WarmStartStatus,
)


def condition(
    previous: Sequence[Condition],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: str,
) -> Condition:
    """A condition; lastTransitionTime carries over from `previous` if the status is unchanged."""
    value = "True" if status else "False"
    old = next((c for c in previous if c.type == type_), None)
    since = old.last_transition_time if old and old.status == value else now
    return Condition(
        type=type_, status=value, reason=reason, message=message, last_transition_time=since
    )


def planned(trials: Sequence[TrialView], decision: Decision) -> list[TrialView]:
    """The trials as they stand once `decision` is carried out: launches pending, stops stopping."""
    told = {s.name for s in decision.stop}
    after = [
        TrialView(t.name, t.index, t.params, TrialState.stopping, t.curve, t.objective, t.metrics)
        if t.name in told and t.state.active
        else t
        for t in trials
    ]
    after += [TrialView(s.name, s.index, s.params, TrialState.pending) for s in decision.start]
    return after


def count_trials(states: Sequence[TrialState]) -> TrialCounts:
    """Trials by state; pending ones count as running (`TrialCounts`)."""
    counts = TrialCounts(created=len(states))
    for state in states:
        name = TrialState.running.value if state is TrialState.pending else state.value
        setattr(counts, name, getattr(counts, name) + 1)
    return counts


def job_status(
    spec: TuningJobSpec,
    trials: Sequence[TrialView],
    best: BestTrial | None,
    finish: Finish | None,
    previous: TuningJobStatus | None,
    now: str,
    warm: WarmStartStatus | None = None,
) -> TuningJobStatus:
    """The status of a job with these trials; `finish`: how it ended (None: it runs); `warm`:
    what its warm start brought in. Times and conditions that do not change carry over from
    `previous`."""
    previous = previous or TuningJobStatus()
    old = previous.conditions
    counts = count_trials([t.state for t in trials])
    status = TuningJobStatus(
        phase=JobPhase.running,
        trials=counts,
        progress=f"{counts.succeeded + counts.failed + counts.stopped}/{spec.max_trials}",
        best_trial=best,
        start_time=previous.start_time or now,
        observed_generation=previous.observed_generation,
        warm_start=warm,
    )
    if spec.multi_objective:
        front = pareto_front(spec, trials)
        status.pareto_front = front.status_entries()
        status.pareto_front_size = len(front.trials)
        status.hypervolume = front.hypervolume
    if finish is None:
        status.conditions = [
            condition(
                old, "Running", True, "TrialsRunning", f"{counts.running} trials running", now
            ),
            condition(old, "Succeeded", False, "InProgress", "", now),
        ]
        return status
    outcome = JobPhase.succeeded if finish.succeeded else JobPhase.failed
    status.phase = outcome
    status.reason, status.message = finish.reason.value, finish.message
    status.completion_time = previous.completion_time or now
    status.conditions = [
        condition(old, "Running", False, finish.reason.value, finish.message, now),
        condition(old, outcome.value, True, finish.reason.value, finish.message, now),
    ]
    return status
