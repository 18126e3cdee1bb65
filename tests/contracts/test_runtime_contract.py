"""The RuntimeBackend contract, run against every implementation: LocalRuntime and SlurmRuntime for real
(SlurmRuntime on the suite's single-node Slurm cluster, tests/runtimes/slurm_cluster.py), and the fake."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from datalabs.clusters.settings import ClusterSettings
from datalabs.runtimes.base import RuntimeBackend, StartError
from datalabs.runtimes.local import LocalRuntime
from datalabs.runtimes.slurm import SlurmRuntime
from datalabs.runtimes.testing import FakeRuntime
from tests.contracts.runtime_support import web_spec

BACKENDS = {"local": LocalRuntime, "fake": FakeRuntime, "slurm": SlurmRuntime}
COMMANDS = {  # what makes each backend serve, crash, or hang
    "local": {
        "serve": None,
        "crash": ["/bin/sh", "-c", "echo boom >&2; exit 3"],
        "hang": ["/bin/sleep", "600"],
        "missing": ["/no/such/program"],
    },
    "fake": {"serve": ["fake-lab"], "crash": ["fake-crash"], "hang": ["fake-hang"], "missing": ["nope"]},
}
COMMANDS["slurm"] = COMMANDS["local"]  # the job runs LocalRuntime's sandbox on the node
MARKS = {"slurm": [pytest.mark.slow, pytest.mark.xdist_group("slurm")]}


@pytest.fixture(params=[pytest.param(name, marks=MARKS.get(name, ())) for name in BACKENDS])
def kind(request, monkeypatch) -> str:
    if request.param == "slurm":  # SlurmRuntime() places labs on the test cluster
        cluster = request.getfixturevalue("slurm_cluster")
        hpc = ClusterSettings(name="hpc", backend="slurm", options={"slurm_conf": str(cluster.conf)})
        monkeypatch.setattr(SlurmRuntime, "configured", hpc)
    return request.param


def make(kind: str) -> RuntimeBackend:
    return BACKENDS[kind]()


def spec_for(kind, tmp_path, what="serve", **kw):
    return web_spec(tmp_path, command=COMMANDS[kind][what], **kw)


async def get(endpoint, headers, path="/"):
    transport = httpx.AsyncHTTPTransport(uds=endpoint.socket)
    async with httpx.AsyncClient(transport=transport, base_url="http://lab", timeout=10) as client:
        return await client.get(path, headers=headers)


def test_start_serve_stop(kind, tmp_path):
    async def scenario():
        backend = make(kind)
        spec = spec_for(kind, tmp_path)
        endpoint = await backend.start(spec)
        assert endpoint.socket and endpoint.headers == spec.secret_headers
        assert (await get(endpoint, endpoint.headers)).status_code == 200
        assert (await get(endpoint, {})).status_code == 403  # the secret is what lets the proxy in
        assert await backend.poll() is None
        events = [e async for e in backend.progress()]
        assert events[-1].ready and [e.progress for e in events] == sorted(e.progress for e in events)
        await backend.stop()
        assert await backend.poll() is not None
        await backend.stop()  # idempotent
        assert backend.logs(50) != ""

    asyncio.run(scenario())


def test_state_round_trip_reattaches(kind, tmp_path):
    async def scenario():
        first = make(kind)
        await first.start(spec_for(kind, tmp_path))
        state = first.get_state()
        second = make(kind)
        second.load_state(state)
        assert await second.poll() is None
        assert second.endpoint() == first.endpoint()
        assert (await get(second.endpoint(), second.endpoint().headers)).status_code == 200
        await second.stop()
        assert await second.poll() is not None

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("what", "reason"),
    [("crash", "exited with code 3"), ("missing", ""), ("hang", "did not answer within 1 s")],
)
def test_failed_start_says_why_quickly(kind, tmp_path, what, reason):
    async def scenario():
        backend = make(kind)
        started = time.monotonic()
        with pytest.raises(StartError) as failure:
            await backend.start(spec_for(kind, tmp_path, what, start_timeout=1))
        assert time.monotonic() - started < 10
        assert reason in str(failure.value) and str(failure.value)
        events = [e async for e in backend.progress()]
        assert events[-1].failed and events[-1].message
        assert await backend.poll() is not None

    asyncio.run(scenario())


def test_limits_are_reported(kind):
    limits = make(kind).limits()
    assert isinstance(limits.sandboxed, bool) and (
        limits.memory_enforced or "NOT" in limits.notes or not limits.sandboxed
    )
