"""`datalabs demo station`: the synthetic station of the edge demo (issue 18) - what it writes, that the
seed makes it repeatable, that a watcher never sees half a file, live mode, the retention, bad options."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from datalabs.demo import retention
from datalabs.demo import station as st
from datalabs.errors import Invalid
from tests.cli.test_cli import run as cli

START = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)


def _files(folder):
    """Each file's content: the CSV's bytes, the NetCDF's samples (HDF5 bytes differ from write to write)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.suffix == ".nc":
            with netCDF4.Dataset(p) as ds:
                out[p.relative_to(folder).as_posix()] = ds.variables["amplitude"][:].tobytes()
        elif p.is_file():
            out[p.relative_to(folder).as_posix()] = p.read_bytes()
    return out


def test_the_cli_writes_the_stream_with_the_events_and_says_when_they_are(tmp_path):
    out = tmp_path / "station"
    args = ["demo", "station", "--out", str(out), "--minutes", "5", "--events", "3", "--seed", "7"]
    shown = cli(tmp_path / "home", *args, "--speed", "0", "--start", "2026-12-04T01:00:00Z").stdout
    assert "5 minute(s) written" in shown and shown.count(" dB") == 3
    lowfi, hifi = sorted((out / st.LOWFI).iterdir()), sorted((out / st.HIFI).iterdir())
    assert [p.name for p in lowfi][0] == "DEMO01_20261204T0100_lowfi.csv" and len(lowfi) == len(hifi) == 5
    assert list((out / st.KEPT).iterdir()) == []
    assert not [p for p in out.rglob(".*")]  # no temporary left behind
    rows = [r for r in csv.reader(lowfi[0].read_text().splitlines()) if r and not r[0].startswith("#")]
    assert rows[0] == ["time", "power_dbm"] and len(rows) == 61 and rows[1][0] == "2026-12-04T01:00:00Z"
    with netCDF4.Dataset(hifi[0]) as ds:
        assert ds.variables["amplitude"].shape == (6000,) and ds.sample_rate_hz == 100
        samples = np.asarray(ds.variables["amplitude"][:], dtype=float)
    power = 10 * np.log10((samples**2).reshape(60, 100).mean(axis=1))
    assert np.allclose(
        power, [float(r[1]) for r in rows[1:]], atol=0.001
    )  # the cheap stream is the same signal
    assert hifi[0].stat().st_size > 40 * lowfi[0].stat().st_size
    again = tmp_path / "again"
    cli(
        tmp_path / "home", *args[:3], str(again), *args[4:], "--speed", "0", "--start", "2026-12-04T01:00:00Z"
    )
    assert _files(again) == _files(out)  # the seed decides everything


def test_events_fall_in_distinct_minutes_away_from_the_edges_and_show_in_the_power():
    events = st.plan_events(seed=5, minutes=10, count=4, start=START)
    assert len({e.minute for e in events}) == 4
    for e in events:
        into = (e.time - (START + timedelta(minutes=e.minute))).total_seconds()
        assert 15 <= into <= 45
        power, _ = st.simulate(5, START, e.minute, events)
        assert power[int(round(into))] > np.median(power) + 5
    assert st.plan_events(seed=5, minutes=10, count=4, start=START) == events
    assert st.plan_events(seed=6, minutes=10, count=4, start=START) != events


def test_live_mode_goes_on_with_a_new_draw_each_period_and_ages_out_as_it_goes(tmp_path):
    seen, waits = [], []

    def chunk(c):
        seen.append(c)
        retention.age_out(tmp_path / "live", retention=120)
        if len(seen) == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        st.run(
            tmp_path / "live", start=START, minutes=3, events=1, seed=1, speed=60, live=True,
            on_chunk=chunk, sleep=waits.append,
        )  # fmt: skip
    assert [c.minute for c in seen] == list(range(7)) and len(waits) == 6
    assert all(0 < w <= 1.0 for w in waits)  # speed 60: one simulated minute a second
    assert len(list((tmp_path / "live" / st.LOWFI).iterdir())) == 7
    assert sorted(p.name for p in (tmp_path / "live" / st.HIFI).iterdir()) == [
        st.chunk_name("DEMO01", START + timedelta(minutes=m), st.HIFI) for m in (5, 6)
    ]
    cycles = [st.plan_events(1, 3, 1, START, cycle) for cycle in range(3)]
    assert [e.minute // 3 for plan in cycles for e in plan] == [0, 1, 2]


def test_age_out_keeps_what_is_within_retention_and_every_kept_window(tmp_path):
    out = tmp_path / "station"
    st.run(out, start=START, minutes=6, events=0, seed=1)
    (out / st.KEPT / "DEMO01_20261204T01002000Z_event.nc").write_bytes(b"kept")  # older than everything
    report = retention.age_out(out, retention=180)
    assert report.clock == START + timedelta(minutes=6)
    assert report.deleted == [
        st.chunk_name("DEMO01", START + timedelta(minutes=m), st.HIFI) for m in range(3)
    ]
    assert len(report.remaining) == 3 and len(list((out / st.LOWFI).iterdir())) == 6
    assert (out / st.KEPT / "DEMO01_20261204T01002000Z_event.nc").read_bytes() == b"kept"
    assert retention.age_out(out, retention=180).deleted == []  # nothing more to do


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "{file}"], "is not a folder"),
        (["--out", "{file}/below"], "cannot be made"),
        (["--out", "{missing}", "--station", "bad name"], "--station"),
        (["--out", "{ok}", "--minutes", "0"], "--minutes must be at least 1"),
        (["--out", "{missing}", "--events", "4", "--minutes", "3"], "4 events do not fit in 3 minutes"),
        (["--out", "{ok}", "--start", "yesterday"], "expected an ISO 8601 time"),
        (["--out", "{missing}", "--age-out"], "does not exist"),
        (["--out", "{ok}", "--age-out", "--retention", "-1"], "--retention must not be negative"),
        (["--out", "{ok}", "--age-out", "--keep-from", "{file}"], "--keep-from"),
    ],
)
def test_bad_options_are_refused_with_the_reason(tmp_path, args, message):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "ok").mkdir()
    fill = {"file": tmp_path / "a-file", "ok": tmp_path / "ok", "missing": tmp_path / "missing"}
    given = [a.format(**fill) for a in args]
    proc = cli(tmp_path / "home", "demo", "station", *given, "--speed", "0", check=False)
    assert proc.returncode == 1 and message in proc.stderr, proc.stdout + proc.stderr
    assert not (tmp_path / "missing").exists() and (tmp_path / "a-file").read_text() == "x"


def test_the_station_api_refuses_bad_values_before_writing():
    with pytest.raises(Invalid):
        st.run(Path("/nonexistent-station"), start=START, station="x")
    assert not Path("/nonexistent-station").exists()
    assert st.chunk_time("DEMO01_20261204T0100_hifi.nc") == START
    for name in ("DEMO01_20261204T0100_hifi.nc.tmp", ".DEMO01_20261204T0100_hifi.nc.1.tmp", "x_hifi.nc"):
        assert st.chunk_time(name) is None
