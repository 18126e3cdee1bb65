"""Desktop labs on the real LocalRuntime: Xvnc on a unix socket only, the app's window on screen, every
listed app where its Debian package is installed, and a crashing app failing the start with its reason."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from datalabs.runtimes import desktop
from datalabs.runtimes.base import StartError
from datalabs.runtimes.local import LocalRuntime
from tests.contracts.runtime_support import web_spec
from tests.desktop_support import screenshot, x_windows

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(desktop.missing_tools()), reason="Xvnc / matchbox / xdotool not installed"),
]

# (command, window name pattern, Debian package): the apps of the builtin desktop datalabs.
APPS = [
    (["topcat"], "^TOPCAT$", "topcat"),
    (["aladin"], "Aladin|Information", "aladin"),
    (["ds9"], "SAOImage ds9", "saods9"),
    (["QFitsView"], "QFitsView", "qfitsview"),
    (["fv"], "^fv", "ftools-fv"),
    (["filezilla"], "FileZilla", "filezilla"),
    (["octave", "--gui"], "Octave", "octave"),
]


def desktop_spec(tmp_path: Path, command: list[str], **kw):
    return replace(web_spec(tmp_path, **kw), kind="desktop", command=command, start_timeout=90)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        found += (kids := children.get(todo.pop(), []))
        todo += kids
    return found


def listening_sockets(pid: int) -> str:
    """Listening unix and TCP sockets as seen in the network namespace of process `pid` (its lab's)."""
    argv = ["nsenter", "-t", str(pid), "-n", "ss", "-lnpx", "-t"]
    return subprocess.run(argv, capture_output=True, text=True).stdout


@pytest.mark.parametrize("command,window,package", APPS, ids=[a[0][0] for a in APPS])
def test_every_listed_app_starts_with_its_window(tmp_path, command, window, package):
    if shutil.which(command[0]) is None:
        pytest.skip(f"{command[0]} is not installed (Debian package {package})")

    async def scenario():
        lab = LocalRuntime()
        spec = desktop_spec(tmp_path, command)
        try:
            endpoint = await lab.start(spec)
            assert endpoint.protocol == "vnc" and endpoint.socket == str(spec.runtime_dir / "vnc.sock")
            assert stat.S_IMODE(os.stat(endpoint.socket).st_mode) == 0o600
            assert await asyncio.to_thread(x_windows, spec.runtime_dir, window), f"no window {window}"
            frame = await asyncio.to_thread(screenshot, endpoint.socket, endpoint.secret)
            assert frame.colours() > 8, "the screen is blank"
            # Xvnc listens on its unix sockets only: no TCP port, no abstract X socket another lab sees.
            xvnc = [p for p in descendants(lab.get_state()["pid"]) if _comm(p) == "Xvnc"]
            assert len(xvnc) == 1
            owned = [line for line in listening_sockets(xvnc[0]).splitlines() if f"pid={xvnc[0]}," in line]
            assert owned and all(line.startswith("u_str") for line in owned), owned
            assert not [line for line in owned if " @" in line], owned
            assert not _tcp_inodes(xvnc[0])
        finally:
            await lab.stop()
        assert await lab.poll() is not None

    asyncio.run(scenario())


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _tcp_inodes(pid: int) -> set[str]:
    """Inodes of the TCP sockets the process holds (from its fds and the kernel's TCP tables)."""
    fds = {os.readlink(f) for f in Path(f"/proc/{pid}/fd").iterdir() if os.path.islink(f)}
    sockets = {fd[8:-1] for fd in fds if fd.startswith("socket:[")}
    tcp = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            tcp.add(line.split()[9])
    return sockets & tcp


def test_a_crashing_app_fails_the_start_with_its_reason(tmp_path):
    async def scenario():
        lab = LocalRuntime()
        spec = desktop_spec(tmp_path, ["/bin/sh", "-c", "echo 'cannot open the catalogue' >&2; exit 3"])
        with pytest.raises(StartError) as failed:
            await asyncio.wait_for(lab.start(spec), 20)
        assert "code 3" in str(failed.value) or "cannot open the catalogue" in str(failed.value)
        assert "cannot open the catalogue" in lab.logs()

    asyncio.run(scenario())


def test_a_missing_app_is_named(tmp_path):
    async def scenario():
        with pytest.raises(StartError, match="not installed on this host: no-such-viewer"):
            await LocalRuntime().start(desktop_spec(tmp_path, ["no-such-viewer"]))

    asyncio.run(scenario())
