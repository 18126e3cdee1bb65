"""Many more clients than request threads and pool connections: every request is answered, none waits for a
connection that a request queued for a thread holds (deps.get_db's session slots).

Before the slots, 1,000 clients against one replica left all 50 pool connections "idle in transaction",
each held by a request whose response waited for a worker thread, while every thread waited for a
connection: requests failed with "QueuePool limit ... reached" after 30 s."""

from __future__ import annotations

import asyncio
import subprocess

import httpx

from datalabs.db.engine import THREADS
from tests.live import DATALABS, live_server

CLIENTS = 10 * THREADS  # far more than the threads (40) and the pool (48 on SQLite, 50 on PostgreSQL)


def test_many_more_clients_than_threads_and_connections_all_get_answers(tmp_path):
    home = tmp_path / "home"
    env = {"DATALABS_HOME": str(home)}
    subprocess.run(
        [DATALABS, "admin", "create-user", "ada", "--password", "long-enough-pw"], env=env, check=True
    )
    token = subprocess.run(
        [DATALABS, "admin", "create-token", "ada"], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()

    async def storm(base: str) -> list[int | str]:
        limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=120) as client:

            async def one(i: int) -> int | str:
                path = ("/api/v1/labs", "/api/v1/workspaces", "/api/v1/tokens")[i % 3]
                try:
                    return (await client.get(path)).status_code
                except httpx.HTTPError as exc:
                    return repr(exc)

            return await asyncio.gather(*(one(i) for i in range(CLIENTS)))

    with live_server(home) as base:
        answers = asyncio.run(storm(base))
        again = httpx.get(f"{base}/api/v1/labs", headers={"Authorization": f"Bearer {token}"}, timeout=60)
    log = (home / "server.log").read_text()
    failed = [a for a in answers if a != 200]
    assert not failed, f"{len(failed)} of {CLIENTS} failed, e.g. {failed[:3]}"
    assert again.status_code == 200
    assert "QueuePool limit" not in log, log[log.find("QueuePool limit") - 500 :][:1500]
