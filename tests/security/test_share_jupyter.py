"""Hostile tests for a shared JupyterLab (issue 19): the lab itself refuses a forged identity and a
viewer's writes, execution and terminals, even if the proxy let them through, and a viewer's Y updates
in a real-time collaboration room never reach the document. A real jupyter_server from the platform's
environment (with jupyter-collaboration), on a unix socket, with datalabs.labs.jupyter_identity loaded.

A forged X-Datalabs-User / X-Datalabs-Share from the browser never reaches the lab: the proxy strips
them and says who asks itself, tested there, not repeated here: tests/proxy/test_headers.py::
test_identity_headers_come_from_the_proxy_only, and what the lab received, tests/proxy/test_http.py::
test_the_lab_learns_who_asks_and_a_forged_identity_is_dropped (HTTP) and tests/proxy/test_websocket.py::
test_handshake_says_who_asks_and_drops_a_forged_identity (the WebSocket handshake, which the rooms use)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pycrdt import (
    Decoder,
    Doc,
    Encoder,
    Text,
    YMessageType,
    YSyncMessageType,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)
from websockets.sync.client import unix_connect

TOKEN = "lab-secret-token"
BASE = "http://lab/lab/"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("labroot")
    (root / "nb.txt").write_text("hello")
    (root / "room.txt").write_text("shared text")
    sock = Path(tmp_path_factory.mktemp("run")) / "lab.sock"
    env = {
        **os.environ,
        "JUPYTER_TOKEN": TOKEN,
        "DATALABS_LAB_OWNER": "alice",
        "JUPYTER_CONFIG_DIR": str(root / ".cfg"),
        "JUPYTER_RUNTIME_DIR": str(root / ".rt"),
        "JUPYTER_DATA_DIR": str(root / ".data"),  # jupyter_server_fileid's database
    }
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "jupyter-server"),
            "--no-browser",
            f"--ServerApp.sock={sock}",
            "--ServerApp.base_url=/lab/",
            "--ServerApp.allow_remote_access=True",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.identity_provider_class=datalabs.labs.jupyter_identity.DatalabsIdentityProvider",
            "--ServerApp.authorizer_class=datalabs.labs.jupyter_identity.DatalabsAuthorizer",
            f"--SQLiteYStore.db_path={root / '.ystore.db'}",
            f"--YDocExtension.session_store_path={root / '.collaboration-sessions.json'}",
            "--YDocExtension.document_save_delay=0.2",
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url=BASE)
    try:
        for _ in range(300):
            if sock.exists():
                try:
                    client.get("api/status")
                    break
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
        else:
            pytest.fail("jupyter-server did not start")
        client.sock, client.root = sock, root
        yield client
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # open room connections of a failed test can hold it
            proc.kill()
            proc.wait(10)


def _h(user=None, share=None, token=True):
    h = {}
    if token:
        h["Authorization"] = f"token {TOKEN}"
    if user:
        h["X-Datalabs-User"] = user
    if share:
        h["X-Datalabs-Share"] = share
    return h


def test_owner_and_guest_identity(lab):
    me = lab.get("api/me", headers=_h()).raise_for_status().json()["identity"]
    assert me["username"] == "alice"
    me = lab.get("api/me", headers=_h("bob", "collaborate")).json()["identity"]
    assert (me["username"], me["display_name"]) == ("bob", "bob") and me["color"].startswith("#")


def test_forged_user_without_token_refused(lab):
    for path in ("api/me", "api/contents/nb.txt"):
        r = lab.get(path, headers=_h("alice", "owner", token=False))
        assert r.status_code == 403
    r = lab.get(
        "api/contents/nb.txt", headers={**_h("bob", "owner", token=False), "Authorization": "token wrong"}
    )
    assert r.status_code == 403


def test_viewer_reads_but_cannot_write_execute_or_open_terminals(lab):
    v = _h("bob", "view")
    assert lab.get("api/contents/nb.txt", headers=v).json()["content"] == "hello"
    assert lab.get("api/sessions", headers=v).status_code == 200
    body = {"type": "file", "format": "text", "content": "changed"}
    assert lab.put("api/contents/nb.txt", headers=v, json=body).status_code == 403
    assert lab.post("api/contents", headers=v, json={"type": "file"}).status_code == 403
    assert lab.delete("api/contents/nb.txt", headers=v).status_code == 403
    assert lab.post("api/kernels", headers=v, json={}).status_code == 403
    assert lab.post("api/terminals", headers=v).status_code == 403
    assert lab.get("api/terminals", headers=v).status_code == 403
    # unknown mode counts as view
    assert lab.put("api/contents/nb.txt", headers=_h("bob", "admin"), json=body).status_code == 403
    assert lab.get("api/contents/nb.txt", headers=_h()).json()["content"] == "hello"
    # a collaborator writes
    assert lab.put("api/contents/nb.txt", headers=_h("bob", "collaborate"), json=body).status_code == 200
    assert lab.get("api/contents/nb.txt", headers=v).json()["content"] == "changed"


# ---- real-time collaboration: a viewer's room is read-only -----------------------------------------

ROOM_WAIT = 30.0  # bound on waiting for what a room sends back


class RoomClient:
    """A Y client of one collaboration room, as JupyterLab's docprovider speaks it."""

    def __init__(self, lab, room: str, headers: dict[str, str]):
        self.doc = Doc()
        self.text = self.doc.get("source", type=Text)
        self.ws = unix_connect(
            str(lab.sock), f"ws://lab/lab/api/collaboration/room/{room}", additional_headers=headers
        ).__enter__()  # closed by close(), test or not (see clients)
        self.ws.send(create_sync_message(self.doc))
        self.pump(lambda: str(self.text) != "")  # the document as the server has it

    def pump(self, until) -> None:
        """Apply what the room sends until `until()` holds (fails after ROOM_WAIT s); answers sync
        requests as JupyterLab does."""
        deadline = time.monotonic() + ROOM_WAIT
        while not until():
            left = deadline - time.monotonic()
            assert left > 0, f"the room did not send what was awaited; document: {str(self.text)!r}"
            try:
                message = self.ws.recv(timeout=left)
            except TimeoutError:
                continue
            self.last_raw = message if message[0] == 2 else getattr(self, "last_raw", b"")
            if message[0] == YMessageType.SYNC:
                reply = handle_sync_message(message[1:], self.doc)
                if reply is not None:
                    self.ws.send(reply)

    def edit(self, words: str) -> None:
        """A local edit sent as JupyterLab sends it: an update, then (on reconnect) in SyncStep2."""
        before = self.doc.get_state()
        self.text += words
        update = self.doc.get_update(before)
        self.ws.send(create_update_message(update))
        self.ws.send(bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP2]) + _var_bytes(update))

    def fence(self) -> None:
        """Wait until the room has handled everything sent so far: messages of one connection are handled
        in order, and the answer to a SyncStep1 comes after them."""
        marker = Doc()  # an empty state vector: the answer is the whole document, never empty
        self.ws.send(create_sync_message(marker))
        got = []
        deadline = time.monotonic() + ROOM_WAIT
        while not got:
            message = self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            if message[:2] == bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP2]):
                got.append(message)
            elif message[0] == YMessageType.SYNC:
                reply = handle_sync_message(message[1:], self.doc)
                if reply is not None:
                    self.ws.send(reply)
        handle_sync_message(got[0][1:], self.doc)

    def save(self, save_id: int) -> str:
        encoder = Encoder()
        encoder.write_var_uint(2)
        encoder.write_var_string("save")
        encoder.write_var_uint(save_id)
        self.ws.send(encoder.to_bytes())
        deadline = time.monotonic() + ROOM_WAIT
        while True:
            message = self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            if message[0] == 2:
                decoder = Decoder(message)
                decoder.read_var_uint()
                reply = json.loads(decoder.read_var_string())
                if reply.get("type") == "save" and reply.get("responseTo") == save_id:
                    return reply["status"]

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def clients(lab):
    """RoomClient(room, headers) for a test, each closed at its end."""
    made: list[RoomClient] = []

    def make(room: str, headers: dict[str, str]) -> RoomClient:
        made.append(RoomClient(lab, room, headers))
        return made[-1]

    yield make
    for c in made:
        c.close()


