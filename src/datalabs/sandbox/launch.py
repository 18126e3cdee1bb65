"""Preparing one sandbox to start: its cgroup, its network namespace and its command line, from a `Box`
(what it sees) and a `Policy` (its identity and limits); and releasing them when it has ended.

Labs keep a `Prepared` for their whole life (its `state()` is persisted, so a restarted platform can
release it later); tool runs and build steps prepare, run and release at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from datalabs.sandbox import bwrap, cgroups, network
from datalabs.sandbox.bwrap import Box
from datalabs.sandbox.policy import Policy

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    argv: list[str]
    cgroup: cgroups.LabCgroup | None = None  # its own: killed and removed at release
    outbound: network.Outbound | None = None
    fds: list[int] = field(default_factory=list)  # to pass to the process (pass_fds), then `close_fds()`

    def close_fds(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()

    def release(self) -> None:
        """Kill what is left in the cgroup and remove it, and the network namespace; idempotent."""
        self.close_fds()
        if self.cgroup is not None:
            self.cgroup.kill_all()
            self.cgroup.remove()
        if self.outbound is not None:
            network.remove(self.outbound.name, self.outbound.pasta_pid)

    def state(self) -> dict[str, Any]:
        return {
            "cgroup": list(self.cgroup.dirs) if self.cgroup else [],
            "cgroup_version": self.cgroup.version if self.cgroup else None,
            "outbound": self.outbound.state() if self.outbound else None,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Prepared:
        cgroup = None
        if state.get("cgroup"):
            cgroup = cgroups.LabCgroup(tuple(state["cgroup"]), state["cgroup_version"])
        outbound = network.Outbound.from_state(state["outbound"]) if state.get("outbound") else None
        return cls([], cgroup, outbound)


def prepare(
    name: str,
    box: Box,
    policy: Policy,
    state_dir: Path,
    *,
    cpu: float | None = None,
    memory_bytes: int | None = None,
    shared_cgroup: cgroups.LabCgroup | None = None,
    shared_netns: str | None = None,
) -> Prepared:
    """Everything `box` needs to start under `policy`; raises network.NetworkError if the network the
    policy asks for cannot be made (nothing is left behind then). With `shared_cgroup` the sandbox joins
    that cgroup (its owner made it with the limits and removes it) instead of one of its own; with
    `shared_netns` (a namespace with only its loopback, network.create_isolated) a policy without network
    enters it instead of having bwrap make one: a namespace made and torn down per sandbox costs the
    kernel ~1 ms, a wide scatter's tools share their run's."""
    prepared = Prepared([])
    try:
        ok, _ = cgroups.available()
        wanted = cpu is not None or memory_bytes is not None or policy.pids_max is not None
        wanted = wanted or policy.devices is not None
        if ok and wanted and shared_cgroup is None:
            prepared.cgroup = cgroups.LabCgroup.create(
                name, cpu, memory_bytes, policy.pids_max, devices=policy.devices
            )
        cgroup = shared_cgroup or prepared.cgroup
        box = replace(
            box,
            identity=policy.identity,
            api=policy.api,
            cgroup_procs=tuple(cgroup.procs_files) if cgroup else (),
            nproc=policy.nproc,
            seccomp=policy.seccomp,
        )
        box = _network(name, box, policy, prepared)
        if box.network == "none" and shared_netns is not None and bwrap.become_path() is not None:
            box = replace(box, network="netns", netns=shared_netns)  # entered by datalabs-become
        prepared.argv = bwrap.command(box, state_dir, fds=prepared.fds)
        return prepared
    except BaseException:
        with contextlib.suppress(Exception):
            prepared.release()
        raise


def _network(name: str, box: Box, policy: Policy, prepared: Prepared) -> Box:
    if policy.network == "host" or policy.identity is None and policy.network == "outbound":
        # Without root there are no named namespaces: an unprivileged sandbox asking for outbound access
        # shares the host's network (the platform says so at start and on the admin page).
        return replace(box, network="host")
    if policy.network == "outbound":
        prepared.outbound = network.create(name, list(policy.blocked_networks), list(policy.allowed_networks))
        return replace(box, network="netns", netns=prepared.outbound.path, resolv_conf=network.RESOLV_CONF)
    return replace(box, network="none")
