"""`kubetune dashboard` and `kubetune report` on a local run, in a real browser.

One job of the real trainer runs (submitted through the Client, so its runner is detached) with
a parameter whose values are HTML and a log line that prints them. Chromium, driven by
Playwright, follows it: the jobs page lists it, the job page's charts hold a point per trial
with an objective and gain one when a trial finishes without a reload, a click on a point opens
that trial, the trial's log follows while it runs, and nothing a job holds is run as HTML.
Every wait is for state in the page or the Client, with a deadline.
"""

from __future__ import annotations

import json
import shlex
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubetune import Client

from .browser import Dashboard, Tab, browser, new_tab
from .test_local_run import TRAINER_DIR, kubetune
from .waiting import free_port, wait_for

HOSTILE = ["<script>window.__pwned=1</script>", '<img src=x onerror="window.__pwned=2">']
TRAIN = (
    f"exec {shlex.quote(sys.executable)} train.py "
    "--units=32 --hidden-layers=1 --lr=${params.lr} --epochs=6 --epoch-delay=0.5"
)


def command(gate: Path | None) -> str:
    """Print the note, wait until the gate file exists (if any), then train."""
    wait = f"until [ -e {shlex.quote(str(gate))} ]; do sleep 0.1; done; " if gate else ""
    return f'echo "note: $KUBETUNE_PARAM_NOTE"; {wait}{TRAIN}'


def write_job(tmp_path: Path, name: str, gate: Path | None = None) -> Path:
    spec: dict[str, Any] = {
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "parameters": [
            {"name": "lr", "type": "float", "min": 1e-3, "max": 0.1, "scale": "log"},
            {"name": "note", "type": "categorical", "values": HOSTILE},
        ],
        "algorithm": {"name": "random", "seed": 5},
        "maxTrials": 4,
        "parallelism": 2,
        "trialTemplate": {
            "local": {"workingDir": str(TRAINER_DIR)},
            "spec": {
                "containers": [
                    {
                        "name": "trainer",
                        "image": "kubetune/trainer",
                        "command": ["sh", "-c", command(gate)],
                    }
                ]
            },
        },
    }
    doc = {"apiVersion": "kubetune.dev/v1alpha1", "kind": "TuningJob"}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**doc, "metadata": {"name": name}, "spec": spec}))
    return path


def objectives(client: Client, name: str) -> int:
    return sum(t.objective is not None for t in client.trials(name))


def assert_escaped(tab: Tab) -> None:
    """The hostile values are on the page as text, and none of them ran."""
    assert tab.value("() => window.__pwned") is None
    assert tab.value("() => document.querySelectorAll('main script, main img').length") == 0


