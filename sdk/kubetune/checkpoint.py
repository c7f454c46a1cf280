"""Checkpoints for training code: save each step's state, and resume from it when kubetune says.

The contract (both drivers set it when the job has `spec.checkpoints`):

- `KUBETUNE_CHECKPOINT_DIR`: this trial's own directory (locally `<workdir>/checkpoints/<trial>/`,
  on a cluster a volume's subPath mounted into the primary container).
- `KUBETUNE_RESUME_STEP`: set when the trial resumes; the last step kubetune stored for it (or
  for the trial it continues). `load_checkpoint` returns the newest checkpoint at or before it.
- `KUBETUNE_RESUME_DIR`: the directory of the trial this one continues (a Hyperband promotion, a
  PBT member copying a stronger one), read when its own directory has nothing to resume.
- `KUBETUNE_CHECKPOINT_KEEP`: how many checkpoints to keep (`spec.checkpoints.keep`).

Save before you report a step, so a verdict never refers to an unsaved step. A save is atomic (a
temporary file, fsync, rename); a checkpoint that cannot be read falls back to the one before,
with a warning. Besides the newest `keep`, the newest checkpoint at or before the last step
kubetune acknowledged is kept, so a trial that trained on while its reports could not get
through still resumes exactly where its stored curve ends. Without `KUBETUNE_CHECKPOINT_DIR` saving does nothing and there is nothing to
load, so the same code runs with or without checkpoints.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

DIR_ENV = "KUBETUNE_CHECKPOINT_DIR"
RESUME_STEP_ENV = "KUBETUNE_RESUME_STEP"
RESUME_DIR_ENV = "KUBETUNE_RESUME_DIR"
KEEP_ENV = "KUBETUNE_CHECKPOINT_KEEP"
TERMINATION_LOG_ENV = "KUBETUNE_TERMINATION_LOG"
KUBERNETES_TERMINATION_LOG = Path("/dev/termination-log")
DEFAULT_KEEP = 2
FILE = re.compile(r"^step-(\d{12})\.ckpt$")


class CheckpointError(OSError):
    """A checkpoint could not be written (an unwritable directory, a full disk...)."""


def checkpoint_dir() -> Path | None:
    """This trial's checkpoint directory (created if missing), or None without checkpoints."""
    value = os.environ.get(DIR_ENV)
    if not value:
        return None
    path = Path(value)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _failed(f"cannot create the checkpoint directory {path}", exc) from None
    return path


def resume_step() -> int | None:
    """The step this trial resumes from, or None when it starts from scratch."""
    value = os.environ.get(RESUME_STEP_ENV)
    return int(value) if value else None


def save_checkpoint(state: Any, step: int) -> Path | None:
    """Save `state` (tensors, state dicts, plain objects) as the checkpoint of `step`.

    Atomic; keeps the newest `KUBETUNE_CHECKPOINT_KEEP` (default 2) and removes any newer ones
    left by an attempt that did not get this far. Returns the file, or None without a checkpoint
    directory. Raises `CheckpointError` naming the directory and the reason."""
    if step < 0:
        raise ValueError(f"step: must be >= 0 (got {step})")
    directory = checkpoint_dir()
    if directory is None:
        return None
    final = directory / f"step-{step:012d}.ckpt"
    temporary = directory / f".{final.name}.{os.getpid()}.tmp"
    try:
        with open(temporary, "wb") as f:
            f.write(_dumps(state))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, final)
        _fsync_dir(directory)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise _failed(f"cannot save the checkpoint of step {step} in {directory}", exc) from None
    _prune(directory, step, int(os.environ.get(KEEP_ENV) or DEFAULT_KEEP))
    return final


def _prune(directory: Path, step: int, keep: int) -> None:
    """Keep the newest `keep` up to `step`, and the newest at or before the last step kubetune
    has stored: a resume starts there, however far training ran while reports could not get
    through. Newer ones than `step` are from an abandoned attempt: never resumed from again."""
    from ._report import acknowledged_step

    listed = _listed(directory)
    stored = acknowledged_step()
    pinned = max((s for s, _ in listed if stored is not None and s <= stored), default=None)
    older = [(s, p) for s, p in listed if s < step]
    doomed = [(s, p) for s, p in listed if s > step] + older[: max(0, len(older) - (keep - 1))]
    for s, p in doomed:
        if s != pinned:
            p.unlink(missing_ok=True)


def load_checkpoint() -> tuple[Any, int] | None:
    """`(state, step)` of the checkpoint to resume from, or None to start from scratch.

    Looks in this trial's directory, then in the one it continues (`KUBETUNE_RESUME_DIR`), for
    the newest checkpoint at or before `KUBETUNE_RESUME_STEP`; one that cannot be read is skipped
    with a warning."""
    upto = resume_step()
    if upto is None:
        return None
    places = [os.environ.get(DIR_ENV), os.environ.get(RESUME_DIR_ENV)]
    for place in places:
        if not place or not Path(place).is_dir():
            continue
        for step, path in reversed(_listed(Path(place))):
            if step > upto:
                continue
            try:
                return _loads(path.read_bytes()), step
            except Exception as exc:  # truncated, corrupt, unreadable: the one before will do
                warnings.warn(
                    f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); "
                    "falling back to the one before",
                    RuntimeWarning,
                    stacklevel=2,
                )
    return None


def _listed(directory: Path) -> list[tuple[int, Path]]:
    """The checkpoints in `directory`, oldest first."""
    found = []
    for path in directory.iterdir():
        match = FILE.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def _dumps(state: Any) -> bytes:
    buffer = io.BytesIO()
    try:
        import torch
    except ImportError:
        pickle.dump(state, buffer, protocol=pickle.HIGHEST_PROTOCOL)
    else:
        torch.save(state, buffer)
    return buffer.getvalue()


def _loads(data: bytes) -> Any:
    try:
        import torch
    except ImportError:
        return pickle.loads(data)
    # this job's own trials wrote it: optimizer and RNG states need more than weights_only
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _failed(what: str, exc: OSError) -> CheckpointError:
    """The error to raise, also written where the driver reads a trial's reason from."""
    message = f"{what}: {exc.strerror or exc}"
    target = os.environ.get(TERMINATION_LOG_ENV)
    path = Path(target) if target else KUBERNETES_TERMINATION_LOG
    if target or path.exists():
        with contextlib.suppress(OSError):
            path.write_text(message[:4096])
    return CheckpointError(message)
