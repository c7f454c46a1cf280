"""The operator's MetricsBackend takes reports only while a trial runs (or its pod is still on
its way out after a stop): a process that outlived its trial cannot change the result."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from kubetune.rpc.metrics import Point, TrialEnded
from kubetune_operator.cache import Cache
from kubetune_operator.metrics import TrialStatusMetrics

from .merge_patch import merge_patch
from .test_status_size import JOB, trial


def backend_with(phase: str, pod_phase: str | None) -> tuple[TrialStatusMetrics, list[Any]]:
    cache = Cache()
    cache.put("tuningjobs", JOB)
    body = trial("long-0")
    body["status"]["phase"] = phase
    cache.put("trials", body)
    if pod_phase is not None:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "long-0", "namespace": "ns", "resourceVersion": "1"},
            "status": {"phase": pod_phase},
        }
        cache.put("pods", pod)
    writes: list[Any] = []

    async def patch_status(ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        writes.append(copy.deepcopy(patch))
        return merge_patch(cache.get("trials", (ns, name)) or {}, {"status": patch})

    return TrialStatusMetrics(cache, asyncio.run, patch_status, lambda job: None, 0.01), writes


@pytest.mark.parametrize(
    ("phase", "pod_phase"),
    [("Succeeded", None), ("Failed", "Failed"), ("Stopped", None), ("Stopped", "Succeeded")],
)
def test_reports_for_an_ended_trial_are_refused_and_not_written(
    phase: str, pod_phase: str | None
) -> None:
    backend, writes = backend_with(phase, pod_phase)
    try:
        with pytest.raises(TrialEnded, match=f"has ended \\({phase}\\)"):
            backend.report_batch("long-0", "tok", [Point(99, {"loss": -123.0}, [])])
    finally:
        backend.close()
    assert writes == []


def test_a_stopped_trial_whose_pod_still_runs_reports_its_last_steps() -> None:
    backend, writes = backend_with("Stopped", "Running")
    try:
        verdict = backend.report_batch("long-0", "tok", [Point(5, {"loss": 0.5}, [])]).verdict
    finally:
        backend.close()  # flushes the group commit
    assert verdict.should_stop and verdict.reason == "already stopping"
    assert [w["metrics"] for w in writes] == [{"loss": 0.5}]