class Live:
    def __init__(self, client: Client, name: str, board: Dashboard, chromium: Any) -> None:
        self.client, self.name, self.board, self.chromium = client, name, board, chromium
        self.gate = Path()
        self.workdir = Path()

    def finish(self) -> None:
        """Let the trials train (they wait at the gate until then), and wait for the job."""
        self.gate.touch()
        self.client.wait(self.name, timeout=240)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A job of the real trainer running locally (its trials wait at a gate until a test opens
    it), its dashboard, and a browser."""
    tmp = tmp_path_factory.mktemp("dashboard")
    client = Client(workdir=tmp / "runs")
    name = client.submit(write_job(tmp, "live", gate=tmp / "gate"))
    with Dashboard("--workdir", str(tmp / "runs")) as board, browser() as chromium:
        running = Live(client, name, board, chromium)
        running.gate, running.workdir = tmp / "gate", tmp / "runs"
        yield running
        running.finish()


def test_the_pages_follow_a_running_job(live: Live) -> None:
    client, name, url = live.client, live.name, live.board.url
    tab = new_tab(live.chromium)
    tab.goto(url + "/")
    row = tab.page.locator("tr[data-job='live']")
    row.wait_for()
    tab.page.select_option("select[aria-label=phase]", "Failed")
    row.wait_for(state="detached")
    tab.page.select_option("select[aria-label=phase]", "All phases")
    tab.shot("jobs")
    row.locator("a").click()
    tab.page.wait_for_url(f"{url}/jobs/live")
    tab.wait("() => document.body.dataset.ready === '1'")

    # a running trial's log follows in a second tab while it runs
    trial = wait_for(
        lambda: next((t.name for t in client.trials(name) if t.state.phase == "Running"), None),
        what="a running trial",
    )
    logs = new_tab(live.chromium)
    logs.goto(f"{url}/jobs/{name}/trials/{trial}")
    logs.wait("() => Number(document.getElementById('logs').dataset.lines) >= 1")
    assert logs.page.locator("#log-state").inner_text().startswith("following")
    assert tab.value("() => document.getElementById('history').dataset.points") == "0"
    live.gate.touch()  # the trials train now: their lines arrive, then the end
    logs.wait("() => Number(document.getElementById('logs').dataset.lines) > 1")
    logs.wait("() => document.getElementById('log-state').textContent.startsWith('the trial')")
    assert "epoch 6:" in logs.page.locator("#logs").inner_text()
    assert "note: " in logs.page.locator("#logs").inner_text()
    assert_escaped(logs)
    logs.shot("trial")

    # trials that finish appear on the job page without a reload, up to the last
    live.finish()
    expected = objectives(client, name)
    assert expected == 4
    tab.wait("n => Number(document.getElementById('history').dataset.points) === n", expected)
    tab.wait("() => document.querySelector('#parallel').dataset.lines === '4'")
    tab.wait("() => document.querySelectorAll('#trials tbody tr').length === 4")
    tab.page.locator("#trials th[data-key=objective]").click()  # sort by the objective
    values = [float(v) for v in tab.page.locator("#trials tbody td:nth-child(4)").all_inner_texts()]
    assert values == sorted(values)
    texts = tab.page.locator("#trials tbody").inner_text()
    assert any(v in texts for v in HOSTILE), texts  # the parameter's HTML, shown as text
    assert_escaped(tab)
    tab.shot("job")
    assert not tab.errors and not logs.errors, tab.errors + logs.errors


def test_a_click_on_a_point_opens_its_trial(live: Live) -> None:
    live.finish()
    tab = new_tab(live.chromium)
    tab.goto(f"{live.board.url}/jobs/{live.name}")
    tab.wait("() => Number(document.getElementById('history').dataset.points) === 4")
    first = min(live.client.trials(live.name), key=lambda t: t.index)
    series = tab.value(
        "t => echarts.getInstanceByDom(document.getElementById('history')).getOption()"
        ".series.findIndex(s => s.name === t)",
        first.state.phase,
    )
    tab.click_point("history", series, first.index, first.objective or 0.0)
    tab.page.wait_for_url(f"{live.board.url}/jobs/{live.name}/trials/{first.name}")
    tab.wait("() => document.getElementById('trial-name') !== null")
    assert tab.page.locator("#trial-name").inner_text() == first.name
    assert not tab.errors, tab.errors


def test_bad_input_gets_a_404_page_and_nothing_but_get_is_served(live: Live) -> None:
    tab = new_tab(live.chromium)
    url, name = live.board.url, live.name
    for path in ("/jobs/nope", f"/jobs/{name}/trials/{name}-99", "/no/such/page"):
        response = tab.goto(url + path, ready=False)
        assert response.status == 404, path
        assert "404" in tab.page.locator("h1").inner_text()
        assert "Traceback" not in tab.page.content()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(url + "/", method="POST"))
    assert refused.value.code == 405
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(url + "/api/jobs/nope")
    assert missing.value.code == 404
    live.finish()
    with urllib.request.urlopen(f"{url}/api/jobs/{name}") as answer:  # the snapshot, for scripts
        snapshot = json.loads(answer.read())
    assert [t["name"] for t in snapshot["trials"]] == [f"{name}-{i}" for i in range(4)]
    assert snapshot["job"]["phase"] == "Succeeded" and "token" not in json.dumps(snapshot)


def test_the_html_report_opens_offline_with_its_charts(live: Live, tmp_path: Path) -> None:
    live.finish()
    out = tmp_path / "report.html"
    workdir = str(live.workdir)
    done = kubetune("report", live.name, "--workdir", workdir, "--html", str(out))
    assert done.returncode == 0, done.stderr
    tab = new_tab(live.chromium)
    tab.goto(out.as_uri())
    tab.wait("() => Number(document.getElementById('history').dataset.points) === 4")
    assert tab.page.locator("#trials tbody tr").count() == 4
    assert_escaped(tab)
    tab.shot("report")
    assert not tab.errors, tab.errors  # a CSP violation would be a console error


def test_a_page_reconnects_by_itself_when_the_server_comes_back(live: Live) -> None:
    live.finish()
    workdir = str(live.workdir)
    port = free_port()
    first = Dashboard("--workdir", workdir, port=port)
    tab = new_tab(live.chromium)
    try:
        response = tab.goto(f"{first.url}/jobs/{live.name}")
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe" not in csp
        first.close()
        tab.wait("() => document.getElementById('banner').textContent.includes('reconnecting')")
        with Dashboard("--workdir", workdir, port=port):
            tab.wait("() => document.getElementById('banner').hidden")
            tab.wait("() => Number(document.getElementById('history').dataset.points) === 4")
    finally:
        first.close()
    assert not [e for e in tab.errors if "net::ERR_" not in e], tab.errors  # the server died


def test_it_warns_when_it_listens_beyond_loopback(live: Live) -> None:
    workdir = str(live.workdir)
    with Dashboard("--workdir", workdir, "--host", "0.0.0.0") as board:
        assert board.url.startswith("http://0.0.0.0:")
    assert "not loopback" in "".join(board.stderr), board.stderr
