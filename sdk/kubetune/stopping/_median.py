"""The median stopping rule (Golovin et al., 2017, as in Vizier and Katib).

At step s a trial stops if its best value so far is worse than the median of the running
averages (mean of values up to step s) of the other trials that reached step s.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from ..spec import MedianStopping, TuningJobSpec
from ._base import KEEP, BaseStopper, Curve, StopDecision, sorted_curve


class MedianStopper(BaseStopper):
    def __init__(self, spec: TuningJobSpec) -> None:
        super().__init__(spec)
        assert isinstance(spec.early_stopping, MedianStopping)
        self.min_trials = spec.early_stopping.settings.min_trials
        self.start_step = spec.early_stopping.settings.start_step

    def next_judged_step(self, curve: Curve) -> int | None:
        return max(self.start_step, max((int(s) for s, _ in curve), default=-1) + 1)

    def should_stop(self, curve: Curve, others: Sequence[Curve]) -> StopDecision:
        points = sorted_curve(curve)
        if not points:
            return KEEP
        step = points[-1][0]
        if step < self.start_step:
            return KEEP
        averages = [avg for other in others if (avg := _running_average(other, step)) is not None]
        if len(averages) < self.min_trials:
            return KEEP
        median = statistics.median(averages)
        best = self.best([v for _, v in points])
        if not self.better(median, best):
            return KEEP
        return StopDecision(
            True,
            f"best value {best:.6g} at step {step} is worse than the median {median:.6g} "
            f"of {len(averages)} other trials' running averages",
        )


def _running_average(curve: Curve, step: int) -> float | None:
    """Mean of the values up to `step`, if the curve reached `step`; else None."""
    points = sorted_curve(curve)
    if not points or points[-1][0] < step:
        return None
    values = [v for s, v in points if s <= step]
    return statistics.fmean(values) if values else None
