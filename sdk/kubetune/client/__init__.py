"""`kubetune.Client`: one API for TuningJobs on a cluster and in a local work directory.

    client = kubetune.Client()                      # the cluster of the current kubeconfig
    client = kubetune.Client(context="gpu", namespace="ml")
    client = kubetune.Client(workdir=".kubetune")   # local runs, one directory per job

The verbs are the same on both: submit, get, list, trials, events, best, wait, logs, update,
delete and plot. Results are typed (`JobStatus`, `TrialInfo`); failures raise `ClientError`
subclasses whose message is one line, and invalid manifests raise `SpecError` with field paths.
"""

from __future__ import annotations

import builtins
import copy
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..spec import (
    BestTrial,
    FieldError,
    FrontTrial,
    SpecError,
    TrialState,
    TuningJob,
    TuningJobSpec,
)
from ..spec._job import load_yaml_documents
from ._backend import Backend
from ._errors import (
    AlreadyExists,
    ClientError,
    ConfigError,
    Forbidden,
    JobFinished,
    NotFound,
    Unavailable,
    WaitTimeout,
)
from ._types import JobEvent, JobStatus, TrialInfo, logs_command

JobSource = str | Path | dict[str, Any] | TuningJob
PROGRESS_INTERVAL = 0.25  # seconds between redraws of the progress table

__all__ = [
    "AlreadyExists",
    "Client",
    "ClientError",
    "ConfigError",
    "Forbidden",
    "JobEvent",
    "JobFinished",
    "JobStatus",
    "NotFound",
    "TrialInfo",
    "TrialState",
    "Unavailable",
    "WaitTimeout",
]


class Client:
    """TuningJobs on a cluster (`context`, `namespace`) or in a local work directory."""

    def __init__(
        self,
        workdir: str | Path | None = None,
        *,
        context: str | None = None,
        namespace: str | None = None,
    ) -> None:
        from ._cluster import ClusterBackend
        from ._local import LocalBackend

        if workdir is not None and (context or namespace):
            raise ClientError("give either workdir (local runs) or context/namespace (a cluster)")
        self.backend: Backend = (
            LocalBackend(Path(workdir))
            if workdir is not None
            else ClusterBackend(context, namespace)
        )

    def __repr__(self) -> str:
        return f"Client({self.backend.describe()})"

    # -- jobs -------------------------------------------------------------------------------
    def submit(self, job: JobSource) -> str:
        """Create a TuningJob from a YAML path, a manifest dict or a `TuningJob`; its name.

        Validated here first, with the field paths `kubetune validate` prints. On the local
        backend the run starts in the background and outlives this process."""
        parsed, manifest, base_dir = _normalize(job)
        return self.backend.submit(parsed, manifest, base_dir)

    def get(self, name: str) -> JobStatus:
        """The job's status: phase, conditions, trial counts, best trial."""
        return self.backend.get(name)

    def list(self, selector: str | None = None) -> list[JobStatus]:
        """Every job (matching a label selector such as `team=vision`)."""
        return self.backend.list(selector)

    def trials(self, name: str) -> builtins.list[TrialInfo]:
        """The job's trials by index: params, state, stop reason, objective and curve."""
        return self.backend.trials(name)

    def view(self, name: str) -> tuple[JobStatus, builtins.list[TrialInfo]]:
        """`get` and `trials` at once: the status and the trials it counts, read together."""
        return self.backend.view(name)

    def revision(self, name: str) -> str:
        """A cheap token that changes whenever the job may have changed: to skip reading a
        settled job again."""
        return self.backend.revision(name)

    def events(self, name: str, limit: int = 50) -> builtins.list[JobEvent]:
        """The newest Kubernetes Events about the job and its trials, newest first (none
        locally)."""
        return self.backend.events(name, limit)

    def best(self, name: str) -> BestTrial | builtins.list[FrontTrial] | None:
        """The best trial so far (None until one reports the objective); with several
        objectives, the Pareto front (`front`)."""
        status = self.get(name)
        if status.pareto_front is not None:
            return list(status.pareto_front)
        return status.best

    def front(self, name: str) -> builtins.list[FrontTrial]:
        """The Pareto front of a job with several objectives, the most isolated trials first
        (at most 50; `get(name).pareto_front_size` counts them all). Empty for one objective."""
        return list(self.get(name).pareto_front or [])

    def wait(
        self,
        name: str,
        timeout: float | None = None,
        progress: bool = False,
        callback: Callable[[JobStatus], None] | None = None,
    ) -> JobStatus:
        """Block until the job has finished and none of its trials is still active (trials
        stopped by the finish have ended); its final status. Driven by changes (a watch on a
        cluster), with `callback` called on each; `progress` shows a live table on stderr.
        Raises `WaitTimeout` after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not progress:
            return self.backend.wait(name, deadline, callback or (lambda _: None))
        from rich.console import Console

        from ..cli._tables import Progress

        console = Console(file=sys.stderr)
        with Progress(
            lambda: self.trials(name), PROGRESS_INTERVAL, console, self.logs_command()
        ) as table:

            def changed(status: JobStatus) -> None:
                table.update(status)
                if callback is not None:
                    callback(status)

            final = self.backend.wait(name, deadline, changed)
            table.update(final, force=True)
        return final

    def logs_command(self) -> str:
        """The `kubetune logs` command line for this backend, with {trial} to fill in."""
        return logs_command(self.backend.flags())

    def logs(self, trial: str, follow: bool = False, job: str | None = None) -> Iterator[str]:
        """Lines of a trial's log (its pod's on a cluster); `follow` waits for more until the
        trial ends. Locally, `job` narrows the search for the trial."""
        return self.backend.logs(trial, follow, job)

    def update(
        self,
        name: str,
        *,
        max_trials: int | None = None,
        parallelism: int | None = None,
        max_failed_trials: int | None = None,
    ) -> JobStatus:
        """Change the budget of a running job; the operator or local runner follows it."""
        budget = {
            k: v
            for k, v in (
                ("max_trials", max_trials),
                ("parallelism", parallelism),
                ("max_failed_trials", max_failed_trials),
            )
            if v is not None
        }
        return self.backend.update(name, budget)

    def delete(self, name: str) -> None:
        """Remove the job with everything it owns: trials, pods, token secrets (on a cluster),
        or the run's processes, state and logs (locally)."""
        self.backend.delete(name)

    def spec(self, name: str) -> TuningJobSpec:
        """The job's spec as it stands now (after updates)."""
        return self.backend.spec(name)

    def plot(self, name: str, out_dir: str | Path | None = None) -> builtins.list[Path]:
        """PNGs of the job: optimization history, learning curves, parallel coordinates and
        one slice plot per parameter; their paths. By default they go to `plots/` in a local
        job's directory, or to `.kubetune/plots/NAME` for a job on a cluster."""
        from ..plots import plot_job

        out = Path(out_dir) if out_dir is not None else self.backend.plots_dir(name)
        return plot_job(self.spec(name), self.get(name), self.trials(name), out)


