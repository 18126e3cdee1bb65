"""The Astro desktop on the real LocalRuntime: the builtin definition's apps under jwm, a JSAMP hub started
before them, every app registered with that hub, and a table going from TOPCAT to Aladin through SAMP.

The definition runs unchanged: its Aladin command adds `-local` when CDS's name does not resolve (as on
the test machines), without which Aladin cannot load any table.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import warnings
from dataclasses import replace
from pathlib import Path
from xml.etree import ElementTree

import pytest

from datalabs.catalogue.entries import availability
from datalabs.catalogue.loader import BUILTIN_DIR, load_directories
from datalabs.runtimes import desktop, desktop_apps
from datalabs.runtimes.base import DesktopApp
from datalabs.runtimes.local import LocalRuntime, lab_uid
from tests.contracts.runtime_support import web_spec
from tests.desktop_support import in_network_of, screenshot, wait_for_window
from tests.runtimes.test_desktop import descendants

WINDOWS = {"TOPCAT": "^TOPCAT$", "Aladin": "Aladin v", "SAOImage DS9": "SAOImage ds9"}
needs_desktop = pytest.mark.skipif(
    bool(desktop.missing_tools(["topcat", "aladin", "ds9"], several_apps=True)),
    reason="Xvnc / jwm / xdotool / topcat / aladin / ds9 not installed",
)


def astro_desktop():
    loaded, problems = load_directories([(BUILTIN_DIR, "builtin")])
    assert not problems, problems
    (meta,) = [item.meta for item in loaded if item.meta.name == "astro-desktop"]
    return meta


def astro_spec(tmp_path: Path):
    rt = astro_desktop().runtime
    apps = tuple(DesktopApp(a.name, tuple(a.command), a.autostart) for a in rt.desktop.apps)
    spec = web_spec(tmp_path, start_timeout=120)
    return replace(spec, kind="desktop", command=[], apps=apps, samp_hub=rt.desktop.samp_hub)


class Samp:
    """A SAMP client of the lab's hub (made in a thread that joined the lab's network namespace)."""

    def __init__(self, lockfile: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # astropy 8 deprecates astropy.samp for pyvo.samp
            from astropy.samp import SAMPIntegratedClient
            from astropy.samp.lockfile_helpers import read_lockfile
        self.client = SAMPIntegratedClient(name="datalabs-test", callable=False)
        self.client.connect(hub_params=read_lockfile(str(lockfile)))

    def clients(self) -> dict[str, str]:
        """samp.name -> client id of every registered client."""
        return {
            self.client.get_metadata(c).get("samp.name", ""): c for c in self.client.get_registered_clients()
        }

    def wait_for(self, names: set[str], timeout: float = 90) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while not names <= set(found := self.clients()):
            assert time.monotonic() < deadline, f"not registered with the hub: {names - set(found)}"
            time.sleep(0.5)
        return found

    def ecall(self, recipient: str, mtype: str, timeout: int = 60, **params) -> dict | None:
        """The reply, or None if the recipient sent none within `timeout` seconds."""
        from astropy.samp import SAMPProxyError

        try:
            return self.client.ecall_and_wait(recipient, mtype, str(timeout), **params)
        except SAMPProxyError as exc:
            if "timeout" in str(exc).lower():
                return None
            raise

    def call(self, recipient: str, mtype: str, **params) -> dict:
        """The result of a call that must succeed."""
        reply = self.ecall(recipient, mtype, **params)
        assert reply is not None and reply["samp.status"] == "samp.ok", reply
        return reply.get("samp.result") or {}

    def retry(self, recipient: str, mtype: str, timeout: float = 90, **params) -> dict:
        """The result of a call asked again until it succeeds: TOPCAT answers table.load.votable before
        its window lists the table ("No current table"), and Aladin registers before its startup thread
        has built what loading needs and drops a message that comes earlier (no reply)."""
        deadline = time.monotonic() + timeout
        while (reply := self.ecall(recipient, mtype, timeout=10, **params)) is None or reply[
            "samp.status"
        ] != "samp.ok":
            assert time.monotonic() < deadline, f"{mtype} to {recipient}: {reply}"
            time.sleep(0.5)
        return reply.get("samp.result") or {}

    def close(self) -> None:
        self.client.disconnect()


@pytest.mark.slow
@needs_desktop
def test_astro_desktop_apps_share_one_samp_hub(tmp_path):
    from astropy.table import Table

    spec = astro_spec(tmp_path)
    workspace = spec.mounts[0].source
    # A lockfile left by a lab that was killed: the new hub must replace it before any app starts.
    (workspace / ".samp").write_text("samp.secret=stale\nsamp.hub.xmlrpc.url=http://127.0.0.1:9/xmlrpc\n")
    if (uid := lab_uid()) is not None:
        os.chown(workspace / ".samp", uid, uid)  # as the lab's user left it
    Table(
        {"ra": [10.68, 83.82, 201.37], "dec": [41.27, -5.39, -43.02], "name": ["M31", "M42", "CenA"]}
    ).write(workspace / "galaxies.vot", format="votable")

    async def scenario():
        lab = LocalRuntime()
        try:
            await lab.start(spec)
            await asyncio.to_thread(check_running_desktop, lab, spec)
            # Closing an app does not end a desktop with several apps, and the Apps menu starts it again.
            await asyncio.to_thread(close_and_reopen_ds9, spec.runtime_dir)
            assert await lab.poll() is None, lab.logs(20)
        finally:
            await lab.stop()
        assert await lab.poll() is not None
        # The hub was stopped cleanly with the lab: it took its lockfile with it.
        assert not (workspace / ".samp").exists()

    asyncio.run(scenario())


def check_running_desktop(lab: LocalRuntime, spec) -> None:
    rt = spec.runtime_dir
    for app, window in WINDOWS.items():
        assert wait_for_window(rt, window, timeout=90), f"no {app} window ({window!r})"
    assert screenshot(str(rt / desktop.VNC_SOCKET), lab.endpoint().secret).colours() > 8, (
        "the screen is blank"
    )
    # jwm, not matchbox, with every installed app in its menu (and the apps not installed left out)
    commands = {pid: cmdline(pid) for pid in descendants(lab.get_state()["pid"])}
    assert any(c[:1] == ["jwm"] for c in commands.values()), commands
    assert not any("matchbox-window-manager" in c[:1] for c in commands.values())
    menu = (rt / desktop_apps.JWM_CONFIG).read_text()
    for app in desktop_apps.installed(spec):
        assert f'label="{app.name}"' in menu
    # one hub, JSAMP's, whose fresh lockfile is in the owner's home (the workspace), readable by no one else
    hubs = [c for c in commands.values() if c[:1] == ["java"] and "-jsamp" in c and "hub" in c]
    assert len(hubs) == 1, (hubs, lab.logs(40))
    lockfile = spec.mounts[0].source / ".samp"
    assert "samp.secret=stale" not in lockfile.read_text()
    assert lockfile.stat().st_mode & 0o077 == 0, oct(lockfile.stat().st_mode)

    def session() -> None:
        samp = Samp(lockfile)
        try:
            clients = samp.wait_for({"topcat", "Aladin", "SAOImageDS9"})
            # the hub reaches DS9's callback server (its URL has the lab's hostname, resolvable in the lab)
            assert samp.retry(clients["SAOImageDS9"], "ds9.get", cmd="version")
            # TOPCAT -> Aladin: TOPCAT loads the VOTable from the workspace, serves it from its HTTP server
            # (what its Interop > Send Table does), and Aladin loads it from there.
            samp.call(
                clients["topcat"],
                "table.load.votable",
                url="file://localhost/media/home/my_workspace/galaxies.vot",
                name="galaxies",
            )
            served = samp.retry(clients["topcat"], "table.get.stil", format="votable")["url"]
            assert served.startswith("http://"), served
            samp.retry(clients["Aladin"], "table.load.votable", url=served, name="from-topcat")
            status = samp.call(clients["Aladin"], "script.aladin.send", script="status from-topcat")
            assert "NbObj   3" in status["script.result"], status
            # and a table Aladin does not have is not reported as loaded (the check above can fail)
            assert not samp.call(clients["Aladin"], "script.aladin.send", script="status nothing")[
                "script.result"
            ]
        finally:
            samp.close()

    # Labs have their own loopback: the test's SAMP client joins the lab's network namespace.
    inside = next(pid for pid, c in commands.items() if c[:1] == ["jwm"])
    in_network_of(inside, session)


def close_and_reopen_ds9(rt: Path) -> None:
    def x(*argv: str) -> str:
        return subprocess.run(
            desktop.x_command(rt, list(argv)), capture_output=True, text=True, check=True
        ).stdout

    (ds9,) = wait_for_window(rt, WINDOWS["SAOImage DS9"])
    x("xdotool", "windowclose", ds9)
    deadline = time.monotonic() + 20
    while wait_for_window(rt, WINDOWS["SAOImage DS9"], timeout=0):
        assert time.monotonic() < deadline, "DS9 did not close"
        time.sleep(0.3)
    # The "Apps" button at the left end of the taskbar (30 px high, at the bottom), then the third entry.
    _, height = map(int, x("xdotool", "getdisplaygeometry").split())
    x("xdotool", "mousemove", "18", str(height - 15), "click", "1", "sleep", "0.5")
    x("xdotool", "key", "Down", "key", "Down", "key", "Down", "key", "Return")
    assert wait_for_window(rt, WINDOWS["SAOImage DS9"], timeout=60), "the Apps menu did not start DS9"


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:
        return []


def test_a_missing_window_manager_makes_the_astro_desktop_unavailable(monkeypatch):
    real = desktop.shutil.which
    monkeypatch.setattr(
        desktop.shutil, "which", lambda cmd, path=None: None if cmd == "jwm" else real(cmd, path=path)
    )
    ok, reason = availability(astro_desktop())
    assert not ok
    assert "jwm (Debian package jwm)" in reason
    # a single-app desktop does not need it
    assert "jwm" not in desktop.missing_tools(["topcat"])


@pytest.mark.skipif(shutil.which("jwm") is None, reason="jwm is not installed (Debian package jwm)")
def test_the_menu_lists_installed_apps_and_jwm_accepts_it(tmp_path):
    apps = (
        DesktopApp("A & B <x>", ("topcat", "-f", 'it\'s "q"')),
        DesktopApp("Nope", ("no-such-app",), False),
    )
    spec = replace(web_spec(tmp_path), kind="desktop", command=[], apps=apps)
    spec.runtime_dir.mkdir(parents=True)
    desktop_apps.write_config(spec)
    path = spec.runtime_dir / desktop_apps.JWM_CONFIG
    programs = ElementTree.parse(path).getroot().findall("./RootMenu/Program")
    # what JWM runs (through a shell) is the argv, quoted; the app that is not installed is left out
    assert [(p.get("label"), p.text) for p in programs] == [("A & B <x>", "topcat -f 'it'\"'\"'s \"q\"'")]
    # jwm -p parses the file and complains on stderr about anything it does not understand
    checked = subprocess.run(["jwm", "-p", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0 and not checked.stderr.strip() and not checked.stdout.strip(), checked
