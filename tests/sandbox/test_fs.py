"""sandbox/fs.py: walks that never follow, confining a tool's output folder, ownership without following,
and private snapshots of user files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from datalabs.sandbox import fs


def tree(root: Path) -> None:
    (root / "out" / "sub").mkdir(parents=True)
    (root / "in").mkdir()
    (root / "elsewhere").mkdir()
    (root / "in" / "input.txt").write_text("input")
    (root / "elsewhere" / "secret.txt").write_text("secret")
    (root / "out" / "ok.txt").write_text("ok")


def test_walk_never_descends_through_a_link(tmp_path):
    tree(tmp_path)
    (tmp_path / "out" / "to-elsewhere").symlink_to(tmp_path / "elsewhere")
    os.mkfifo(tmp_path / "out" / "pipe")
    top = os.open(tmp_path / "out", fs.DIR_FLAGS)
    try:
        seen = {folder: (sorted(dirs), sorted(others)) for folder, dirs, others, _ in fs.walk(top)}
    finally:
        os.close(top)
    assert seen == {".": (["sub"], ["ok.txt", "pipe", "to-elsewhere"]), "sub": ([], [])}


def test_confine_removes_what_leaves_the_folder_and_keeps_the_rest(tmp_path):
    tree(tmp_path)
    out = tmp_path / "out"
    (out / "shadow").symlink_to("/etc/shadow")
    (out / "secret").symlink_to(tmp_path / "elsewhere" / "secret.txt")
    (out / "input").symlink_to(tmp_path / "in" / "input.txt")
    (out / "inside").symlink_to("ok.txt")
    (out / "sub" / "up").symlink_to("..")  # a folder link: loops for any walker
    (out / "climb").symlink_to("sub/up/..")  # lexically inside, really outside
    os.link(out / "ok.txt", out / "ok-again.txt")  # two names, both inside: fine
    os.link(tmp_path / "elsewhere" / "secret.txt", out / "hard.txt")  # a name outside: not fine
    os.mkfifo(out / "pipe")
    said: list[str] = []
    removed = fs.confine(out, fs.Allowed.of([str(tmp_path / "in" / "input.txt")]), said.append)
    assert sorted(removed) == ["climb", "hard.txt", "pipe", "secret", "shadow", "sub/up"]
    assert len(said) == 6 and all("removed" in s for s in said)
    assert sorted(p.name for p in out.iterdir()) == ["input", "inside", "ok-again.txt", "ok.txt", "sub"]
    assert (out / "input").read_text() == "input"


def test_confine_allows_links_into_input_folders_only_beneath_them(tmp_path):
    tree(tmp_path)
    out = tmp_path / "out"
    (out / "data").symlink_to(tmp_path / "in")
    (out / "above").symlink_to(f"{tmp_path / 'in'}/../elsewhere/secret.txt")
    fs.confine(out, fs.Allowed.of([str(tmp_path / "in")]))
    assert (out / "data").is_symlink() and not (out / "above").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_chown_and_share_never_touch_a_links_target(tmp_path):
    tree(tmp_path)
    target = tmp_path / "elsewhere" / "secret.txt"
    (tmp_path / "out" / "link").symlink_to(target)
    fs.chown_tree(tmp_path / "out", 1_000_000_001, 1_000_000_001)
    assert (tmp_path / "out" / "ok.txt").stat().st_uid == 1_000_000_001
    assert (tmp_path / "out" / "link").lstat().st_uid == 1_000_000_001
    assert target.stat().st_uid == 0
    fs.share_tree(tmp_path / "out", 1_500_000_002)
    ok = (tmp_path / "out" / "ok.txt").stat()
    assert ok.st_gid == 1_500_000_002 and ok.st_mode & 0o060 == 0o060
    assert (tmp_path / "out" / "sub").stat().st_mode & stat.S_ISGID
    assert target.stat().st_gid == 0 and target.stat().st_mode & 0o020 == 0


def test_a_snapshot_is_the_checked_file_whatever_happens_to_its_name(tmp_path):
    tree(tmp_path)
    src = os.open(tmp_path / "in" / "input.txt", os.O_RDONLY)
    (tmp_path / "stage").mkdir()
    stage = os.open(tmp_path / "stage", fs.DIR_FLAGS)
    try:
        fs.snapshot_file(src, stage, "input.txt")
    finally:
        os.close(src)
        os.close(stage)
    (tmp_path / "in" / "input.txt").unlink()
    (tmp_path / "in" / "input.txt").symlink_to(tmp_path / "elsewhere" / "secret.txt")
    assert (tmp_path / "stage" / "input.txt").read_text() == "input"


def test_snapshot_tree_leaves_links_and_special_files_out(tmp_path):
    tree(tmp_path)
    (tmp_path / "in" / "deep").mkdir()
    (tmp_path / "in" / "deep" / "x.txt").write_text("x")
    (tmp_path / "in" / "link").symlink_to(tmp_path / "elsewhere")
    os.mkfifo(tmp_path / "in" / "pipe")
    (tmp_path / "copy").mkdir()
    src, dst = os.open(tmp_path / "in", fs.DIR_FLAGS), os.open(tmp_path / "copy", fs.DIR_FLAGS)
    try:
        fs.snapshot_tree(src, dst)
    finally:
        os.close(src)
        os.close(dst)
    found = sorted(str(p.relative_to(tmp_path / "copy")) for p in (tmp_path / "copy").rglob("*"))
    assert found == ["deep", "deep/x.txt", "input.txt"]


def test_openat2_refuses_to_leave_its_folder(tmp_path):
    tree(tmp_path)
    (tmp_path / "out" / "up").symlink_to("..")
    top = os.open(tmp_path / "out", fs.DIR_FLAGS)
    try:
        assert fs.resolves_beneath(top, "ok.txt")
        assert not fs.resolves_beneath(top, "up/elsewhere/secret.txt")
        assert not fs.resolves_beneath(top, "../elsewhere/secret.txt")
        with pytest.raises(OSError):
            fs.openat2(top, "up/in", fs.O_PATH, fs.RESOLVE_BENEATH)
    finally:
        os.close(top)
