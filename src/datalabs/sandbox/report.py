"""What this host enforces, checked at start-up (DESIGN §5: never pretend isolation we do not have).

`probe(settings)` starts one trial sandbox exactly as a lab's is built (identity, seccomp, network
namespace, no capabilities) and asks it from inside what it got; it also tries the pieces that are not
visible from inside (cgroup controllers, outbound namespaces with pasta). Each `Fact` says whether the
mechanism holds and how that was found, for the start-up log and Admin → Security.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from datalabs.sandbox import cgroups, network, seccomp
from datalabs.sandbox.bwrap import Box, bwrap_path
from datalabs.sandbox.identity import of as identity_of
from datalabs.sandbox.identity import privileged
from datalabs.sandbox.launch import prepare
from datalabs.sandbox.policy import Policy

log = logging.getLogger(__name__)

# Run inside the trial sandbox by its Python (-I -S): what a lab would see of its own containment.
_INSIDE = r"""
import ctypes, json, os
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
libc = ctypes.CDLL(None, use_errno=True)
userns = "allowed" if libc.unshare(0x10000000) == 0 else os.strerror(ctypes.get_errno())
interfaces = [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]]
print(json.dumps({"uid": os.getuid(), "seccomp": status.get("Seccomp", "").strip(),
                  "caps": status.get("CapEff", "").strip(), "userns": userns, "interfaces": interfaces}))
"""


@dataclass(frozen=True)
class Fact:
    name: str
    enforced: bool
    how: str


def probe(settings) -> list[Fact]:
    """The containment facts of this host (about 0.1 s; the same answer for the same containment settings
    within one process, so a test suite creating many apps pays it once)."""
    s = settings.sandbox
    key = (
        s.uid_base,
        s.pids_max,
        s.seccomp,
        tuple(s.blocked_networks),
        tuple(s.allowed_networks),
        settings.labs.network,
        settings.builder.network,
        settings.pipelines.tool_network,
    )
    if key not in _probed:
        _probed[key] = _probe(settings)
    return _probed[key]


_probed: dict[tuple, list[Fact]] = {}


def _probe(settings) -> list[Fact]:
    facts = [_trial(settings)] if bwrap_path() else []
    if not facts:
        facts.append(Fact("Sandboxes (bubblewrap)", False, "bwrap is not installed: labs refuse to start"))
    else:
        facts = _from_trial(facts[0], settings)
    ok, how = cgroups.available()
    facts.append(Fact("CPU and memory limits", ok, f"cgroup hierarchy: {how}"))
    ok, how = cgroups.pids_available()
    facts.append(
        Fact("Process limit per sandbox (pids)", ok, f"{how}; limit {settings.sandbox.pids_max} per lab")
    )
    facts.append(_outbound(settings))
    return facts


def _trial(settings) -> Fact:
    identity = identity_of(settings.sandbox.uid_base, settings.sandbox.team_gid_base, 0, "probe")
    policy = Policy.of(settings, identity, "none", pids_max=None)
    box = Box(command=[sys.executable, "-I", "-S", "-c", _INSIDE], identity=identity, hostname="probe")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="datalabs-probe-") as state:
        try:
            prepared = prepare("probe", box, policy, Path(state))
            done = subprocess.run(prepared.argv, capture_output=True, text=True, timeout=30)
            prepared.release()
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Fact("Sandboxes (bubblewrap)", False, f"a trial sandbox could not start: {exc}")
    took = (time.monotonic() - started) * 1000
    if done.returncode != 0:
        return Fact("Sandboxes (bubblewrap)", False, f"a trial sandbox failed: {done.stderr.strip()[:300]}")
    return Fact("Sandboxes (bubblewrap)", True, json.dumps({**json.loads(done.stdout), "ms": round(took)}))


def _from_trial(trial: Fact, settings) -> list[Fact]:
    if not trial.enforced:
        return [trial]
    seen = json.loads(trial.how)
    where = f"a trial sandbox started at start-up ({seen['ms']} ms) saw"
    facts = [Fact("Sandboxes (bubblewrap)", True, f"{where} its own filesystem view, pid and ipc namespaces")]
    own_uid = privileged() and seen["uid"] >= settings.sandbox.uid_base
    facts.append(
        Fact(
            "A uid per user",
            own_uid,
            f"{where} uid {seen['uid']}"
            + ("" if own_uid else " (the platform is not root: all labs share its uid)"),
        )
    )
    facts.append(Fact("No capabilities", int(seen["caps"] or "0", 16) == 0, f"{where} CapEff {seen['caps']}"))
    filtered = seen["seccomp"] == "2"
    ok, how = seccomp.available()
    facts.append(Fact("Seccomp filter", filtered, f"{where} Seccomp mode {seen['seccomp']} ({how})"))
    facts.append(
        Fact(
            "No user namespaces inside",
            seen["userns"] != "allowed",
            f"{where} unshare(CLONE_NEWUSER): {seen['userns']}",
        )
    )
    lone = seen["interfaces"] == ["lo"]
    mode = settings.labs.network
    facts.append(
        Fact(
            "A network namespace per lab",
            lone and mode != "host",
            f"{where} interfaces {seen['interfaces']}; labs.network = {mode}"
            + (" (labs share the host's network: NOT isolated)" if mode == "host" else ""),
        )
    )
    return facts


def _outbound(settings) -> Fact:
    wanted = [
        name
        for name, mode in (
            ("labs", settings.labs.network),
            ("builds", settings.builder.network),
            ("CWL tools with NetworkAccess", settings.pipelines.tool_network),
        )
        if mode == "outbound"
    ]
    if not wanted:
        return Fact("Outbound network (pasta)", True, "not used: no sandbox has outbound access")
    ok, how = network.available()
    if not ok:
        return Fact("Outbound network (pasta)", False, f"wanted for {', '.join(wanted)}, but {how}")
    name = f"probe-{os.getpid()}"
    started = time.monotonic()
    try:
        made = network.create(
            name, list(settings.sandbox.blocked_networks), list(settings.sandbox.allowed_networks)
        )
        network.remove(made.name, made.pasta_pid)
    except network.NetworkError as exc:
        return Fact(
            "Outbound network (pasta)", False, f"wanted for {', '.join(wanted)}; a trial failed: {exc}"
        )
    took = (time.monotonic() - started) * 1000
    blocked = len(settings.sandbox.blocked_networks)
    return Fact(
        "Outbound network (pasta)",
        True,
        f"for {', '.join(wanted)}: a trial namespace with pasta was made in {took:.0f} ms; {blocked} ranges "
        "and the host's own addresses unreachable",
    )
