"""What checkpoints buy on the real trainer (CPU), each comparison in one run over the same seeds.

1. Hyperband (manifests/examples/digits-hyperband.yaml) with `spec.checkpoints` and without:
   the configurations promoted, the epochs trained (counted in the trial logs), the best
   objective and the wall time.
2. PBT against random search and random search with ASHA at about the same budget of epochs, on
   a space where the learning rate matters, over several seeds: the median and spread of the
   best validation loss (the accuracy of 450 digits saturates), and the epochs each used.

    python benchmarks/checkpoint_resume.py [--seeds 3] [--out benchmarks/results/checkpoints.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "manifests" / "examples" / "digits-hyperband.yaml"
SPACE = [
    {"name": "lr", "type": "float", "min": 1e-4, "max": 0.5, "scale": "log"},
    {"name": "weight_decay", "type": "float", "min": 1e-6, "max": 1e-2, "scale": "log"},
    {"name": "dropout", "type": "float", "min": 0.0, "max": 0.5},
]
ARGS = ["--lr=${params.lr}", "--weight-decay=${params.weight_decay}"]
ARGS += ["--dropout=${params.dropout}", "--epochs=${params.epochs}", "--optimizer=sgd"]
ARGS += ["--momentum=0.5", "--units=32", "--hidden-layers=2"]
EPOCHS = 12


def run(doc: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Run a TuningJob with `kubetune run`; its trials, epochs trained, best value, seconds."""
    workdir.mkdir(parents=True)
    path = workdir / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "run", str(path), "--workdir", str(workdir / "w")],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    listed = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "trials", "--workdir", str(workdir / "w"), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    trials = json.loads(listed.stdout)
    trials = trials["trials"] if isinstance(trials, dict) else trials
    logs = (workdir / "w" / "logs").glob("*.log")
    epochs = sum(line.startswith("epoch ") for f in logs for line in f.read_text().splitlines())
    values = [t["objective"] for t in trials if t.get("objective") is not None]
    maximize = doc["spec"]["objective"]["direction"] == "maximize"
    best = max(values) if maximize else min(values)
    return {"trials": trials, "epochs": epochs, "best": best, "seconds": seconds}


def job(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    template = {
        "local": {"workingDir": str(ROOT / "trainer-image")},
        "spec": {"containers": [{"name": "trainer", "command": ["python", "train.py"]}]},
    }
    template["spec"]["containers"][0]["args"] = ARGS
    return {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TuningJob",
        "metadata": {"name": name},
        "spec": {**spec, "trialTemplate": template},
    }


def hyperband(tmp: Path) -> dict[str, Any]:
    out = {}
    for label, checkpoints in (("with", {"keep": 2}), ("without", None)):
        doc = yaml.safe_load(EXAMPLE.read_text())
        doc["spec"]["trialTemplate"]["local"]["workingDir"] = str(ROOT / "trainer-image")
        if checkpoints:
            doc["spec"]["checkpoints"] = checkpoints
        result = run(doc, tmp / f"hyperband-{label}")
        promoted = sorted(
            json.dumps(t["params"], sort_keys=True) for t in result["trials"] if t["continues"]
        )
        out[label] = {
            "epochs": result["epochs"],
            "best": result["best"],
            "seconds": round(result["seconds"], 1),
            "promoted_with_checkpoint": len(promoted),
            "configurations": sorted(
                json.dumps(t["params"], sort_keys=True) for t in result["trials"]
            ),
        }
    out["same_configurations"] = out["with"]["configurations"] == out["without"]["configurations"]
    return out


def population(tmp: Path, seeds: int) -> dict[str, Any]:
    objective = {"metric": "val_loss", "direction": "minimize"}  # finer than the accuracy
    resource = {"name": "epochs", "min": 1, "max": EPOCHS}
    methods = {
        "pbt": {
            "algorithm": {
                "name": "pbt",
                "settings": {"populationSize": 8, "perturbationInterval": 3},
            },
            "maxTrials": 32,
            "checkpoints": {"keep": 2},
        },
        "random": {"algorithm": {"name": "random"}, "maxTrials": 8},
        "asha": {
            "algorithm": {"name": "random"},
            "earlyStopping": {"name": "asha", "settings": {"reductionFactor": 3}},
            "maxTrials": 29,  # about the 96 epochs of the others: most stop at 1 or 3
        },
    }
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    for seed in range(seeds):
        for method, extra in methods.items():
            spec = {
                "objective": objective,
                "parameters": SPACE,
                "resource": resource,
                "parallelism": 2,
                **extra,
            }
            spec["algorithm"] = {**spec["algorithm"], "seed": seed}
            result = run(job(f"{method}-{seed}", spec), tmp / f"{method}-{seed}")
            results[method].append(
                {"seed": seed, "best": result["best"], "epochs": result["epochs"]}
            )
            print(method, seed, result["best"], result["epochs"], flush=True)
    summary = {}
    for method, rows in results.items():
        bests = [r["best"] for r in rows]
        summary[method] = {
            "median_best": statistics.median(bests),
            "min_best": min(bests),
            "max_best": max(bests),
            "median_epochs": statistics.median(r["epochs"] for r in rows),
            "runs": rows,
        }
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--skip-hyperband", action="store_true", help="keep the Hyperband result already in --out"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/checkpoints.json"))
    args = parser.parse_args()
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        report: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
        if not args.skip_hyperband:
            report["hyperband"] = hyperband(Path(tmp))
            hb = report["hyperband"]
            print(json.dumps({k: v for k, v in hb.items() if k != "configurations"}, indent=1))
        report["population"] = population(Path(tmp), args.seeds)
    out.write_text(json.dumps(report, indent=2))
    for method, row in report["population"].items():
        print(
            f"{method:7s} median best {row['median_best']:.4f} "
            f"[{row['min_best']:.4f}, {row['max_best']:.4f}] "
            f"median epochs {row['median_epochs']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
