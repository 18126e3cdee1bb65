"""GNSS vocabulary: RINEX file names (long RINEX 3/4 and short RINEX 2 forms), constellations, satellites,
observation codes, and the real IGS stations shipped in `data/igs_stations.csv`.

Used by the RINEX harvester (names and headers), the listing ingester (names only, no file access) and
the synthetic archive generator. Facets derived from a name alone (listing ingest) take the station's
tracked constellations from the station table, and the satellites and observation codes typical of
those constellations; a harvest reads them from the file header instead.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources

CONSTELLATIONS = {
    "G": "GPS",
    "R": "GLONASS",
    "E": "Galileo",
    "C": "BeiDou",
    "J": "QZSS",
    "I": "NavIC",
    "S": "SBAS",
}
SATELLITES = {
    "G": [f"G{i:02d}" for i in range(1, 33)],
    "R": [f"R{i:02d}" for i in range(1, 25)],
    "E": [
        f"E{i:02d}"
        for i in (
            1,
            2,
            3,
            4,
            5,
            7,
            8,
            9,
            10,
            11,
            12,
            13,
            14,
            15,
            18,
            19,
            21,
            24,
            25,
            26,
            27,
            30,
            31,
            33,
            34,
            36,
        )
    ],
    "C": [f"C{i:02d}" for i in range(1, 47) if i not in (15, 17, 18, 31)],
    "J": [f"J{i:02d}" for i in range(1, 8)],
    "I": [f"I{i:02d}" for i in range(1, 10)],
    "S": ["S120", "S123", "S126", "S127", "S128", "S136", "S137", "S138"],
}
OBSERVATION_CODES = {
    "G": ["C1C", "L1C", "D1C", "S1C", "C1W", "C2W", "L2W", "S2W", "C2L", "L2L", "C5Q", "L5Q", "S5Q"],
    "R": ["C1C", "L1C", "D1C", "S1C", "C1P", "C2P", "L2P", "S2P", "C2C", "L2C", "C3Q", "L3Q"],
    "E": ["C1C", "L1C", "D1C", "S1C", "C5Q", "L5Q", "S5Q", "C7Q", "L7Q", "S7Q", "C8Q", "L8Q", "C6C", "L6C"],
    "C": ["C2I", "L2I", "D2I", "S2I", "C7I", "L7I", "S7I", "C6I", "L6I", "C1P", "L1P", "C5P", "L5P"],
    "J": ["C1C", "L1C", "S1C", "C2L", "L2L", "S2L", "C5Q", "L5Q", "S5Q"],
    "I": ["C5A", "L5A", "D5A", "S5A"],
    "S": ["C1C", "L1C", "S1C", "C5I", "L5I"],
}
SOURCES = {"R": "receiver", "S": "stream", "U": "unknown"}
DATA_TYPES = {"O": "observation", "N": "navigation", "M": "meteorological"}
_RINEX2_TYPES = {"o": "O", "d": "O", "n": "N", "g": "N", "l": "N", "p": "N", "m": "M"}
COMPRESSIONS = {"gz": "gzip", "Z": "unix-compress", "zip": "zip", "bz2": "bzip2", "": ""}

LONG_NAME = re.compile(
    r"^(?P<station>[A-Z0-9]{4}\d{2}[A-Z]{3})_(?P<source>[RSU])_(?P<start>\d{11})_(?P<period>\d{2}[MHDYU])"
    r"(?:_(?P<sampling>\d{2}[CZSMHDU]))?_(?P<system>[GRECJISM])(?P<type>[OMN])\.(?P<format>rnx|crx)"
    r"(?:\.(?P<compression>gz|Z|zip|bz2))?$"
)
SHORT_NAME = re.compile(
    r"^(?P<site>[a-z0-9]{4})(?P<doy>\d{3})(?P<session>[a-x0])(?P<minute>\d{2})?\.(?P<yy>\d{2})"
    r"(?P<type>[odngmlp])(?:\.(?P<compression>gz|Z|zip|bz2))?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Station:
    id: str  # 9 characters: site (4), monument + receiver (2), ISO country (3)
    latitude: float
    longitude: float
    height: float
    network: str
    receiver: str
    constellations: str  # RINEX system letters tracked

    @property
    def country(self) -> str:
        return self.id[6:]


@cache
def stations() -> dict[str, Station]:
    text = resources.files("datalabs.assets").joinpath("data/igs_stations.csv").read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {
        r["station"]: Station(
            r["station"],
            float(r["latitude"]),
            float(r["longitude"]),
            float(r["height"]),
            r["network"],
            r["receiver"],
            r["constellations"],
        )
        for r in rows
    }


@cache
def station_by_site() -> dict[str, Station]:
    """Four-character site -> station (RINEX 2 short names carry only the site)."""
    return {s.id[:4]: s for s in sorted(stations().values(), key=lambda s: s.id, reverse=True)}


@dataclass(frozen=True)
class RinexName:
    station: str  # 9 characters for long names; the 4-character site (upper case) for short names
    source: str
    start: datetime
    period: str
    sampling: str
    system: str  # G R E C J I S, or M for mixed
    data_type: str  # O N M
    format: str  # rnx crx, or the RINEX 2 type letter
    compression: str
    version: int  # 3 for long names (3 or 4 inside), 2 for short names


def parse_name(name: str) -> RinexName | None:
    """A RINEX file name's fields, or None if the name follows neither convention."""
    if m := LONG_NAME.match(name):
        s = m["start"]
        start = datetime(int(s[:4]), 1, 1, int(s[7:9]), int(s[9:11]), tzinfo=UTC) + timedelta(int(s[4:7]) - 1)
        return RinexName(
            m["station"],
            m["source"],
            start,
            m["period"],
            m["sampling"] or "",
            m["system"],
            m["type"],
            m["format"],
            m["compression"] or "",
            3,
        )
    if m := SHORT_NAME.match(name):
        yy = int(m["yy"])
        hour = 0 if m["session"] == "0" else ord(m["session"].lower()) - ord("a")
        start = datetime(1900 + yy if yy >= 80 else 2000 + yy, 1, 1, hour, int(m["minute"] or 0), tzinfo=UTC)
        letter = m["type"].lower()
        return RinexName(
            m["site"].upper(),
            "U",
            start + timedelta(int(m["doy"]) - 1),
            "01D" if m["session"] == "0" else ("15M" if m["minute"] else "01H"),
            "",
            {"n": "G", "g": "R", "l": "E", "p": "M"}.get(letter, "M"),
            _RINEX2_TYPES[letter],
            "crx" if letter == "d" else letter,
            m["compression"] or "",
            2,
        )
    return None


