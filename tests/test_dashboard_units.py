"""The dashboard's parts without a browser: the payloads, the importance, the report's HTML, and
a job feed over a real local job directory (a state.db written through the local store)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import math
import random
import re
from pathlib import Path
from typing import Any

from kubetune import Client
from kubetune.dashboard._data import importance, trial_row
from kubetune.dashboard._feed import JobFeed, Message
from kubetune.dashboard._report import render
from kubetune.local._store import Store
from kubetune.spec import TrialState, TuningJobSpec

SPACE = [
    {"name": "lr", "type": "float", "min": 1e-4, "max": 0.3, "scale": "log"},
    {"name": "units", "type": "int", "min": 16, "max": 256},
    {"name": "optimizer", "type": "categorical", "values": ["sgd", "adam"]},
]
SPEC = {
    "objective": {"metric": "acc", "direction": "maximize"},
    "parameters": SPACE,
    "algorithm": {"name": "random"},
    "maxTrials": 100,
}


def write_job(workdir: Path, n: int, finish: bool = True) -> Store:
    """A job of n finished trials whose objective depends on lr alone."""
    store = Store(workdir / "state.db", "acc")
    store.init_job("units", SPEC)
    add_trials(store, 0, n)
    if finish:
        store.finish_job("MaxTrialsReached", True, "done")
    return store


def add_trials(store: Store, start: int, n: int) -> None:
    rng = random.Random(start)
    for i in range(start, start + n):
        lr = 10 ** rng.uniform(-4, -0.5)
        params = {"lr": lr, "units": rng.randint(16, 256), "optimizer": rng.choice(["sgd", "adam"])}
        name = f"units-{i}"
        store.add_trial(name, i, params, None, "token")
        store.set_state(name, TrialState.running, started=1.0e9 + i, attempts=1)
        value = 1.0 - (math.log10(lr) + 2.0) ** 2 / 10
        store.add_metrics(name, [(1, {"acc": value - 0.1}), (2, {"acc": value})])
        store.set_state(name, TrialState.succeeded, finished=1.0e9 + i + 5, exit_code=0)


def test_importance_finds_the_parameter_that_matters(tmp_path: Path) -> None:
    write_job(tmp_path, 60).close()
    client = Client(workdir=tmp_path)
    spec = client.spec("units")
    rows = [trial_row(t) for t in client.trials("units")]
    ranked = importance(spec, rows)
    assert ranked[0]["name"] == "lr"
    assert ranked[0]["importance"] > 0.8
    assert abs(sum(r["importance"] for r in ranked) - 1.0) < 1e-9
    assert importance(spec, rows[:3]) == []  # too few to say


def test_a_trial_row_holds_no_token_and_no_non_finite_number(tmp_path: Path) -> None:
    write_job(tmp_path, 2).close()
    (trial,) = Client(workdir=tmp_path).trials("units")[:1]
    row = trial_row(trial.model_copy(update={"objective": float("nan")}))
    text = json.dumps(row, allow_nan=False)
    assert "token" not in text and row["objective"] is None
    assert row["duration"] == 5.0 and row["curve"][-1][0] == 2


def test_the_report_keeps_hostile_text_inside_its_data_and_pins_its_scripts() -> None:
    hostile = "</script><script>window.__pwned=1</script><!--"
    spec = TuningJobSpec.model_validate(SPEC)
    payload: dict[str, Any] = {
        "job": {"name": hostile, "parameters": [], "specYaml": spec.model_dump_json()},
        "trials": [{"name": hostile, "params": {"optimizer": hostile}}],
        "importance": [],
    }
    page = render(payload)
    data = page.split('<script id="kubetune-report" type="application/json">', 1)[1]
    data = data.split("</script>", 1)[0]
    assert json.loads(data) == payload  # the data element ends where it should, intact
    assert "<script>window.__pwned" not in page
    assert html.escape(hostile) in page.split("</title>", 1)[0]
    csp = re.search(r'Content-Security-Policy" content="([^"]+)"', page)
    assert csp is not None and "'unsafe-inline'" not in csp.group(1)
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert len(scripts) == 2  # ECharts and the app, each admitted by its own digest
    for script in scripts:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp.group(1)


def test_a_feed_sends_a_snapshot_then_only_what_changed(tmp_path: Path) -> None:
    store = write_job(tmp_path, 10, finish=False)
    client = Client(workdir=tmp_path)
    views: list[str] = []
    read = client.view
    client.view = lambda name: (views.append(name), read(name))[1]  # type: ignore[method-assign]
    loop = asyncio.new_event_loop()
    feed = JobFeed(client, "units", loop, interval=0.05)

    async def take(queue: asyncio.Queue[Message], event: str) -> Message:
        while True:
            message = await asyncio.wait_for(queue.get(), 30)
            if message.event == event:
                return message

    try:
        queue = loop.run_until_complete(_subscribe(feed))
        snapshot = loop.run_until_complete(take(queue, "snapshot"))
        assert len(snapshot.data["trials"]) == 10 and snapshot.data["importance"] == []
        ranked = loop.run_until_complete(take(queue, "update"))
        assert ranked.data["importance"][0]["name"] == "lr"

        add_trials(store, 10, 1)  # one more trial finishes
        update = loop.run_until_complete(take(queue, "update"))
        assert [t["name"] for t in update.data["trials"]] == ["units-10"]
        assert json.loads(update.text) == update.data

        store.finish_job("MaxTrialsReached", True, "done")  # settles: then only cheap checks
        loop.run_until_complete(take(queue, "update"))
        loop.run_until_complete(asyncio.sleep(0.3))  # the read after the job's revision moved
        polls, reads = feed.polls, len(views)
        loop.run_until_complete(asyncio.sleep(0.5))
        assert feed.polls > polls and len(views) == reads  # polled, but read nothing again
        assert not feed.active
        joined = loop.run_until_complete(_subscribe(feed))  # a new page: the latest snapshot
        latest = loop.run_until_complete(take(joined, "snapshot"))
        assert len(latest.data["trials"]) == 11 and latest.data["importance"]
        feed.linger = 0.0
        feed.unsubscribe(queue)
        feed.unsubscribe(joined)
        thread = feed.thread
        assert thread is not None
        thread.join(10)  # with nobody listening, the feed ends and drops its snapshot
        assert not thread.is_alive() and feed.snapshot is None
    finally:
        store.close()
        loop.close()


async def _subscribe(feed: JobFeed) -> asyncio.Queue[Message]:
    return feed.subscribe()
