"""Network namespaces for sandboxes with outbound access, through pasta (Debian `passt`).

A sandbox with network "none" gets a namespace of its own from bwrap (`--unshare-net`): its loopback
and nothing else. One with outbound access gets a namespace prepared here before it starts:

- `ip netns add datalabs-<name>` (a named namespace survives a platform restart, like the lab);
- `pasta` attached to it, as a user-mode TCP/UDP stack: connections the sandbox opens are opened again
  by pasta on the host, so the sandbox never has a route onto the host's networks. Options: no port
  forwarding in either direction (-t/-u/-T/-U none), `--no-map-gw` (the gateway address is not mapped
  to the host's loopback), IPv4 only, and an address plan of its own (198.18.0.2/30, RFC 2544's
  benchmarking range) so no route inside mirrors the host's local subnets;
- `prohibit` routes in the namespace for loopback, private, shared, link-local, multicast and reserved
  ranges and for every address of the host, minus the operator's `allowed_networks`; pasta would
  otherwise happily connect to the host's own services or the site's private network on its behalf;
- DNS through pasta's `--dns-forward` address, given to the sandbox as its /etc/resolv.conf.

The sandbox enters the namespace with `nsenter --net` before bwrap (bwrap.py); nothing in it can change
routes (no capabilities, no user namespaces).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

NETNS_DIR = Path("/run/netns")
ADDRESS, GATEWAY, PREFIX = "198.18.0.2", "198.18.0.1", 30
RESOLV_CONF = f"nameserver {GATEWAY}\noptions timeout:2 attempts:2\n"
PASTA_START = 10.0  # seconds pasta may take to set the namespace up


class NetworkError(RuntimeError):
    """The namespace could not be prepared; the message says why."""


def available() -> tuple[bool, str]:
    """Whether outbound namespaces can be made here, and how that was found."""
    if os.geteuid() != 0:
        return False, "the platform is not root: no named network namespaces"
    missing = [tool for tool in ("ip", "pasta", "nsenter") if shutil.which(tool) is None]
    if missing:
        return False, f"missing: {', '.join(missing)} (Debian packages iproute2, passt, util-linux)"
    if not Path("/dev/net/tun").exists():
        return False, "/dev/net/tun is missing (pasta needs it)"
    return True, "ip netns + pasta (passt)"


def netns_path(name: str) -> str:
    return str(NETNS_DIR / f"datalabs-{name}")


@dataclass(frozen=True)
class Outbound:
    """A prepared namespace: its path (for nsenter) and pasta's pid (for cleanup)."""

    name: str
    path: str
    pasta_pid: int

    def state(self) -> dict:
        return {"name": self.name, "path": self.path, "pasta_pid": self.pasta_pid}

    @classmethod
    def from_state(cls, state: dict) -> Outbound:
        return cls(state["name"], state["path"], int(state["pasta_pid"]))


def create(name: str, blocked: list[str], allowed: list[str]) -> Outbound:
    """The namespace `datalabs-<name>` with pasta attached and the blocked ranges unreachable."""
    ok, why = available()
    if not ok:
        raise NetworkError(f"outbound network access is not possible here: {why}")
    remove(name)  # a stale one from a crash
    path = netns_path(name)
    _run(["ip", "netns", "add", f"datalabs-{name}"])
    try:
        pid = _start_pasta(path)
        _run(["ip", "-n", f"datalabs-{name}", "-batch", "-"], _route_batch(blocked, allowed))
        return Outbound(name, path, pid)
    except BaseException:
        remove(name)
        raise


def create_isolated(name: str) -> str:
    """A named namespace with only its loopback (up), for sandboxes that share one (the tools of a run);
    its path. `remove(name)` ends it."""
    _run(["ip", "netns", "add", f"datalabs-{name}"])
    try:
        _run(["ip", "-n", f"datalabs-{name}", "link", "set", "lo", "up"])
    except NetworkError:
        remove(name)
        raise
    return netns_path(name)


def remove(name: str, pasta_pid: int | None = None) -> None:
    """Delete the namespace (pasta then has nothing left to serve) and stop pasta; idempotent."""
    if pasta_pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if _is_pasta(pasta_pid):
                os.kill(pasta_pid, signal.SIGTERM)
    if Path(netns_path(name)).exists():
        subprocess.run(["ip", "netns", "del", f"datalabs-{name}"], capture_output=True, timeout=10)


def _start_pasta(path: str) -> int:
    pidfile = Path("/run") / f"{Path(path).name}.pasta.pid"
    argv = [
        "pasta",
        "--runas",
        "0",  # it must stay able to enter the namespace; pasta sandboxes itself (its own seccomp, namespaces)
        "--config-net",
        "--netns",
        path,
        "-4",
        "-a",
        ADDRESS,
        "-n",
        str(PREFIX),
        "-g",
        GATEWAY,
        "--dns-forward",
        GATEWAY,
        "--no-map-gw",
        "-t",
        "none",
        "-u",
        "none",
        "-T",
        "none",
        "-U",
        "none",
        "--quiet",
        "--pid",
        str(pidfile),
    ]
    # pasta daemonises once the namespace is configured: its exit status says whether that worked.
    done = subprocess.run(argv, capture_output=True, text=True, timeout=PASTA_START, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise NetworkError(
            f"pasta could not set up the network: {(done.stderr or done.stdout).strip()[:300]}"
        )
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text().strip())
            pidfile.unlink(missing_ok=True)
            return pid
        time.sleep(0.01)
    raise NetworkError("pasta started but wrote no pid file")


def _route_batch(blocked: list[str], allowed: list[str]) -> str:
    """`ip -batch` lines: prohibit every blocked range and each host address, then route the allowed
    exceptions through pasta (a more specific route wins over a prohibit)."""
    lines = [f"route add prohibit {net}" for net in sorted(set(blocked) | _host_networks())]
    lines += [f"route add {net} via {GATEWAY}" for net in sorted(set(allowed))]
    return "\n".join(lines) + "\n"


def _host_networks() -> set[str]:
    """This host's own IPv4 addresses as /32s: through pasta they would reach the host's own services."""
    done = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, timeout=10)
    found = set()
    for line in done.stdout.splitlines():
        fields = line.split()
        if "inet" in fields:
            address = fields[fields.index("inet") + 1].split("/")[0]
            with contextlib.suppress(ValueError):
                found.add(f"{ipaddress.IPv4Address(address)}/32")
    return found


def _is_pasta(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip().startswith("pasta")
    except OSError:
        return False


def _run(argv: list[str], stdin: str | None = None) -> None:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise NetworkError(f"{' '.join(argv[:3])} failed: {done.stderr.strip()[:300]}")
