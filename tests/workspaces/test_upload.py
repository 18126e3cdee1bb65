"""Streamed uploads: quota up front and mid-stream, nothing partial under the final name, ever."""

from __future__ import annotations

import asyncio
import os

import pytest

from datalabs.errors import Conflict, TooLarge
from datalabs.workspaces.paths import TEMP_PREFIX, Ownership
from datalabs.workspaces.tree import Tree
from datalabs.workspaces.upload import upload


async def body(n_chunks: int, size: int = 1 << 20, fail_at: int | None = None):
    for i in range(n_chunks):
        if i == fail_at:
            raise ConnectionResetError("client went away")
        yield bytes([i % 256]) * size


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "ws").mkdir()
    return Tree(tmp_path / "ws")


def leftovers(root):
    return [p.name for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


def test_upload_lands_atomically_and_replaces(tree):
    done = run(upload(tree, ("d", "x.bin"), body(3), free=10 << 20))
    assert done.created and done.added == 3 << 20 and done.entry.size == 3 << 20
    again = run(upload(tree, ("d", "x.bin"), body(1), free=10 << 20))
    assert not again.created and again.added == -(2 << 20)
    assert (tree.root / "d" / "x.bin").read_bytes() == b"\x00" * (1 << 20)
    assert leftovers(tree.root) == []


def test_over_quota_midstream_leaves_existing_file_untouched(tree):
    (tree.root / "keep.bin").write_bytes(b"original")
    with pytest.raises(TooLarge, match="quota") as refused:
        run(upload(tree, ("keep.bin",), body(5), free=2 << 20))  # no Content-Length: caught mid-stream
    assert refused.value.status == 413
    assert (tree.root / "keep.bin").read_bytes() == b"original"
    assert leftovers(tree.root) == []


def test_over_quota_up_front_from_declared_length(tree):
    with pytest.raises(TooLarge, match="does not fit"):
        run(upload(tree, ("new.bin",), body(1), free=100, declared=5 << 20))
    assert not (tree.root / "new.bin").exists() and leftovers(tree.root) == []


def test_replacing_a_file_frees_its_size(tree):
    (tree.root / "a.bin").write_bytes(b"x" * (2 << 20))
    done = run(upload(tree, ("a.bin",), body(2), free=0, declared=2 << 20))
    assert done.added == 0


def test_client_going_away_leaves_nothing(tree):
    (tree.root / "keep.bin").write_bytes(b"original")
    with pytest.raises(ConnectionResetError):
        run(upload(tree, ("keep.bin",), body(8, fail_at=6), free=1 << 40))
    assert (tree.root / "keep.bin").read_bytes() == b"original" and leftovers(tree.root) == []


def test_conflicts(tree):
    (tree.root / "folder").mkdir()
    with pytest.raises(Conflict, match="is a folder"):
        run(upload(tree, ("folder",), body(1), free=1 << 30))
    (tree.root / "f").write_bytes(b"1")
    with pytest.raises(Conflict, match="already exists"):
        run(upload(tree, ("f",), body(1), free=1 << 30, overwrite=False))


def test_a_killed_uploads_temporary_is_removed_and_a_live_one_hidden(tmp_path):
    """Temporaries are journaled (workspaces/inflight.py): a dead writer's is removed when its folder is
    listed; a live writer's stays hidden; a file a lab named with the prefix is an ordinary file."""
    root = tmp_path / "home" / "workspaces" / "users" / "ada"
    root.mkdir(parents=True)
    tree = Tree(root)
    assert tree.journal is not None
    pid = os.fork()
    if pid == 0:  # a writer that dies (as by kill -9) with its temporary recorded
        with tree.holding((), f"{TEMP_PREFIX}dead"):
            (root / f"{TEMP_PREFIX}dead").write_bytes(b"half")
            os._exit(0)
    os.waitpid(pid, 0)
    (root / f"{TEMP_PREFIX}made-by-a-lab").write_bytes(b"mine")
    with tree.holding((), f"{TEMP_PREFIX}live"):
        (root / f"{TEMP_PREFIX}live").write_bytes(b"busy")
        names = [e.name for e in tree.listdir(()).entries]
        assert names == [f"{TEMP_PREFIX}made-by-a-lab"]
        assert not (root / f"{TEMP_PREFIX}dead").exists() and (root / f"{TEMP_PREFIX}live").exists()
        run(upload(tree, ("x",), body(1), free=1 << 30))
    tree.remove((f"{TEMP_PREFIX}made-by-a-lab",))
    assert sorted(p.name for p in root.iterdir()) == [f"{TEMP_PREFIX}live", "x"]
    assert list((tmp_path / "home" / "inflight").iterdir()) == []  # nothing left in flight


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_uploads_belong_to_the_spaces_owner(tmp_path):
    (tmp_path / "ws").mkdir()
    tree = Tree(tmp_path / "ws", owner=Ownership(1_000_000_007, 1_000_000_007))
    run(upload(tree, ("new", "f.txt"), body(1), free=1 << 30))
    assert (tmp_path / "ws" / "new").stat().st_uid == 1_000_000_007
    assert (tmp_path / "ws" / "new" / "f.txt").stat().st_uid == 1_000_000_007
    # in a team space: the uploader's file, the team's group, group-writable, folders setgid
    (tmp_path / "team").mkdir()
    team = Tree(tmp_path / "team", owner=Ownership(1_000_000_007, 1_500_000_003, shared=True))
    run(upload(team, ("d", "g.txt"), body(1), free=1 << 30))
    folder, file = (tmp_path / "team" / "d").stat(), (tmp_path / "team" / "d" / "g.txt").stat()
    assert (file.st_uid, file.st_gid) == (1_000_000_007, 1_500_000_003) and file.st_mode & 0o060 == 0o060
    assert folder.st_gid == 1_500_000_003 and folder.st_mode & 0o2070 == 0o2070
