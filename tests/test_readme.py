"""The README's "From Python" snippet runs as written: the real trainer, the local backend."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.slow


def snippet(section: str) -> str:
    text = (ROOT / "README.md").read_text()
    body = text.split(f"## {section}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", body, re.S)
    assert match, f"no python block under {section}"
    return match.group(1)


def test_the_from_python_snippet_runs_as_written(tmp_path: Path) -> None:
    (tmp_path / "trainer-image").symlink_to(ROOT / "trainer-image")  # as from the repository
    proc = subprocess.run(
        [sys.executable, "-c", snippet("From Python")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Succeeded name='digits-py-")
    assert sum(line.startswith("digits-py-") for line in lines) == 8  # the updated budget
    assert "slices.png" in lines[-1]
    assert not (tmp_path / ".kubetune" / "digits-py").exists()  # deleted at the end
