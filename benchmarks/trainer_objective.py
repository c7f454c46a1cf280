"""The shipped trainer as a two-objective benchmark problem: validation accuracy on digits and
parameter count, for given units and learning rate (one hidden layer, 2 epochs, CPU).

The trainer's own `main` runs in this process (imported once from trainer-image/train.py), so a
trial costs its training, about 0.1 s, not a fresh interpreter and torch import (8 s). Its
printed epoch lines are parsed as a trial's log would be; without a kubetune server its reports
only go to stderr, which is discarded here."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
from functools import cache
from pathlib import Path
from types import ModuleType

TRAINER = Path(__file__).resolve().parent.parent / "trainer-image" / "train.py"
LINE = re.compile(r"val_accuracy=([0-9.]+).*num_parameters=([0-9.]+)")


@cache
def _trainer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kubetune_trainer", TRAINER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def accuracy_and_size(units: int, lr: float, epochs: int = 2) -> tuple[float, float]:
    args = [f"--units={units}", f"--lr={lr}", f"--epochs={epochs}", "--hidden-layers=1"]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = _trainer().main(args)
    found = [m for line in out.getvalue().splitlines() if (m := LINE.search(line))]
    if code != 0 or not found:
        raise RuntimeError(f"trainer failed ({code}): {err.getvalue()[-500:]}")
    return float(found[-1].group(1)), float(found[-1].group(2))