def _var_bytes(data: bytes) -> bytes:
    encoder = Encoder()
    encoder.write_var_uint(len(data))
    return encoder.to_bytes() + data


def _room(lab, headers) -> str:
    r = lab.put(
        "api/collaboration/session/room.txt", headers=headers, json={"format": "text", "type": "file"}
    )
    assert r.status_code in (200, 201), r.text
    return f"text:file:{r.json()['fileId']}?sessionId={r.json()['sessionId']}"


def test_a_viewers_updates_never_reach_the_shared_document(lab, clients):
    room = _room(lab, _h("bob", "view"))  # a viewer may look up the document's id: it opens it
    owner = clients(room, _h())
    viewer = clients(room, _h("bob", "view"))
    assert str(viewer.text) == str(owner.text) == "shared text"

    # The owner's edits reach the viewer live.
    owner.edit(" + owner")
    viewer.pump(lambda: str(viewer.text) == "shared text + owner")

    # The viewer's edit (update and SyncStep2) is dropped: once the room has handled it, neither the
    # owner nor a newcomer has it, and saving is refused.
    viewer.edit(" + viewer")
    viewer.fence()
    owner.fence()
    late = clients(room, _h("cy", "collaborate"))
    assert str(owner.text) == str(late.text) == "shared text + owner"
    assert viewer.save(7) == "failed"

    # A collaborator's same edit does go through (so the above could fail), and is saved.
    late.edit(" + cy")
    owner.pump(lambda: str(owner.text) == "shared text + owner + cy")
    assert late.save(8) in ("success", "skipped")
    deadline = time.monotonic() + ROOM_WAIT
    while (lab.root / "room.txt").read_text() != "shared text + owner + cy":
        assert time.monotonic() < deadline, (lab.root / "room.txt").read_text()
        time.sleep(0.1)


def test_a_viewer_cannot_undo_fork_or_merge_in_a_room(lab):
    room = _room(lab, _h())
    v = _h("bob", "view")
    assert (
        lab.put(f"api/collaboration/undo_redo/{room}", headers=v, json={"action": "undo"}).status_code == 403
    )
    assert lab.put(f"api/collaboration/fork/{room}", headers=v, json={}).status_code == 403
    assert lab.delete(f"api/collaboration/fork/{room}", headers=v).status_code == 403


def test_what_a_readers_room_passes():
    from datalabs.labs.jupyter_identity import reader_message

    step = bytes([YMessageType.SYNC])
    assert reader_message(create_sync_message(Doc())) == "pass"
    assert reader_message(bytes([YMessageType.AWARENESS, 1, 0])) == "pass"
    assert reader_message(create_update_message(b"\x00\x00")) == "drop"
    assert reader_message(step + bytes([YSyncMessageType.SYNC_STEP2, 0])) == "drop"
    encoder = Encoder()
    encoder.write_var_uint(2)
    encoder.write_var_string("save")
    assert reader_message(encoder.to_bytes()) == "save"
    # chat, unknown types, truncated, empty and oversized varints, text frames: dropped
    for hostile in (bytes([125, 1, 65]), b"\x07", step, b"", b"\xff" * 20, "\x00\x00", bytes([2, 9, 65])):
        assert reader_message(hostile) == "drop", hostile
