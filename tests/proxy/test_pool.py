"""UpstreamPool against a real lab: keep-alive, limits, timeouts, early answers, stale connections."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from datalabs.proxy import PoolOptions, Route
from datalabs.proxy.http1 import UpstreamError, UpstreamTimeout
from datalabs.proxy.pool import UpstreamPool
from tests.proxy.lab_app import MIB, LabRecorder, counting_protocol, make_lab
from tests.proxy.servers import ServerThread

HOST = [(b"host", b"lab")]


@pytest.fixture(scope="module")
def short_lab(tmp_path_factory) -> Iterator[tuple[str, LabRecorder]]:
    """A lab that closes idle keep-alive connections after 1 s (uvicorn's default is 5 s)."""
    recorder = LabRecorder()
    path = str(tmp_path_factory.mktemp("short") / "lab.sock")
    server = ServerThread(
        make_lab(recorder), uds=path, http=counting_protocol(recorder), timeout_keep_alive=1
    )
    server.start()
    yield path, recorder
    server.stop()


def pool_for(path: str, **options) -> UpstreamPool:
    return UpstreamPool(Route("lab1", "ada", socket=path), PoolOptions(**options))


async def fetch(pool: UpstreamPool, target: bytes, method: str = "GET", body=None, headers=HOST) -> tuple:
    response = await pool.request(method, target, headers, body)
    try:
        data = b""
        while chunk := await response.read():
            data += chunk
        return response.status, data
    finally:
        pool.release(response)


def test_connection_closed_by_the_lab_while_idle_is_replaced(short_lab):
    path, recorder = short_lab

    async def scenario():
        pool = pool_for(path, idle_timeout=30)  # longer than the lab's: we must notice its close
        first = await fetch(pool, b"/datalabs/lab1/echo")
        await asyncio.sleep(1.5)
        second = await fetch(pool, b"/datalabs/lab1/echo")
        pool.close()
        return first[0], second[0]

    before = recorder.connections
    assert asyncio.run(scenario()) == (200, 200)
    assert recorder.connections - before == 2


def test_max_connections_queues_requests(short_lab):
    path, recorder = short_lab

    async def scenario():
        pool = pool_for(path, max_connections=2)
        results = await asyncio.gather(*(fetch(pool, b"/datalabs/lab1/sleep?s=0.1") for _ in range(8)))
        opened = pool.connections
        pool.close()
        return results, opened

    before = recorder.connections
    results, opened = asyncio.run(scenario())
    assert {status for status, _ in results} == {200}
    assert recorder.connections - before <= 2 and opened <= 2


def test_head_timeout(short_lab):
    path, _ = short_lab

    async def scenario():
        pool = pool_for(path, head_timeout=0.2)
        with pytest.raises(UpstreamTimeout):
            await fetch(pool, b"/datalabs/lab1/sleep?s=2")
        assert pool.connections == 0  # the timed-out connection is not reused
        pool.close()

    asyncio.run(scenario())


def test_early_answer_stops_the_upload_and_drops_the_connection(short_lab):
    path, _ = short_lab
    sent = []

    async def body():
        for _ in range(64):
            sent.append(MIB)
            yield b"u" * MIB

    async def scenario():
        pool = pool_for(path)
        headers = [*HOST, (b"content-length", str(64 * MIB).encode())]
        status, data = await fetch(pool, b"/datalabs/lab1/reject", "POST", body(), headers)
        assert pool.connections == 0  # half a body on the wire: never reuse
        ok = await fetch(pool, b"/datalabs/lab1/echo")
        pool.close()
        return status, data, ok[0]

    assert asyncio.run(scenario()) == (413, b"too large", 200)
    assert len(sent) < 64


def test_unreachable_lab_raises_upstream_error(tmp_path):
    async def scenario():
        pool = pool_for(str(tmp_path / "none.sock"))
        with pytest.raises(UpstreamError):
            await fetch(pool, b"/")
        assert pool.connections == 0

    asyncio.run(scenario())


def test_closed_pool_refuses(short_lab):
    path, _ = short_lab

    async def scenario():
        pool = pool_for(path)
        pool.close()
        with pytest.raises(UpstreamError):
            await fetch(pool, b"/datalabs/lab1/echo")

    asyncio.run(scenario())


def test_pools_dropped_by_the_sweep_never_fail_a_request(lab, monkeypatch):
    """Regression: the periodic sweep used to close the very pool a request had just been given."""
    from datalabs.proxy import LabProxy, MemoryRouteTable
    from datalabs.proxy import app as proxy_app
    from tests.proxy.conftest import ALICE, fake_authenticate

    monkeypatch.setattr(proxy_app, "_SWEEP_EVERY", 0.0)
    monkeypatch.setattr(proxy_app, "_POOL_UNUSED", 0.0)
    routes = MemoryRouteTable({"lab1": Route("lab1", "alice", socket=lab.socket)})
    # idle_timeout 0: every idle connection has expired by the next request, so each sweep drops the pool
    proxy = LabProxy(routes, fake_authenticate, pool_options=PoolOptions(idle_timeout=0.0))
    server = ServerThread(proxy).start()
    try:
        with httpx.Client(base_url=server.url, headers=ALICE, trust_env=False) as client:
            assert [client.get("/datalabs/lab1/echo").status_code for _ in range(10)] == [200] * 10
    finally:
        server.stop()
