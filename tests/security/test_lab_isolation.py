"""Findings 3, 4 and 6 of issue 13, as a hostile user would try them from inside their own lab, on a real
`datalabs serve` with real sandboxed labs (a minimal web datalab whose /sh runs a shell command in the lab,
as a terminal would):

- labs share no network: another user's listener, the platform's own port and the host's loopback are out
  of reach, while the platform API still answers at DATALABS_API_URL (with the Python client);
- a lab that points its socket path at another user's lab gets nothing of it;
- a fork bomb stops at the lab's process limit and another user's lab keeps answering; no user
  namespaces, a seccomp filter, a uid per user.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from datalabs.config import SandboxSettings
from datalabs.runtimes import desktop
from tests.desktop_support import RfbClient, WebSocketTransport
from tests.labs.test_jupyter import admin, wait_running
from tests.live import DATALABS, free_port, wait_healthy

pytestmark = pytest.mark.slow
LABAPP = Path(__file__).parent.parent / "runtimes" / "labapp.py"
DEFINITION = """\
title: Shell lab
version: "1.0"
runtime:
  kind: web
  command: [python3, /media/notebooks/labapp.py, "{socket}"]
  secret_env: DATALAB_SECRET
  secret_header: "X-Lab-Secret: {secret}"
  ready_path: "{base_url}"
  resources:
    default: {cpu: 1, memory: 1G}
"""


def platform(tmp_path_factory, env: dict[str, str] | None = None):
    home, catalogue = tmp_path_factory.mktemp("isolation-home"), tmp_path_factory.mktemp("defs")
    (catalogue / "shell").mkdir()
    (catalogue / "shell" / "datalab-meta.yml").write_text(DEFINITION)
    shutil.copy(LABAPP, catalogue / "shell" / "labapp.py")
    for user in ("ada", "bob"):
        admin(home, "create-user", user, "--password", "long-enough-pw")
    tokens = {user: admin(home, "create-token", user) for user in ("ada", "bob")}
    port = free_port()
    full_env = {
        **os.environ,
        "DATALABS_HOME": str(home),
        "DATALABS_CATALOGUE__DIRS": f'["{catalogue}"]',
        "DATALABS_SANDBOX__PIDS_MAX": "300",
        **(env or {}),
    }
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [DATALABS, "serve", "--port", str(port)], env=full_env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc, home)
    return proc, home, url, tokens


class Lab:
    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
        r = self.http.post("/api/v1/labs", json={"datalab": "shell"})
        assert r.status_code == 202, r.text
        self.id = r.json()["id"]
        deadline = time.monotonic() + 60
        while (state := self.http.get(f"/api/v1/labs/{self.id}").json())["state"] != "running":
            assert state["state"] not in ("failed", "stopped") and time.monotonic() < deadline, state
            time.sleep(0.1)

    def sh(self, cmd: str, timeout: float = 60) -> dict:
        r = self.http.get(f"/datalabs/{self.id}/sh", params={"cmd": cmd, "timeout": timeout})
        assert r.status_code == 200, r.text
        return r.json()

    def stop(self) -> None:
        self.http.post(f"/api/v1/labs/{self.id}/stop", json={})


@pytest.fixture(scope="module")
def labs(tmp_path_factory):
    proc, home, url, tokens = platform(tmp_path_factory)
    started = []
    try:
        ada, bob = Lab(url, tokens["ada"]), Lab(url, tokens["bob"])
        started += [ada, bob]
        yield home, url, ada, bob
    finally:
        for lab in started:
            lab.stop()
        proc.terminate()
        proc.wait(15)


CONNECT = (
    "python3 -c 'import socket,sys; s=socket.socket(); s.settimeout(3); "
    "print(s.connect_ex((sys.argv[1], int(sys.argv[2]))))' {host} {port}"
)


def connects(lab: Lab, host: str, port: int) -> bool:
    out = lab.sh(CONNECT.format(host=host, port=port))
    return out["out"].strip() == "0"


def host_addresses() -> list[str]:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True).stdout
    return [line.split()[3].split("/")[0] for line in out.splitlines() if "inet" in line]


def test_a_lab_reaches_no_other_lab_nor_the_host(labs):
    _, url, ada, bob = labs
    # bob's lab listens on every address of its network namespace, as `python -m http.server` does
    bob.sh("nohup python3 -m http.server 8765 --bind 0.0.0.0 >/dev/null 2>&1 &")
    assert bob.sh("sleep 1; " + CONNECT.format(host="127.0.0.1", port=8765))["out"].strip() == "0"
    assert not connects(ada, "127.0.0.1", 8765), "ada's lab reached bob's listener"
    platform_port = int(url.rsplit(":", 1)[1])
    for address in ["127.0.0.1", *host_addresses()]:
        assert not connects(ada, address, platform_port), f"ada's lab reached the platform at {address}"
    # and the host's own loopback services (here: the platform's port is one) stay out of reach
    assert ada.sh("cat /proc/net/dev")["out"].count(":") <= 2, "more than loopback in the lab"


def test_the_platform_api_still_answers_in_the_lab(labs):
    _, _, ada, _ = labs
    env = ada.sh("echo $DATALABS_API_URL")["out"].strip()
    assert env.startswith("http://127.0.0.1:"), env
    me = ada.sh(
        'python3 -c "from datalabs.client import Client; import json; print(json.dumps(Client().me()))"'
    )
    assert me["code"] == 0, me
    assert json.loads(me["out"])["name"] == "ada"
    # only the API: the web pages and other labs are not served to labs through it
    page = ada.sh(f"python3 -c \"import httpx; print(httpx.get('{env}/catalogue').status_code)\"")
    assert page["out"].strip() == "404", page


def test_a_lab_pointing_its_socket_at_another_lab_gets_nothing(labs):
    home, url, ada, bob = labs
    marker = bob.sh("id -u")["out"].strip()
    bob_socket = f"/run/datalabs/{bob.id}/lab.sock"
    assert Path(bob_socket).exists()
    mallory = Lab(url, ada.http.headers["Authorization"].removeprefix("Bearer "))  # ada's second lab
    try:
        swapped = mallory.sh(
            f"rm /run/datalab/lab.sock && ln -s {bob_socket} /run/datalab/lab.sock && echo ok"
        )
        assert swapped["out"].strip() == "ok", swapped
        time.sleep(5)  # the proxy's pooled connections to this lab (4 s idle) are gone: it connects again
        r = mallory.http.get(f"/datalabs/{mallory.id}/sh", params={"cmd": "id -u"})
        assert r.status_code == 502 and r.json()["error"]["code"] == "lab_unreachable", r.text
        assert marker not in r.text
        assert "Traceback" not in (home / "server.log").read_text()
    finally:
        mallory.stop()


# 1000 children that each sleep 20 s, as many as the lab lets it make; prints how many it made.
FORK_BOMB = """python3 -c '
import os, sys, time
made = 0
for _ in range(1000):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.close(1), os.close(2)  # the lab answers at once; the children live on
        time.sleep(20)
        os._exit(0)
    made += 1
