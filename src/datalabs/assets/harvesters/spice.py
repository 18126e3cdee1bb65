"""SPICE kernels: the kernel type from the ID word (binary DAF/DAS kernels and text kernels) and the
mission from the comment area."""

from __future__ import annotations

import re
from pathlib import Path

from datalabs.assets.base import AssetRecord, Harvester, HarvestError
from datalabs.assets.harvesters.generic import file_record

_SUFFIX = re.compile(r"\.(bsp|bc|bpc|bds|tls|tpc|tf|ti|tsc|tm|tk|lsk|pck|fk|ik|sclk|mk)$", re.IGNORECASE)
KINDS = {
    "SPK": "ephemeris (SPK)",
    "CK": "orientation (CK)",
    "PCK": "planetary constants (PCK)",
    "LSK": "leapseconds (LSK)",
    "FK": "frames (FK)",
    "IK": "instrument (IK)",
    "SCLK": "spacecraft clock (SCLK)",
    "MK": "meta-kernel (MK)",
    "DSK": "shape (DSK)",
    "EK": "events (EK)",
}
MISSIONS = (
    "BEPICOLOMBO",
    "JUICE",
    "ROSETTA",
    "MARS EXPRESS",
    "MARS-EXPRESS",
    "VENUS EXPRESS",
    "SOLAR ORBITER",
    "EXOMARS",
    "CASSINI",
    "JUNO",
    "NEW HORIZONS",
    "MRO",
    "LRO",
    "GAIA",
    "HUBBLE",
    "JWST",
    "SMART-1",
    "HERA",
    "MESSENGER",
    "DAWN",
    "OSIRIS-REX",
    "GIOTTO",
    "HUYGENS",
    "ULYSSES",
    "SOHO",
    "CHEOPS",
)
_ID_WORD = re.compile(rb"^(DAF|DAS|KPL|NAIF)/([A-Z0-9]+)")
_RECORD = 1024


def _kind(id_word: bytes) -> str:
    m = _ID_WORD.match(id_word)
    if not m:
        return ""
    family, kind = m[1].decode(), m[2].decode()
    return {"NAIF": "SPK"}.get(family, kind) if family != "DAS" or kind != "EK" else "EK"


class SpiceHarvester(Harvester):
    name = "spice"
    priority = 40

    def matches(self, path: Path) -> bool:
        return bool(_SUFFIX.search(path.name))

    def harvest(self, path: Path, collection: str, relpath: str) -> AssetRecord:
        record = file_record(path, collection, relpath)
        with path.open("rb") as f:
            head = f.read(256 * 1024)
        kind = _kind(head[:8])
        if not kind:
            raise HarvestError(path, "not a SPICE kernel: no DAF/, DAS/ or KPL/ ID word")
        binary = head.startswith((b"DAF/", b"DAS/"))
        if binary and (record.size < 2 * _RECORD or record.size % _RECORD):
            raise HarvestError(
                path, f"truncated: {record.size} bytes is not a whole number of 1024-byte records"
            )
        text = head.decode("latin-1").upper().replace("\0", " ")
        mission = next((m.replace("-", " ") for m in MISSIONS if m in text), "")
        record.facets = {
            "domain": ("Planetary science",),
            "resource_class": ("ancillary",),
            "resource_type": (f"SPICE {KINDS.get(kind, kind)}",),
            "file_format": ("SPICE " + ("binary kernel" if binary else "text kernel"),),
            **({"mission": (mission.title(),)} if mission else {}),
        }
        record.media_type = "application/octet-stream" if binary else "text/plain"
        record.title = f"SPICE {KINDS.get(kind, kind)} kernel" + (f" ({mission.title()})" if mission else "")
        record.properties = {"kernel_type": kind}
        return record
