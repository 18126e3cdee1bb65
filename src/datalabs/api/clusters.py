"""Clusters: where the caller may place labs and runs (administrators see every configured one)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from datalabs.accounts.principal import Principal
from datalabs.catalogue.schema import ResourceLimits
from datalabs.clusters import service as clusters
from datalabs.clusters.settings import ClusterOptions
from datalabs.config import Settings
from datalabs.deps import get_settings, scope

router = APIRouter(prefix="/api/v1/clusters", tags=["clusters"], responses={401: {}, 403: {}})


class ClusterRead(BaseModel):
    name: str
    title: str
    description: str
    backend: str
    options: ClusterOptions
    allowed_groups: list[str]
    resources: ResourceLimits | None


@router.get("", response_model=list[ClusterRead])
def list_clusters(
    principal: Principal = Depends(scope("labs:read")), settings: Settings = Depends(get_settings)
) -> list[ClusterRead]:
    return [ClusterRead(**c.model_dump()) for c in clusters.visible(settings, principal)]