def _normalize(job: JobSource) -> tuple[TuningJob, dict[str, Any], Path]:
    """The validated job, its manifest, and the directory its relative paths start from."""
    base = Path.cwd()
    if isinstance(job, TuningJob):
        manifest = job.to_manifest()
        manifest.pop("status", None)
        return job, manifest, base
    if isinstance(job, str | Path):
        path = Path(job)
        docs = [d for d in load_yaml_documents(path) if isinstance(d, dict)]
        jobs = [d for d in docs if d.get("kind") == "TuningJob"] or docs[:1]
        if len(jobs) != 1:
            raise SpecError(
                [FieldError("kind", f"expected one TuningJob document, found {len(jobs)}")],
                str(path),
            )
        data, base, source = jobs[0], path.resolve().parent, str(path)
    elif isinstance(job, dict):
        data, source = job, None
    else:
        raise TypeError(
            f"submit takes a YAML path, a dict or a TuningJob, not {type(job).__name__}"
        )
    manifest = copy.deepcopy(data)
    manifest.pop("status", None)
    return _validated(manifest, source), manifest, base


def _validated(manifest: dict[str, Any], source: str | None) -> TuningJob:
    meta = manifest.get("metadata")
    if not isinstance(meta, dict):
        return TuningJob.parse(manifest, source)
    generate = meta.get("generateName")
    if generate and not meta.get("name"):
        if not isinstance(generate, str):
            raise SpecError([FieldError("metadata.generateName", "must be a string")], source)
        # validate as the server would name it: the prefix and five random characters
        named = {**manifest, "metadata": {**meta, "name": generate + "x0x0x"}}
        return TuningJob.parse(named, source)
    return TuningJob.parse(manifest, source)
