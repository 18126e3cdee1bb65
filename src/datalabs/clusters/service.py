"""The clusters a user may place labs and runs on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from datalabs.accounts.principal import Principal
from datalabs.clusters.settings import ClusterSettings
from datalabs.config import Settings
from datalabs.errors import Invalid
from datalabs.runtimes.base import Capacity, RuntimeBackend


@dataclass(frozen=True)
class Offer:
    """A cluster as a launch choice: what it is and what it can give now."""

    cluster: ClusterSettings
    capacity: Capacity


def visible(settings: Settings, principal: Principal) -> list[ClusterSettings]:
    """Clusters open to everyone or to one of the principal's groups; administrators see all."""
    return [cluster for cluster in settings.clusters if principal.in_any(cluster.allowed_groups)]


def for_launch(settings: Settings, principal: Principal, name: str | None) -> ClusterSettings:
    """The cluster a lab is to run on: `name`, or the first the principal may use. Unknown clusters and
    those of other groups are refused alike (their names are not revealed by a different answer)."""
    usable = visible(settings, principal)
    if name is None:
        if not usable:
            raise Invalid("no cluster is open to you: ask an administrator", code="unknown_cluster")
        name = usable[0].name
    cluster = next((c for c in usable if c.name == name), None)
    if cluster is None:
        names = ", ".join(c.name for c in usable) or "none"
        raise Invalid(f"no cluster named '{name}' (yours: {names})", code="unknown_cluster")
    return cluster


def offers(
    settings: Settings, principal: Principal, backend_class: Callable[[str], type[RuntimeBackend]]
) -> list[Offer]:
    """The clusters the principal may use with what each can give now (`backend_class`: the lab manager's,
    which binds each cluster's runtime; Slurm's answer is cached for seconds, see slurm_queue.capacity)."""
    return [Offer(c, backend_class(c.name).capacity()) for c in visible(settings, principal)]
