"""Control-plane turnover of the operator against the real control plane (tests/cluster: etcd,
kube-apiserver, kube-controller-manager and kube-scheduler v1.37.2 built from source, the test
node's process kubelet).

N TuningJobs x parallelism P x T trials each; every trial is a process that reports 3 steps over
gRPC and exits at once. Measured from the API server's side: for each job, the k-th pod to reach
Succeeded frees the slot that the (P+k)-th pod fills; the turnover latency is the time between
the two. Also: total wall time against the ideal (T/P trial durations back to back), and a check
that no trial is lost or duplicated. The operator runs as its own process (`kubetune-operator`).

    python benchmarks/control_plane.py [--jobs 10] [--parallelism 5] [--trials 20]
        [--trial-nice 19] [--profile profile.txt]

On a cluster the trials run on other nodes than the operator. Here they share its 2 cores, so by
default they run at nice 19: they use the CPU the control plane leaves, and the figure measures the
control plane. `--trial-nice 0` runs them as its equals; the test kubelet then starts each in a
session of its own, which with the kernel's autogroup scheduling is a scheduling group of its own,
and 50 trials get 50/51 of the CPU while the operator and the API server wait for theirs.

Where the time goes: the Kubernetes API requests the operator made per trial (read from the API
server's audit log, by verb and resource; the operator has a client certificate of its own), its own /metrics at the end (reconcile time,
suggestion time, work-queue wait, event-loop lag), and with `--profile` a py-spy sample of the
operator process (collapsed stacks, summarized by the functions that hold the most samples).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import psutil
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.cluster.api import Api, inform  # noqa: E402
from tests.cluster.control_plane import ControlPlane  # noqa: E402
from tests.tools import ensure_tools  # noqa: E402

OPERATOR_USER = "kubetune-operator-bench"

TRAINER = (
    "import kubetune\n"
    "for step in (1, 2, 3):\n"
    "    kubetune.report(step=step, score=step * float(kubetune.trial_params()['x']))\n"
)


def job(name: str, parallelism: int, trials: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": name},
        "spec": {
            "objective": {"metric": "score", "direction": "maximize"},
            "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
            "algorithm": {"name": "random", "seed": 1},
            "maxTrials": trials,
            "parallelism": parallelism,
            "trialTemplate": {
                "spec": {
                    "containers": [
                        {
                            "name": "t",
                            "image": "kubetune/trainer",
                            "command": ["python", "-c", TRAINER],
                        }
                    ]
                }
            },
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--parallelism", type=int, default=5)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument(
        "--out", default=str(ROOT / "benchmarks" / "results" / "control_plane.json")
    )
    parser.add_argument("--profile", help="sample the operator with py-spy into this file")
    parser.add_argument(
        "--trial-nice",
        type=int,
        default=19,
        help="run trial processes at this nice level (0: as equals of the control plane)",
    )
    parser.add_argument(
        "--suggestion-service",
        action="store_true",
        help="run the SuggestionService as its own process, as the Helm chart deploys it",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    exporter_port = free_port()
    created: dict[str, list[float]] = defaultdict(list)
    succeeded: dict[str, list[float]] = defaultdict(list)
    running: dict[str, float] = {}
    durations: list[float] = []
    born: dict[tuple[str, str], float] = {}  # (kind, name): when the API server created it
    pod_born: dict[str, float] = {}

    plane = ControlPlane(tmp / "cluster", nice=args.trial_nice).start()
    try:
        admin = Api(plane.admin)
        stop = threading.Event()

        def pod_event(type_: str, obj: dict[str, Any]) -> None:
            t = time.monotonic()
            name = obj["metadata"]["name"]
            job_name = (obj["metadata"].get("labels") or {}).get("kubetune.dev/job")
            if job_name is None:
                return
            phase = (obj.get("status") or {}).get("phase")
            if type_ == "ADDED":
                created[job_name].append(t)
                pod_born[name] = t
            elif phase == "Running" and name not in running:
                running[name] = t
            elif phase == "Succeeded" and name in running and type_ == "MODIFIED":
                succeeded[job_name].append(t)
                durations.append(t - running.pop(name))

        def birth(kind: str) -> Any:
            def on_event(type_: str, obj: dict[str, Any]) -> None:
                if type_ == "ADDED":
                    born[(kind, obj["metadata"]["name"])] = time.monotonic()

            return on_event

        def ignore(items: list[dict[str, Any]]) -> None:
            pass

        inform(admin, "/api/v1/namespaces/default/pods", ignore, pod_event, stop)
        inform(admin, "/api/v1/namespaces/default/secrets", ignore, birth("Secret"), stop)
        kubectl = [str(ensure_tools()["kubectl"]), "--kubeconfig", str(plane.admin)]
        subprocess.run(
            [*kubectl, "apply", "--server-side", "-f", str(ROOT / "manifests" / "crds")],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*kubectl, "wait", "--for=condition=Established", "crd", "--all"],
            check=True,
            capture_output=True,
        )
        trials_path = "/apis/kubetune.dev/v1alpha1/namespaces/default/trials"
        inform(admin, trials_path, ignore, birth("Trial"), stop)
        operator_config = plane.issue_kubeconfig(OPERATOR_USER, groups=("system:masters",))
        env = {
            **os.environ,
            "KUBECONFIG": str(operator_config),
            "KUBETUNE_METRICS_BIND": f"{plane.network.gateway}:0",
            "KUBETUNE_STATUS_INTERVAL": "0.2",
            "OMP_NUM_THREADS": "1",
            **{k: v for k, v in os.environ.items() if k.startswith("KUBETUNE_")},
            "KUBETUNE_EXPORTER_BIND": f"127.0.0.1:{exporter_port}",
        }
        log = (tmp / "operator.log").open("wb")
        suggestion = None
        if args.suggestion_service:
            address = f"127.0.0.1:{free_port()}"
            suggestion = subprocess.Popen(
                [sys.executable, "-m", "kubetune_operator.suggestion_main", "--address", address],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            env["KUBETUNE_SUGGESTION_ADDRESS"] = address
        command = [sys.executable, "-m", "kubetune_operator.main", "--all-namespaces"]
        if args.profile:
            spy = str(Path(sys.executable).parent / "py-spy")
            command = [spy, "record", "-r", "50", "-f", "raw", "-o", args.profile, "--", *command]
        operator = subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        components = [psutil.Process(c.process.pid) for c in plane.components.values() if c.process]
        try:
            time.sleep(3)
            docs = [job(f"cp{i}", args.parallelism, args.trials) for i in range(args.jobs)]
            (tmp / "jobs.yaml").write_text(yaml.safe_dump_all(docs))
            start = time.monotonic()
            own_cpu = time.process_time()
            plane_cpu = sum(sum(p.cpu_times()[:2]) for p in components)
            subprocess.run(
                [*kubectl, "apply", "-f", str(tmp / "jobs.yaml")], check=True, capture_output=True
            )
            deadline = start + 1800
            jobs_path = "/apis/kubetune.dev/v1alpha1/namespaces/default/tuningjobs"
            while time.monotonic() < deadline:
                jobs = admin.request("GET", jobs_path)["items"]
                if all(
                    (j.get("status") or {}).get("phase") in ("Succeeded", "Failed") for j in jobs
                ):
                    break
                time.sleep(0.5)
            wall = time.monotonic() - start
            exposed = scrape(exporter_port)
            kubelet_cpu = time.process_time() - own_cpu  # the test kubelet, proxy and this
            plane_cpu = sum(sum(p.cpu_times()[:2]) for p in components) - plane_cpu
            spied = psutil.Process(operator.pid)
            target = spied.children()[0] if args.profile else spied
            operator_cpu = sum(target.cpu_times()[:2])
            operator_rss = target.memory_info().rss
        finally:
            children = psutil.Process(operator.pid).children(recursive=True)
            for proc in children if args.profile else [operator]:  # py-spy writes once it exits
                proc.terminate()
            operator.wait(60)
            if suggestion is not None:
                suggestion.terminate()
                suggestion.wait(30)
            stop.set()
        requests = count_requests(plane.audit_events())
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        trials_cpu = children.ru_utime + children.ru_stime - operator_cpu
        jobs = admin.request("GET", jobs_path)["items"]
        trials = admin.request("GET", trials_path)["items"]
        started = [name for _, name in plane.kubelet.started]
        largest = largest_objects(admin)
    finally:
        plane.stop()
        plane.remove()

    latencies = []
    slowest: list[tuple[float, float, str]] = []  # (when, turnover, job)
    stages: dict[str, list[float]] = defaultdict(list)  # the turnover, step by step
    by_birth = {t: name for name, t in pod_born.items()}
    for name, done in succeeded.items():
        births = sorted(created[name])[args.parallelism :]
        for finish, birth in zip(sorted(done), births, strict=False):
            latencies.append(birth - finish)
            slowest.append((finish - start, birth - finish, name))
            pod = by_birth[birth]
            trial_at, secret_at = born[("Trial", pod)], born[("Secret", f"{pod}-token")]
            stages["succeeded_to_trial_created"].append(trial_at - finish)
            stages["trial_to_secret"].append(secret_at - trial_at)
            stages["secret_to_pod"].append(birth - secret_at)
    latencies.sort()
    by_job: dict[str, list[str]] = defaultdict(list)
    for t in trials:
        by_job[t["spec"]["job"]].append(t["metadata"]["name"])
    expected = {
        f"cp{i}": sorted(f"cp{i}-{k}" for k in range(args.trials)) for i in range(args.jobs)
    }
    lost_or_extra = sum(len(set(expected[j]) ^ set(by_job.get(j, []))) for j in expected)
    duplicates = len(started) - len(set(started))
    ideal = math.ceil(args.trials / args.parallelism) * statistics.mean(durations)

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    result = {
        "suggestion_service": "own process" if args.suggestion_service else "in the operator",
        "trial_nice": args.trial_nice,
        "jobs": args.jobs,
        "parallelism": args.parallelism,
        "trials_per_job": args.trials,
        "succeeded_jobs": sum(1 for j in jobs if j["status"]["phase"] == "Succeeded"),
        "trials": len(trials),
        "pods_started": len(started),
        "lost_or_extra_trials": lost_or_extra,
        "duplicate_pods": duplicates,
        "turnover_p50_s": round(pct(0.5), 3),
        "turnover_p95_s": round(pct(0.95), 3),
        "turnover_max_s": round(latencies[-1], 3),
        "turnover_samples": len(latencies),
        "turnover_stages_p50_p95_s": {
            k: [round(quantile(v, 0.5), 3), round(quantile(v, 0.95), 3)] for k, v in stages.items()
        },
        "slowest_turnovers_at_s_took_s_job": [
            [round(at, 2), round(took, 3), job]
            for at, took, job in sorted(slowest, key=lambda s: s[1])[-5:]
        ],
        "largest_objects_bytes": largest,
        "operator_loop_stalls_over_250ms": (tmp / "operator.log")
        .read_text(errors="replace")
        .count("event loop stalled"),
        "mean_trial_s": round(statistics.mean(durations), 2),
        "wall_s": round(wall, 1),
        "ideal_s": round(ideal, 1),
        "wall_over_ideal": round(wall / ideal, 2),
        "api_requests_per_trial": {
            k: round(v / len(trials), 2) for k, v in sorted(requests.items(), key=lambda kv: -kv[1])
        },
        "api_requests_per_trial_total": round(sum(requests.values()) / len(trials), 2),
        "operator": exposed,
        "cpu_s": {
            "operator": round(operator_cpu, 1),
            "etcd_apiserver_controllers_scheduler": round(plane_cpu, 1),
            "test_kubelet_and_proxy": round(kubelet_cpu, 1),
            "trial_processes": round(trials_cpu, 1),
            "available": round(wall * (os.cpu_count() or 1), 1),
        },
        "operator_rss_mib": round(operator_rss / 2**20, 1),
    }
    if args.profile:
        result["profile_top"] = summarize_profile(Path(args.profile))
    print(json.dumps(result, indent=2))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    assert lost_or_extra == 0 and duplicates == 0, "lost or duplicate trials"
    return 0


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def count_requests(events: list[dict[str, Any]]) -> dict[str, int]:
    """The operator's API requests (not watches), by verb and resource, from the audit log."""
    counts: dict[str, int] = defaultdict(int)
    for event in events:
        ref = event.get("objectRef")
        if event["user"]["username"] != OPERATOR_USER or ref is None or event["verb"] == "watch":
            continue
        kind = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        counts[f"{event['verb']} {kind}"] += 1
    return dict(counts)


