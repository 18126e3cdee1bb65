"""The node's side of endpoint "port" (runtimes/slurm_forward.py) with real sockets: bytes both ways and
half-closes through the forwarded port, a lab socket replaced by a link is never followed (the forwarder
is root on the node), connections past the bound are closed, and the port report gives up at once when the
platform refuses it and after the deadline when the platform cannot be reached."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time

import pytest

from datalabs.runtimes.slurm_forward import (
    MAX_CONNECTIONS,
    PortForward,
    ReportFailed,
    lab_socket,
    report_port,
)
from datalabs.sandbox.bwrap import NOBODY
from tests.contracts.runtime_support import web_spec
from tests.live import free_port


async def echo_lab(path: str) -> asyncio.Server:
    """A lab on a unix socket that echoes, then answers 'bye' once the client is done sending."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.write(b"bye")
        await writer.drain()
        writer.close()

    return await asyncio.start_unix_server(serve, path)


def test_bytes_go_both_ways_and_a_half_close_reaches_the_lab(tmp_path):
    async def scenario():
        lab = await echo_lab(str(tmp_path / "lab.sock"))
        forward = PortForward(str(tmp_path / "lab.sock"), None)
        port = await forward.start("127.0.0.1")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        big = os.urandom(3 * 2**20)  # more than the forwarder ever holds at once
        writer.write(big)
        got = await reader.readexactly(len(big))
        writer.write_eof()  # done sending: the lab still answers
        assert got == big and await reader.read() == b"bye"
        writer.close()
        await forward.close()
        lab.close()

    asyncio.run(scenario())


def test_a_lab_socket_replaced_by_a_link_is_never_followed(tmp_path):
    """The lab can write its runtime folder: a link to another lab's socket must not become a way in."""

    async def scenario():
        victim = await echo_lab(str(tmp_path / "victim.sock"))
        (tmp_path / "lab").mkdir()
        os.symlink(tmp_path / "victim.sock", tmp_path / "lab" / "lab.sock")
        forward = PortForward(str(tmp_path / "lab" / "lab.sock"), None)
        port = await forward.start("127.0.0.1")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello victim")
        writer.write_eof()
        assert await reader.read() == b""  # closed without a byte from the victim
        writer.close()
        await forward.close()
        victim.close()

    asyncio.run(scenario())


def test_connections_past_the_bound_are_closed(tmp_path, monkeypatch):
    monkeypatch.setattr("datalabs.runtimes.slurm_forward.MAX_CONNECTIONS", 2)
    assert MAX_CONNECTIONS > 2

    async def scenario():
        lab = await echo_lab(str(tmp_path / "lab.sock"))
        forward = PortForward(str(tmp_path / "lab.sock"), None)
        port = await forward.start("127.0.0.1")
        held = []
        for _ in range(2):  # two live connections, each proven to reach the lab
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"x")
            assert await reader.readexactly(1) == b"x"
            held.append(writer)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"one too many")
        try:
            answer = await asyncio.wait_for(reader.read(), 30)  # forwarded, it would stay open: no EOF
        except ConnectionResetError:  # closed with our bytes unread: a reset is a close too
            answer = b""
        assert answer == b""
        for w in (*held, writer):
            w.close()
        await forward.close()
        lab.close()

    asyncio.run(scenario())


def test_a_port_range_is_kept_and_a_full_one_says_so(tmp_path):
    async def scenario():
        lab = await echo_lab(str(tmp_path / "lab.sock"))
        low = free_port()  # free now; its neighbours may not be: the range is that one port
        first = PortForward(str(tmp_path / "lab.sock"), None)
        assert await first.start("127.0.0.1", (low, low)) == low
        second = PortForward(str(tmp_path / "lab.sock"), None)
        with pytest.raises(OSError, match=f"no free port in {low}-{low}"):
            await second.start("127.0.0.1", (low, low))
        await first.close()
        lab.close()

    asyncio.run(scenario())


def test_the_port_report_stops_at_once_when_the_platform_refuses(tmp_path):
    """A platform answering 403 (a spent token): no retries until the deadline, the refusal is the reason."""
    from tests.runtimes.test_slurm_endpoint import serve_platform

    spec = dataclasses.replace(web_spec(tmp_path), callback_token="not-the-token")
    with serve_platform(tmp_path) as url:
        spec = dataclasses.replace(spec, platform_url=url)
        with pytest.raises(ReportFailed, match="refused the lab's port: not a valid callback token"):
            asyncio.run(report_port(spec, 40000, time.monotonic() + 3600))


def test_an_unreachable_platform_fails_the_report_at_the_deadline(tmp_path):
    closed = free_port()  # nobody listens there
    spec = dataclasses.replace(
        web_spec(tmp_path), callback_token="t", platform_url=f"http://127.0.0.1:{closed}"
    )
    with pytest.raises(
        ReportFailed, match=f"could not tell the platform at http://127.0.0.1:{closed}/api/v1/labs"
    ):
        asyncio.run(report_port(spec, 40000, time.monotonic() + 0.5))


def test_the_forwarded_socket_is_the_labs_own_and_checked_for_its_uid(tmp_path):
    spec = web_spec(tmp_path)
    assert lab_socket(spec) == (str(spec.runtime_dir / "lab.sock"), (spec.policy.identity or NOBODY).uid)
    assert lab_socket(dataclasses.replace(spec, kind="desktop"))[0] == str(spec.runtime_dir / "vnc.sock")
