"""`[quotas.<cluster>]` in datalabs.toml: how much of each cluster users and groups may use.

    [quotas.hpc.user]             # every user, each on their own, on cluster 'hpc'
    labs = 2                      # labs at once (pending, starting, running or stopping)
    cpu = 8                       # CPUs in use at once, summed over those labs
    memory = "32G"
    gpu = 1
    cpu_hours = 500               # per calendar month (UTC), labs and runs; ended and running
    gpu_hours = 10

    [quotas.hpc.groups.astro]     # all members of group 'astro' together, as Slurm's GrpTRES
    cpu = 32
    gpu_hours = 100

A limit left out is no limit; a limit of 0 forbids that resource (gpu = 0: no GPU labs on the cluster).
Quotas of a cluster not configured in `[[clusters]]` are refused at start (a misspelt name would
otherwise limit nothing, silently)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from datalabs.catalogue.schema import parse_memory

GROUP_NAME_PATTERN = r"^[a-z][a-z0-9_.-]{1,31}$"  # as accounts.service.NAME_RE


class Limits(BaseModel):
    """One holder's limits on one cluster; None: unlimited."""

    model_config = ConfigDict(extra="forbid")

    labs: int | None = Field(None, ge=0, description="Labs at once (active: pending to stopping).")
    cpu: float | None = Field(None, ge=0, description="CPUs in use at once, summed over active labs.")
    memory: int | None = Field(
        None, ge=0, description="Memory in use at once, e.g. '32G' (bytes when a number)."
    )
    gpu: int | None = Field(None, ge=0, description="GPUs in use at once.")
    cpu_hours: float | None = Field(
        None, ge=0, description="CPU-hours per calendar month (UTC): CPUs x hours of labs and runs."
    )
    gpu_hours: float | None = Field(None, ge=0, description="GPU-hours per calendar month (UTC).")

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value):
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"{value!r} is not a memory size such as 512M or 32G")
        return parse_memory(value)  # its ValueError names the value and the forms accepted


class ClusterQuotas(BaseModel):
    """The quotas of one cluster: `user` for each user, `groups.<name>` for all of a group's members."""

    model_config = ConfigDict(extra="forbid")

    user: Limits = Field(default_factory=Limits, description="Limits of each user on the cluster.")
    groups: dict[str, Limits] = Field(
        default_factory=dict,
        description="Limits of each named group's members together on the cluster (a user in two "
        "limited groups is held to both).",
    )

    @field_validator("groups")
    @classmethod
    def _group_names(cls, value: dict[str, Limits]) -> dict[str, Limits]:
        for name in value:
            if not re.fullmatch(GROUP_NAME_PATTERN, name):
                raise ValueError(f"quotas: {name!r} is not a group name")
        return value


def check_quotas(quotas: dict[str, ClusterQuotas], cluster_names: list[str]) -> None:
    """Every quota names a configured cluster."""
    if unknown := sorted(set(quotas) - set(cluster_names)):
        raise ValueError(
            f"quotas: no cluster named {', '.join(unknown)} (configured: {', '.join(cluster_names)})"
        )