def period_seconds(period: str) -> int:
    unit = {"M": 60, "H": 3600, "D": 86400, "Y": 365 * 86400}.get(period[-1:], 0)
    return int(period[:2]) * unit if period[:2].isdigit() else 0


def systems_of(rinex: RinexName, station: Station | None) -> str:
    if rinex.system != "M":
        return rinex.system
    return station.constellations if station else "G"


def facets_from_name(rinex: RinexName) -> dict[str, tuple[str, ...]]:
    """Facets a RINEX name implies (with the station table); what a listing ingest can know."""
    station = stations().get(rinex.station) or station_by_site().get(rinex.station[:4])
    systems = systems_of(rinex, station)
    kind = DATA_TYPES[rinex.data_type]
    observed = rinex.data_type != "M"
    facets = {
        "domain": ("GNSS",),
        "dataset": (
            f"{kind}-{rinex.period.lower()}" + (f"-{rinex.sampling.lower()}" if rinex.sampling else ""),
        ),
        "resource_class": ("data",),
        "resource_type": (kind,),
        "constellation": tuple(CONSTELLATIONS[s] for s in systems) if observed else (),
        "satellite": tuple(sat for s in systems for sat in SATELLITES[s]) if observed else (),
        "instrument_type": (station.receiver,) if station else (),
        "station": (station.id if station else rinex.station,),
        "observation_code": tuple(sorted({c for s in systems for c in OBSERVATION_CODES[s]}))
        if rinex.data_type == "O"
        else (),
        "sampling_rate": (rinex.sampling,) if rinex.sampling else (),
        "file_format": (f"{'Hatanaka ' if rinex.format in ('crx', 'd') else ''}RINEX {rinex.version}",),
        "network": (station.network,) if station else (),
        "source": (SOURCES[rinex.source],),
        "tags": tuple(t for t in (COMPRESSIONS.get(rinex.compression, ""), station and station.country) if t),
    }
    return {k: v for k, v in facets.items() if v}


def station_bbox(station_id: str) -> tuple[float, float, float, float] | None:
    station = stations().get(station_id) or station_by_site().get(station_id[:4])
    if station is None:
        return None
    return (station.longitude, station.latitude, station.longitude, station.latitude)
