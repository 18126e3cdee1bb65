"""Harvesters on real files (written with hatanaka, astropy, netCDF4, or shipped by hatanaka) and on
corrupt and truncated variants, which must give a HarvestError with a reason."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from datalabs.assets import harvesters
from datalabs.assets.base import HarvestError
from datalabs.assets.harvesters.rinex import RinexHarvester, ecef_to_geodetic
from tests.assets import samples

ALL = harvesters.available()


def harvest(path: Path):
    return harvesters.harvest(path, "test", path.name, ALL)


@pytest.fixture(scope="module")
def rinex(tmp_path_factory) -> dict[str, Path]:
    return samples.write_rinex(tmp_path_factory.mktemp("rinex"))


@pytest.mark.parametrize("key", ["rnx", "crx.gz", "rnx.Z", "v4"])
def test_rinex3_and_4_observation_files(rinex, key):
    record = harvest(rinex[key])
    f = record.facets
    assert f["station"] == ("ABMF00GLP",)
    assert f["constellation"] == ("GPS", "Galileo")
    assert f["satellite"] == ("E11", "G05", "G12")
    assert set(f["observation_code"]) == {"C1C", "L1C", "C2W", "L2W"}
    assert f["sampling_rate"] == ("30S",)
    assert f["instrument_type"] == ("SEPT POLARX5",)
    assert f["resource_type"] == ("observation",)
    assert record.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert record.properties["antenna"] == "TRM57971.00     NONE"  # type and radome
    assert record.properties["marker_number"] == "97103M001"
    lon, lat = record.bbox[:2]
    assert abs(lat - 16.262) < 0.01 and abs(lon + 61.528) < 0.01  # Guadeloupe


def test_formats_are_told_apart(rinex):
    assert harvest(rinex["crx.gz"]).facets["file_format"] == ("Hatanaka RINEX 3",)
    assert harvest(rinex["v4"]).facets["file_format"] == ("RINEX 4",)
    assert "gzip" in harvest(rinex["crx.gz"]).facets["tags"]


def test_navigation_and_meteo(rinex):
    nav = harvest(rinex["nav"])
    assert nav.facets["resource_type"] == ("navigation",)
    assert nav.facets["constellation"] == ("GPS",)
    met = harvest(rinex["met"])
    assert met.facets["resource_type"] == ("meteorological",)
    assert met.facets["station"] == ("ZIM200CHE",)
    assert "constellation" not in met.facets


@pytest.mark.parametrize("key", ["v2", "v2.d.Z"])
def test_rinex2_short_names(rinex, key):
    record = harvest(rinex[key])
    assert record.facets["station"] == ("KIRU00SWE",)
    assert record.facets["satellite"] == ("G05", "G12")
    assert record.facets["file_format"][0].endswith("RINEX 2")
    assert record.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert abs(record.bbox[1] - 67.857) < 0.01


@pytest.mark.parametrize("sample", ["sample.crx.gz", "sample.rnx.Z", "sample.crx"])
def test_hatanaka_package_samples(rinex, sample):
    record = harvest(rinex[f"hatanaka:{sample}"])
    assert {"GPS", "GLONASS", "SBAS"} <= set(record.facets["constellation"])
    assert "L2P" in record.facets["observation_code"]
    assert record.start == datetime(2010, 3, 5, tzinfo=UTC)


def test_rinex_corrupt_and_truncated(rinex, tmp_path):
    cases = {
        "garbage": samples.corrupt(rinex["rnx"], tmp_path / "ABMF00GLP_R_20240010000_01D_30S_MO.rnx"),
        "cut gzip": samples.truncate(rinex["crx.gz"], tmp_path / "ABMF00GLP_R_20240050000_01D_30S_MO.crx.gz"),
        "cut header": samples.truncate(
            rinex["rnx"], tmp_path / "ABMF00GLP_R_20240060000_01D_30S_MO.rnx", 0.2
        ),
        "cut .Z": samples.truncate(
            rinex["rnx.Z"], tmp_path / "ABMF00GLP_R_20240070000_01D_30S_MO.rnx.Z", 0.3
        ),
    }
    for case, path in cases.items():
        with pytest.raises(HarvestError) as err:
            RinexHarvester().harvest(path, "test", path.name)
        assert err.value.reason, case


def test_ecef_to_geodetic_of_zimmerwald():
    lat, lon, height = ecef_to_geodetic(4331297.0, 567555.6, 4633133.7)
    assert abs(lat - 46.877) < 0.001 and abs(lon - 7.465) < 0.001 and abs(height - 956) < 5


def test_fits(tmp_path):
    record = harvest(samples.write_fits(tmp_path / "jw01227-o001_nircam_f200w_i2d.fits"))
    assert record.facets["mission"] == ("JWST",)
    assert record.facets["instrument"] == ("NIRCAM",)
    assert record.facets["target"] == ("NGC 346",)
    assert record.facets["tags"] == ("filter:F200W",)
    assert record.start == datetime(2022, 7, 25, 10, 11, 12, tzinfo=UTC)
    assert (record.end - record.start).total_seconds() == pytest.approx(1288, abs=1)
    assert record.bbox is None  # a sky position is not a place on Earth: not on the explorer's map
    assert (record.properties["ra"], record.properties["dec"]) == pytest.approx((14.7704, -72.1756))
    assert record.properties["frame"] == "icrs"
    assert record.properties["observation_id"] == "jw01227"


def test_fits_corrupt_and_truncated(tmp_path):
    good = samples.write_fits(tmp_path / "good.fits")
    for bad in (
        samples.corrupt(good, tmp_path / "bad.fits"),
        samples.truncate(good, tmp_path / "cut.fits", 0.6),
    ):
        with pytest.raises(HarvestError) as err:
            harvest(bad)
        assert err.value.reason


def test_netcdf(tmp_path):
    record = harvest(samples.write_netcdf(tmp_path / "era5_t2m_alps.nc"))
    assert record.title == "ERA5 2 m temperature, Alps"
    assert record.facets["mission"] == ("ERA5",)
    assert "air_temperature" in record.facets["tags"]
    assert record.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert record.end == datetime(2024, 1, 1, 12, tzinfo=UTC)
    assert record.bbox == (5.0, 44.0, 9.0, 47.0)
    assert "t2m" in record.properties["variables"]


def test_netcdf_corrupt_and_truncated(tmp_path):
    good = samples.write_netcdf(tmp_path / "good.nc")
    for bad in (samples.corrupt(good, tmp_path / "bad.nc"), samples.truncate(good, tmp_path / "cut.nc", 0.4)):
        with pytest.raises(HarvestError) as err:
            harvest(bad)
        assert err.value.reason


def test_spice_kernels(tmp_path):
    kernels = samples.write_spice(tmp_path)
    lsk = harvest(kernels["lsk"])
    assert lsk.facets["resource_type"] == ("SPICE leapseconds (LSK)",)
    spk = harvest(kernels["spk"])
    assert spk.facets["resource_type"] == ("SPICE ephemeris (SPK)",)
    assert spk.facets["mission"] == ("Bepicolombo",)
    cut = samples.truncate(kernels["spk"], tmp_path / "cut.bsp", 0.7)
    with pytest.raises(HarvestError, match="truncated"):
        harvest(cut)
    with pytest.raises(HarvestError, match="not a SPICE kernel"):
        harvest(samples.corrupt(kernels["lsk"], tmp_path / "bad.tls"))


def test_generic_fallback(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    record = harvest(path)
    assert record.size == 5 and record.media_type == "text/plain"
    assert record.facets["file_format"] == ("TXT",)
