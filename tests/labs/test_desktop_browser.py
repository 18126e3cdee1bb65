"""Desktop datalabs end to end (issue 7 acceptance): `datalabs serve`, the real LocalRuntime (bubblewrap,
Xvnc, matchbox) and Debian's Chromium driving our noVNC page through the proxy's VNC bridge.

For TOPCAT, Aladin and DS9: the canvas connects and is not blank, the app's window exists on the lab's
X display, nobody else gets the VNC WebSocket, and Xvnc holds no TCP socket. For TOPCAT, a VOTable from
a data volume is loaded into the running app over SAMP (through the hub TOPCAT starts in the lab). For the
Astro desktop (several apps under jwm): its windows, copy and paste both ways, and reconnecting after a
reload to the same session."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from datalabs.runtimes import desktop
from tests.desktop_support import in_network_of, tcp_inodes, wait_for_window, xvnc_pids
from tests.labs.test_jupyter import admin, wait_running
from tests.live import live_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(desktop.missing_tools()), reason="Xvnc / matchbox / xdotool not installed"),
]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PASSWORD = "long-enough-pw"
APPS = [("topcat", "^TOPCAT$"), ("aladin", "Aladin"), ("ds9", "SAOImage ds9")]


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    home = tmp_path_factory.mktemp("desktop-home")
    volume = tmp_path_factory.mktemp("volume")
    volume.chmod(0o755)
    from astropy.table import Table

    Table(
        {"ra": [10.68, 83.82, 201.37], "dec": [41.27, -5.39, -43.02], "name": ["M31", "M42", "CenA"]}
    ).write(volume / "galaxies.vot", format="votable")
    (volume / "galaxies.vot").chmod(0o644)
    admin(home, "create-user", "root", "--password", PASSWORD, "--admin")
    for user in ("ada", "bob"):
        admin(home, "create-user", user, "--password", PASSWORD)
    tokens = {user: admin(home, "create-token", user) for user in ("root", "ada", "bob")}
    with live_server(home) as url:
        root = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens['root']}"}, timeout=60)
        created = root.post("/api/v1/volumes", json={"name": "Demo", "host_path": str(volume)})
        assert created.status_code == 201, created.text
        yield home, url, tokens


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        if os.environ.get("DATALABS_REQUIRE_BROWSER") == "1":
            pytest.fail("Debian's chromium is required (DATALABS_REQUIRE_BROWSER=1) but not installed")
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def runtime_dir(home: Path, lab_id: str) -> Path:
    with sqlite3.connect(home / "datalabs.db") as db:
        (state,) = db.execute("SELECT runtime_state FROM labs WHERE id = ?", (lab_id,)).fetchone()
    return Path(json.loads(state)["socket"]).parent


CANVAS_COLOURS = """() => {
  const canvas = document.querySelector('#screen canvas');
  if (!canvas || !canvas.width) return 0;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const seen = new Set();
  for (let i = 0; i < data.length; i += 4 * 7) seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  return seen.size;
}"""


@pytest.mark.parametrize("datalab,window", APPS, ids=[a[0] for a in APPS])
def test_desktop_datalab_in_the_browser(platform, browser, datalab, window):
    home, url, tokens = platform
    if shutil.which(datalab) is None:
        pytest.skip(f"{datalab} is not installed")
    ada = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens['ada']}"}, timeout=60)
    created = ada.post("/api/v1/labs", json={"datalab": datalab, "volumes": ["Demo"]})
    assert created.status_code == 202, created.text
    lab = wait_running(ada, created.json()["id"])
    assert lab["state"] == "running", lab["reason"]
    rt = runtime_dir(home, lab["id"])
    try:
        # the app's window is on the lab's display
        assert wait_for_window(rt, window, timeout=60), f"no window named {window!r}"

        # the browser: our page, noVNC connected through the bridge, a desktop that is not blank
        login = httpx.post(f"{url}/api/v1/login", json={"username": "ada", "password": PASSWORD})
        context = browser.new_context(base_url=url, viewport={"width": 1200, "height": 760})
        host = url.removeprefix("http://").split(":")[0]
        cookie = login.cookies["datalabs_session"]
        context.add_cookies([{"name": "datalabs_session", "value": cookie, "domain": host, "path": "/"}])
        page = context.new_page()
        page.goto(lab["path"], wait_until="domcontentloaded", timeout=60_000)
        page.wait_for_selector("body[data-state=connected]", timeout=60_000)
        deadline = time.monotonic() + 30
        while (colours := page.evaluate(CANVAS_COLOURS)) <= 8 and time.monotonic() < deadline:
            time.sleep(0.5)
        if colours <= 8:
            page.screenshot(path=f"/tmp/desktop-{datalab}.png")
        assert colours > 8, "the desktop in the browser is blank"
        # resize=remote: the desktop takes the browser window's size
        deadline = time.monotonic() + 20
        while page.evaluate("document.querySelector('#screen canvas').width") != 1200:
            assert time.monotonic() < deadline, "the desktop did not follow the browser's size"
            time.sleep(0.3)
        context.close()

        # nobody else gets the VNC WebSocket; Xvnc holds no TCP socket at all
        ws_url = url.replace("http://", "ws://") + f"/datalabs/{lab['id']}/vnc"
        for headers, status in (({"Authorization": f"Bearer {tokens['bob']}"}, 404), ({}, 401)):
            with (
                pytest.raises(InvalidStatus) as refused,
                connect(ws_url, additional_headers=headers, proxy=None),
            ):
                pass
            assert refused.value.response.status_code == status
        (xvnc,) = xvnc_pids(rt)
        assert not tcp_inodes(xvnc)

        if datalab == "topcat":  # from inside the lab's network namespace (labs have their own loopback)
            in_network_of(xvnc, lambda: load_over_samp(home, "/media/data/Demo/galaxies.vot"))
        # The app's settings went to the lab's own home (issue 15), not into the owner's files.
        workspace = home / "workspaces" / "users" / "ada"
        assert [p.name for p in workspace.iterdir() if p.name.startswith(".")] == [".datalabs"]
        assert (workspace / ".datalabs" / "homes" / datalab).is_dir()
        listed = [item["name"] for item in ada.get("/api/v1/workspaces/me/files/").json()["items"]]
        assert not [name for name in listed if name.startswith(".")], listed
    finally:
        assert ada.delete(f"/api/v1/labs/{lab['id']}").status_code in (200, 202, 204)


def load_over_samp(home: Path, path_in_lab: str) -> None:
    """Send `table.load.votable` to TOPCAT through the SAMP hub it runs in the lab (lockfile ~/.samp in
    the lab's home, in the workspace's .datalabs folder) and wait for TOPCAT's reply: it read the file
    from the volume."""
    from astropy.samp import SAMPIntegratedClient
    from astropy.samp.lockfile_helpers import read_lockfile

    lockfile = home / "workspaces" / "users" / "ada" / ".datalabs" / "homes" / "topcat" / ".samp"
    deadline = time.monotonic() + 60
    while not lockfile.exists():
        assert time.monotonic() < deadline, "TOPCAT started no SAMP hub"
        time.sleep(0.5)
    client = SAMPIntegratedClient(name="datalabs-test")
    client.connect(hub_params=read_lockfile(str(lockfile)))
    try:
        deadline = time.monotonic() + 60
        while not (topcat := list(client.get_subscribed_clients("table.load.votable"))):
            assert time.monotonic() < deadline, "TOPCAT did not register with the hub"
            time.sleep(0.5)
        reply = client.ecall_and_wait(
            topcat[0], "table.load.votable", "60", url=f"file://localhost{path_in_lab}", name="galaxies"
        )
        assert reply["samp.status"] == "samp.ok", reply
    finally:
        client.disconnect()


ASTRO_WINDOWS = {"TOPCAT": "^TOPCAT$", "Aladin": "Aladin v", "DS9": "SAOImage ds9"}


def open_desktop(browser, url: str, lab_url: str, clipboard: bool = False):
    """A browser context logged in as ada, and its page showing the lab's desktop, connected and not blank.
    `clipboard`: the page may use the browser's clipboard API (as a user who allowed it)."""
    login = httpx.post(f"{url}/api/v1/login", json={"username": "ada", "password": PASSWORD})
    context = browser.new_context(base_url=url, viewport={"width": 1200, "height": 760})
    host = url.removeprefix("http://").split(":")[0]
    cookie = login.cookies["datalabs_session"]
    context.add_cookies([{"name": "datalabs_session", "value": cookie, "domain": host, "path": "/"}])
    if clipboard:
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    page = context.new_page()
    page.goto(lab_url, wait_until="domcontentloaded", timeout=60_000)
    if clipboard:  # the desktop is served on the lab's own origin, where the page now is
        lab_origin = "/".join(page.url.split("/")[:3])
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=lab_origin)
    wait_connected(page)
    return context, page


