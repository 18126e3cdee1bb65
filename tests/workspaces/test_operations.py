"""workspaces/operations: mkdir, move, copy and delete on real trees, the usage count kept current, the
target's quota enforced, and hostile paths and operations refused with nothing changed."""

from __future__ import annotations

import pytest

from datalabs.errors import DatalabsError, Invalid, TooLarge
from datalabs.workspaces import operations
from datalabs.workspaces.service import Space, UsageCache
from datalabs.workspaces.tree import Tree


def space(tmp_path, name: str, quota: int = 1 << 20) -> Space:
    (tmp_path / name).mkdir()
    return Space(f"team:{name}", "team", name, "member", quota, Tree(tmp_path / name))


@pytest.fixture
def cache() -> UsageCache:
    return UsageCache(ttl=3600)  # measured once per space, then kept current by the operations


def test_mkdir_copy_move_and_remove_keep_usage_current(tmp_path, cache):
    a = space(tmp_path, "a")
    assert cache.get(a) == 0
    operations.operate(a, a, ("d", "e"), "mkdir", None, cache, parents=True)
    (a.tree.root / "d" / "f.txt").write_bytes(b"x" * 100)
    cache.forget(a)
    assert cache.get(a) == 100

    copied = operations.operate(a, a, ("d", "f.txt"), "copy", "g.txt", cache)
    assert copied.path == "g.txt" and cache.get(a) == 200
    moved = operations.operate(a, a, ("g.txt",), "move", "d/e/g.txt", cache)
    assert moved.path == "d/e/g.txt" and cache.get(a) == 200  # a rename within a space: same usage
    operations.remove(a, ("d",), cache)
    assert not (a.tree.root / "d").exists() and cache.get(a) == 0


def test_move_between_workspaces_moves_the_usage_too(tmp_path, cache):
    a, b = space(tmp_path, "a"), space(tmp_path, "b")
    (a.tree.root / "f.txt").write_bytes(b"x" * 300)
    assert (cache.get(a), cache.get(b)) == (300, 0)
    operations.operate(a, b, ("f.txt",), "move", "in/f.txt", cache)
    assert not (a.tree.root / "f.txt").exists() and (b.tree.root / "in" / "f.txt").read_bytes() == b"x" * 300
    assert (cache.get(a), cache.get(b)) == (0, 300)


def test_copy_over_the_target_quota_is_refused_and_writes_nothing(tmp_path, cache):
    a, small = space(tmp_path, "a"), space(tmp_path, "small", quota=100)
    (a.tree.root / "big.bin").write_bytes(b"x" * 500)
    with pytest.raises(TooLarge):
        operations.operate(a, small, ("big.bin",), "copy", "big.bin", cache)
    with pytest.raises(TooLarge):
        operations.operate(a, small, ("big.bin",), "move", "big.bin", cache)
    assert list(small.tree.root.iterdir()) == [] and (a.tree.root / "big.bin").exists()
    assert cache.get(small) == 0


@pytest.mark.parametrize(
    "op, to, code",
    [
        ("copy", None, "missing_target"),
        ("move", None, "missing_target"),
        ("delete", "x", "unknown_op"),  # deleting has its own function: not an `op` a caller may pick
        ("chmod", "x", "unknown_op"),
    ],
)
def test_bad_operations_are_refused_with_a_reason(tmp_path, cache, op, to, code):
    a = space(tmp_path, "a")
    (a.tree.root / "f.txt").write_text("keep")
    with pytest.raises(Invalid) as refused:
        operations.operate(a, a, ("f.txt",), op, to, cache)
    assert refused.value.code == code
    assert (a.tree.root / "f.txt").read_text() == "keep"


@pytest.mark.parametrize("to", ["../escaped.txt", "/etc/escaped.txt", "a/../../escaped.txt"])
def test_targets_outside_the_workspace_are_refused(tmp_path, cache, to):
    a = space(tmp_path, "a")
    (a.tree.root / "f.txt").write_text("keep")
    for op in ("copy", "move"):
        with pytest.raises(DatalabsError):
            operations.operate(a, a, ("f.txt",), op, to, cache)
    assert not (tmp_path / "escaped.txt").exists() and not list(tmp_path.rglob("escaped.txt"))
    assert (a.tree.root / "f.txt").read_text() == "keep"


def test_a_link_planted_in_the_workspace_is_not_followed(tmp_path, cache):
    a = space(tmp_path, "a")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (a.tree.root / "link").symlink_to(outside)
    with pytest.raises(DatalabsError):
        operations.operate(a, a, ("link", "secret.txt"), "copy", "copied.txt", cache)
    with pytest.raises(DatalabsError):
        operations.remove(a, ("link", "secret.txt"), cache)
    assert not (a.tree.root / "copied.txt").exists() and (outside / "secret.txt").read_text() == "secret"
