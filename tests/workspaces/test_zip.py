"""Folders as streamed zip archives: produced piece by piece, readable by the standard library, with
empty folders kept and links and special files left out."""

import io
import os
import zipfile

from datalabs.workspaces.tree import CHUNK, Tree


def test_folder_zip_streams_and_reads_back(tmp_path):
    root = tmp_path / "ws"
    (root / "data" / "empty").mkdir(parents=True)
    big = os.urandom(3 * CHUNK + 17)  # several chunks: the archive must come out in pieces
    (root / "data" / "big.bin").write_bytes(big)
    (root / "data" / "notes.txt").write_text("héllo")
    (root / "data" / "link").symlink_to("/etc/passwd")
    os.mkfifo(root / "data" / "fifo")

    pieces = list(Tree(root).zip(("data",)))

    assert sum(1 for p in pieces if p) > 3
    with zipfile.ZipFile(io.BytesIO(b"".join(pieces))) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == ["big.bin", "empty/", "notes.txt"]
        assert archive.read("big.bin") == big
        assert archive.read("notes.txt").decode() == "héllo"
