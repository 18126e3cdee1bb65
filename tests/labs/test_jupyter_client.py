"""The platform's Jupyter client (labs/jupyter.py) against labs that misbehave: the lab is the user's
code, so an answer that never ends, never comes, is not HTTP or not JSON, a socket swapped for a link to
another lab's, and a kernel that floods outputs each end in a JupyterError, bounded in time and memory.
And a well-behaved kernel's messages become notebook outputs. (The real JupyterLab path is in
tests/web/test_explorer_open_browser.py.)"""

from __future__ import annotations

import ast
import asyncio
import json
import os

import pytest
from websockets.asyncio.server import unix_serve

from datalabs.assets import notebooks
from datalabs.labs.jupyter import Jupyter, JupyterError
from datalabs.proxy.routes import Route


def jupyter(path, **kwargs) -> Jupyter:
    route = Route(lab_id="lab1", owner="ada", socket=str(path), headers={"Authorization": "token s3cret"})
    return Jupyter(route, "/datalabs/lab1/", **kwargs)


async def http_server(path, answer):
    """A lab on `path` that reads one request and then runs `answer(writer)`."""
    seen = []

    async def serve(reader, writer):
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        try:
            await answer(writer)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    return await asyncio.start_unix_server(serve, path=str(path)), seen


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_a_well_behaved_answer_is_read_with_the_labs_secret(tmp_path):
    async def answer(writer):
        body = b'{"ok": true}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()

    async def main():
        server, seen = await http_server(tmp_path / "lab.sock", answer)
        async with server:
            status, body = await jupyter(tmp_path / "lab.sock").request("GET", "api/contents/a b.ipynb")
        return status, body, seen

    status, body, seen = run(main())
    assert (status, body) == (200, {"ok": True})
    assert seen[0].startswith(b"GET /datalabs/lab1/api/contents/a%20b.ipynb HTTP/1.1\r\n")
    assert b"Authorization: token s3cret" in seen[0]


@pytest.mark.parametrize(
    ("answer_bytes", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nnot json", "not JSON"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "could not be reached"),  # not HTTP at all
    ],
)
def test_an_answer_that_is_not_json_or_not_http_is_an_error(tmp_path, answer_bytes, message):
    async def answer(writer):
        writer.write(answer_bytes)
        await writer.drain()

    async def main():
        server, _ = await http_server(tmp_path / "lab.sock", answer)
        async with server:
            await jupyter(tmp_path / "lab.sock").request("GET", "api/status")

    with pytest.raises(JupyterError, match=message):
        run(main())


def test_an_endless_answer_stops_at_the_limit(tmp_path):
    async def answer(writer):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n")
        chunk = b"x" * 65536
        while True:  # the client gives up and closes: then writing fails and this ends
            writer.write(chunk)
            await writer.drain()

    async def main():
        server, _ = await http_server(tmp_path / "lab.sock", answer)
        async with server:
            await jupyter(tmp_path / "lab.sock", limit=2**20).request("GET", "api/status")

    with pytest.raises(JupyterError, match="more than 1,048,576 bytes"):
        run(main())


def test_a_lab_that_never_answers_is_given_up_on(tmp_path):
    async def answer(writer):
        await asyncio.sleep(30)

    async def main():
        server, _ = await http_server(tmp_path / "lab.sock", answer)
        async with server:
            await jupyter(tmp_path / "lab.sock", timeout=0.5).request("GET", "api/status")

    with pytest.raises(JupyterError, match="did not answer GET api/status within 0.5 s"):
        run(main())


def test_a_socket_swapped_for_a_link_to_another_labs_is_refused(tmp_path):
    async def answer(writer):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()

    async def main():
        other, seen = await http_server(tmp_path / "other.sock", answer)  # another user's lab
        (tmp_path / "mine").mkdir()
        os.symlink(tmp_path / "other.sock", tmp_path / "mine" / "lab.sock")
        async with other:
            with pytest.raises(JupyterError, match="could not be reached"):
                await jupyter(tmp_path / "mine" / "lab.sock").request("GET", "api/status")
        return seen

    assert run(main()) == []  # the other lab never heard of it


def kernel(handler):
    """A kernel channel on a unix socket; `handler(ws, request)` answers each execute_request."""

    async def serve(ws):
        async for raw in ws:
            await handler(ws, json.loads(raw))

    return serve


def reply(request, msg_type, content):
    return json.dumps(
        {"msg_type": msg_type, "parent_header": {"msg_id": request["header"]["msg_id"]}, "content": content}
    )


def test_kernel_messages_become_the_cells_outputs_and_strangers_are_ignored(tmp_path):
    async def handler(ws, request):
        assert request["content"]["code"] == "print(1); 2"
        await ws.send(reply(request, "status", {"execution_state": "busy"}))
        await ws.send(json.dumps({"msg_type": "stream", "parent_header": {"msg_id": "other"}, "content": {}}))
        await ws.send(reply(request, "stream", {"name": "stdout", "text": "1\n"}))
        await ws.send(reply(request, "display_data", {"data": {"image/png": "iVBOR"}, "metadata": {}}))
        await ws.send(reply(request, "execute_result", {"data": {"text/plain": "2"}, "execution_count": 1}))
        await ws.send(reply(request, "execute_reply", {"status": "ok", "execution_count": 1}))
        await ws.send(reply(request, "status", {"execution_state": "idle"}))

    async def main():
        async with unix_serve(kernel(handler), path=str(tmp_path / "lab.sock")):
            return await jupyter(tmp_path / "lab.sock").run_cell("k1", "print(1); 2")

    cell = run(main())
    assert (cell.status, cell.execution_count) == ("ok", 1)
    assert cell.outputs == [
        {"output_type": "stream", "name": "stdout", "text": "1\n"},
        {"output_type": "display_data", "data": {"image/png": "iVBOR"}, "metadata": {}},
        {"output_type": "execute_result", "data": {"text/plain": "2"}, "metadata": {}, "execution_count": 1},
    ]


def test_a_kernel_flooding_outputs_stops_at_the_limit(tmp_path):
    async def handler(ws, request):
        text = "y" * 60000
        while True:
            await ws.send(reply(request, "stream", {"name": "stdout", "text": text}))

    async def main():
        async with unix_serve(kernel(handler), path=str(tmp_path / "lab.sock")):
            await jupyter(tmp_path / "lab.sock", limit=2**20).run_cell("k1", "while True: print('y')")

    with pytest.raises(JupyterError, match="larger than 1,048,576 bytes"):
        run(main())


def test_a_kernel_that_never_finishes_is_given_up_on(tmp_path):
    async def handler(ws, request):
        await ws.send(reply(request, "status", {"execution_state": "busy"}))

    async def main():
        async with unix_serve(kernel(handler), path=str(tmp_path / "lab.sock")):
            await jupyter(tmp_path / "lab.sock", timeout=0.5).run_cell("k1", "import time; time.sleep(99)")

    with pytest.raises(JupyterError, match="did not finish within 0.5 s"):
        run(main())


@pytest.mark.parametrize("media_type", sorted(notebooks.TEMPLATES))
def test_no_file_name_becomes_code_in_the_first_cell(media_type):
    path = "/media/data/v/a'b\"c\\\n{x}'); import os; os.system('id') #.fits"
    code = notebooks.first_cell(media_type, path)
    tree = ast.parse(code)  # still valid Python
    assigned = [n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "path"]
    assert len(assigned) == 1 and ast.literal_eval(assigned[0].value) == path
    assert not any(
        isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "system" for n in ast.walk(tree)
    )
