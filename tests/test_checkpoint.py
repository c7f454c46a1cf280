"""The checkpoint helpers training code calls: atomic saves, what is kept, what is resumed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kubetune import CheckpointError, checkpoint, load_checkpoint, save_checkpoint


@pytest.fixture
def ckpt_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "ckpt"
    monkeypatch.setenv(checkpoint.DIR_ENV, str(directory))
    monkeypatch.setenv(checkpoint.TERMINATION_LOG_ENV, str(tmp_path / "message"))
    for name in (checkpoint.RESUME_STEP_ENV, checkpoint.RESUME_DIR_ENV, checkpoint.KEEP_ENV):
        monkeypatch.delenv(name, raising=False)
    return directory


def steps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_without_a_directory_saving_does_nothing_and_nothing_resumes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(checkpoint.DIR_ENV, raising=False)
    monkeypatch.setenv(checkpoint.RESUME_STEP_ENV, "3")
    assert save_checkpoint({"w": 1}, 1) is None
    assert load_checkpoint() is None


def test_saves_keep_the_newest_and_resume_at_or_before_the_step(
    ckpt_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for step in range(1, 5):
        save_checkpoint({"step": step, "data": list(range(step))}, step)
    assert steps(ckpt_dir) == ["step-000000000003.ckpt", "step-000000000004.ckpt"]
    assert load_checkpoint() is None  # not resuming
    monkeypatch.setenv(checkpoint.RESUME_STEP_ENV, "4")
    assert load_checkpoint() == ({"step": 4, "data": [0, 1, 2, 3]}, 4)
    monkeypatch.setenv(checkpoint.RESUME_STEP_ENV, "3")  # step 4 was saved but never reported
    assert load_checkpoint() == ({"step": 3, "data": [0, 1, 2]}, 3)
    monkeypatch.setenv(checkpoint.KEEP_ENV, "3")
    save_checkpoint({"step": 3}, 3)  # an attempt resumed at 2 that got to 3 again
    assert steps(ckpt_dir) == ["step-000000000003.ckpt"]  # the abandoned step 4 is gone


def test_a_corrupt_latest_checkpoint_falls_back_to_the_one_before(
    ckpt_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_checkpoint({"step": 1}, 1)
    latest = save_checkpoint({"step": 2}, 2)
    assert latest is not None
    latest.write_bytes(latest.read_bytes()[:10])  # half written by something else
    monkeypatch.setenv(checkpoint.RESUME_STEP_ENV, "2")
    with pytest.warns(RuntimeWarning, match="cannot be read.*falling back"):
        assert load_checkpoint() == ({"step": 1}, 1)


def test_a_continued_trial_starts_from_its_parents_checkpoint(
    ckpt_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = tmp_path / "parent"
    monkeypatch.setenv(checkpoint.DIR_ENV, str(parent))
    for step in (2, 3):
        save_checkpoint({"from": "parent", "step": step}, step)
    monkeypatch.setenv(checkpoint.DIR_ENV, str(ckpt_dir))
    monkeypatch.setenv(checkpoint.RESUME_DIR_ENV, str(parent))
    monkeypatch.setenv(checkpoint.RESUME_STEP_ENV, "3")
    assert load_checkpoint() == ({"from": "parent", "step": 3}, 3)
    save_checkpoint({"from": "child", "step": 4}, 4)  # own saves go to its own directory
    monkeypatch.setenv(checkpoint.RESUME_STEP_ENV, "4")  # the child, retried, resumes its own
    assert load_checkpoint() == ({"from": "child", "step": 4}, 4)
    assert steps(parent) == ["step-000000000002.ckpt", "step-000000000003.ckpt"]


def test_an_unwritable_directory_names_itself_and_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(checkpoint.DIR_ENV, str(blocker / "ckpt"))
    monkeypatch.setenv(checkpoint.TERMINATION_LOG_ENV, str(tmp_path / "message"))
    with pytest.raises(CheckpointError, match=f"checkpoint directory {blocker / 'ckpt'}"):
        save_checkpoint({"w": 1}, 1)
    assert "Not a directory" in (tmp_path / "message").read_text()


FULL_DISK = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, MS_REC, MS_PRIVATE = 0x00020000, 16384, 1 << 18
for ok, what in (
    (libc.unshare(CLONE_NEWNS) == 0, "unshare"),
    (libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) == 0, "private /"),
    (libc.mount(b"tmpfs", sys.argv[1].encode(), b"tmpfs", 0, b"size=64k") == 0, "tmpfs"),
):
    if not ok:
        sys.exit(f"{what}: {os.strerror(ctypes.get_errno())}")
import kubetune
kubetune.save_checkpoint({"w": b"x" * 10_000}, 1)
try:
    kubetune.save_checkpoint({"w": b"x" * 100_000}, 2)  # more than the 64 kB left
except kubetune.CheckpointError as exc:
    print(exc)
print(*sorted(os.listdir(os.environ["KUBETUNE_CHECKPOINT_DIR"])))
os.environ["KUBETUNE_RESUME_STEP"] = "2"
print(kubetune.load_checkpoint()[1])
"""


def test_a_full_disk_keeps_the_previous_checkpoint_and_leaves_no_temporary_file(
    tmp_path: Path,
) -> None:
    """A real full filesystem: a 64 kB tmpfs in a mount namespace of the child's own."""
    disk = tmp_path / "disk"
    disk.mkdir()
    env = {**os.environ, checkpoint.DIR_ENV: str(disk / "ckpt")}
    env[checkpoint.TERMINATION_LOG_ENV] = str(tmp_path / "message")
    env.pop(checkpoint.RESUME_STEP_ENV, None)
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(disk)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    error, listed, resumed = done.stdout.splitlines()
    assert (
        error == f"cannot save the checkpoint of step 2 in {disk / 'ckpt'}: No space left on device"
    )
    assert listed == "step-000000000001.ckpt"  # the earlier one intact, no temporary file
    assert resumed == "1"
    assert "No space left on device" in (tmp_path / "message").read_text()
