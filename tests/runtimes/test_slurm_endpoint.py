"""Endpoint "port" of Slurm labs (issue 16, Build 2) on the suite's real Slurm: the job binds a port the
kernel picks on its node, reports only that port to the platform's callback with its start's token, and
the platform reaches the lab at the node squeue names. The platform here is the real one (create_app
served by uvicorn in this process, so its callback route and the SlurmRuntimes under test share the
registry of expected reports, as the API and the lab manager do in `datalabs serve`); the last test runs
`datalabs serve` itself and goes through its proxy. Forged reports: tests/security/test_lab_callback.py."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from websockets.sync.client import connect

from datalabs.clusters.settings import ClusterSettings
from datalabs.config import Settings
from datalabs.proxy import rfb
from datalabs.proxy.routes import Route
from datalabs.runtimes.base import StartError
from datalabs.runtimes.slurm import SCRIPT_FILE, SPEC_FILE, SlurmRuntime
from tests.contracts.runtime_support import web_spec
from tests.live import free_port
from tests.runtimes import slurm_cluster as slurm_support
from tests.runtimes.test_slurm_runtime import occupy_node, until_message

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]
MANY = 20  # the "20 labs on one node"


@contextlib.contextmanager
def serve_platform(tmp: Path) -> Iterator[str]:
    """The platform (create_app) on a free loopback port, in a thread of this process; its base URL."""
    from datalabs.app import create_app

    settings = Settings(home=tmp / "platform-home", auth={"secret_key": "k"}, pipelines={"worker": False})
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the platform did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def platform_url(tmp_path_factory) -> Iterator[str]:
    with serve_platform(tmp_path_factory.mktemp("platform")) as url:
        yield url


def port_cluster(slurm, platform_url: str, name: str = "hpc") -> ClusterSettings:
    options = {"slurm_conf": str(slurm.conf), "endpoint": "port", "callback_url": platform_url}
    return ClusterSettings(name=name, backend="slurm", options=options)


@pytest.fixture
def hpc(slurm_cluster, platform_url):
    yield port_cluster(slurm_cluster, platform_url)
    slurm_cluster.cancel_all()


@pytest.fixture(scope="module")
def wide_cluster() -> Iterator[slurm_support.SlurmCluster]:
    """A cluster of its own whose one node declares 32 CPUs (SlurmdParameters=config_overrides): room for
    MANY one-CPU jobs at once on this machine."""
    reason = slurm_support.unavailable_reason()
    if reason:
        if os.environ.get("DATALABS_REQUIRE_SLURM") == "1":
            pytest.fail(f"Slurm is required (DATALABS_REQUIRE_SLURM=1): {reason}")
        pytest.skip(reason)
    with slurm_support.slurm_cluster(cpus=32, accounting=False) as cluster:
        yield cluster


async def get(host_port: str, headers: dict[str, str], path: str = "/") -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://{host_port}", timeout=10, trust_env=False) as client:
        return await client.get(path, headers=headers)


def node_addresses(slurm, job_id: str, port: int) -> set[str]:
    """Every "address:port" the node squeue ran the job on resolves to, as the platform names them."""
    host = slurm.job_info(job_id)["BatchHost"]
    found = set()
    for *_, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        found.add(f"[{address[0]}]:{port}" if ":" in address[0] else f"{address[0]}:{port}")
    return found


def test_a_lab_on_a_port_is_reached_at_the_node_slurm_names(hpc, slurm_cluster, platform_url, tmp_path):
    async def scenario():
        backend = SlurmRuntime(hpc)
        spec = web_spec(tmp_path)
        endpoint = await asyncio.wait_for(backend.start(spec), 90)
        assert endpoint.socket is None and endpoint.uid is None and endpoint.headers == spec.secret_headers
        port = Route(spec.lab_id, "ada", host_port=endpoint.host_port).tcp_address[1]
        assert 1024 <= port <= 65535
        assert endpoint.host_port in node_addresses(slurm_cluster, backend.job_id, port)
        answer = await get(endpoint.host_port, endpoint.headers, "/env")
        assert (
            answer.status_code == 200 and answer.json()["DATALAB_ID"] == spec.lab_id
        )  # this lab, not another
        assert (await get(endpoint.host_port, {})).status_code == 403  # without its secret the lab says no
        messages = [event.message async for event in backend.progress()]
        assert f"The lab's job serves it on port {port}" in messages and messages[-1] == "Ready"

        # The token reached the job in the spec file only (root's, 0600): not in the script, the saved state
        # or anything Slurm shows.
        files = spec.log_path.parent
        token = json.loads((files / SPEC_FILE).read_text())["callback_token"]
        assert len(token) >= 40 and (files / SPEC_FILE).stat().st_mode & 0o777 == 0o600
        assert token not in (files / SCRIPT_FILE).read_text()
        assert token not in json.dumps(backend.get_state())
        assert token not in slurm_cluster.run("scontrol", "show", "job", backend.job_id).stdout

        # Spent: the job's own token, replayed once the lab is ready, is refused.
        async with httpx.AsyncClient(timeout=10) as client:
            replay = await client.post(
                f"{platform_url}/api/v1/labs/{spec.lab_id}/callback",
                json={"port": port},
                headers={"Authorization": f"Bearer {token}"},
            )
        assert replay.status_code == 403, replay.text

        again = SlurmRuntime(hpc)  # a restarted platform re-attaches at the same host:port
        again.load_state(backend.get_state())
        assert again.endpoint() == endpoint and await again.poll() is None
        await backend.stop()
        assert await backend.poll() is not None
        with pytest.raises(httpx.ConnectError):  # the port went with the job
            await get(endpoint.host_port, endpoint.headers)

    asyncio.run(scenario())


def test_twenty_labs_on_one_node_get_twenty_distinct_ports(wide_cluster, platform_url, tmp_path):
    async def scenario():
        cluster = port_cluster(wide_cluster, platform_url, name="wide")
        backends = [SlurmRuntime(cluster) for _ in range(MANY)]
        specs = [
            dataclasses.replace(web_spec(tmp_path), memory_bytes=128 * 2**20, start_timeout=240)
            for _ in range(MANY)
        ]
        endpoints = await asyncio.gather(*(b.start(s) for b, s in zip(backends, specs, strict=True)))
        try:
            nodes = {wide_cluster.job_info(b.job_id)["BatchHost"] for b in backends}
            assert nodes == {slurm_support.NODE}  # one node ...
            assert len({e.host_port for e in endpoints}) == MANY  # ... twenty ports
            for spec, endpoint in zip(specs, endpoints, strict=True):  # each port is its own lab's
                answer = await get(endpoint.host_port, endpoint.headers, "/env")
                assert answer.json()["DATALAB_ID"] == spec.lab_id
        finally:
            await asyncio.gather(*(b.stop(now=True) for b in backends))

    try:
        asyncio.run(scenario())
    finally:
        wide_cluster.cancel_all()


def test_labs_on_a_cluster_with_a_port_range_get_ports_inside_it(slurm_cluster, platform_url, tmp_path):
    """Where a firewall opens only some ports from the platform to the nodes (batchspawner #58, #102)."""

    async def scenario():
        cluster = port_cluster(slurm_cluster, platform_url)
        options = cluster.options.model_copy(update={"port_range": "20000-20049"})
        cluster = cluster.model_copy(update={"options": options})
        backends = [SlurmRuntime(cluster) for _ in range(2)]
        specs = [web_spec(tmp_path) for _ in backends]
        endpoints = await asyncio.gather(*(b.start(s) for b, s in zip(backends, specs, strict=True)))
        try:
            ports = {Route("x", "ada", host_port=e.host_port).tcp_address[1] for e in endpoints}
            assert len(ports) == 2 and all(20000 <= port <= 20049 for port in ports)
            for spec, endpoint in zip(specs, endpoints, strict=True):
                assert (await get(endpoint.host_port, endpoint.headers, "/env")).json()[
                    "DATALAB_ID"
                ] == spec.lab_id
        finally:
            await asyncio.gather(*(b.stop(now=True) for b in backends))

    try:
        asyncio.run(scenario())
    finally:
        slurm_cluster.cancel_all()


def test_a_job_that_dies_before_calling_back_fails_with_slurms_reason_and_its_log(
    hpc, slurm_cluster, tmp_path
):
    async def scenario():
        backend = SlurmRuntime(hpc)
        command = ["/bin/sh", "-c", "echo the lab broke before serving; exit 3"]
        spec = web_spec(tmp_path, command=command)
        with pytest.raises(StartError) as failed:
            await asyncio.wait_for(backend.start(spec), 90)
        reason = str(failed.value)
        assert f"Slurm job {backend.job_id} FAILED" in reason, reason  # Slurm's state and reason ...
        assert "the lab broke before serving" in reason  # ... and what the lab said last
        assert slurm_cluster.job_info(backend.job_id)["JobState"] == "FAILED"
        assert backend.get_state()["host_port"] is None and backend.get_state()["port"] is None

    asyncio.run(scenario())


def test_a_platform_restarted_while_the_job_waits_takes_its_port_report(hpc, slurm_cluster, tmp_path):
    async def scenario():
        blocker = occupy_node(slurm_cluster)
        first = SlurmRuntime(hpc)
        starting = asyncio.create_task(first.start(web_spec(tmp_path)))
        await until_message(first, "waiting for resources:")
        state = first.get_state()
        starting.cancel()  # the platform dies while the job is queued
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        second = SlurmRuntime(hpc)
        second.load_state(state)  # expects the same token again, from its digest
        slurm_cluster.run("scancel", blocker)
        endpoint = await asyncio.wait_for(second.wait_started(), 90)
        assert (await get(endpoint.host_port, endpoint.headers)).status_code == 200
        await second.stop()

    asyncio.run(scenario())


def test_a_desktop_on_a_port_greets_with_rfb_and_takes_its_password(hpc, slurm_cluster, tmp_path):
    async def scenario():
        backend = SlurmRuntime(hpc)
        spec = dataclasses.replace(
            web_spec(tmp_path), kind="desktop", command=["xmessage", "from a port"], start_timeout=90
        )
        endpoint = await asyncio.wait_for(backend.start(spec), 120)
        try:
            assert endpoint.protocol == "vnc" and endpoint.socket is None and endpoint.secret
            reader, writer = await asyncio.open_connection(
                *Route("d", "ada", host_port=endpoint.host_port).tcp_address
            )
            await rfb.authenticate(reader, writer, endpoint.secret)  # Xvnc took the lab's password
            writer.close()
        finally:
            await backend.stop()

    asyncio.run(scenario())


def test_a_port_cluster_without_the_platforms_address_refuses_before_submitting(tmp_path):
    options = {"slurm_conf": "/nonexistent", "endpoint": "port"}
    backend = SlurmRuntime(ClusterSettings(name="hpc", backend="slurm", options=options))
    with pytest.raises(StartError, match="set the cluster's callback_url"):
        asyncio.run(backend.start(web_spec(tmp_path)))
    assert backend.job_id is None


# ---- through `datalabs serve` and its proxy ------------------------------------------------------------


def test_jupyterlab_on_a_port_answers_through_the_proxy_and_runs_a_kernel(slurm_cluster, tmp_path):
    from tests.labs.test_jupyter import admin, execute, wait_running
    from tests.labs.test_restart import serve

    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    (home / "datalabs.toml").write_text(
        '[[clusters]]\nname = "hpc"\nbackend = "slurm"\n[clusters.options]\n'
        f'slurm_conf = "{slurm_cluster.conf}"\nendpoint = "port"\ncallback_url = "http://127.0.0.1:{port}"\n'
    )
    admin(home, "create-user", "ada", "--password", "long-enough-pw")
    token = admin(home, "create-token", "ada")
    empty = tmp_path / "defs"
    empty.mkdir()
    proc = serve(home, port, empty)
    url = f"http://127.0.0.1:{port}"
    ada = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    try:
        r = ada.post("/api/v1/labs", json={"datalab": "jupyterlab", "cluster": "hpc"})
        assert r.status_code == 202, r.text
        lab = wait_running(ada, r.json()["id"])
        assert lab["state"] == "running", lab["reason"]
        state = json.loads(_runtime_state(home, lab["id"]))
        assert state["socket"] is None and state["host_port"] and state["port"]  # served on the node's port
        base = lab["path"]
        kernel = ada.post(f"{base}api/kernels", json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        ws_url = url.replace("http", "ws") + f"{base}api/kernels/{kernel.json()['id']}/channels"
        with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=30) as ws:
            assert execute(ws, "1+1") == "2"
        assert ada.post(f"/api/v1/labs/{lab['id']}/stop", json={}).json()["state"] == "stopped"
    finally:
        proc.terminate()
        proc.wait(30)
        slurm_cluster.cancel_all()


def _runtime_state(home: Path, lab_id: str) -> str:
    import sqlite3

    with sqlite3.connect(home / "datalabs.db") as db:
        (state,) = db.execute("SELECT runtime_state FROM labs WHERE id = ?", (lab_id,)).fetchone()
    return state
