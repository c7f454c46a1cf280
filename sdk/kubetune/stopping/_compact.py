"""Bounded curves: what a long learning curve keeps so status stays small and rules stay right.

A curve of any length is cut to at most `limit` points, always keeping
- the first point at or past each anchor step (ASHA's rungs: the values it ranks trials by),
- the best point (the trial's objective),
- the latest `tail` points (what a rule judges next, and where a crossing is detected),
and an even spread of the rest. Exact for ASHA and for the objective; the median rule's running
averages over a thinned stretch become averages of an even sample of it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._base import Point

CURVE_LIMIT = 500
CURVE_TAIL = 100


def compact_curve(
    points: Sequence[Point],
    anchors: Sequence[float] = (),
    maximize: bool = False,
    limit: int = CURVE_LIMIT,
    tail: int = CURVE_TAIL,
) -> list[Point]:
    """`points` (sorted by step) cut to at most `limit` points, as described above."""
    if len(points) <= limit:
        return list(points)
    keep = set(range(len(points) - tail, len(points)))
    values = [v for _, v in points]
    keep.add(values.index(max(values) if maximize else min(values)))
    steps = [s for s, _ in points]
    for anchor in anchors:
        first = next((i for i, s in enumerate(steps) if s >= anchor), None)
        if first is not None:
            keep.add(first)
    room = limit - len(keep)
    older = [i for i in range(len(points) - tail) if i not in keep]
    if room > 0 and older:
        stride = len(older) / room
        keep.update(older[int(k * stride)] for k in range(min(room, len(older))))
    return [points[i] for i in sorted(keep)]
