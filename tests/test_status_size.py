"""A trial that reports 100,000 steps and tries 1,000 metric names keeps a small Trial status,
and early stopping still decides as it would on the full curve."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from kubetune.intake import MetricsIntake
from kubetune.rpc.limits import MAX_NAMES_PER_REPORT, MAX_NAMES_PER_TRIAL, LimitExceeded
from kubetune.rpc.metrics import Point
from kubetune.rpc.tokens import digest
from kubetune.spec import TuningJob
from kubetune.stopping import compact_curve, create_stopper
from kubetune_operator.cache import Cache
from kubetune_operator.metrics import TrialStatusStore
from kubetune_operator.status import stored_curve

from .merge_patch import merge_patch

ETCD_LIMIT = 1_500_000
STEPS = 100_000
JOB = {
    "apiVersion": "kubetune.dev/v1alpha1",
    "kind": "TuningJob",
    "metadata": {"name": "long", "namespace": "ns", "uid": "u", "generation": 1},
    "spec": {
        "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
        "algorithm": {"name": "random"},
        "earlyStopping": {"name": "asha", "settings": {"reductionFactor": 3}},
        "resource": {"name": "steps", "min": 1, "max": STEPS * 10},
    },
}


def trial(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "Trial",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": "1",
            "labels": {"kubetune.dev/job": "long"},
            "annotations": {"kubetune.dev/token-sha256": digest("tok")},
        },
        "spec": {"job": "long", "index": 0, "params": {"x": 0.5}},
        "status": {"phase": "Running"},
    }


def loss(step: int) -> float:
    return 1.0 / step + (0.3 if step % 1000 == 7 else 0.0)  # noisy, best near the end


def test_status_stays_small_and_asha_sees_its_rungs() -> None:
    cache = Cache()
    cache.put("tuningjobs", JOB)
    cache.put("trials", trial("long-0"))
    writes = []

    async def patch_status(ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        body = cache.get("trials", (ns, name)) or {}
        updated = merge_patch(body, {"status": patch})
        version = str(int(body["metadata"]["resourceVersion"]) + 1)  # never edit the cached body
        updated["metadata"] = {**body["metadata"], "resourceVersion": version}
        cache.put("trials", updated)
        writes.append(len(json.dumps(updated)))
        return updated

    store = TrialStatusStore(cache, asyncio.run, patch_status, 0.01)
    backend = MetricsIntake(store)
    names = [f"metric_{i:04d}_" + "x" * 100 for i in range(16 * MAX_NAMES_PER_REPORT)]
    try:
        backend.report_batch("long-0", "tok", [Point(0, {"loss": 2.0}, [])])
        points = [
            Point(0, dict.fromkeys(names[first : first + MAX_NAMES_PER_REPORT], 1.0), [])
            for first in range(0, len(names), MAX_NAMES_PER_REPORT)
        ]
        refused = backend.report_batch("long-0", "tok", points).refused
        assert sorted(refused) == list(range(3, len(points)))  # per point, past the bound
        assert all(
            isinstance(e, LimitExceeded) and f"at most {MAX_NAMES_PER_TRIAL} distinct" in str(e)
            for e in refused.values()
        )
        for first in range(1, STEPS + 1, 1000):  # as the group committer hands batches over
            batch = [(s, {"loss": loss(s)}) for s in range(first, min(first + 1000, STEPS + 1))]
            store.committer.write("ns/long-0", batch)
    finally:
        store.close()
    body = cache.get("trials", ("ns", "long-0")) or {}
    kept_names = body["status"]["metrics"]
    assert len(kept_names) == 1 + 3 * MAX_NAMES_PER_REPORT  # the report past the bound: refused
    assert (
        len(kept_names) <= MAX_NAMES_PER_TRIAL and names[3 * MAX_NAMES_PER_REPORT] not in kept_names
    )
    assert max(writes) < ETCD_LIMIT / 10  # far under etcd's limit, on every write
    kept = stored_curve(body)
    assert len(kept) <= 500 and max(kept) == STEPS
    full = [(s, loss(s)) for s in range(1, STEPS + 1)]
    assert body["status"]["objective"] == min(v for _, v in full)
    stopper = create_stopper(TuningJob.parse(JOB).spec)
    for rung in stopper.anchors():  # ASHA ranks by the first value at or past each rung
        if rung <= STEPS:
            first = next((s, v) for s, v in full if s >= rung)
            assert first in kept.items()


def test_compaction_keeps_asha_decisions_identical() -> None:
    stopper = create_stopper(TuningJob.parse(JOB).spec)
    curves = [[(s, (k + 1) / s) for s in range(1, 20_000)] for k in range(6)]
    for upto in (3, 9, 81, 729, 6561):
        mine = curves[5][:upto]
        others = [c[: upto + 5] for c in curves[:5]]
        thin = [compact_curve(c, stopper.anchors()) for c in others]
        exact = stopper.should_stop(mine, others)
        assert stopper.should_stop(compact_curve(mine, stopper.anchors()), thin) == exact
