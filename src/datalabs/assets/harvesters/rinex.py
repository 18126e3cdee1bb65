"""RINEX 2, 3 and 4 observation, navigation and meteo files: `.rnx`, Hatanaka `.crx`, `.gz`, `.Z` and
short-name forms (`abmf0010.24o`, `.24d.Z`, ...).

Facets come from the file name (`gnss.parse_name`) and are corrected by the header: marker name and
number, receiver and antenna, approximate position (ECEF -> latitude, longitude, height), observation
types per system, interval and time of first observation. Satellites are read from the data records.
Decompression (gzip, Unix compress, Hatanaka) is the `hatanaka` package's.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hatanaka

from datalabs.assets import gnss
from datalabs.assets.base import AssetRecord, Harvester, HarvestError
from datalabs.assets.harvesters.generic import file_record

_SUFFIX = re.compile(r"\.(rnx|crx|\d\d[odnglmp])(\.(gz|Z|bz2|zip))?$", re.IGNORECASE)
_SATELLITE = re.compile(r"[GRECJIS]\d\d")
_V2_EPOCH_SATS = re.compile(
    r"^ \d\d [ \d]\d [ \d]\d [ \d]\d [ \d]\d [ \d.]{10}  \d[ \d]{3}((?:[GRECJIS ]\d\d)+)"
)
MAX_BYTES = 2 << 30


def ecef_to_geodetic(x: float, y: float, z: float) -> tuple[float, float, float]:
    """WGS84 latitude, longitude (degrees) and ellipsoidal height (m), by Bowring's method."""
    a, f = 6378137.0, 1 / 298.257223563
    b, e2 = a * (1 - f), f * (2 - f)
    ep2 = e2 / (1 - e2)
    p = math.hypot(x, y)
    theta = math.atan2(z * a, p * b)
    lat = math.atan2(z + ep2 * b * math.sin(theta) ** 3, p - e2 * a * math.cos(theta) ** 3)
    n = a / math.sqrt(1 - e2 * math.sin(lat) ** 2)
    height = p / math.cos(lat) - n if abs(math.cos(lat)) > 1e-12 else abs(z) - b
    return math.degrees(lat), math.degrees(math.atan2(y, x)), height


