"""Unit tests load no end-to-end harness: only the modules that import tests/harness.py
themselves (the cluster tests) bring in the control plane's code."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT

CHECK = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
loaded = sorted(m for m in sys.modules if m == "tests.harness" or m.startswith("tests.cluster"))
print(" ".join(loaded))
"""


def test_unit_test_modules_import_no_e2e_harness() -> None:
    tests = ROOT / "tests"
    unit = [
        f"tests.{p.stem}"
        for p in sorted(tests.glob("test_*.py"))
        if "from .harness import" not in p.read_text()
    ]
    assert len(unit) > 20
    out = subprocess.run(
        [sys.executable, "-c", CHECK, *unit], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == []
