"""Demo data volumes for `datalabs admin seed-demo` (`make run`): small but real files, written with the
libraries scientists use (astropy for FITS, netCDF4 for NetCDF-CF) or taken from the samples the RINEX
libraries ship, under `$DATALABS_HOME/volumes/<Name>/`, so labs and the explorer have something to show."""

from __future__ import annotations

import os
import shutil
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class DemoVolume:
    name: str
    description: str
    mission: list[str]
    domain: str
    tags: list[str]
    write: Callable[[Path], None]
    allowed_groups: list[str] = field(default_factory=list)


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary name so a crash never leaves half a file under the real one."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _sky_image(seed: int, shape=(128, 128)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    image = rng.normal(0.0, 1.0, shape)
    for cx, cy, flux, width in rng.uniform((0, 0, 20, 1.5), (shape[1], shape[0], 400, 4), (12, 4)):
        image += flux * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * width**2))
    return image.astype(np.float32)


def _fits(path: Path, *, seed: int, header: dict[str, object], ra: float, dec: float, scale: float) -> None:
    from astropy.io import fits
    from astropy.wcs import WCS

    data = _sky_image(seed)
    wcs = WCS(naxis=2)
    wcs.wcs.crpix = [data.shape[1] / 2, data.shape[0] / 2]
    wcs.wcs.cdelt = [-scale, scale]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    hdu = fits.PrimaryHDU(data=data, header=wcs.to_header())
    for key, value in header.items():
        hdu.header[key] = value
    hdu.writeto(path, overwrite=True, output_verify="exception")


def write_planck(root: Path) -> None:
    for freq, (ra, dec) in {"030": (83.82, -5.39), "070": (266.40, -28.94)}.items():
        _atomic(
            root / "maps" / f"LFI_SkyMap_{freq}-cutout_demo.fits",
            lambda p, freq=freq, ra=ra, dec=dec: _fits(
                p,
                seed=int(freq),
                header={
                    "TELESCOP": "Planck",
                    "INSTRUME": "LFI",
                    "FREQ": (f"{int(freq)} GHz"),
                    "BUNIT": "K_CMB",
                    "DATE-OBS": "2013-03-21",
                    "OBJECT": "demo cutout",
                },
                ra=ra,
                dec=dec,
                scale=0.05,
            ),
        )
    _atomic(root / "README.txt", lambda p: p.write_text(_README.format(what="Planck LFI map cutouts")))


def write_jwst(root: Path) -> None:
    targets = {
        "jw02733-o001_t001_nircam_clear-f187n": (10.68, 41.27),
        "jw01345-o002_t022_miri_f770w": (214.9, 52.9),
    }
    for name, (ra, dec) in targets.items():
        instrument = "NIRCAM" if "nircam" in name else "MIRI"
        _atomic(
            root / name[:7] / f"{name}_i2d_demo.fits",
            lambda p, name=name, ra=ra, dec=dec, instrument=instrument: _fits(
                p,
                seed=zlib.crc32(name.encode()) % 1000,
                header={
                    "TELESCOP": "JWST",
                    "INSTRUME": instrument,
                    "FILTER": name.rsplit("_", 1)[-1].upper(),
                    "PROGRAM": name[2:7],
                    "DATE-OBS": "2022-07-12",
                    "TARG_RA": ra,
                    "TARG_DEC": dec,
                },
                ra=ra,
                dec=dec,
                scale=0.0000174,
            ),
        )
    _atomic(root / "README.txt", lambda p: p.write_text(_README.format(what="JWST level-3 image cutouts")))


def write_gssc(root: Path) -> None:
    """RINEX 3 observations shipped with the `hatanaka` package (also Hatanaka-compressed, as archives
    keep them), and a broadcast navigation file written here in RINEX 3.04 layout."""
    import hatanaka

    samples = Path(hatanaka.__file__).parent / "test" / "data"
    day = root / "rinex" / "2010" / "064"
    for src, name in (
        ("sample.rnx", "ESA100DEU_R_20100640000_01D_30S_MO.rnx"),
        ("sample.crx.gz", "ESA100DEU_R_20100640000_01D_30S_MO.crx.gz"),
    ):
        _atomic(day / name, lambda p, src=src: shutil.copyfile(samples / src, p))
    _atomic(day / "BRDC00WRD_R_20100640000_01D_GN.rnx", lambda p: p.write_text(_NAV))
    _atomic(
        root / "README.txt",
        lambda p: p.write_text(_README.format(what="GNSS RINEX observation and navigation files")),
    )


def write_climate(root: Path) -> None:
    def netcdf(path: Path) -> None:
        import netCDF4

        with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
            nc.Conventions = "CF-1.8"
            nc.title = "Demo sea surface temperature anomaly"
            nc.institution = "Datalabs demo"
            nc.createDimension("time", 3)
            nc.createDimension("lat", 18)
            nc.createDimension("lon", 36)
            time = nc.createVariable("time", "f8", ("time",))
            time.units, time.calendar, time.standard_name = "days since 2020-01-01", "standard", "time"
            time[:] = [0, 31, 60]
            lat = nc.createVariable("lat", "f4", ("lat",))
            lat.units, lat.standard_name = "degrees_north", "latitude"
            lat[:] = np.linspace(-85, 85, 18)
            lon = nc.createVariable("lon", "f4", ("lon",))
            lon.units, lon.standard_name = "degrees_east", "longitude"
            lon[:] = np.linspace(-175, 175, 36)
            sst = nc.createVariable("sst_anomaly", "f4", ("time", "lat", "lon"), zlib=True, fill_value=-999.0)
            sst.units, sst.standard_name = "K", "sea_surface_temperature_anomaly"
            rng = np.random.default_rng(7)
            sst[:] = rng.normal(0, 0.6, (3, 18, 36)).astype(np.float32)

    _atomic(root / "sst" / "sst_anomaly_2020Q1_demo.nc", netcdf)
    _atomic(root / "README.txt", lambda p: p.write_text(_README.format(what="a NetCDF-CF climate grid")))


