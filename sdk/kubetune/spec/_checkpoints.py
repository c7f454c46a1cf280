"""`spec.checkpoints`: where trials keep their checkpoints, and how many."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from ._base import SpecModel, field_error

DEFAULT_MOUNT_PATH = "/kubetune/checkpoints"
RESUME_MOUNT_PATH = "/kubetune/resume"  # the continued trial's directory, read-only


class AccessMode(StrEnum):
    read_write_once = "ReadWriteOnce"
    read_write_many = "ReadWriteMany"
    read_write_once_pod = "ReadWriteOncePod"


class ExistingClaim(SpecModel):
    claim_name: str = Field(min_length=1, description="A PersistentVolumeClaim in the namespace.")


class ClaimTemplate(SpecModel):
    """A PersistentVolumeClaim the operator creates for the job (and deletes with it)."""

    storage_class_name: str | None = Field(None, description="Default: the cluster's default.")
    size: str = Field("10Gi", min_length=1, description="Requested storage, e.g. 50Gi.")
    access_modes: list[AccessMode] = Field(
        default_factory=lambda: [AccessMode.read_write_once], min_length=1
    )


class CheckpointStorage(SpecModel):
    """On a cluster: one volume for the job, each trial in its own subPath. Exactly one of:"""

    persistent_volume_claim: ExistingClaim | None = Field(None, description="An existing claim.")
    volume_claim_template: ClaimTemplate | None = Field(
        None, description="A claim the operator creates and owns, one per job."
    )

    @model_validator(mode="after")
    def _one(self) -> CheckpointStorage:
        given = [self.persistent_volume_claim, self.volume_claim_template]
        if sum(g is not None for g in given) != 1:
            raise field_error(
                "persistentVolumeClaim",
                "give exactly one of persistentVolumeClaim and volumeClaimTemplate",
            )
        return self

    @property
    def single_node(self) -> bool:
        """Whether the claim can be mounted on one node only (a template that says so)."""
        template = self.volume_claim_template
        return template is not None and AccessMode.read_write_many not in template.access_modes


class Checkpoints(SpecModel):
    """Trials save checkpoints (`kubetune.save_checkpoint`) and resume from them: a promoted,
    evicted or restarted trial continues instead of starting over."""

    keep: int = Field(2, ge=1, description="Checkpoints kept per trial (the newest).")
    storage: CheckpointStorage | None = Field(
        None, description="The volume on a cluster (required there; kubetune run ignores it)."
    )
    mount_path: str = Field(
        DEFAULT_MOUNT_PATH, pattern=r"^/", description="Where the primary container sees it."
    )
    retain: bool = Field(False, description="Keep a created claim when the job is deleted.")
    trials_share_node: bool = Field(
        False,
        description="The trials run on one node, so a ReadWriteOnce claim may serve "
        "parallelism > 1.",
    )
