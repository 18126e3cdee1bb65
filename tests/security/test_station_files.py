"""Hostile tests for every file operation of the edge demo (issue 18): the station's writes, the retention's
deletions and copies, the event recorder's parsing. Links planted in the station folder or in the folders
windows are kept from must never make us write, delete or read anything outside."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from datalabs.demo import retention
from datalabs.demo import station as st
from datalabs.errors import Invalid
from datalabs.pipelines.registry import system_pipelines_dir
from tests.cli.test_cli import run as cli

START = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)
CHUNK = st.chunk_name("DEMO01", START, st.HIFI)
OLD = st.chunk_name("DEMO01", START - timedelta(hours=5), st.HIFI)


@pytest.fixture
def outside(tmp_path):
    """A folder outside the station with files named like the station's, which nothing may touch."""
    folder = tmp_path / "outside"
    folder.mkdir()
    for name in (CHUNK, OLD, "DEMO01_20261204T01002000Z_event.nc", "secret"):
        (folder / name).write_text("not yours")
    return folder


def _untouched(folder):
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [CHUNK, OLD, "DEMO01_20261204T01002000Z_event.nc", "secret"]
    )
    assert all(p.read_text() == "not yours" for p in folder.iterdir())


def test_a_link_in_hifi_named_as_a_chunk_is_never_deleted_through(tmp_path, outside):
    out = tmp_path / "station"
    st.run(out, start=START, minutes=2, events=0, seed=1)
    os.symlink(outside / OLD, out / st.HIFI / OLD)  # the oldest 'chunk' of all
    os.symlink(outside, out / st.HIFI / "DEMO01_20261204T0000_hifi.nc")  # a link to the folder itself
    report = retention.age_out(out, retention=0)
    assert len(report.deleted) == 2 and len(report.skipped) == 2
    assert all("a link is never followed" in s for s in report.skipped)
    assert os.path.islink(out / st.HIFI / OLD)
    _untouched(outside)


def test_a_hifi_folder_swapped_for_a_link_is_refused(tmp_path, outside):
    out = tmp_path / "station"
    st.run(out, start=START, minutes=2, events=0, seed=1)
    for p in (out / st.HIFI).iterdir():
        p.unlink()
    (out / st.HIFI).rmdir()
    os.symlink(outside, out / st.HIFI)
    with pytest.raises(Invalid, match="not a folder"):
        retention.age_out(out, retention=0)
    proc = cli(
        tmp_path / "home", "demo", "station", "--out", str(out), "--age-out", "--retention", "0", check=False
    )
    assert proc.returncode == 1 and "'hifi' in the station folder is not a folder" in proc.stderr
    # nor does the station write through it
    with pytest.raises(Invalid, match="not a folder"):
        st.run(out, start=START, minutes=1, events=0, seed=1)
    _untouched(outside)


def test_the_station_replaces_a_planted_link_instead_of_writing_through_it(tmp_path, outside):
    out = tmp_path / "station"
    (out / st.LOWFI).mkdir(parents=True)
    (out / st.HIFI).mkdir()
    os.symlink(outside / "secret", out / st.LOWFI / st.chunk_name("DEMO01", START, st.LOWFI))
    os.symlink(outside / CHUNK, out / st.HIFI / CHUNK)
    st.run(out, start=START, minutes=1, events=0, seed=1)
    assert not os.path.islink(out / st.LOWFI / st.chunk_name("DEMO01", START, st.LOWFI))
    assert not os.path.islink(out / st.HIFI / CHUNK)
    _untouched(outside)


def test_a_kept_folder_that_is_a_link_is_refused(tmp_path, outside):
    out = tmp_path / "station"
    (out / st.LOWFI).mkdir(parents=True)
    os.symlink(outside, out / st.KEPT)
    source = tmp_path / "runs"
    source.mkdir()
    (source / "DEMO01_20261204T01003000Z_event.nc").write_text("window")
    with pytest.raises(Invalid, match="'kept' in the station folder is not a folder"):
        retention.keep(out, [source])
    with pytest.raises(Invalid):
        st.run(out, start=START, minutes=1, events=0, seed=1)
    _untouched(outside)


