"""Local runner benchmarks on the real trainer (digits, CPU).

    .venv/bin/python benchmarks/runner_bench.py overhead [--trials 6]
    .venv/bin/python benchmarks/runner_bench.py asha [--seeds 3 --trials 16]

overhead: wall time of N one-epoch trials through `kubetune run` (parallelism 1) against the same
N trainer runs started directly, one after another, in the same run; per-trial difference.
asha: the same random-search job (same seed, same configurations) with ASHA and without early
stopping; total epochs trained and best validation accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TRAINER = ROOT / "trainer-image"
RESULTS = Path(__file__).parent / "results"
PARAMS = [
    {"name": "lr", "type": "float", "min": 1e-4, "max": 0.3, "scale": "log"},
    {"name": "hidden_layers", "type": "int", "min": 1, "max": 3},
    {"name": "units", "type": "int", "min": 16, "max": 128, "scale": "log"},
    {"name": "optimizer", "type": "categorical", "values": ["sgd", "adam"]},
]
ARGS = [
    "--lr=${params.lr}",
    "--hidden-layers=${params.hidden_layers}",
    "--units=${params.units}",
    "--optimizer=${params.optimizer}",
    "--epochs=${params.epochs}",
]


def manifest(tmp: Path, name: str, spec: dict[str, Any], args: list[str] = ARGS) -> Path:
    spec["trialTemplate"] = {
        "local": {"workingDir": str(TRAINER)},
        "spec": {
            "containers": [
                {
                    "name": "trainer",
                    "image": "kubetune/trainer",
                    "command": ["python", "train.py"],
                    "args": args,
                }
            ]
        },
    }
    path = tmp / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kubetune.dev/v1alpha1",
                "kind": "TuningJob",
                "metadata": {"name": name},
                "spec": spec,
            }
        )
    )
    return path


def run_job(path: Path, workdir: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubetune.cli",
            "run",
            str(path),
            "--workdir",
            str(workdir),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if not proc.stdout:
        raise SystemExit(f"kubetune run failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def overhead(trials: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        spec = {
            "objective": {"metric": "val_accuracy", "direction": "maximize"},
            "parameters": PARAMS,
            "algorithm": {"name": "random", "seed": 0},
            "maxTrials": trials,
            "parallelism": 1,
        }
        path = manifest(Path(tmp), "overhead", spec, [*ARGS[:-1], "--epochs=1"])
        began = time.perf_counter()
        result = run_job(path, Path(tmp) / "work")
        runner = time.perf_counter() - began
        began = time.perf_counter()
        for t in result["trials"]:
            p = t["params"]
            subprocess.run(
                [
                    sys.executable,
                    "train.py",
                    f"--lr={p['lr']!r}",
                    f"--hidden-layers={p['hidden_layers']}",
                    f"--units={p['units']}",
                    f"--optimizer={p['optimizer']}",
                    "--epochs=1",
                ],
                cwd=TRAINER,
                check=True,
                capture_output=True,
            )
        direct = time.perf_counter() - began
    return {
        "trials": trials,
        "runner_s": runner,
        "direct_s": direct,
        "overhead_per_trial_s": (runner - direct) / trials,
    }


def asha(seeds: int, trials: int) -> dict[str, Any]:
    rows = []
    for seed in range(seeds):
        row: dict[str, Any] = {"seed": seed}
        for label, stopping in (
            ("none", {"name": "none"}),
            ("asha", {"name": "asha", "settings": {"reductionFactor": 3}}),
        ):
            with tempfile.TemporaryDirectory() as tmp:
                spec = {
                    "objective": {"metric": "val_accuracy", "direction": "maximize"},
                    "parameters": PARAMS,
                    "algorithm": {"name": "random", "seed": seed},
                    "earlyStopping": stopping,
                    "resource": {"name": "epochs", "min": 1, "max": 27},
                    "maxTrials": trials,
                    "parallelism": 2,
                }
                result = run_job(manifest(Path(tmp), f"asha-{label}", spec), Path(tmp) / "work")
            row[f"{label}_epochs"] = sum(len(t["curve"]) for t in result["trials"])
            row[f"{label}_best"] = result["best"]["objective"]
        rows.append(row)
        print(row, flush=True)
    total_none = sum(r["none_epochs"] for r in rows)
    total_asha = sum(r["asha_epochs"] for r in rows)
    gap = max(r["none_best"] - r["asha_best"] for r in rows)
    return {
        "rows": rows,
        "epoch_fraction": total_asha / total_none,
        "worst_accuracy_gap_pp": 100 * gap,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("which", choices=["overhead", "asha"])
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    out = (
        overhead(args.trials or 6)
        if args.which == "overhead"
        else asha(args.seeds, args.trials or 16)
    )
    out["command"] = " ".join(sys.argv)
    out["machine"] = (
        f"{platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}"
    )
    print(json.dumps(out, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"runner_{args.which}.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
