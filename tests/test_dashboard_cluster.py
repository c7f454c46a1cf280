"""`kubetune dashboard --context` on the real control plane, in Debian's chromium.

The dashboard reaches the API server through a TCP relay in this test, named by its own
kubeconfig context, so the test can cut the API server off and bring it back: the page says it
cannot reach the API and recovers by itself. The job runs under the operator (kopf) with the
real trainer started by the test node; its pods are held at the node until the page is open,
so a trial that finishes shows up without a reload whatever the speed of the machine.
(The chart's in-cluster dashboard is tested in test_helm_e2e.py.)
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner

from .browser import Dashboard, browser, new_tab
from .harness import OBJECTIVE, Cluster, tuning_job, wait_for
from .waiting import free_port

pytestmark = pytest.mark.slow


class Relay:
    """Forwards TCP connections from 127.0.0.1:port to a target; `stop` refuses new ones and
    cuts those open, as an unreachable API server would; `start` listens again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()

    def start(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        assert self.listener is not None
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone would not
        self.listener.close()
        with self.lock:
            for s in self.open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self.open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def relayed_kubeconfig(cluster: Cluster, port: int, path: Path) -> str:
    """The test's kubeconfig with a context `relayed` whose server is the relay (127.0.0.1 is in
    the API server's certificate)."""
    config: dict[str, Any] = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    relayed = {**config["clusters"][0], "name": "relayed"}
    relayed["cluster"] = {**relayed["cluster"], "server": f"https://127.0.0.1:{port}"}
    config["clusters"].append(relayed)
    context = {**config["contexts"][0], "name": "relayed"}
    context["context"] = {**context["context"], "cluster": "relayed"}
    config["contexts"].append(context)
    path.write_text(yaml.safe_dump(config))
    return str(path)


def job(name: str) -> dict[str, Any]:
    spec = {
        "objective": OBJECTIVE,
        "parameters": [{"name": "lr", "type": "categorical", "values": [0.05, 0.01]}],
        "algorithm": {"name": "grid"},
        "maxTrials": 2,
        "parallelism": 1,
        "retainPods": True,
    }
    return tuning_job(name, spec, ["--lr=${params.lr}", "--epochs=3", "--epoch-delay=0.3"])


def test_dashboard_follows_a_cluster_job_and_survives_an_api_outage(
    cluster: Cluster, tmp_path: Path
) -> None:
    host, port = cluster.plane.server.removeprefix("https://").rsplit(":", 1)
    relay = Relay((host, int(port)))
    relay.start()
    env = {**os.environ, "KUBECONFIG": relayed_kubeconfig(cluster, relay.port, tmp_path / "kc")}
    flags = ("--context", "relayed", "-n", cluster.namespace)
    with (
        KopfRunner(cluster.operator) as runner,
        Dashboard(*flags, env=env) as board,
        browser() as chromium,
    ):
        cluster.hold()
        cluster.apply(job("board"))
        tab = new_tab(chromium)
        tab.goto(board.url + "/")
        tab.page.locator("tr[data-job='board'] a").click()
        tab.page.wait_for_url(f"{board.url}/jobs/board")
        tab.wait("() => document.body.dataset.ready === '1'")
        assert tab.value("() => document.getElementById('history').dataset.points") == "0"
        wait_for(lambda: "board-0" in cluster.objects("trials"), 60, "the first Trial")
        logs = new_tab(chromium)
        logs.goto(f"{board.url}/jobs/board/trials/board-0", ready=False)
        cluster.release()

        # the first trial's log follows while it runs; both trials appear without a reload
        logs.wait("() => Number(document.getElementById('logs')?.dataset.lines) >= 1", timeout=180)
        logs.wait(
            "() => document.getElementById('log-state').textContent.startsWith('the trial')",
            timeout=180,
        )
        assert "epoch 3:" in logs.page.locator("#logs").inner_text()
        tab.wait(
            "() => document.querySelectorAll('#trials .badge.Succeeded').length === 2", timeout=240
        )
        assert tab.value("() => document.getElementById('history').dataset.points") == "2"
        trial = tab.value(
            "() => echarts.getInstanceByDom(document.getElementById('history')).getOption()"
            ".series[0].data[0]"
        )
        tab.click_point("history", 0, trial[0], trial[1])
        tab.page.wait_for_url(f"{board.url}/jobs/board/trials/board-{trial[0]}")
        tab.wait("() => document.getElementById('trial-name') !== null")
        tab.goto(f"{board.url}/jobs/board")
        tab.shot("cluster-job")

        # the API server cut off: the page says so; back: the banner goes by itself
        relay.stop()
        tab.wait("() => !document.getElementById('banner').hidden", timeout=60)
        assert "cannot reach the Kubernetes API" in tab.page.locator("#banner").inner_text()
        tab.shot("cluster-unreachable")
        relay.start()
        tab.wait("() => document.getElementById('banner').hidden", timeout=60)
        assert tab.value("() => document.getElementById('history').dataset.points") == "2"
        assert not tab.errors and not logs.errors, tab.errors + logs.errors
    assert runner.exception is None, runner.output[-3000:]
    wait_for(lambda: cluster.job("board")["status"]["phase"] == "Succeeded", 60, "job done")
