"""The controller's work queue: dedup while waiting, re-run when added during processing."""

from __future__ import annotations

import asyncio

from kubetune_operator.workqueue import WorkQueue


def test_keys_are_deduplicated_and_re_queued_when_added_while_active() -> None:
    async def scenario() -> list[object]:
        q = WorkQueue()
        q.add("a")
        q.add("a")
        q.add("b")
        first = await q.get()
        q.add(first)  # changed while being processed: must come back once
        q.add(first)
        second = await q.get()
        q.done(first)
        third = await q.get()
        q.done(second)
        q.done(third)
        q.add("c", delay=0.05)
        q.add("c", delay=0.05)
        fourth = await asyncio.wait_for(q.get(), 1)
        q.done(fourth)
        assert q._queue.empty()
        return [first, second, third, fourth]

    assert asyncio.run(scenario()) == ["a", "b", "a", "c"]
