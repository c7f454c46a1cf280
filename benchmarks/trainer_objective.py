"""The shipped trainer as a two-objective benchmark problem: validation accuracy on digits and
parameter count, for given units and learning rate (one hidden layer, 2 epochs, CPU)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

TRAINER = Path(__file__).resolve().parent.parent / "trainer-image" / "train.py"
LINE = re.compile(r"val_accuracy=([0-9.]+).*num_parameters=([0-9.]+)")


def accuracy_and_size(units: int, lr: float, epochs: int = 2) -> tuple[float, float]:
    args = [f"--units={units}", f"--lr={lr}", f"--epochs={epochs}", "--hidden-layers=1"]
    done = subprocess.run(
        [sys.executable, str(TRAINER), *args], capture_output=True, text=True, timeout=300
    )
    found = [LINE.search(line) for line in done.stdout.splitlines()]
    last = [m for m in found if m]
    if done.returncode != 0 or not last:
        raise RuntimeError(f"trainer failed ({done.returncode}): {done.stderr[-500:]}")
    return float(last[-1].group(1)), float(last[-1].group(2))
