"""What following many trial logs costs the operator (the stdout collector, issue 31).

N log streams on the test control plane (`python -m tests.cluster up` in a child process: real
etcd, kube-apiserver, scheduler and the test kubelet), each a container printing 10 lines a
second, two containers per pod (the node takes 250 pods). This process runs only the operator's
`LogFollower` (operator/kubetune_operator/logs.py) with the real `LineReader`, following every
stream through the API server, so its RSS and CPU time are the follower's. Printed: streams,
lines taken per second against lines printed, CPU (cores, and microseconds per line), RSS at the
start, with the streams open, and its growth per stream; and whether every stream's steps came
without a gap or a repeat.

    .venv/bin/python benchmarks/log_streams.py --streams 500 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Hashable
from pathlib import Path

import psutil
from kubernetes import client, config

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "sdk")]

from kubetune.collect import LineReader  # noqa: E402
from kubetune.rpc.metrics import Point  # noqa: E402
from kubetune_operator.logs import LogFollower, LogTarget  # noqa: E402

PRINTER = (
    "import sys, time\ni = 0\nwhile True:\n    i += 1\n"
    "    sys.stdout.write(f'loss={i}\\n')\n    sys.stdout.flush()\n    time.sleep(0.1)\n"
)
NAMESPACE = "bench"


def start_plane() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.cluster", "up"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("export KUBECONFIG="):
        proc.terminate()
        raise SystemExit(f"the control plane did not start: {line!r}")
    return proc, line.strip().split("=", 1)[1]


def make_pods(core: client.CoreV1Api, pods: int) -> None:
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            core.read_namespaced_service_account("default", NAMESPACE)
            break
        except client.ApiException:
            time.sleep(0.5)
    for i in range(pods):
        containers = [
            {"name": c, "image": "trainer", "command": ["python", "-I", "-S", "-c", PRINTER]}
            for c in ("a", "b")
        ]
        body = {
            "metadata": {"name": f"p{i}"},
            "spec": {
                "hostNetwork": True,
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "containers": containers,
            },
        }
        core.create_namespaced_pod(NAMESPACE, body)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        listed = core.list_namespaced_pod(NAMESPACE).items
        running = sum(1 for p in listed if p.status.phase == "Running")
        if running == pods:
            return
        time.sleep(2)
    raise SystemExit(f"only {running} of {pods} pods running after 10 minutes")


def reasons(problems: dict[str, int]) -> dict[str, int]:
    """The streams' last errors, counted by reason (the pod's name left out)."""
    counted: dict[str, int] = defaultdict(int)
    for said, n in problems.items():
        found = re.search(r"(dial tcp [^\\\"]*|net/http: [^\\\"]*)", said)
        counted[found.group(1) if found else said[:200]] += n
    return dict(counted)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    args = parser.parse_args()
    pods = args.streams // 2
    plane, kubeconfig = start_plane()
    try:
        configuration = client.Configuration()
        config.load_kube_config(kubeconfig, client_configuration=configuration)
        core = client.CoreV1Api(client.ApiClient(configuration))
        started = time.monotonic()
        make_pods(core, pods)
        print(f"{pods} pods running in {time.monotonic() - started:.0f} s", file=sys.stderr)
        me = psutil.Process()
        rss_before = me.memory_info().rss
        values: dict[Hashable, list[int]] = defaultdict(list)  # the printed counters, in order
        lock = threading.Lock()

        def deliver(key: Hashable, points: list[Point]) -> None:
            with lock:
                values[key].extend(int(p.metrics["loss"]) for p in points)

        configuration.connection_pool_maxsize = args.streams + 16
        follower = LogFollower(client.ApiClient(configuration), deliver, lambda k, p: False)
        targets = {
            (NAMESPACE, f"p{i}/{c}"): LogTarget(NAMESPACE, f"p{i}", c, lambda: LineReader(["loss"]))
            for i in range(pods)
            for c in ("a", "b")
        }
        follower.set_targets("bench", targets)
        time.sleep(args.warmup)
        with lock:
            taken_0 = sum(len(s) for s in values.values())
        cpu_0, wall_0 = me.cpu_times(), time.monotonic()
        peak = 0
        while time.monotonic() - wall_0 < args.seconds:
            time.sleep(1)
            peak = max(peak, me.memory_info().rss)
        cpu_1, wall = me.cpu_times(), time.monotonic() - wall_0
        with lock:
            taken = sum(len(s) for s in values.values()) - taken_0
            delivered = sum(1 for s in values.values() if s)
            clean = sum(1 for s in values.values() if s and s == list(range(1, len(s) + 1)))
        cpu = (cpu_1.user + cpu_1.system) - (cpu_0.user + cpu_0.system)
        result = {
            "streams": args.streams,
            "streams_open": follower.streams(),
            "lines_per_second_printed": args.streams * 10,
            "lines_per_second_taken": round(taken / wall),
            "cpu_cores": round(cpu / wall, 3),
            "cpu_us_per_line": round(1e6 * cpu / max(taken, 1), 1),
            "rss_mib_before": round(rss_before / 2**20, 1),
            "rss_mib_peak": round(peak / 2**20, 1),
            "rss_kib_per_stream": round((peak - rss_before) / 1024 / args.streams, 1),
            "threads": me.num_threads(),
            "streams_delivered": delivered,
            "streams_gapless": clean,
            "stream_errors": reasons(follower.problems()),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        }
        follower.close()
        print(json.dumps(result, indent=2))
    finally:
        plane.send_signal(signal.SIGTERM)
        plane.wait(120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
