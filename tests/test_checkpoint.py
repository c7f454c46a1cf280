"""The checkpoint helpers training code calls: atomic saves, what is kept, what is resumed."""

from __future__ import annotations

import errno
import os
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


def test_a_full_disk_keeps_the_previous_checkpoint_and_leaves_no_temporary_file(
    ckpt_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_checkpoint({"step": 1}, 1)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint.os, "fsync", full)
    with pytest.raises(CheckpointError, match=r"step 2 in .*No space left on device"):
        save_checkpoint({"step": 2}, 2)
    assert steps(ckpt_dir) == ["step-000000000001.ckpt"]
    assert "No space left on device" in (tmp_path / "message").read_text()
    monkeypatch.undo()
    monkeypatch.setenv(checkpoint.DIR_ENV, str(ckpt_dir))
    monkeypatch.setenv(checkpoint.RESUME_STEP_ENV, "2")
    assert load_checkpoint() == ({"step": 1}, 1)
