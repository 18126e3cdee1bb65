"""Safe paths with real files on disk: traversal, links out, special files, odd names never escape."""

from __future__ import annotations

import os

import pytest

from datalabs.errors import DatalabsError, Forbidden, Invalid, NotFound
from datalabs.workspaces.paths import parts_of
from datalabs.workspaces.tree import Tree


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "ws"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_text("inside")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.txt").write_text("outside")
    os.symlink(secret, root / "out")  # a link planted by a lab, pointing out
    os.symlink(secret / "key.txt", root / "key-link")
    os.symlink("sub", root / "in")  # even links pointing inside are not followed
    os.mkfifo(root / "fifo")
    return Tree(root)


@pytest.mark.parametrize(
    "path",
    [
        "..",
        "../secret",
        "sub/../../secret",
        "./sub",
        "/etc/passwd",
        "a\x00b",
        "sub/\x01x",
        "x" * 256,
        "a/" * 2100,
    ],
)
def test_bad_paths_are_refused(path):
    with pytest.raises(Invalid):
        parts_of(path)


def test_names_with_the_temporary_prefix_are_ordinary_names():
    # A file a lab made with our temporaries' prefix must stay deletable (issue 13, finding 8).
    assert parts_of("sub/.datalabs-upload-123") == ("sub", ".datalabs-upload-123")


def test_double_encoded_forms_are_plain_names():
    # The web server decodes once; what is left is a literal name that is never decoded again.
    assert parts_of("%2e%2e/x") == ("%2e%2e", "x")
    assert parts_of("sub//a.txt/") == ("sub", "a.txt")


@pytest.mark.parametrize("path", ["out/key.txt", "out", "in/a.txt", "key-link"])
def test_links_are_never_followed(tree, path):
    with pytest.raises((Forbidden, Invalid)) as refused:
        fd, _ = tree.open(parts_of(path))
        os.close(fd)
    assert refused.value.status in (403, 422)
    with pytest.raises(DatalabsError):
        tree.listdir(parts_of(path))


def test_writes_through_links_are_refused(tree, tmp_path):
    with pytest.raises(Forbidden):
        tree.mkdir(("out", "new"))
    with pytest.raises(Forbidden):
        tree.copy(("sub",), tree, ("out", "copied"))
    assert sorted(os.listdir(tmp_path / "secret")) == ["key.txt"]
    tree.remove(("out",))  # removing the link removes the link only
    assert (tmp_path / "secret" / "key.txt").read_text() == "outside"


def test_special_files_are_listed_but_never_opened(tree):
    kinds = {e.name: e.type for e in tree.listdir(()).entries}
    assert kinds == {"sub": "dir", "in": "link", "out": "link", "key-link": "link", "fifo": "other"}
    with pytest.raises(Forbidden, match="not a regular file"):
        tree.open(("fifo",))


def test_unicode_and_long_names(tree):
    name = "données-観測-🚀.fits"
    tree.mkdir(("ünï",))
    tree.copy(("sub", "a.txt"), tree, ("ünï", name))
    assert [e.name for e in tree.listdir(("ünï",)).entries] == [name]
    assert tree.search((), "観測")[0].path == f"ünï/{name}"
    longest = "é" * 127  # 254 bytes: allowed
    tree.mkdir((longest,))
    with pytest.raises(Invalid):
        parts_of("é" * 128)


def test_missing_and_wrong_kinds(tree):
    with pytest.raises(NotFound):
        tree.stat(("nope",))
    with pytest.raises(Invalid, match="not a folder"):
        tree.listdir(("sub", "a.txt"))
    with pytest.raises(Invalid):
        tree.remove(())
    with pytest.raises(Invalid, match="inside itself"):
        tree.move(("sub",), tree, ("sub", "deeper"))
