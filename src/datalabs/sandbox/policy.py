"""`Policy`: the containment a sandbox gets beyond its mounts, decided by the platform from its settings
and the user it runs for, and carried by lab specs, run specs and build requests to where the sandbox
starts. `Sandboxes` turns one into a running process's pieces (network namespace, cgroup, argv)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datalabs.sandbox.bwrap import ApiAccess
from datalabs.sandbox.devices import DeviceRule
from datalabs.sandbox.identity import Identity

if TYPE_CHECKING:
    from datalabs.config import Settings


@dataclass(frozen=True)
class Policy:
    """`network`: "none" (its own loopback), "outbound" (internet through pasta; the host and private
    ranges unreachable) or "host" (NOT isolated). `pids_max`: its cgroup's process limit; `nproc`: the
    identity's RLIMIT_NPROC (all of the user's sandboxes together). `gpu_root`: where the host's GPU
    device nodes are (runtimes/gpus.py); `devices`: the only device nodes its cgroup lets it open
    (devices.py), None for no such rule."""

    identity: Identity | None = None
    network: str = "none"
    api: ApiAccess | None = None
    pids_max: int | None = None
    nproc: int | None = None
    seccomp: bool = True
    blocked_networks: tuple[str, ...] = ()
    allowed_networks: tuple[str, ...] = ()
    gpu_root: str = "/dev"
    devices: tuple[DeviceRule, ...] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        """A policy from its `dataclasses.asdict` form (JSON written for a Slurm node: lab and step specs)."""
        identity, api, devices = data.get("identity"), data.get("api"), data.get("devices")
        return cls(
            **{
                **data,
                "identity": Identity(
                    **{
                        **identity,
                        "groups": tuple(identity["groups"]),
                        "team_names": tuple(identity["team_names"]),
                    }
                )
                if identity
                else None,
                "api": ApiAccess(Path(api["socket_dir"]), int(api["port"])) if api else None,
                "blocked_networks": tuple(data.get("blocked_networks", ())),
                "allowed_networks": tuple(data.get("allowed_networks", ())),
                "devices": tuple(DeviceRule(**rule) for rule in devices) if devices is not None else None,
            }
        )

    @classmethod
    def of(
        cls,
        settings: Settings,
        identity: Identity | None,
        network: str,
        *,
        pids_max: int | None = None,
        api: ApiAccess | None = None,
    ) -> Policy:
        s = settings.sandbox
        return cls(
            identity=identity,
            network=network,
            api=api,
            pids_max=pids_max,
            nproc=s.user_nproc,
            seccomp=s.seccomp,
            blocked_networks=tuple(s.blocked_networks),
            allowed_networks=tuple(s.allowed_networks),
            gpu_root=str(settings.labs.gpu_device_root),
        )

    def with_network(self, network: str) -> Policy:
        return replace(self, network=network)
