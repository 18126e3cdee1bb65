"""The `Harvester` contract (assets/base.py), held by every harvester registered in `datalabs.harvesters`,
core or not: a name and a priority; `matches` answers from the name alone; `harvest` gives a record of
the collection and path it was asked for, or raises `HarvestError` with a reason - for a missing file and
for garbage under a name it matches too, never another exception. Then the station-event harvester (issue
18) on a window the event recorder really kept."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime

import pytest

from datalabs.assets import harvesters
from datalabs.assets.base import AssetRecord, HarvestError
from datalabs.demo import station as st
from datalabs.pipelines.registry import system_pipelines_dir
from tests.assets import samples

ALL = harvesters.available()
NAMES = [
    "ABMF00GLP_R_20240010000_01D_30S_MO.crx.gz",
    "abmf0010.24o",
    "image.fits",
    "data.nc",
    "DEMO01_20261204T01054400Z_event.nc",
    "naif0012.tls",
    "de440s.bsp",
    "README",
]
GARBAGE = [
    b"",
    b"\x00" * 64,
    b"SIMPLE  = garbage",
    b"\x89HDF\r\n\x1a\n" + b"\xff" * 100,
    "é ✓\n".encode() * 50,
]


def test_harvesters_are_named_and_ordered_by_priority():
    names = [h.name for h in ALL]
    assert len(names) == len(set(names)) and all(isinstance(n, str) and n for n in names)
    assert [h.priority for h in ALL] == sorted((h.priority for h in ALL), reverse=True)
    assert "station-event" in names and names.index("station-event") < names.index("netcdf")


@pytest.mark.parametrize("harvester", ALL, ids=lambda h: h.name)
def test_matches_answers_from_the_name_and_missing_files_are_harvest_errors(harvester, tmp_path):
    matched = [n for n in NAMES if harvester.matches(tmp_path / n)]
    assert matched, f"{harvester.name} matches none of the sample names: add one it reads"
    for name in NAMES:
        assert harvester.matches(tmp_path / name) in (True, False)  # no file needed: none exists
    for name in matched:
        with pytest.raises(HarvestError) as info:
            harvester.harvest(tmp_path / name, "c", name)
        assert info.value.reason


@pytest.mark.parametrize("harvester", ALL, ids=lambda h: h.name)
@pytest.mark.parametrize("content", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_gives_a_record_of_the_asked_path_or_a_harvest_error(harvester, tmp_path, content):
    for name in (n for n in NAMES if harvester.matches(tmp_path / n)):
        (tmp_path / "sub").mkdir(exist_ok=True)
        (tmp_path / "sub" / name).write_bytes(content)
        try:
            record = harvester.harvest(tmp_path / "sub" / name, "coll", f"sub/{name}")
        except HarvestError as e:
            assert e.reason
            continue
        assert isinstance(record, AssetRecord)
        assert (record.collection, record.path, record.size) == ("coll", f"sub/{name}", len(content))


def _recorder():
    path = system_pipelines_dir() / "event-recorder" / "event_recorder.py"
    spec = importlib.util.spec_from_file_location("event_recorder", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_kept_window_is_dated_by_its_event(tmp_path, monkeypatch):
    start = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)
    injected = st.run(tmp_path / "station", start=start, minutes=2, events=1, seed=3)
    lowfi = (
        tmp_path
        / "station"
        / st.LOWFI
        / st.chunk_name("DEMO01", injected[0].time.replace(second=0, microsecond=0), st.LOWFI)
    )
    hifi = sorted(str(p) for p in (tmp_path / "station" / st.HIFI).iterdir())
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    _recorder().main(["--lowfi", str(lowfi), "--hifi", *hifi, "--margin", "4"])
    (kept,) = (tmp_path / "run").glob("*_event.nc")
    record = harvesters.harvest(kept, "station-events", kept.name, ALL)
    assert abs((record.start - injected[0].time).total_seconds()) <= 1.0 and record.end == record.start
    assert record.facets["station"] == ("DEMO01",) and record.facets["resource_type"] == ("event",)
    assert record.properties["peak_power_dbm"] > st.BASE_DBM + 5
    window = datetime.fromisoformat(record.properties["window_end"]) - datetime.fromisoformat(
        record.properties["window_start"]
    )
    assert window.total_seconds() == 8
    # The same name without the recorder's attributes is read as plain NetCDF, dated by its coverage.
    plain = samples.write_netcdf(tmp_path / "OTHER1_20240101T00000000Z_event.nc")
    other = harvesters.harvest(plain, "c", plain.name, ALL)
    assert other.facets.get("resource_type") != ("event",) and "product" not in other.properties