print(made)
' bomb"""


def lab_pids(lab_id: str) -> tuple[int, int, list[int]]:
    """(pids.current, pids.max, processes) of the lab's pids cgroup, read on the host."""
    folder = Path("/sys/fs/cgroup/pids/datalabs") / lab_id
    if not folder.exists():
        folder = Path("/sys/fs/cgroup/datalabs") / lab_id  # cgroup v2
    procs = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
    return int((folder / "pids.current").read_text()), int((folder / "pids.max").read_text()), procs


def test_a_fork_bomb_stops_at_the_limit_and_other_labs_answer(labs):
    _, url, ada, bob = labs
    bomb = ada.sh(FORK_BOMB, timeout=90)
    forked = int(bomb["out"].strip() or -1)
    assert 200 <= forked < 300, bomb  # stopped by the limit (the lab's own processes and threads count too)
    current, limit, procs = lab_pids(ada.id)
    assert limit == 300 and current <= limit, (current, limit)
    assert len(procs) >= 250, f"only {len(procs)} processes: the bomb did not reach the limit"
    started = time.monotonic()
    assert bob.sh("echo alive")["out"].strip() == "alive"
    assert time.monotonic() - started < 10, "another user's lab stalled"
    started = time.monotonic()
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    assert time.monotonic() - started < 1, "the platform stalled"
    for pid in procs:  # end the bomb (its sleeps) from the host
        try:
            if "bomb" in Path(f"/proc/{pid}/cmdline").read_text():
                os.kill(pid, 9)
        except OSError:
            pass
    deadline = time.monotonic() + 20
    while lab_pids(ada.id)[0] > 50:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_no_user_namespaces_a_seccomp_filter_and_a_uid_per_user(labs):
    _, _, ada, bob = labs
    assert ada.sh("unshare -U true")["code"] != 0
    userns = ada.sh(
        "python3 -c 'import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); "
        "print(libc.unshare(0x10000000), os.strerror(ctypes.get_errno()))'"
    )
    assert userns["out"].strip() == "-1 Operation not permitted", userns
    assert "Seccomp:\t2" in ada.sh("cat /proc/self/status")["out"]
    uids = {int(lab.sh("id -u")["out"]) for lab in (ada, bob)}
    assert len(uids) == 2 and 0 not in uids and 65534 not in uids