def test_keeping_copies_only_regular_windows_and_follows_no_link(tmp_path, outside, monkeypatch):
    out = tmp_path / "station"
    st.run(out, start=START, minutes=1, events=0, seed=1)
    runs = tmp_path / "runs"
    (runs / "run-1").mkdir(parents=True)
    window = retention.NETCDF4_MAGIC + b"window"
    (runs / "run-1" / "DEMO01_20261204T01003000Z_event.nc").write_bytes(window)
    (runs / "run-1" / "events.json").write_text("{}")  # not a window: left
    os.symlink(outside / "secret", runs / "run-1" / "DEMO01_20261204T01004000Z_event.nc")
    os.symlink(outside, runs / "run-2")  # a folder link: not walked into
    os.mkfifo(runs / "run-1" / "DEMO01_20261204T01005000Z_event.nc")  # opening must not hang
    (runs / "run-1" / "DEMO01_20261204T01006000Z_event.nc").write_bytes(retention.NETCDF4_MAGIC + b"x" * 100)
    (runs / "run-1" / "DEMO01_20261204T01007000Z_event.nc").write_text("a page of text, not a window")
    os.link(outside / "secret", runs / "run-1" / "DEMO01_20261204T01008000Z_event.nc")  # another's file
    monkeypatch.setattr(retention, "MAX_KEPT_BYTES", 50)
    report = retention.keep(out, [runs])
    assert report.kept == ["DEMO01_20261204T01003000Z_event.nc"]
    assert len(report.skipped) == 5  # the file link, the FIFO, the oversized, the text, the hard link
    assert [p.name for p in (out / st.KEPT).iterdir()] == report.kept
    assert (out / st.KEPT / report.kept[0]).read_bytes() == window
    assert retention.keep(out, [runs]).kept == []  # already kept
    _untouched(outside)


def test_age_out_deletes_nothing_but_chunks_and_only_in_hifi(tmp_path, outside):
    out = tmp_path / "station"
    st.run(out, start=START, minutes=2, events=0, seed=1)
    keepers = [
        out / st.HIFI / "notes.txt",
        out / st.HIFI / f"{CHUNK}.bak",
        out / st.HIFI / ".DEMO01_20261204T0000_hifi.nc.abc.tmp",  # another writer's temporary
        out / st.KEPT / OLD,  # named as a chunk, but in kept/
        out / st.LOWFI / OLD,
    ]
    for p in keepers:
        p.write_text("stay")
    (out / st.HIFI / "sub").mkdir()
    (out / st.HIFI / "sub" / OLD).write_text("stay")
    report = retention.age_out(out, retention=0)
    assert len(report.deleted) == 2
    assert all(p.read_text() == "stay" for p in keepers) and (out / st.HIFI / "sub" / OLD).exists()
    _untouched(outside)


RECORDER = system_pipelines_dir() / "event-recorder" / "event_recorder.py"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"time,power_dbm\n" + b"2026-12-04T01:00:00Z,1\n" * 400_000, "larger than"),
        (b"time,power_dbm\n2026-12-04T01:00:00Z,nan\n", "not numbers"),
        (b"time,power_dbm\n2026-12-04T01:00:00Z,1e999\n", "not numbers"),
        (b"# station: ../../etc\ntime,power_dbm\n", "no power samples"),
        (b"\x89HDF\r\n\x1a\n\x00\x00", "line 1"),
        (b'"unterminated\n' * 3 + b"a\0b", "line"),
    ],
    # Named: the default id of the first case is its 9.6 MB of bytes, which pytest also puts in the
    # environment (PYTEST_CURRENT_TEST), past what exec accepts (E2BIG when the test starts the recorder).
    ids=["too-large", "nan", "infinite", "no-samples", "hdf5", "unterminated-quote-and-nul"],
)
def test_the_recorder_refuses_bad_low_fidelity_chunks_with_the_reason(tmp_path, content, message):
    (tmp_path / "chunk.csv").write_bytes(content)
    proc = subprocess.run(  # noqa: S603 (our script)
        [sys.executable, str(RECORDER), "--lowfi", str(tmp_path / "chunk.csv")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunk.csv"]  # nothing written


def test_a_hostile_station_name_cannot_name_a_file_elsewhere(tmp_path):
    station = tmp_path / "station"
    st.run(station, start=START, minutes=1, events=0, seed=1)
    rows = "".join(f"2026-12-04T01:00:{s:02d}Z,{-90 + (12 if s == 30 else 0)}\n" for s in range(60))
    (tmp_path / "X_lowfi.csv").write_text("# station: ../../escape\ntime,power_dbm\n" + rows)
    (tmp_path / "run").mkdir()
    argv = [sys.executable, str(RECORDER), "--lowfi", str(tmp_path / "X_lowfi.csv")]
    proc = subprocess.run(  # noqa: S603 (our script)
        [*argv, "--hifi", str(station / st.HIFI / CHUNK)],
        cwd=tmp_path / "run", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "X_20261204T01003000Z_event.nc",
        "events.json",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X_lowfi.csv", "run", "station"]
