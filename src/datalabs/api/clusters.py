"""Clusters: where the caller may place labs and runs (administrators see every configured one)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from datalabs.accounts.principal import Principal
from datalabs.catalogue.schema import ResourceLimits
from datalabs.clusters import service as clusters
from datalabs.clusters.settings import ClusterOptions
from datalabs.config import Settings
from datalabs.deps import get_settings, scope

router = APIRouter(prefix="/api/v1/clusters", tags=["clusters"], responses={401: {}, 403: {}})


class CapacityRead(BaseModel):
    cpus_idle: int | None
    cpus_total: int | None
    memory_free: int | None = Field(description="Bytes of memory not allocated to jobs.")
    memory_total: int | None
    gpus_total: int
    queued: int
    summary: str  # e.g. "6 of 8 CPUs free · 2 GPUs · no queue", or why it is not known


class ClusterRead(BaseModel):
    name: str
    title: str
    description: str
    backend: str
    options: ClusterOptions
    allowed_groups: list[str]
    resources: ResourceLimits | None
    capacity: CapacityRead


@router.get("", response_model=list[ClusterRead])
def list_clusters(
    request: Request,
    principal: Principal = Depends(scope("labs:read")),
    settings: Settings = Depends(get_settings),
) -> list[ClusterRead]:
    """The clusters you may launch labs and runs on, with what each can give now."""
    return [
        ClusterRead(
            **offer.cluster.model_dump(),
            capacity=CapacityRead(**vars(offer.capacity), summary=offer.capacity.summary),
        )
        for offer in clusters.offers(settings, principal, request.app.state.labs.backend_class)
    ]
