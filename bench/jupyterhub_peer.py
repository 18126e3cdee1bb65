"""The peer for lab starts: JupyterHub with LocalProcessSpawner behind configurable-http-proxy.

Installed on first use into bench/.cache (gitignored): a virtual environment with PyPI `jupyterhub` and the
JupyterLab version the platform uses, and npm `configurable-http-proxy`. The hub runs with a service token
that may start and use servers; its single user is the unprivileged uid labs use (or the current user
when not root), with a private HOME. The environment is built on the system's Python when there is one:
the spawner's setuid child must be able to exec the interpreter, and a Python under a private home
(pyenv in /root) is out of its reach.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import httpx
from rich.console import Console

from bench.common import ROOT, free_port

LAB_UID = 65534

CACHE = ROOT / "bench" / ".cache"
VENV = CACHE / "jupyterhub"
CHP = CACHE / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"
CONFIG = """
from jupyterhub.spawner import LocalProcessSpawner

class BenchSpawner(LocalProcessSpawner):
    def user_env(self, env):
        env = super().user_env(env)
        env["HOME"] = {home!r}  # the lab user's passwd home may not exist
        return env

c.JupyterHub.spawner_class = BenchSpawner
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.db_url = "sqlite:///{work}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{work}/cookie_secret"
c.JupyterHub.services = [{{"name": "bench", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [
    {{"name": "bench", "scopes": ["admin:users", "admin:servers", "access:servers"], "services": ["bench"]}}
]
c.Authenticator.allow_all = True
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.notebook_dir = {home!r}
c.Spawner.start_timeout = 120
"""


class Unavailable(Exception):
    """JupyterHub or configurable-http-proxy could not be installed here."""


def install(console: Console) -> None:
    """Create the peer's environment once (fast when it exists)."""
    lab = version("jupyterlab")
    stamp = VENV / f".installed-{lab}"
    if not stamp.exists():
        console.print(f"Installing JupyterHub + JupyterLab {lab} into {VENV} (first run only)")
        uv = Path(sys.executable).parent / "uv"
        python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
        _run([str(uv), "venv", "-q", "--python", python, str(VENV)])
        _run(
            [
                str(uv),
                "pip",
                "install",
                "-q",
                "--python",
                str(VENV / "bin" / "python"),
                "jupyterhub",
                f"jupyterlab=={lab}",
            ]
        )
        stamp.touch()
    if not CHP.exists():
        if shutil.which("npm") is None:
            raise Unavailable("npm is not installed (Debian package npm)")
        console.print("Installing configurable-http-proxy with npm (first run only)")
        _run(["npm", "install", "--silent", "--prefix", str(CACHE / "chp"), "configurable-http-proxy@5"])


def install_batchspawner(console: Console) -> None:
    """Add PyPI `batchspawner` to the peer's environment once (its SlurmSpawner: bench/slurm.py)."""
    stamp = VENV / ".installed-batchspawner"
    if not stamp.exists():
        console.print(f"Installing batchspawner into {VENV} (first run only)")
        uv = Path(sys.executable).parent / "uv"
        _run([str(uv), "pip", "install", "-q", "--python", str(VENV / "bin" / "python"), "batchspawner"])
        stamp.touch()


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode:
        raise Unavailable(f"{' '.join(argv[:3])}... failed: {(proc.stderr or proc.stdout).strip()[-500:]}")


class JupyterHub:
    def __init__(self, work: Path, console: Console, extra_config: str = ""):
        install(console)
        self.work = work
        self.extra_config = extra_config  # appended to the hub's config (e.g. another spawner class)
        self.user = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"token {self.token}"},
            timeout=30,
        )

    @contextlib.contextmanager
    def running(self) -> Iterator[JupyterHub]:

        home = self.work / "home"
        home.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            for path in (self.work, home):
                os.chown(path, LAB_UID, LAB_UID)
        config = self.work / "jupyterhub_config.py"
        config.write_text(
            CONFIG.format(
                home=str(home),
                port=self.port,
                hub_port=free_port(),
                api_port=free_port(),
                chp=str(CHP),
                work=self.work,
                token=self.token,
                singleuser=str(VENV / "bin" / "jupyterhub-singleuser"),
            )
            + self.extra_config
        )
        env = {**os.environ, "PATH": f"{VENV / 'bin'}:{os.environ['PATH']}"}
        with (self.work / "hub.log").open("ab") as log:
            proc = subprocess.Popen(
                [str(VENV / "bin" / "jupyterhub"), "-f", str(config)],
                cwd=self.work,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_up(proc)
            response = self.client.post(f"/hub/api/users/{self.user}")
            if response.status_code not in (201, 409):
                raise RuntimeError(
                    f"JupyterHub did not create the user: {response.status_code} {response.text}"
                )
            yield self
        finally:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()

    def _wait_up(self, proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterHub exited; see {self.work / 'hub.log'}")
            with contextlib.suppress(httpx.TransportError):
                if self.client.get("/hub/api/").status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"JupyterHub not up after 60 s; see {self.work / 'hub.log'}")

    def launch_to_ready(self) -> float:
        from bench.lab_start import follow_events, wait_for_200  # noqa: PLC0415 (they use each other)

        started = time.perf_counter()
        response = self.client.post(f"/hub/api/users/{self.user}/server")
        if response.status_code not in (201, 202):
            raise RuntimeError(f"JupyterHub did not start the server: {response.status_code} {response.text}")
        try:
            outcome = follow_events(self.client, f"/hub/api/users/{self.user}/server/progress")
            if outcome.get("failed"):
                raise RuntimeError(f"JupyterHub failed to start the server: {outcome.get('message')}")
            return wait_for_200(lambda: self.client.get(f"/user/{self.user}/api/status"), started)
        finally:
            self._stop()

    def _stop(self) -> None:
        self.client.delete(f"/hub/api/users/{self.user}/server")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            user = self.client.get(f"/hub/api/users/{self.user}").json()
            if not user.get("servers") and not user.get("pending"):
                return
            time.sleep(0.1)
        raise RuntimeError("JupyterHub did not stop the server within 60 s")
