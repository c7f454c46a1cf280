"""The operator's own health series: a stalled event loop is measured and logged."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from kubetune.telemetry import Telemetry
from kubetune_operator.exporter import OperatorHealth


@pytest.mark.asyncio
async def test_a_stalled_loop_is_observed_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    telemetry = Telemetry()
    health = OperatorHealth(telemetry, queue_depth=lambda: 0)
    watcher = asyncio.create_task(health.watch_loop_lag(period=0.01, warn_over=0.1))
    await asyncio.sleep(0.05)  # the watcher is asleep on the loop
    with caplog.at_level(logging.WARNING, logger="kubetune.operator"):
        time.sleep(0.3)  # blocks the loop, as a CPU-bound callback would
        deadline = time.monotonic() + 10
        while not caplog.records and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    watcher.cancel()
    assert "the event loop stalled for" in caplog.text
    over = telemetry.registry.get_sample_value(
        "kubetune_event_loop_lag_seconds_bucket", {"le": "0.25"}
    )
    total = telemetry.registry.get_sample_value("kubetune_event_loop_lag_seconds_count")
    assert total is not None and over is not None and total - over >= 1  # one lag over 0.25 s
