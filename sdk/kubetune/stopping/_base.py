"""The early-stopping interface: given one trial's curve and the others', stop it or not.

Rules are pure functions of their inputs. Callers (the metrics service on each report, the
decision core on each pass) hand in the objective curves as (step, raw value) pairs; the rule
applies the objective's direction itself.
"""

from __future__ import annotations

import abc
import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..spec import Direction, TuningJobSpec

Point = tuple[int, float]
Curve = Sequence[Point]


@dataclass(frozen=True)
class StopDecision:
    stop: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.stop


KEEP = StopDecision(False)


class BaseStopper(abc.ABC):
    """Decides whether a running trial should stop.

    `should_stop(curve, others)` looks at `curve`'s latest point: the call is made whenever the
    trial reports. `others` are the curves of the job's other trials, finished or running, in any
    order. Curves are sorted by step by the caller or not: rules sort them.
    """

    def __init__(self, spec: TuningJobSpec) -> None:
        self.spec = spec
        self.minimize = spec.objective.direction is Direction.minimize

    @abc.abstractmethod
    def should_stop(self, curve: Curve, others: Sequence[Curve]) -> StopDecision:
        """Whether the trial with `curve` should stop now, and why."""

    def next_judged_step(self, curve: Curve) -> int | None:
        """The first step past the curve's latest at which the rule may judge (None: never).
        A batching client sends a point at or past it at once and waits for the verdict."""
        return _latest(curve) + 1

    def anchors(self) -> list[float]:
        """Steps whose first report the rule ranks trials by; a compacted curve keeps them."""
        return []

    def better(self, a: float, b: float) -> bool:
        return a < b if self.minimize else a > b

    def best(self, values: Sequence[float]) -> float:
        return min(values) if self.minimize else max(values)


class NoStopper(BaseStopper):
    """Never stops a trial."""

    def should_stop(self, curve: Curve, others: Sequence[Curve]) -> StopDecision:
        return KEEP

    def next_judged_step(self, curve: Curve) -> int | None:
        return None


def sorted_curve(curve: Curve) -> list[Point]:
    return sorted(((int(s), float(v)) for s, v in curve), key=lambda p: p[0])


def _latest(curve: Curve) -> int:
    return max((int(s) for s, _ in curve), default=-1)


def judge_batch(
    stopper: BaseStopper,
    curve: Sequence[Point],
    steps: Sequence[int],
    others: Callable[[], Sequence[Curve]],
    decided: Callable[[StopDecision], None] = lambda _: None,
) -> StopDecision:
    """Judge the points of one batch at `steps` (in the order they were reported), each against
    the curve (sorted by step, holding the batch) as it stood at that step, until one says stop. `others` is called at most once,
    and only if some step is judged; `decided` hears every decision made. A step is judged when
    it reaches the rule's next judged step after the point before it, so skipping the others
    costs a bisection each."""

    rivals: Sequence[Curve] | None = None
    for step in steps:
        i = bisect.bisect_left(curve, step, key=_step)
        due = stopper.next_judged_step(curve[i - 1 : i])
        if due is None or step < due:
            continue
        if rivals is None:
            rivals = others()
        decision = stopper.should_stop(curve[: bisect.bisect_right(curve, step, key=_step)], rivals)
        decided(decision)
        if decision.stop:
            return decision
    return KEEP


def _step(point: Point) -> int:
    return point[0]
