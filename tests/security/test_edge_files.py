"""The edge demo's file operations (demo/edge.py, demo/retention.py): what a recorder run hands back is put
into the station's kept/ folder only as a station-event NetCDF-4 file under its own name, never through a
link; a high-fidelity chunk ages out only once the recorder runs that may read it have ended."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from datalabs.demo import edge as ed
from datalabs.demo import retention as ret
from datalabs.demo import station as st

START = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)
WINDOW = "DEMO01_20261204T01002512Z_event.nc"


@pytest.fixture
def kept(tmp_path):
    (tmp_path / "kept").mkdir()
    fd = os.open(tmp_path / "kept", os.O_RDONLY | os.O_DIRECTORY)
    yield tmp_path / "kept", fd
    os.close(fd)


def test_a_window_is_taken_under_its_own_name_only(kept, tmp_path):
    folder, fd = kept
    fetched = []

    def fetch(data: bytes):
        return lambda: fetched.append(1) or data

    good = ret.NETCDF4_MAGIC + b"rest"
    assert ed.take_window(fd, WINDOW, fetch(good)) == ""
    assert (folder / WINDOW).read_bytes() == good
    # Names that are not a window's (a path, a hidden name, another file) are refused before any download.
    for name in ("../x_event.nc", "..", f"sub/{WINDOW}", f".{WINDOW}", "DEMO01_hifi.nc", "notes.txt", ""):
        assert "name" in ed.take_window(fd, name, fetch(good)), name
    assert len(fetched) == 1
    # Not NetCDF-4, or too large: nothing written.
    other = "DEMO01_20261204T01003000Z_event.nc"
    assert "NetCDF-4" in ed.take_window(fd, other, fetch(b"CDF\x01 classic"))
    big = ret.NETCDF4_MAGIC + b"\0" * ret.MAX_KEPT_BYTES
    assert "NetCDF-4" in ed.take_window(fd, other, fetch(big))
    assert sorted(p.name for p in folder.iterdir()) == [WINDOW]
    # A link planted under a window's name is replaced, never written through.
    target = tmp_path / "outside.txt"
    target.write_text("keep me")
    (folder / other).symlink_to(target)
    assert ed.take_window(fd, other, fetch(good)) == ""
    assert not (folder / other).is_symlink() and (folder / other).read_bytes() == good
    assert target.read_text() == "keep me"


def _station(tmp_path, minutes: int):
    out = tmp_path / "station"
    st.run(out, start=START, minutes=minutes, events=0, seed=1)
    return out


def _lowfi(minute: int) -> str:
    return st.chunk_name("DEMO01", START + timedelta(minutes=minute), st.LOWFI)


def test_a_chunk_ages_out_only_once_the_runs_that_may_read_it_have_ended(tmp_path):
    out = _station(tmp_path, 4)
    edge = ed.Edge("DEMO01", out, "station-DEMO01", 1)
    follower = ed.Follower(None, edge, retention=0)
    # Runs of minutes 0 and 1 ended: chunk 0 may go (its neighbour 1 ended); chunk 1 waits for 2's run.
    report = ret.age_out(out, 0, may_go=follower._may_go({_lowfi(0), _lowfi(1)}, final=False))
    assert [n[7:20] for n in report.deleted] == ["20261204T0100"]
    assert len(report.waiting) == 3 and report.remaining == []
    # Every run ended but the station still writes: the newest chunk waits for the next minute's run.
    ended = {_lowfi(m) for m in range(4)}
    report = ret.age_out(out, 0, may_go=follower._may_go(ended, final=False))
    assert [n[7:20] for n in report.deleted] == ["20261204T0101", "20261204T0102"]
    assert [n[7:20] for n in report.waiting] == ["20261204T0103"]
    # The station has stopped: the last chunk goes too; the cheap stream stays.
    report = ret.age_out(out, 0, may_go=follower._may_go(ended, final=True))
    assert [n[7:20] for n in report.deleted] == ["20261204T0103"]
    assert list((out / st.HIFI).iterdir()) == [] and len(list((out / st.LOWFI).iterdir())) == 4


def test_a_chunk_whose_run_never_ended_stays_and_retention_still_applies(tmp_path):
    out = _station(tmp_path, 3)
    edge = ed.Edge("DEMO01", out, "station-DEMO01", 1)
    follower = ed.Follower(None, edge, retention=0)
    report = ret.age_out(out, 0, may_go=follower._may_go({_lowfi(0), _lowfi(2)}, final=True))
    assert report.deleted == [] and len(report.waiting) == 3  # minute 1's run is every chunk's neighbour
    # Within the retention (the newest 120 s of the station's clock): kept whatever the runs.
    everything = {_lowfi(m) for m in range(3)}
    report = ret.age_out(out, 120, may_go=follower._may_go(everything, final=True))
    assert len(report.deleted) == 1 and len(report.remaining) == 2
    with pytest.raises(Exception, match="retention"):
        ed.Follower(None, edge, retention=-1)


def test_demo_edge_refuses_bad_options_before_touching_anything(tmp_path):
    from tests.cli.test_cli import run as cli

    out = tmp_path / "station"
    nowhere = {"DATALABS_API_URL": "http://127.0.0.1:9", "DATALABS_TOKEN": "dl_x",
               "DATALABS_CREDENTIALS": str(tmp_path / "none.json")}  # fmt: skip
    for args, said in (
        (["--station", "demo-1"], "--station"),
        (["--station", "../X"], "--station"),
        (["--margin", "0"], "--margin"),
        (["--margin", "61"], "--margin"),
    ):
        bad = cli(tmp_path / "home", "demo", "edge", "--out", str(out), *args, env=nowhere, check=False)
        assert bad.returncode == 1 and said in bad.stderr, bad.stderr
        assert not out.exists()
    # A platform that does not answer: said, nothing registered, nothing written but the empty folders.
    gone = cli(tmp_path / "home", "demo", "edge", "--out", str(out), env=nowhere, check=False)
    assert gone.returncode == 1 and "cannot reach" in gone.stderr, gone.stderr
    assert sorted(p.name for p in out.iterdir()) == [st.HIFI, st.KEPT, st.LOWFI]
    assert not any(list((out / sub).iterdir()) for sub in (st.HIFI, st.KEPT, st.LOWFI))
    # Not configured at all.
    bare = {"DATALABS_API_URL": "", "DATALABS_CREDENTIALS": str(tmp_path / "none.json")}
    unset = cli(tmp_path / "home", "demo", "edge", "--out", str(out), env=bare, check=False)
    assert unset.returncode == 1 and "no platform configured" in unset.stderr, unset.stderr
