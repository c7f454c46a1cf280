"""ASHA as a stopping rule (Li et al., 2020): asynchronous successive halving, stop-only.

Rungs sit at resource.min * eta^k below resource.max. When a trial first reports at or past a
rung, it continues only if its value there ranks in the top max(1, floor(n / eta)) of the n
trials that have reached that rung, itself included; otherwise it stops. A trial is judged once
per rung, at the report that crosses it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..spec import AshaStopping, TuningJobSpec
from ._base import KEEP, BaseStopper, Curve, StopDecision, sorted_curve


def rungs(minimum: float, maximum: float, eta: int) -> list[float]:
    """Rung positions min * eta^k that lie below max."""
    out, r = [], float(minimum)
    while r < maximum:
        out.append(r)
        r *= eta
    return out


class AshaStopper(BaseStopper):
    def __init__(self, spec: TuningJobSpec) -> None:
        super().__init__(spec)
        assert isinstance(spec.early_stopping, AshaStopping) and spec.resource is not None
        self.eta = spec.early_stopping.settings.reduction_factor
        self.rungs = rungs(spec.resource.min, spec.resource.max, self.eta)

    def crossed_rung(self, points: list[tuple[int, float]]) -> float | None:
        """The highest rung that the latest point crossed, if it crossed one."""
        if not points:
            return None
        latest = points[-1][0]
        previous = points[-2][0] if len(points) > 1 else None
        crossed = [r for r in self.rungs if latest >= r and (previous is None or previous < r)]
        return crossed[-1] if crossed else None

    def anchors(self) -> list[float]:
        return list(self.rungs)

    def next_judged_step(self, curve: Curve) -> int | None:
        latest = max((int(s) for s, _ in curve), default=-1)
        ahead = [math.ceil(r) for r in self.rungs if r > latest]
        return min(ahead) if ahead else None

    def should_stop(self, curve: Curve, others: Sequence[Curve]) -> StopDecision:
        points = sorted_curve(curve)
        rung = self.crossed_rung(points)
        if rung is None:
            return KEEP
        value = points[-1][1]
        rivals = [v for other in others if (v := _value_at(other, rung)) is not None]
        keep = max(1, (len(rivals) + 1) // self.eta)
        rank = 1 + sum(1 for v in rivals if self.better(v, value))
        if rank <= keep:
            return KEEP
        return StopDecision(
            True,
            f"value {value:.6g} at rung {rung:g} ranks {rank} of {len(rivals) + 1}; "
            f"only the top {keep} continue",
        )


def _value_at(curve: Curve, rung: float) -> float | None:
    """The value a curve reported when it first reached `rung`."""
    for step, value in sorted_curve(curve):
        if step >= rung:
            return value
    return None
