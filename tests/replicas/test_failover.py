"""Three real `datalabs serve` replicas on one PostgreSQL and one DATALABS_HOME, behind a real nginx
(issue 17). A user logs in through replica A, launches JupyterLab through B and runs `1+1` in its kernel
over a WebSocket through C. Then the replica holding the manager lease is killed with SIGKILL while two
labs run and twenty runs are queued: the labs stay reachable through nginx, another replica takes the
lease over, a launch made during the failover starts exactly one lab, every run succeeds exactly once
and the next cron fire happens once."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest
from websockets.sync.client import connect

from tests.deploy import nginx_support
from tests.labs.test_jupyter import execute
from tests.labs.test_restart import DEFINITION, LABAPP
from tests.live import DATALABS, free_port, wait_healthy
from tests.pipelines.conftest import HELLO

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.xdist_group("replicas")]
PASSWORD = "long-enough-pw"


class Platform:
    def __init__(self, root: Path, pg_url: str, dsn: str) -> None:
        self.home, self.catalogue, self.dsn = root / "home", root / "defs", dsn
        self.home.mkdir()
        (self.catalogue / "mini").mkdir(parents=True)
        (self.catalogue / "mini" / "datalab-meta.yml").write_text(DEFINITION)
        (self.catalogue / "mini" / "labapp.py").write_bytes(LABAPP.read_bytes())
        self.env = {
            **os.environ,
            "DATALABS_HOME": str(self.home),
            "DATALABS_DB__URL": pg_url,
            "DATALABS_CATALOGUE__DIRS": f'["{self.catalogue}"]',
            "DATALABS_PIPELINES__LEASE": "5",  # a killed worker's runs go back to the queue 5 s later
            "DATALABS_PIPELINES__SYSTEM": "false",
            "DATALABS_LABS__MAX_RUNNING_PER_USER": "5",
        }
        self.replicas: dict[str, tuple[int, subprocess.Popen]] = {}

    def admin(self, *args: str) -> str:
        out = subprocess.run(
            [DATALABS, "admin", *args], env=self.env, capture_output=True, text=True, check=True, timeout=60
        )
        return out.stdout.strip()

    def start(self, name: str) -> None:
        port = free_port()
        log = (self.home / f"server-{name}.log").open("w")
        proc = subprocess.Popen(
            [DATALABS, "serve", "--port", str(port)], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.replicas[name] = (port, proc)

    def wait(self) -> None:
        for port, proc in self.replicas.values():
            wait_healthy(f"http://127.0.0.1:{port}", proc, self.home, timeout=120)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.replicas[name][0]}"

    def query(self, sql: str, *args) -> list[tuple]:
        with psycopg.connect(self.dsn, autocommit=True) as db:
            return db.execute(sql, args).fetchall()

    def manager(self) -> str:
        """The name of the replica that holds the manager lease now."""
        rows = self.query("SELECT holder FROM leases WHERE name = 'manager' AND expires_at > now()")
        pid = int(rows[0][0].split(":")[1]) if rows else None
        return next(
            name for name, (_, proc) in self.replicas.items() if proc.pid == pid and proc.poll() is None
        )

    def stop(self) -> None:
        for _, proc in self.replicas.values():
            if proc.poll() is None:
                proc.terminate()
        for _, proc in self.replicas.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def platform(tmp_path, pg_server):
    name = f"replicas{os.getpid()}"
    pg_server.execute(f"CREATE DATABASE {name} TEMPLATE dl_template")
    it = Platform(tmp_path, pg_server.url(name), pg_server.dsn(name))
    it.admin("create-user", "ada", "--password", PASSWORD)
    try:
        for replica in "ABC":
            it.start(replica)
        it.wait()
        yield it
    finally:
        _end(it, pg_server, name)


def _end(it: Platform, pg_server, name: str) -> None:
    try:
        with httpx.Client(
            base_url=it.url(next(n for n, (_, p) in it.replicas.items() if p.poll() is None))
        ) as c:
            login = c.post("/api/v1/login", json={"username": "ada", "password": PASSWORD})
            c.headers["X-CSRF-Token"] = login.json()["csrf_token"]
            for lab in c.get("/api/v1/labs", params={"active": True}).json():
                c.post(f"/api/v1/labs/{lab['id']}/stop", json={}, timeout=60)
    finally:
        it.stop()
        pg_server.execute(f"DROP DATABASE {name} WITH (FORCE)")


def wait_state(client: httpx.Client, lab_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lab = client.get(f"/api/v1/labs/{lab_id}").json()
        if lab["state"] in ("running", "failed", "stopped"):
            return lab
        time.sleep(0.1)
    raise AssertionError(f"lab {lab_id} did not start in {timeout:.0f} s: {lab}")


def lab_processes(lab_id: str) -> list[int]:
    """The mini lab apps serving lab `lab_id`: labapp.py processes with the lab's runtime folder bound into
    their mount namespace."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if not (argv[0].endswith(b"python3") and any(a.endswith(b"labapp.py") for a in argv)):
                continue
            if lab_id in (entry / "mountinfo").read_text():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_any_replica_serves_any_user_and_a_killed_manager_is_not_noticed(platform, tmp_path):
    nginx_support.require()
    a = httpx.Client(base_url=platform.url("A"), timeout=60)
    login = a.post("/api/v1/login", json={"username": "ada", "password": PASSWORD})
    assert login.status_code == 200, login.text
    csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
    b = httpx.Client(base_url=platform.url("B"), cookies=a.cookies, headers=csrf, timeout=60)
    c = httpx.Client(base_url=platform.url("C"), cookies=a.cookies, headers=csrf, timeout=60)
    token = a.post("/api/v1/tokens", json={"name": "t", "scopes": []}, headers=csrf)
    assert token.status_code == 201, token.text
    bearer = {"Authorization": f"Bearer {token.json()['token']}"}

    # Launched through B (whichever replica manages labs starts it), used through C.
    launched = b.post("/api/v1/labs", json={"datalab": "jupyterlab"})
    assert launched.status_code == 202, launched.text
    jupyter = wait_state(c, launched.json()["id"])
    assert jupyter["state"] == "running", jupyter["reason"]
    kernel = httpx.post(
        f"{platform.url('C')}{jupyter['path']}api/kernels", json={"name": "python3"}, headers=bearer
    )
    assert kernel.status_code == 201, kernel.text
    ws_url = (
        platform.url("C").replace("http", "ws")
        + f"{jupyter['path']}api/kernels/{kernel.json()['id']}/channels"
    )
    with connect(ws_url, additional_headers=bearer, open_timeout=30, max_size=None) as ws:
        assert execute(ws, "1+1") == "2"

    mini = wait_state(a, c.post("/api/v1/labs", json={"datalab": "mini"}).json()["id"])
    assert mini["state"] == "running", mini["reason"]
    pipeline = b.post("/api/v1/pipelines", json={"name": "hello", "cwl": HELLO, "filename": "hello.cwl"})
    assert pipeline.status_code == 201, pipeline.text
    schedule = b.post(
        "/api/v1/pipelines/hello/schedules", json={"cron": "* * * * *", "inputs": {"text": "tick"}}
    )
    assert schedule.status_code == 201, schedule.text

    port = free_port()
    upstreams = [f"127.0.0.1:{platform.replicas[n][0]}" for n in "ABC"]
    with nginx_support.running_nginx(tmp_path / "nginx", upstreams, port):
        front = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=bearer, timeout=30)
        assert front.get(f"{mini['path']}").json()["ok"] is True
        runs = [
            front.post("/api/v1/pipelines/hello/runs", json={"inputs": {"text": f"r{i}"}}) for i in range(20)
        ]
        assert all(r.status_code == 202 for r in runs), [r.text for r in runs if r.status_code != 202]

        # Lab traffic through nginx all along the failover.
        failures: list[str] = []
        done = threading.Event()

        def use_the_labs() -> None:
            while not done.is_set():
                for path in (mini["path"], f"{jupyter['path']}api/status"):
                    try:
                        r = front.get(path)
                        if r.status_code != 200:
                            failures.append(f"{path}: {r.status_code}")
                    except httpx.HTTPError as exc:
                        failures.append(f"{path}: {exc!r}")
                time.sleep(0.05)

        traffic = threading.Thread(target=use_the_labs, daemon=True)
        traffic.start()
        try:
            killed = platform.manager()
            killed_at = datetime.now(UTC)
            platform.replicas[killed][1].send_signal(signal.SIGKILL)
            platform.replicas[killed][1].wait()
            alive = [n for n in "ABC" if n != killed]
            during = httpx.Client(base_url=platform.url(alive[0]), headers=bearer, timeout=60)
            third = during.post("/api/v1/labs", json={"datalab": "mini"})  # while nobody manages labs
            assert third.status_code == 202, third.text

            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                rows = platform.query(
                    "SELECT holder FROM leases WHERE name = 'manager' AND expires_at > now()"
                )
                if rows and platform.replicas[killed][1].pid != int(rows[0][0].split(":")[1]):
                    break
                time.sleep(0.2)
            else:
                raise AssertionError("no replica took the manager lease over")
            assert platform.manager() in alive

            started = wait_state(during, third.json()["id"])
            assert started["state"] == "running", started["reason"]
            assert len(lab_processes(third.json()["id"])) == 1  # started once, by one manager
            assert front.get(started["path"]).json()["ok"] is True
        finally:
            done.set()
            traffic.join()
        assert failures == []

        deadline = time.monotonic() + 300
        ids = [r.json()["id"] for r in runs]
        while time.monotonic() < deadline:
            states = dict(platform.query("SELECT id, state FROM pipeline_runs WHERE id = ANY(%s)", ids))
            if all(s in ("succeeded", "failed", "cancelled") for s in states.values()):
                break
            time.sleep(0.5)
        assert sorted(states.values()) == ["succeeded"] * 20, states
        outputs = [front.get(f"/api/v1/runs/{run_id}/outputs").json() for run_id in ids]
        assert all(out["outputs"]["banner"]["basename"] == "banner.txt" for out in outputs), outputs[0]

        # The next cron fire after the kill: exactly one run for it.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            fires = platform.query(
                "SELECT due_at, run_id FROM pipeline_schedule_fires WHERE due_at > %s AND NOT skipped",
                killed_at,
            )
            if fires and fires[0][1]:
                break
            time.sleep(0.5)
        assert len(fires) == 1 and fires[0][1], fires
        (count,) = platform.query("SELECT count(*) FROM pipeline_runs WHERE id = %s", fires[0][1])[0]
        assert count == 1
