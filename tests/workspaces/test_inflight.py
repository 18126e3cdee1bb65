"""The journal of temporaries in flight (workspaces/inflight.py): what recovery may remove, and what not."""

from __future__ import annotations

import os
from pathlib import Path

from datalabs.workspaces.inflight import Journal, for_tree


def die_holding(journal: Journal, root: Path, parts: tuple[str, ...], name: str, make) -> None:
    """A writer that records a temporary, makes it and dies without cleaning up (as by kill -9)."""
    pid = os.fork()
    if pid == 0:
        with journal.hold(root, parts, name):
            try:
                make()
            finally:
                os._exit(0)  # inside the block: the journal is never told
    os.waitpid(pid, 0)


def test_recover_removes_dead_writers_temporaries_only(tmp_path):
    journal = Journal(tmp_path / "home")
    root = tmp_path / "ws"
    (root / "a").mkdir(parents=True)
    die_holding(journal, root, ("a",), ".tmp-dead", lambda: (root / "a" / ".tmp-dead").write_bytes(b"x"))
    die_holding(journal, root, (), "dir-dead", lambda: (root / "dir-dead" / "sub").mkdir(parents=True))
    (root / "a" / "users-file").write_text("not in the journal: never touched")
    with journal.hold(root, ("a",), ".tmp-live"):
        (root / "a" / ".tmp-live").write_bytes(b"busy")
        assert journal.active(root, ("a",), ".tmp-live")
        removed = journal.recover()
        assert len(removed) == 2
        assert sorted(p.name for p in (root / "a").iterdir()) == [".tmp-live", "users-file"]
        assert not (root / "dir-dead").exists()
        assert journal.active(root, ("a",), ".tmp-live")  # still held
    assert not journal.active(root, ("a",), ".tmp-live")  # released: an ordinary name now
    assert list(journal.dir.iterdir()) == []


def test_removal_never_follows_a_link_a_lab_planted(tmp_path):
    journal = Journal(tmp_path / "home")
    root, elsewhere = tmp_path / "ws", tmp_path / "elsewhere"
    (root / "a").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / ".tmp-x").write_text("not the workspace's")

    def make_then_swap():
        (root / "a" / ".tmp-x").write_text("half")
        (root / "a").rename(root / "moved")
        (root / "a").symlink_to(elsewhere)  # the folder is now a link to somewhere else

    die_holding(journal, root, ("a",), ".tmp-x", make_then_swap)
    journal.recover()
    assert (elsewhere / ".tmp-x").read_text() == "not the workspace's"
    assert list(journal.dir.iterdir()) == []  # the entry is gone all the same


def test_remove_on_exit_and_the_workspace_convention(tmp_path):
    journal = Journal(tmp_path / "home")
    folder = tmp_path / "envs" / ".run-1"
    with journal.hold_path(folder):
        (folder / "log").parent.mkdir(parents=True)
        (folder / "log").write_text("x")
    assert not folder.exists()
    home = tmp_path / "home"
    assert for_tree(home / "workspaces" / "users" / "ada").dir == home / "inflight"
    assert for_tree(home / "workspaces" / "teams" / "astro").dir == home / "inflight"
    assert for_tree(tmp_path / "volumes" / "planck") is None
