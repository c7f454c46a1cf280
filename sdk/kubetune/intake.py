"""The one metrics intake of both drivers: authenticate, persist, judge, answer.

Reports reach `MetricsIntake` from the gRPC MetricsService (`report_batch`, a trial's token
proves who sends) and from pull-mode scrapes (`accept`, the driver itself read the endpoint). The
intake writes nothing itself: each driver supplies a `TrialStore`, and every store keeps this
contract (`tests/test_intake_conformance.py` checks it against both):

- `persist` returns only once the points are durable, so a point is stored before it is
  acknowledged and a restart between the two loses nothing;
- every method is safe to call from several threads at once;
- points are taken only while the trial is running or stopping, else `TrialEnded`;
- a step reported again replaces its values, so a retried batch is stored once;
- a point that would pass a per-trial bound is refused alone (`LimitExceeded`, naming the
  limit); the whole batch fails with `UnknownTrial`, `BadToken`, `TrialEnded` or `NotReady`.

Once stored, the points are judged in order by the job's early-stopping rule; a stop is recorded
by the store (`stop`) before the reply tells the trainer to stop.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .rpc.limits import LimitExceeded
from .rpc.metrics import BatchVerdict, Point, ReportVerdict
from .spec import TrialState, TuningJobSpec
from .stopping import BaseStopper, NoStopper, create_stopper, judge_batch
from .stopping._base import Curve
from .telemetry import Telemetry


@dataclass(frozen=True)
class Rule:
    """How a trial's job judges reports: its objective metric and early-stopping rule."""

    objective: str
    stopper: BaseStopper
    name: str  # the rule's name, for telemetry

    @classmethod
    def of(cls, spec: TuningJobSpec) -> Rule:
        return cls(spec.objective.metric, create_stopper(spec), spec.early_stopping.name)


class TrialStore(Protocol):
    """What a driver provides the intake; `key` is the store's own handle of a trial."""

    def find(self, trial: str, token: str) -> Hashable:
        """The trial named `trial` whose token is `token`. Raises UnknownTrial, BadToken, or
        NotReady while the store cannot tell yet."""
        ...

    def rule(self, key: Hashable) -> Rule:
        """The rule of the trial's job. Raises UnknownTrial (the trial or its job is gone)."""
        ...

    def persist(
        self, key: Hashable, points: Sequence[Point]
    ) -> tuple[TrialState, dict[int, LimitExceeded]]:
        """Store the points in one durable write if the trial is running or stopping (else
        TrialEnded); its state then, and the points refused by a bound (by index). NotReady
        when the storage is away: nothing was stored, the sender retries."""
        ...

    def curve(self, key: Hashable) -> list[tuple[int, float]]:
        """The trial's objective curve by step, as stored (the last points included)."""
        ...

    def rivals(self, key: Hashable) -> list[Curve]:
        """The objective curves of the other trials of its job that have one."""
        ...

    def stop(self, key: Hashable, reason: str) -> bool:
        """Record that the running trial is stopping; False if it no longer runs."""
        ...


class MetricsIntake:
    """The MetricsBackend of both drivers. `changed(key)` hears of every stored batch (the
    driver wakes its loop); `stopped(key)` of every early stop this intake recorded."""

    def __init__(
        self,
        store: TrialStore,
        changed: Callable[[Hashable], None] = lambda _: None,
        stopped: Callable[[Hashable], None] = lambda _: None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.store = store
        self.changed = changed
        self.stopped = stopped
        self.telemetry = telemetry

    def report_batch(self, trial: str, token: str, points: list[Point]) -> BatchVerdict:
        """A trainer's batch over gRPC."""
        return self.accept(self.store.find(trial, token), points)

    def accept(self, key: Hashable, points: list[Point]) -> BatchVerdict:
        """Store the points in one write, then judge them in order."""
        rule = self.store.rule(key)
        state, refused = self.store.persist(key, points)
        self.changed(key)
        if state is TrialState.stopping:
            return BatchVerdict(ReportVerdict(True, "already stopping"), refused)
        if isinstance(rule.stopper, NoStopper):
            return BatchVerdict(ReportVerdict(False), refused)
        mine = self.store.curve(key)
        steps = [
            p.step for i, p in enumerate(points) if i not in refused and rule.objective in p.metrics
        ]
        decision = judge_batch(
            rule.stopper,
            mine,
            steps,
            lambda: self.store.rivals(key),
            lambda d: self.telemetry.stop_decision(rule.name, d.stop) if self.telemetry else None,
        )
        if decision.stop and self.store.stop(key, f"early stopping: {decision.reason}"):
            self.stopped(key)
            return BatchVerdict(ReportVerdict(True, decision.reason), refused)
        return BatchVerdict(ReportVerdict(False), refused, rule.stopper.next_judged_step(mine))

    def accept_scraped(self, key: Hashable, point: Point) -> None:
        """One point the driver scraped from the trial's endpoint; a refusal is raised. A stop
        verdict needs no reply: the store has recorded it, and the driver stops the process."""
        result = self.accept(key, [point])
        if result.refused:
            raise result.refused[0]