def largest_objects(api: Api) -> dict[str, int]:
    """The largest TuningJob and Trial as stored (JSON bytes), with the jobs still there."""
    sizes = {}
    for plural in ("tuningjobs", "trials"):
        items = api.request("GET", f"/apis/kubetune.dev/v1alpha1/{plural}")["items"]
        sizes[plural] = max((len(json.dumps(o)) for o in items), default=0)
    return sizes


def scrape(port: int) -> dict[str, Any]:
    """The operator's own figures from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def total(name: str) -> float:
        return sum(v for (n, _), v in samples.items() if n == name)

    def mean_ms(name: str) -> float | None:
        count = total(f"{name}_count")
        return round(1000 * total(f"{name}_sum") / count, 2) if count else None

    def share_over(name: str, bound: str) -> float | None:
        count = total(f"{name}_count")
        below = sum(
            v
            for (n, labels), v in samples.items()
            if n == f"{name}_bucket" and ("le", bound) in labels
        )
        return round(1 - below / count, 4) if count else None

    return {
        "reconciles": int(total("kubetune_reconcile_duration_seconds_count")),
        "reconcile_mean_ms": mean_ms("kubetune_reconcile_duration_seconds"),
        "reconciles_over_100ms": share_over("kubetune_reconcile_duration_seconds", "0.1"),
        "suggest_calls": int(total("kubetune_suggest_duration_seconds_count")),
        "suggest_mean_ms": mean_ms("kubetune_suggest_duration_seconds"),
        "workqueue_wait_mean_ms": mean_ms("kubetune_workqueue_latency_seconds"),
        "loop_lag_mean_ms": mean_ms("kubetune_event_loop_lag_seconds"),
        "loop_lag_over_50ms": share_over("kubetune_event_loop_lag_seconds", "0.05"),
        "api_requests": int(total("kubetune_kube_api_requests_total")),
    }


WAITING = (
    "Condition.wait",
    "Event.wait",
    "select (",
    "poll (",
    "Queue.get",
    "sleep (",
    "_worker (concurrent/futures/thread.py:81)",
)


def summarize_profile(path: Path, top: int = 30) -> dict[str, Any]:
    """Where the operator's working samples go (stacks that end in a wait are left out):
    functions by the share of working samples with them on the stack, and by their own."""
    inclusive: dict[str, int] = defaultdict(int)
    own: dict[str, int] = defaultdict(int)
    working = waiting = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        if any(w in frames[-1] for w in WAITING):
            waiting += n
            continue
        working += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n

    def ranked(counts: dict[str, int]) -> list[tuple[str, float]]:
        best = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        return [(frame, round(n / max(working, 1), 3)) for frame, n in best]

    return {
        "working_samples": working,
        "waiting_samples": waiting,
        "inclusive": ranked(inclusive),
        "own": ranked(own),
    }


if __name__ == "__main__":
    sys.exit(main())
