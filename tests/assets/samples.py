"""Real sample files for harvester tests: RINEX written by hand and compressed with `hatanaka`, the
`hatanaka` package's own samples, FITS written with astropy, NetCDF-CF written with netCDF4, SPICE kernels."""

from __future__ import annotations

import shutil
from pathlib import Path

import hatanaka
import ncompress
import netCDF4
import numpy as np
from astropy.io import fits

HATANAKA_SAMPLES = Path(hatanaka.__file__).parent / "test" / "data"


def _line(value: str, label: str) -> str:
    return f"{value:<60}{label}\n"


def rinex3_obs(version: str = "3.04") -> str:
    header = [
        _line(f"{version:>9}           OBSERVATION DATA    M (MIXED)", "RINEX VERSION / TYPE"),
        _line("gfzrnx-2.0.1        GFZ                 20240102 003001 UTC", "PGM / RUN BY / DATE"),
        _line("ABMF00GLP", "MARKER NAME"),
        _line("97103M001", "MARKER NUMBER"),
        _line("3795000             SEPT POLARX5        5.5.0", "REC # / TYPE / VERS"),
        _line("5627                TRM57971.00     NONE", "ANT # / TYPE"),
        _line("  2919785.7120 -5383745.0670  1774604.6920", "APPROX POSITION XYZ"),
        _line("G    4 C1C L1C C2W L2W", "SYS / # / OBS TYPES"),
        _line("E    2 C1C L1C", "SYS / # / OBS TYPES"),
        _line("    30.000", "INTERVAL"),
        _line("  2024     1     1     0     0    0.0000000     GPS", "TIME OF FIRST OBS"),
        _line("", "END OF HEADER"),
    ]
    body = []
    for epoch in range(3):
        body.append(f"> 2024 01 01 00 {epoch // 2:02d} {30.0 * (epoch % 2):10.7f}  0  3\n")
        body.append("G05  22001234.567 7 115612345.12307  22001236.789 6  90087654.32106\n")
        body.append("G12  21001234.567 7 110357234.12307  21001236.789 6  85992654.32106\n")
        body.append("E11  23001234.567 7 120902345.12307\n")
    return "".join(header + body)


def rinex3_nav() -> str:
    header = [
        _line("     3.04           N: GNSS NAV DATA    G: GPS", "RINEX VERSION / TYPE"),
        _line("", "END OF HEADER"),
    ]
    body = "G05 2024 01 01 00 00 00 1.234567890123E-04 1.000000000000E-12 0.000000000000E+00\n"
    return "".join(header) + body


def rinex3_met() -> str:
    header = [
        _line("     3.04           METEOROLOGICAL DATA", "RINEX VERSION / TYPE"),
        _line("ZIM2", "MARKER NAME"),
        _line("     3    PR    TD    HR", "# / TYPES OF OBSERV"),
        _line("", "END OF HEADER"),
    ]
    return "".join(header) + " 2024 01 01 00 00 00  950.1   12.3   65.0\n"


def rinex2_obs() -> str:
    header = [
        _line("     2.11           OBSERVATION DATA    G (GPS)", "RINEX VERSION / TYPE"),
        _line("KIRU", "MARKER NAME"),
        _line("1234                JAVAD TRE_3         3.7", "REC # / TYPE / VERS"),
        _line("  2251420.7470   862817.2820  5885476.6480", "APPROX POSITION XYZ"),
        _line("     4    C1    L1    L2    P2", "# / TYPES OF OBSERV"),
        _line("    30.000", "INTERVAL"),
        _line("  2024     1     1     0     0    0.0000000     GPS", "TIME OF FIRST OBS"),
        _line("", "END OF HEADER"),
    ]
    body = (
        " 24  1  1  0  0  0.0000000  0  2G05G12\n" + "  22001234.567   115612345.123 7  90087654.321 6\n" * 2
    )
    return "".join(header) + body


