"""FITS files (astropy): telescope, instrument, target, RA/Dec, DATE-OBS, exposure, filter, observation id.

The sky position goes in the bbox as (RA, Dec) with RA folded to [-180, 180] so that the same map
and bbox search work for sky positions; `properties.frame` says it is a sky position.
"""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

from astropy.io import fits

from datalabs.assets.base import AssetRecord, Harvester, HarvestError
from datalabs.assets.harvesters.generic import file_record

_SUFFIX = re.compile(r"\.(fits?|fts)(\.(gz|fz|bz2))?$", re.IGNORECASE)
_KEYS = {
    "mission": ("TELESCOP", "MISSION"),
    "instrument": ("INSTRUME", "DETNAM"),
    "target": ("OBJECT", "TARGNAME", "TARGET"),
    "filter": ("FILTER", "FILTER1", "FILTNAM1"),
    "observation_id": ("OBS_ID", "OBSID", "OBSERVID"),
    "exposure": ("EXPTIME", "EXPOSURE", "TELAPSE"),
    "ra": ("RA_OBJ", "RA_TARG", "RA", "CRVAL1"),
    "dec": ("DEC_OBJ", "DEC_TARG", "DEC", "CRVAL2"),
}


def _first(headers: list, keys: tuple[str, ...]):
    for header in headers:
        for key in keys:
            value = header.get(key)
            if value not in (None, ""):
                return value
    return None


def _date(value) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "")
    try:
        dt = datetime.fromisoformat(text if "T" in text or len(text) > 10 else text[:10])
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def read_headers(path: Path) -> list:
    """Headers of every HDU; HarvestError for a corrupt or truncated file."""
    size = path.stat().st_size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False, lazy_load_hdus=False) as hdus:
                headers = [h.header.copy() for h in hdus]
                if not path.name.lower().endswith((".gz", ".bz2", ".fz")):
                    for hdu in hdus:
                        info = hdu.fileinfo()
                        if info and info["datLoc"] + info["datSpan"] > size:
                            raise HarvestError(path, "truncated: the data of an HDU runs past the end")
    except HarvestError:
        raise
    except Exception as e:  # astropy raises OSError, ValueError, TypeError... for damaged files
        raise HarvestError(path, f"not a readable FITS file: {e}") from e
    if not headers:
        raise HarvestError(path, "no HDU in file")
    return headers


class FitsHarvester(Harvester):
    name = "fits"
    priority = 50

    def matches(self, path: Path) -> bool:
        return bool(_SUFFIX.search(path.name))

    def harvest(self, path: Path, collection: str, relpath: str) -> AssetRecord:
        record = file_record(path, collection, relpath)
        headers = read_headers(path)
        found = {key: _first(headers, keys) for key, keys in _KEYS.items()}
        image = headers[0].get("NAXIS", 0) >= 2
        record.facets = {
            "domain": ("Astronomy",),
            "resource_class": ("data",),
            "resource_type": ("image" if image else "table",),
            "file_format": ("FITS",),
            **{k: (str(found[k]).strip(),) for k in ("mission", "instrument", "target") if found[k]},
        }
        if found["filter"]:
            record.facets["tags"] = (f"filter:{str(found['filter']).strip()}",)
        record.start = _date(_first(headers, ("DATE-OBS", "DATE_OBS", "DATE-BEG")))
        exposure = found["exposure"]
        if record.start and isinstance(exposure, int | float):
            record.end = record.start + timedelta(seconds=float(exposure))
        # RFC 4047: image/fits for a primary image, application/fits for any other FITS file (tables):
        # the explorer offers the apps that open each (DS9 the first, TOPCAT the second).
        record.media_type = "image/fits" if image else "application/fits"
        record.title = " ".join(str(v) for v in (found["mission"], found["instrument"], found["target"]) if v)
        record.properties = {k: v for k, v in found.items() if v is not None and not isinstance(v, bytes)}
        # Where on the sky, not on Earth: `bbox` is geographic (the explorer's map, STAC's WGS84 bbox), so
        # a pointing is kept as properties only, never drawn on the Earth map.
        if _on_the_sky(found["ra"], found["dec"]):
            record.properties["frame"] = "icrs"
        return record


def _on_the_sky(ra, dec) -> bool:
    return isinstance(ra, int | float) and isinstance(dec, int | float) and -90 <= dec <= 90