def read_text(path: Path) -> str:
    """The file as RINEX text: gzip, Unix compress, bzip2, zip and Hatanaka undone."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise HarvestError(path, f"cannot read file: {e.strerror or e}") from e
    if len(raw) > MAX_BYTES:
        raise HarvestError(path, "file too large to harvest")
    try:
        data = hatanaka.decompress(raw)
    except Exception as e:  # the decompressors raise many types for corrupt or truncated input
        raise HarvestError(path, f"cannot decompress: {e}") from e
    return data.decode("ascii", "replace")


def parse_header(path: Path, text: str) -> tuple[dict, str]:
    """(header fields, the text after END OF HEADER)."""
    end = text.find("END OF HEADER")
    if end < 0:
        raise HarvestError(path, "truncated or not RINEX: no END OF HEADER")
    first = text[:80]
    if "RINEX VERSION / TYPE" not in first:
        raise HarvestError(path, "not a RINEX file: the first line is not RINEX VERSION / TYPE")
    header: dict = {"obs_types": {}}
    system = ""
    for line in text[:end].splitlines():
        label, value = line[60:].strip(), line[:60]
        try:
            system = _header_line(header, label, value, system)
        except (ValueError, IndexError) as e:
            raise HarvestError(path, f"bad header line {label!r}: {e}") from e
    body = text[end:].split("\n", 1)[1] if "\n" in text[end:] else ""
    return header, body


def _header_line(header: dict, label: str, value: str, system: str) -> str:
    if label == "RINEX VERSION / TYPE":
        header["version"] = float(value[:9])
        header["type"] = value[20:21].upper()
        header["system"] = value[40:41].upper() or "G"
    elif label == "MARKER NAME":
        header["marker"] = value.strip()
    elif label == "MARKER NUMBER":
        header["marker_number"] = value[:20].strip()
    elif label == "REC # / TYPE / VERS":
        header["receiver"] = value[20:40].strip()
    elif label == "ANT # / TYPE":
        header["antenna"] = value[20:40].strip()
    elif label == "APPROX POSITION XYZ":
        header["xyz"] = tuple(float(value[i : i + 14]) for i in (0, 14, 28))
    elif label == "INTERVAL":
        header["interval"] = float(value[:10])
    elif label == "TIME OF FIRST OBS":
        y, mo, d, h, mi = (int(value[i : i + 6]) for i in (0, 6, 12, 18, 24))
        header["first"] = datetime(y, mo, d, h, mi, tzinfo=UTC) + timedelta(seconds=float(value[30:43]))
    elif label == "SYS / # / OBS TYPES":
        system = value[0] if value[0] != " " else system
        header["obs_types"].setdefault(system, []).extend(value[7:58].split())
    elif label == "# / TYPES OF OBSERV":
        header["obs_types"].setdefault("v2", []).extend(value[6:60].split())
    return system


def satellites(header: dict, body: str) -> list[str]:
    if header.get("version", 3) >= 3:
        return sorted({line[:3] for line in body.splitlines() if _SATELLITE.fullmatch(line[:3])})
    found = set()
    for line in body.splitlines():
        if m := _V2_EPOCH_SATS.match(line):
            sats = m[1]
            found.update(
                (sats[i] if sats[i] != " " else "G") + sats[i + 1 : i + 3] for i in range(0, len(sats), 3)
            )
    return sorted(found)


def sampling_code(seconds: float) -> str:
    for unit, size in (("D", 86400), ("H", 3600), ("M", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size):02d}{unit}"
    return f"{int(seconds):02d}S" if seconds >= 1 else f"{round(1 / seconds):02d}Z"


class RinexHarvester(Harvester):
    name = "rinex"
    priority = 50

    def matches(self, path: Path) -> bool:
        return gnss.parse_name(path.name) is not None or bool(_SUFFIX.search(path.name))

    def harvest(self, path: Path, collection: str, relpath: str) -> AssetRecord:
        record = file_record(path, collection, relpath)
        header, body = parse_header(path, read_text(path))
        named = gnss.parse_name(path.name)
        facets = gnss.facets_from_name(named) if named else {"domain": ("GNSS",)}
        kind = gnss.DATA_TYPES.get(header.get("type", ""), "observation")
        facets.update(resource_class=("data",), resource_type=(kind,))
        facets["file_format"] = (
            f"{'Hatanaka ' if '.crx' in path.name or path.name[-3:-2] == 'd' else ''}"
            f"RINEX {int(header.get('version', 3))}",
        )
        self._observations(header, body, facets)
        station = self._station(header, named)
        if station:
            facets["station"] = (station,)
        if header.get("receiver"):
            facets["instrument_type"] = (header["receiver"],)
        record.facets = {k: tuple(v) for k, v in facets.items() if v}
        record.start = header.get("first") or (named.start if named else None)
        if named and record.start and gnss.period_seconds(named.period):
            record.end = record.start + timedelta(seconds=gnss.period_seconds(named.period))
        record.bbox, record.properties = self._position(header), self._properties(header)
        record.media_type = "application/x-rinex"
        record.title = f"RINEX {header.get('version')} {kind} file" + (f" of {station}" if station else "")
        return record

    def _observations(self, header: dict, body: str, facets: dict) -> None:
        obs_types = header["obs_types"]
        if header.get("type") == "O":
            systems = [s for s in obs_types if s in gnss.CONSTELLATIONS] or [header.get("system", "G")]
            facets["observation_code"] = sorted({c for codes in obs_types.values() for c in codes})
        else:
            systems = [header["system"]] if header.get("system") in gnss.CONSTELLATIONS else []
        sats = satellites(header, body) if header.get("type") == "O" else []
        systems = sorted(set(systems) | {s[0] for s in sats}, key="GRECJIS".index)
        if header.get("type") != "M":
            facets["constellation"] = [gnss.CONSTELLATIONS[s] for s in systems if s in gnss.CONSTELLATIONS]
            facets["satellite"] = sats or facets.get("satellite", ())
        if header.get("interval"):
            facets["sampling_rate"] = (sampling_code(header["interval"]),)

    def _station(self, header: dict, named) -> str:
        marker = header.get("marker", "").upper()
        for candidate in (named.station if named else "", marker):
            if candidate in gnss.stations():
                return candidate
        by_site = gnss.station_by_site().get(marker[:4])
        return by_site.id if by_site and len(marker) <= 4 else marker or (named.station if named else "")

    def _position(self, header: dict):
        xyz = header.get("xyz")
        if not xyz or not any(xyz):
            return None
        lat, lon, _ = ecef_to_geodetic(*xyz)
        return (round(lon, 6), round(lat, 6), round(lon, 6), round(lat, 6))

    def _properties(self, header: dict) -> dict:
        props = {
            k: header[k]
            for k in ("version", "marker", "marker_number", "receiver", "antenna", "interval")
            if header.get(k) not in (None, "")
        }
        if header.get("xyz") and any(header["xyz"]):
            props["height"] = round(ecef_to_geodetic(*header["xyz"])[2], 3)
        props["observation_types"] = header["obs_types"]
        return props