def write_rinex(directory: Path) -> dict[str, Path]:
    """Every RINEX flavour the harvester supports, by a short key."""
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    def put(key: str, name: str, data: bytes) -> None:
        files[key] = directory / name
        files[key].write_bytes(data)

    obs = rinex3_obs().encode()
    put("rnx", "ABMF00GLP_R_20240010000_01D_30S_MO.rnx", obs)
    put("crx.gz", "ABMF00GLP_R_20240020000_01D_30S_MO.crx.gz", hatanaka.compress(obs, compression="gz"))
    put(
        "rnx.Z", "ABMF00GLP_R_20240030000_01D_30S_MO.rnx.Z", ncompress.compress(obs)
    )  # plain RINEX, Unix compress)
    put("v4", "ABMF00GLP_R_20240040000_01D_30S_MO.rnx", rinex3_obs("4.01").encode())
    put(
        "nav",
        "ABMF00GLP_R_20240010000_01D_GN.rnx.gz",
        hatanaka.compress(rinex3_nav().encode(), compression="gz"),
    )
    put("met", "ZIM200CHE_R_20240010000_01D_05M_MM.rnx", rinex3_met().encode())
    put("v2", "kiru0010.24o", rinex2_obs().encode())
    put("v2.d.Z", "kiru0020.24d.Z", hatanaka.compress(rinex2_obs().encode(), compression="Z"))
    for sample in ("sample.crx.gz", "sample.rnx.Z", "sample.crx"):
        shutil.copy(HATANAKA_SAMPLES / sample, directory / sample)
        files[f"hatanaka:{sample}"] = directory / sample
    return files


def write_fits(path: Path) -> Path:
    data = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    header = fits.Header()
    header.update(
        TELESCOP="JWST",
        INSTRUME="NIRCAM",
        OBJECT="NGC 346",
        FILTER="F200W",
        OBS_ID="jw01227",
        RA_TARG=14.7704,
        DEC_TARG=-72.1756,
        EXPTIME=1288.4,
        **{"DATE-OBS": "2022-07-25T10:11:12"},
    )
    fits.PrimaryHDU(data, header).writeto(path, overwrite=True)
    return path


def write_netcdf(path: Path) -> Path:
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.title = "ERA5 2 m temperature, Alps"
        ds.Conventions = "CF-1.8"
        ds.platform = "ERA5"
        ds.createDimension("time", 3)
        ds.createDimension("lat", 4)
        ds.createDimension("lon", 5)
        time = ds.createVariable("time", "f8", ("time",))
        time.units, time.standard_name, time.calendar = "hours since 2024-01-01 00:00:00", "time", "standard"
        time[:] = [0, 6, 12]
        lat = ds.createVariable("lat", "f4", ("lat",))
        lat.standard_name, lat.units = "latitude", "degrees_north"
        lat[:] = [44.0, 45.0, 46.0, 47.0]
        lon = ds.createVariable("lon", "f4", ("lon",))
        lon.standard_name, lon.units = "longitude", "degrees_east"
        lon[:] = [5.0, 6.0, 7.0, 8.0, 9.0]
        t2m = ds.createVariable("t2m", "f4", ("time", "lat", "lon"))
        t2m.standard_name, t2m.units = "air_temperature", "K"
        t2m[:] = np.full((3, 4, 5), 271.5, np.float32)
    return path


def write_spice(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    lsk = directory / "naif0012.tls"
    lsk.write_text("KPL/LSK\n\nLeapseconds kernel.\n\\begindata\nDELTET/DELTA_T_A = 32.184\n\\begintext\n")
    spk = directory / "bc_mpo_fcp_00199_20181020_20270328_v01.bsp"
    record = b"DAF/SPK " + b"\0" * 1016
    comments = b"BepiColombo MPO ephemeris. Mission: BEPICOLOMBO".ljust(1024, b"\0")
    spk.write_bytes(record + comments + b"\0" * 1024)
    return {"lsk": lsk, "spk": spk}


def corrupt(path: Path, target: Path) -> Path:
    """A file of the same name pattern whose contents are garbage."""
    target.write_bytes(b"\x00\xffnot what the name says\n" * 20)
    return target


def truncate(path: Path, target: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    target.write_bytes(data[: max(1, int(len(data) * keep))])
    return target
