"""pipelines/assets.py: the data files a document names, kept with its version."""

from __future__ import annotations

import base64

import pytest

from datalabs.errors import Invalid
from datalabs.pipelines import assets


def _packed(root, name: str) -> dict:
    return {"inputs": [{"default": {"class": "File", "location": (root / name).as_uri()}}]}


def test_a_named_file_travels_with_what_its_secondary_patterns_may_name(tmp_path):
    for name in ("hello.txt", "hello.txt.2", "hello.idx", "help.txt"):
        (tmp_path / name).write_text(name)
    (tmp_path / "hello.secret").symlink_to("/etc/hostname")  # links are never read
    packed, files = assets.gather(_packed(tmp_path, "hello.txt"), tmp_path)
    assert packed["inputs"][0]["default"]["location"] == assets.PLACEHOLDER + "hello.txt"
    assert set(files) == {"hello.txt", "hello.txt.2", "hello.idx"}
    assert base64.b64decode(files["hello.txt.2"]) == b"hello.txt.2"


def test_secondary_candidates_are_bounded(tmp_path):
    (tmp_path / "data.txt").write_text("x")
    for i in range(assets.MAX_SECONDARIES + 10):
        (tmp_path / f"data.{i:03}").write_text("y")
    _, files = assets.gather(_packed(tmp_path, "data.txt"), tmp_path)
    assert len(files) == 1 + assets.MAX_SECONDARIES


def test_the_byte_budget_still_holds(tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "MAX_BYTES", 10)
    (tmp_path / "big.txt").write_text("x" * 5)
    (tmp_path / "big.txt.2").write_text("y" * 10)
    with pytest.raises(Invalid, match="exceed"):
        assets.gather(_packed(tmp_path, "big.txt"), tmp_path)