DEMO_VOLUMES = (
    DemoVolume(
        "PlanckPublic",
        "Planck LFI sky map cutouts (FITS, demo)",
        ["Planck"],
        "astronomy",
        ["cmb", "fits"],
        write_planck,
    ),
    DemoVolume(
        "JwstPublic",
        "JWST NIRCam and MIRI image cutouts (FITS, demo)",
        ["JWST"],
        "astronomy",
        ["fits"],
        write_jwst,
        ["astro-team"],
    ),
    DemoVolume(
        "GsscDataProducts",
        "GNSS RINEX observations and broadcast navigation (demo)",
        ["Galileo", "GPS"],
        "gnss",
        ["rinex"],
        write_gssc,
    ),
    DemoVolume(
        "ClimateSample",
        "Sea surface temperature anomaly grid (NetCDF-CF, demo)",
        [],
        "earth-observation",
        ["netcdf"],
        write_climate,
    ),
)


def write_all(home: Path) -> dict[str, Path]:
    """Write every demo volume's files (once) and return {name: folder}."""
    folders = {}
    for volume in DEMO_VOLUMES:
        folder = home / "volumes" / volume.name
        folder.mkdir(parents=True, exist_ok=True)
        volume.write(folder)
        folders[volume.name] = folder
    return folders


_README = "Demo data volume: {what}. Small samples for trying Datalabs; mounted read-only in labs.\n"

# One GPS broadcast ephemeris in RINEX 3.04 navigation layout (values of a real-looking PRN 13 record).
_NAV = """\
     3.04           N: GNSS NAV DATA    G: GPS              RINEX VERSION / TYPE
datalabs demo                           20100305 000000 UTC PGM / RUN BY / DATE
GPSA   9.3132E-09  1.4901E-08 -5.9605E-08 -1.1921E-07       IONOSPHERIC CORR
GPSB   8.8064E+04  1.6384E+04 -1.9661E+05 -6.5536E+04       IONOSPHERIC CORR
    15                                                      LEAP SECONDS
                                                            END OF HEADER
G13 2010 03 05 00 00 00 1.135482452810E-04 1.932676241267E-12 0.000000000000E+00
     1.000000000000E+02-7.312500000000E+01 4.381253086620E-09 2.087345335428E+00
    -3.801286220551E-06 3.573442785908E-03 8.096173405647E-06 5.153628551483E+03
     4.320000000000E+05-5.215406417847E-08-2.198127211476E+00 1.043081283569E-07
     9.657658785264E-01 2.104375000000E+02 1.213473528422E+00-7.838182813049E-09
    -1.839362327011E-10 1.000000000000E+00 1.573000000000E+03 0.000000000000E+00
     2.000000000000E+00 0.000000000000E+00-1.210719347000E-08 1.000000000000E+02
     4.248180000000E+05 4.000000000000E+00
"""


# A listing-only archive beside the real demo files: the explorer at the scale it is built for.
SYNTHETIC = DemoVolume(
    "GsscArchive",
    "Synthetic GNSS archive listing: RINEX long names of real IGS stations (names and sizes only, the "
    "files are not on disk)",
    ["Galileo", "GPS"],
    "gnss",
    ["rinex", "synthetic"],
    lambda folder: None,
    ["gnss-team"],
)
SYNTHETIC_FILES = 1_000_000


def index_all(home: Path, folders: dict[str, Path], synthetic_files: int = SYNTHETIC_FILES) -> dict[str, int]:
    """Index the demo volumes (harvested: only new or changed files are read again) and, once, the
    synthetic archive listing; {collection: assets in the index}. Idempotent, like the rest of the seed."""
    from datalabs.assets import listing, synth
    from datalabs.assets.engine import BitmapIndex
    from datalabs.volumes import indexing

    index = BitmapIndex(home / "assets" / "index")
    harvest_state = home / "assets" / "harvest"
    counts: dict[str, int] = {}
    for volume in DEMO_VOLUMES:
        status = indexing.Status(volume.name, requested_by="seed-demo", queued_at=time.time())
        indexing.harvest(index, folders[volume.name], status, harvest_state)
        counts[volume.name] = status.seen - status.error_count
    if SYNTHETIC.name not in index.stats()["collections"] and synthetic_files > 0:
        path = home / "assets" / f"{SYNTHETIC.name}.listing"
        synth.write_listing(path, synthetic_files)
        for batch in listing.read_batches(path, SYNTHETIC.name):
            index.ingest_batch(batch)
        path.unlink()
    counts[SYNTHETIC.name] = synthetic_files if SYNTHETIC.name in index.stats()["collections"] else 0
    return counts
