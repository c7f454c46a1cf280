"""Early-stopping rules against hand-computed curves."""

from __future__ import annotations

from typing import Any

import pytest
from kubetune.stopping import (
    AshaStopper,
    MedianStopper,
    NoStopper,
    create_stopper,
    judge_batch,
    rungs,
)

from .conftest import make_spec


def median_rule(direction: str = "minimize", **settings: Any) -> Any:
    spec = make_spec(
        earlyStopping={"name": "median", "settings": settings},
        objective={"metric": "loss", "direction": direction},
    )
    stopper = create_stopper(spec)
    assert isinstance(stopper, MedianStopper)
    return stopper


def asha_rule(eta: int = 3, direction: str = "maximize") -> Any:
    spec = make_spec(
        earlyStopping={"name": "asha", "settings": {"reductionFactor": eta}},
        resource={"name": "epochs", "min": 1, "max": 27},
        objective={"metric": "acc", "direction": direction},
    )
    stopper = create_stopper(spec)
    assert isinstance(stopper, AshaStopper)
    return stopper


OTHERS = [
    [(1, 1.0), (2, 0.8), (3, 0.6)],  # running averages: step 2 -> 0.9, step 3 -> 0.8
    [(1, 2.0), (2, 1.0), (3, 0.9)],  # step 2 -> 1.5, step 3 -> 1.3
    [(1, 0.5), (2, 0.4)],  # step 2 -> 0.45, never reached step 3
]


def test_median_stops_a_trial_worse_than_the_median_of_running_averages() -> None:
    rule = median_rule(minTrials=2, startStep=2)
    verdict = rule.should_stop([(1, 1.5), (2, 1.2)], OTHERS)  # median(0.9, 1.5, 0.45) = 0.9
    assert verdict.stop and "median 0.9 " in verdict.reason
    assert not rule.should_stop([(1, 1.5), (2, 0.85)], OTHERS)  # best 0.85 beats 0.9


def test_median_is_a_true_median_for_an_even_count() -> None:
    rule = median_rule(minTrials=2, startStep=2)
    # step 3: only two others reached it, (0.8, 1.3) -> median 1.05; best 1.0 is better
    assert not rule.should_stop([(1, 1.5), (2, 1.2), (3, 1.0)], OTHERS)
    assert rule.should_stop([(1, 1.5), (2, 1.2), (3, 1.1)], OTHERS)


def test_median_waits_for_start_step_and_min_trials() -> None:
    assert not median_rule(minTrials=2, startStep=2).should_stop([(1, 9.0)], OTHERS)
    assert not median_rule(minTrials=3, startStep=1).should_stop(
        [(1, 1.5), (2, 1.2), (3, 9.0)], OTHERS
    )
    assert not median_rule().should_stop([], OTHERS)


def test_median_applies_the_direction() -> None:
    rule = median_rule("maximize", minTrials=2, startStep=2)
    assert rule.should_stop([(1, 0.1), (2, 0.2)], OTHERS)  # best 0.2 < median 0.9
    assert not rule.should_stop([(1, 0.1), (2, 1.2)], OTHERS)


def test_asha_rungs() -> None:
    assert rungs(1, 27, 3) == [1, 3, 9]
    assert rungs(2, 20, 2) == [2, 4, 8, 16]


ASHA_OTHERS = [
    [(1, 0.5), (2, 0.6), (3, 0.7)],
    [(1, 0.3), (3, 0.4)],
    [(1, 0.6)],
]


def test_asha_keeps_only_the_top_fraction_at_a_rung() -> None:
    rule = asha_rule()
    verdict = rule.should_stop([(1, 0.4)], ASHA_OTHERS)  # rank 3 of 4, keep top max(1, 4//3)=1
    assert verdict.stop and "ranks 3 of 4" in verdict.reason
    assert not rule.should_stop([(1, 0.65)], ASHA_OTHERS)


def test_asha_judges_only_at_the_report_that_crosses_a_rung() -> None:
    rule = asha_rule()
    assert not rule.should_stop([(1, 0.65), (2, 0.1)], ASHA_OTHERS)  # step 2 is not a rung
    crossing = [(1, 0.65), (2, 0.66), (3, 0.5)]  # rung 3: rivals 0.7 and 0.4 -> rank 2 of 3
    assert rule.should_stop(crossing, ASHA_OTHERS)
    assert not rule.should_stop([*crossing, (4, 0.5)], ASHA_OTHERS)


def test_asha_never_stops_the_first_trial_at_a_rung_and_uses_direction() -> None:
    assert not asha_rule().should_stop([(1, 0.0)], [])
    minimize = asha_rule(direction="minimize")
    assert not minimize.should_stop([(1, 0.2)], ASHA_OTHERS)  # lowest is best
    assert minimize.should_stop([(1, 0.55)], ASHA_OTHERS)


def test_asha_with_eta_two_keeps_half() -> None:
    rule = asha_rule(eta=2)
    others = [[(1, v)] for v in (0.1, 0.2, 0.3)]
    assert not rule.should_stop([(1, 0.25)], others)  # rank 2 of 4, keep 2
    assert rule.should_stop([(1, 0.15)], others)  # rank 3 of 4


@pytest.mark.parametrize("curve", [[], [(1, 0.0)], [(5, 1e9)]])
def test_no_stopping_never_stops(curve: list[tuple[int, float]]) -> None:
    assert isinstance(create_stopper(make_spec()), NoStopper)
    assert not create_stopper(make_spec()).should_stop(curve, ASHA_OTHERS)


def test_each_rule_names_the_next_step_it_judges() -> None:
    asha = asha_rule()  # rungs 1, 3, 9
    assert [asha.next_judged_step(c) for c in ([], [(1, 0.5)], [(3, 0.5)], [(9, 0.1)])] == [
        1,
        3,
        9,
        None,
    ]
    median = median_rule(startStep=4)
    assert [median.next_judged_step(c) for c in ([], [(5, 0.1)])] == [4, 6]
    assert create_stopper(make_spec()).next_judged_step([(1, 0.0)]) is None


def test_a_batch_is_judged_at_the_point_that_crossed_the_rung() -> None:
    rule = asha_rule()
    curve = [(1, 0.65), (2, 0.66), (3, 0.5), (4, 0.9)]  # rung 3 crossed mid-batch, then 0.9
    asked: list[int] = []

    def others() -> list[Any]:
        asked.append(1)
        return ASHA_OTHERS

    verdict = judge_batch(rule, curve, [2, 3, 4], others)
    assert verdict.stop and "ranks 2 of 3" in verdict.reason  # judged on 0.5, not on 0.9
    assert asked == [1]  # the other curves were gathered once
    assert not judge_batch(rule, curve, [2, 4], others) and asked == [1]  # no rung: none asked