@pytest.fixture(scope="module")
def outbound_lab(tmp_path_factory):
    proc, home, url, tokens = platform(tmp_path_factory, {"DATALABS_LABS__NETWORK": "outbound"})
    lab = None
    try:
        lab = Lab(url, tokens["ada"])
        yield url, lab
    finally:
        if lab is not None:
            lab.stop()
        proc.terminate()
        proc.wait(15)


def test_with_outbound_access_pip_installs_and_the_host_stays_out_of_reach(outbound_lab):
    url, lab = outbound_lab
    installed = lab.sh(
        "python3 -m pip install --quiet --no-deps --target /tmp/pkgs six "
        "&& PYTHONPATH=/tmp/pkgs python3 -c 'import six; print(six.__version__)'",
        timeout=180,
    )
    assert installed["code"] == 0, installed
    platform_port = int(url.rsplit(":", 1)[1])
    for address in ["127.0.0.1", *host_addresses()]:
        assert not connects(lab, address, platform_port), f"the lab reached the platform at {address}"
    blocked = [ipaddress.ip_network(n) for n in SandboxSettings().blocked_networks]
    for line in Path("/etc/resolv.conf").read_text().splitlines():
        if line.startswith("nameserver") and any(ipaddress.ip_address(line.split()[1]) in n for n in blocked):
            # the host's resolver on a private address answers the host, not labs: they get pasta's DNS
            assert not connects(lab, line.split()[1], 53), f"the lab reached {line.split()[1]}"
    api = lab.sh("python3 -c \"import httpx; print(httpx.get('$DATALABS_API_URL/api/v1/me').status_code)\"")
    assert api["out"].strip() == "401", api  # the platform API answers (without a token: who are you?)


@pytest.mark.skipif(bool(desktop.missing_tools(["QFitsView"])), reason="Xvnc / QFitsView not installed")
def test_a_desktop_lab_pointing_its_vnc_socket_at_another_desktop_gets_nothing(labs):
    """The lab owns its runtime folder, so it can replace its vnc.sock by a link to another user's; the
    swap is made here from the host exactly as the lab's user could (desktop labs have no shell to drive)."""
    _, url, ada, bob = labs
    desktops = {}
    try:
        for who, lab in (("ada", ada), ("bob", bob)):
            r = lab.http.post("/api/v1/labs", json={"datalab": "qfitsview"})
            assert r.status_code == 202, r.text
            desktops[who] = wait_running(lab.http, r.json()["id"])
            assert desktops[who]["state"] == "running", desktops[who]
        mine, theirs = (Path("/run/datalabs") / desktops[w]["id"] / "vnc.sock" for w in ("ada", "bob"))
        # Without the lab's password Xvnc offers nothing: only VNC authentication (type 2), never None.
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(theirs))
            s.recv(12)
            s.sendall(b"RFB 003.008\n")
            count = s.recv(1)[0]
            assert list(s.recv(count)) == [2]
        # Through the proxy, ada's own desktop works...
        ws_url = url.replace("http://", "ws://") + f"/datalabs/{desktops['ada']['id']}/vnc"
        auth = {"Authorization": ada.http.headers["Authorization"]}
        client = RfbClient(WebSocketTransport(ws_url, headers=auth))
        assert client.frame().colours() > 1
        client.close()
        # ...until her socket points at bob's: then nothing, and never bob's screen.
        mine.unlink()
        mine.symlink_to(theirs)
        with pytest.raises(Exception) as refused:
            RfbClient(WebSocketTransport(ws_url, headers=auth, timeout=10)).frame()
        assert "502" in str(refused.value), refused.value  # admitted (her lab), refused at the socket
    finally:
        for who, lab in (("ada", ada), ("bob", bob)):
            if who in desktops:
                lab.http.post(f"/api/v1/labs/{desktops[who]['id']}/stop", json={})
