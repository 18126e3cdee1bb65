"""The clusters a user may place labs and runs on."""

from __future__ import annotations

from datalabs.accounts.principal import Principal
from datalabs.clusters.settings import ClusterSettings
from datalabs.config import Settings


def visible(settings: Settings, principal: Principal) -> list[ClusterSettings]:
    """Clusters open to everyone or to one of the principal's groups; administrators see all."""
    return [cluster for cluster in settings.clusters if principal.in_any(cluster.allowed_groups)]
