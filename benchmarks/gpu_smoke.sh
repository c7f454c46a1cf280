#!/usr/bin/env bash
# One trial of the shipped trainer on a GPU, with bf16 autocast and without: samples per second
# of each (the median of the epochs after the first, which includes cuDNN autotuning), and the
# validation accuracy both reach. Needs a CUDA device and the project's .venv (make test or
# make demo creates it). CI never runs this.
#
#   benchmarks/gpu_smoke.sh [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
EPOCHS=${1:-8}
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA device")'
"$PY" -c 'import torch; print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__)'
for amp in on off; do
  out=$(cd trainer-image && "../$PY" train.py --amp="$amp" --epochs="$EPOCHS" --units=2048 \
        --hidden-layers=4 --batch-size=256 --dropout=0.1 --lr=0.003)
  echo "$out" | "$PY" -c '
import re, statistics, sys
amp = sys.argv[1]
lines = [l for l in sys.stdin if l.startswith("epoch ")]
speed = [float(re.search(r"samples_per_second=([0-9.]+)", l).group(1)) for l in lines[1:]]
accuracy = re.search(r"val_accuracy=([0-9.]+)", lines[-1]).group(1)
print(f"amp={amp:3s} median samples/s {statistics.median(speed):12.0f}  val_accuracy {accuracy}")
' "$amp"
done