def wait_connected(page) -> None:
    page.wait_for_selector("body[data-state=connected]", timeout=60_000)
    deadline = time.monotonic() + 30
    while page.evaluate(CANVAS_COLOURS) <= 8:
        assert time.monotonic() < deadline, "the desktop in the browser is blank"
        time.sleep(0.5)


def lab_clipboard(rt: Path) -> str:
    """The lab's X clipboard (the CLIPBOARD selection), read on its display with xclip."""
    argv = desktop.x_command(rt, ["xclip", "-o", "-selection", "clipboard"])
    return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout


def eventually(probe, expected, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while (seen := probe()) != expected:
        assert time.monotonic() < deadline, f"{what}: {seen!r}, not {expected!r}"
        time.sleep(0.3)


@pytest.mark.skipif(shutil.which("xclip") is None, reason="xclip is not installed (Debian package xclip)")
def test_astro_desktop_clipboard_both_ways_and_reconnect(platform, browser):
    """The Astro desktop (several apps under jwm) in the browser: its three apps' windows, copy and paste
    in both directions through the page's clipboard panel (and the browser's clipboard API), and a reload
    that connects again to the same session."""
    home, url, tokens = platform
    if missing := desktop.missing_tools(["topcat", "aladin", "ds9"], several_apps=True):
        pytest.skip(f"not installed: {', '.join(missing)}")
    ada = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens['ada']}"}, timeout=60)
    created = ada.post("/api/v1/labs", json={"datalab": "astro-desktop"})
    assert created.status_code == 202, created.text
    lab = wait_running(ada, created.json()["id"])
    assert lab["state"] == "running", lab["reason"]
    rt = runtime_dir(home, lab["id"])
    context = None
    try:
        windows = {app: wait_for_window(rt, name, timeout=90) for app, name in ASTRO_WINDOWS.items()}
        assert all(windows.values()), windows
        context, page = open_desktop(browser, url, lab["path"], clipboard=True)

        # browser -> lab: text put in the clipboard panel is the lab's X clipboard
        page.click("#clipboard-toggle")
        page.fill("#clipboard-text", "NGC 1275 from the browser")
        eventually(lambda: lab_clipboard(rt), "NGC 1275 from the browser", "the lab's clipboard")

        # lab -> browser: text copied in the lab shows in the panel and reaches the browser's clipboard
        argv = desktop.x_command(rt, ["xclip", "-quiet", "-selection", "clipboard", "-i"])
        owner = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            owner.stdin.write(b"M 87 copied in the lab")
            owner.stdin.close()  # xclip now owns the lab's clipboard and serves this text
            eventually(lambda: page.input_value("#clipboard-text"), "M 87 copied in the lab", "the panel")
            read = "() => navigator.clipboard.readText()"
            eventually(lambda: page.evaluate(read), "M 87 copied in the lab", "the browser's clipboard")
        finally:
            owner.kill()
            owner.wait()

        # browser -> lab without the panel: what the user copied elsewhere is sent when the tab gets focus
        page.evaluate("navigator.clipboard.writeText('Gaia DR3 copied elsewhere')")
        page.evaluate("window.dispatchEvent(new FocusEvent('focus'))")  # as when the user comes back
        eventually(lambda: lab_clipboard(rt), "Gaia DR3 copied elsewhere", "the lab's clipboard after focus")

        # reconnect: after a reload the canvas connects again, to the same X server and the same windows
        (xvnc,) = xvnc_pids(rt)
        page.reload(wait_until="domcontentloaded")
        wait_connected(page)
        assert xvnc_pids(rt) == [xvnc]
        for app, name in ASTRO_WINDOWS.items():
            assert wait_for_window(rt, name, timeout=5) == windows[app], f"{app}'s window changed"
    finally:
        if context is not None:
            context.close()
        assert ada.delete(f"/api/v1/labs/{lab['id']}").status_code in (200, 202, 204)
