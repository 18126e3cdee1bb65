"""LocalRuntime's sandbox for real: what a lab can and cannot reach (DESIGN §5), and its limits."""

from __future__ import annotations

import asyncio
import errno

import httpx
import pytest

from datalabs.runtimes.base import Mount
from datalabs.runtimes.local import LocalRuntime
from datalabs.sandbox import cgroups
from tests.contracts.runtime_support import web_spec


async def ask(endpoint, route, **params):
    transport = httpx.AsyncHTTPTransport(uds=endpoint.socket)
    async with httpx.AsyncClient(transport=transport, base_url="http://lab", timeout=30) as client:
        return (await client.get(route, params=params, headers=endpoint.headers)).json()


@pytest.fixture
def run_labs(tmp_path):
    """Start labs and stop them all at the end, whatever happens."""
    started: list[LocalRuntime] = []

    async def start(spec):
        lab = LocalRuntime()
        started.append(lab)
        return lab, await lab.start(spec)

    yield start

    async def stop_all():
        for lab in started:
            await lab.stop(now=True)

    asyncio.run(stop_all())


def test_what_a_lab_can_see(tmp_path, run_labs):
    volume = tmp_path / "volumes" / "PlanckPublic"
    volume.mkdir(parents=True)
    (volume / "map.fits").write_text("SIMPLE = T")
    other = tmp_path / "workspaces" / "users" / "bob"
    other.mkdir(parents=True)
    (other / "secret.txt").write_text("bob's")
    (tmp_path / "datalabs.db").write_text("the platform database")
    spec = web_spec(tmp_path, mounts=[Mount(volume, "/media/data/PlanckPublic", readonly=True)])

    async def scenario():
        lab, endpoint = await run_labs(spec)
        wrote = await ask(endpoint, "/write", path="/media/home/my_workspace/result.txt", text="from the lab")
        assert wrote == {"wrote": "/media/home/my_workspace/result.txt"}
        assert (tmp_path / "workspaces/users/ada/result.txt").read_text() == "from the lab"
        assert (await ask(endpoint, "/read", path="/media/data/PlanckPublic/map.fits"))[
            "content"
        ] == "SIMPLE = T"
        erofs = await ask(endpoint, "/write", path="/media/data/PlanckPublic/new.txt")
        assert erofs["errno"] == errno.EROFS
        for path in (other / "secret.txt", tmp_path / "datalabs.db", "/etc/shadow", "/root/.bash_history"):
            result = await ask(endpoint, "/read", path=str(path))
            assert "content" not in result, f"lab could read {path}"
        env = await ask(endpoint, "/env")
        assert not [k for k in env if k.startswith(("DATALABS_DB", "DATALABS_AUTH"))]
        assert env["HOME"] == "/media/home/my_workspace" and env["DATALAB_ID"] == spec.lab_id
        me = await ask(endpoint, "/")
        assert me["uid"] != 0 and me["cwd"] == "/media/home/my_workspace"

    asyncio.run(scenario())


def test_a_lab_cannot_reach_another_labs_socket(tmp_path, run_labs):
    async def scenario():
        _, a = await run_labs(web_spec(tmp_path))
        _, b = await run_labs(web_spec(tmp_path))
        result = await ask(a, "/connect", path=b.socket)
        assert "connected" not in result and result["errno"] in (errno.ENOENT, errno.EACCES)

    asyncio.run(scenario())


@pytest.mark.skipif(not cgroups.available()[0], reason="no writable cgroup hierarchy on this host")
def test_memory_limit_kills_and_says_so(tmp_path, run_labs):
    async def scenario():
        lab, endpoint = await run_labs(web_spec(tmp_path, memory_bytes=150 * 2**20))
        assert lab.limits().memory_enforced
        with pytest.raises((httpx.HTTPError, ValueError)):
            await ask(endpoint, "/alloc", mb=400)
        for _ in range(100):
            if await lab.poll() is not None:
                break
            await asyncio.sleep(0.05)
        assert await lab.poll() is not None
        assert lab.oom_killed()

    asyncio.run(scenario())
