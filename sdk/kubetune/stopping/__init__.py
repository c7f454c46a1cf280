"""Early-stopping rules behind one interface: `create_stopper(spec).should_stop(curve, others)`.

Used by the metrics service (on every report) and the decision core. Pure: imports no I/O
library.
"""

from ..spec import AshaStopping, MedianStopping, TuningJobSpec
from ._asha import AshaStopper, rungs
from ._base import KEEP, BaseStopper, Curve, NoStopper, Point, StopDecision, judge_batch
from ._compact import CURVE_LIMIT, compact_curve
from ._median import MedianStopper


def create_stopper(spec: TuningJobSpec) -> BaseStopper:
    """The rule named by `spec.earlyStopping.name` ("none" when absent)."""
    if isinstance(spec.early_stopping, MedianStopping):
        return MedianStopper(spec)
    if isinstance(spec.early_stopping, AshaStopping):
        return AshaStopper(spec)
    return NoStopper(spec)


__all__ = [
    "CURVE_LIMIT",
    "KEEP",
    "AshaStopper",
    "BaseStopper",
    "Curve",
    "MedianStopper",
    "NoStopper",
    "Point",
    "StopDecision",
    "compact_curve",
    "create_stopper",
    "judge_batch",
    "rungs",
]
