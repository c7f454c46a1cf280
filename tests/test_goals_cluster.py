"""Several objectives, constraints and warm start on the real control plane with the operator
and the real trainer (issue 32): the front in the TuningJob's status and kubectl's column, a
job warm-started from it through the suggestion path, and bad warm-start input refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kopf.testing import KopfRunner
from kubetune import Client
from kubetune.pareto import front_mask
from kubetune.spec import SpecError, TrialState

from .harness import Cluster, tuning_job, wait_for

pytestmark = pytest.mark.slow
UNITS = {"name": "units", "type": "int", "min": 8, "max": 256, "scale": "log"}
ARGS = ["--units=${params.units}", "--lr=0.05", "--epochs=2"]
MAX_PARAMETERS = 75 * 100 + 10  # digits, one hidden layer: units <= 100


def spec(**extra: Any) -> dict[str, Any]:
    return {
        "objectives": [
            {"metric": "val_accuracy", "direction": "maximize"},
            {"metric": "num_parameters", "direction": "minimize"},
        ],
        "constraints": [{"metric": "num_parameters", "max": MAX_PARAMETERS}],
        "parameters": [UNITS],
        "algorithm": {"name": "bayesian", "seed": 2, "settings": {"initialPoints": 2}},
        "maxTrials": 4,
        "parallelism": 2,
        **extra,
    }


def test_front_in_the_status_and_a_warm_started_job(cluster: Cluster, tmp_path: Path) -> None:
    client = Client()
    with KopfRunner(cluster.operator) as runner:
        first = spec(warmStart={"enqueue": [{"units": 200}]})  # infeasible, and outside below
        client.submit(tuning_job("sizes", first, ARGS))
        final = client.wait("sizes", timeout=300)
        assert final.succeeded, final.message
        trials = client.trials("sizes")
        done = [t for t in trials if t.state is TrialState.succeeded]
        assert len(done) == 4
        feasible = [t for t in done if t.metrics["num_parameters"] <= MAX_PARAMETERS]
        assert all(t.feasible is (t in feasible) for t in done)
        losses = np.array(
            [[-t.metrics["val_accuracy"], t.metrics["num_parameters"]] for t in feasible]
        )
        expected = {t.name for t, on in zip(feasible, front_mask(losses), strict=True) if on}
        raw = json.loads(cluster.kubectl("get", "tj", "sizes", "-o", "json"))["status"]
        assert {t["name"] for t in raw["paretoFront"]} == expected
        assert raw["paretoFrontSize"] == len(expected) and raw["hypervolume"] > 0
        assert "bestTrial" not in raw
        table = cluster.kubectl("get", "tj", "sizes")
        assert table.splitlines()[0].split()[:6] == [
            "NAME",
            "PHASE",
            "TRIALS",
            "RUNNING",
            "BEST",
            "FRONT",
        ]
        assert table.splitlines()[1].split()[4] == str(len(expected))  # BEST is empty

        # A second job over a narrower space starts from the first: the points outside it
        # are listed in an event; the enqueued configuration runs first.
        narrower = {**UNITS, "max": 64}
        warm = {"fromJobs": ["sizes"], "enqueue": [{"units": 12}]}
        client.submit(
            tuning_job("again", spec(parameters=[narrower], maxTrials=2, warmStart=warm), ARGS)
        )
        again = client.wait("again", timeout=300)
        assert again.succeeded, again.message
        assert client.trials("again")[0].params == {"units": 12}
        assert done[0].params == {"units": 200} and done[0].feasible is False
        outside = sum(1 for t in done if int(t.params["units"]) > 64)
        events = wait_for(
            lambda: [e for e in client.events("again") if e.reason == "WarmStartPointsLeftOut"],
            timeout=30,
        )
        assert events[0].message.startswith(f"{outside} earlier results left out")
        assert (
            "sizes/sizes-0: outside the space (units: 200 is outside [8, 64])" in events[0].message
        )
        warm_status = json.loads(cluster.kubectl("get", "tj", "again", "-o", "json"))["status"]
        counts = {"points": len(done) - outside, "leftOut": outside, "enqueued": 1}
        assert warm_status["warmStart"] == counts
        assert [t.enqueued for t in client.trials("again")] == [True, False]

        with pytest.raises(SpecError, match=r"spec\.warmStart\.fromJobs\[0\].*'nope'"):
            client.submit(tuning_job("bad", spec(warmStart={"fromJobs": ["nope"]}), ARGS))
        # kubectl bypasses the client: the operator refuses it with the same field error.
        bad = tuning_job("bad", spec(warmStart={"fromJobs": ["nope"]}), ARGS)
        (tmp_path / "bad.yaml").write_text(json.dumps(bad))
        cluster.kubectl("apply", "-f", str(tmp_path / "bad.yaml"))
        refused = client.wait("bad", timeout=120)
        assert not refused.succeeded
        assert "spec.warmStart.fromJobs[0]" in (refused.message or ""), refused.message

        # Once a job runs, deleting the job it started from does not fail it.
        client.submit(
            tuning_job("later", spec(maxTrials=3, warmStart={"fromJobs": ["sizes"]}), ARGS)
        )
        wait_for(lambda: client.trials("later"), timeout=120, what="a trial of the later job")
        client.delete("sizes")
        later = client.wait("later", timeout=300)
        assert later.succeeded and later.trials.succeeded == 3, later.message
    assert runner.exception is None, runner.output[-3000:]
