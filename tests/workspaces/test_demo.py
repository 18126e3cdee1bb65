"""The demo volumes `make run` registers hold real files that the domain libraries read back."""

from __future__ import annotations

import gzip

import hatanaka
import netCDF4
from astropy.io import fits

from datalabs.volumes import demo


def test_demo_files_are_real(tmp_path):
    folders = demo.write_all(tmp_path)
    assert set(folders) == {"PlanckPublic", "JwstPublic", "GsscDataProducts", "ClimateSample"}
    for path in (folders["PlanckPublic"] / "maps").glob("*.fits"):
        with fits.open(path) as hdul:
            assert hdul[0].header["TELESCOP"] == "Planck" and hdul[0].data.shape == (128, 128)
    (jwst,) = (folders["JwstPublic"] / "jw02733").glob("*.fits")
    assert fits.getheader(jwst)["INSTRUME"] == "NIRCAM"
    with netCDF4.Dataset(folders["ClimateSample"] / "sst" / "sst_anomaly_2020Q1_demo.nc") as nc:
        assert nc.Conventions == "CF-1.8" and nc["sst_anomaly"].shape == (3, 18, 36)
    day = folders["GsscDataProducts"] / "rinex" / "2010" / "064"
    obs = (day / "ESA100DEU_R_20100640000_01D_30S_MO.rnx").read_text()
    assert obs.startswith("     3.01           OBSERVATION DATA")
    assert (
        hatanaka.decompress(
            gzip.decompress((day / "ESA100DEU_R_20100640000_01D_30S_MO.crx.gz").read_bytes())
        ).decode()
        == obs
    )
    nav = (day / "BRDC00WRD_R_20100640000_01D_GN.rnx").read_text().splitlines()
    assert "N: GNSS NAV DATA" in nav[0] and nav[6].startswith("G13 2010 03 05")
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    demo.write_all(tmp_path)  # idempotent: nothing rewritten
    assert before == {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
