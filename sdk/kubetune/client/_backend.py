"""What `kubetune.Client` needs of the place where jobs live: the `Backend` protocol.

Two implementations: `ClusterBackend` (TuningJobs through the Kubernetes API) and `LocalBackend`
(work directories, each job run by a detached `kubetune run`). The client holds one and never
asks which it is.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from ..spec import TuningJob, TuningJobSpec
from ._types import JobEvent, JobStatus, TrialInfo


class Backend(Protocol):
    def describe(self) -> str:
        """Where the jobs are, for `repr(client)`: `workdir='...'` or `namespace=..., host=...`."""
        ...

    def flags(self) -> builtins.list[str]:
        """The command-line flags that name this place (`kubetune logs` hints)."""
        ...

    def place(self) -> str:
        """Where a job was created, for people: ` in namespace ml`, or empty."""
        ...

    def only_job(self) -> str | None:
        """The one job there is, for commands whose NAME was left out; None if the backend
        cannot tell (NotFound or UsageError when there is none, or several)."""
        ...

    def plots_dir(self, name: str) -> Path:
        """Where `Client.plot` writes by default."""
        ...

    def submit(self, job: TuningJob, manifest: dict[str, Any], base_dir: Path) -> str:
        """Create the job (validated already; relative paths start at `base_dir`); its name."""
        ...

    def get(self, name: str) -> JobStatus: ...

    def list(self, selector: str | None = None) -> builtins.list[JobStatus]: ...

    def trials(self, name: str) -> builtins.list[TrialInfo]: ...

    def view(self, name: str) -> tuple[JobStatus, builtins.list[TrialInfo]]:
        """The job's status and its trials, read together (locally from one read of the state
        file)."""
        ...

    def spec(self, name: str) -> TuningJobSpec: ...

    def revision(self, name: str) -> str:
        """A cheap token that changes when the job changes (locally: its state file or runner;
        on a cluster: the TuningJob's resourceVersion, which its operator bumps with each status
        write). Trials of a job that has settled do not change without it."""
        ...

    def events(self, name: str, limit: int) -> builtins.list[JobEvent]:
        """The newest `limit` events about the job and its trials, newest first."""
        ...

    def wait(
        self, name: str, deadline: float | None, on_change: Callable[[JobStatus], None]
    ) -> JobStatus:
        """Follow the job, calling `on_change` with each new status, until it has settled (or
        `deadline`, a `time.monotonic()` value, has passed: WaitTimeout)."""
        ...

    def logs(self, trial: str, follow: bool, job: str | None = None) -> Iterator[str]: ...

    def update(self, name: str, budget: dict[str, int]) -> JobStatus: ...

    def delete(self, name: str) -> None: ...
