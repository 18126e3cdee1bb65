"""The fallback harvester: what the file system says (size, modification time, media type by name)."""

from __future__ import annotations

import mimetypes
from datetime import UTC, datetime
from pathlib import Path

from datalabs.assets.base import AssetRecord, Harvester, HarvestError

_EXTRA_TYPES = {
    ".fits": "image/fits",
    ".fit": "image/fits",
    ".fts": "image/fits",
    ".nc": "application/x-netcdf",
}


def media_type(path: Path) -> str:
    name = path.name.lower()
    for compressed in (".gz", ".z", ".bz2"):
        if name.endswith(compressed):
            name = name[: -len(compressed)]
    suffix = Path(name).suffix
    return _EXTRA_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def file_record(path: Path, collection: str, relpath: str) -> AssetRecord:
    """A record with the file system's facts; HarvestError if the file cannot be examined."""
    try:
        st = path.stat()
    except OSError as e:
        raise HarvestError(path, f"cannot read file: {e.strerror or e}") from e
    return AssetRecord(
        collection=collection,
        path=relpath,
        size=st.st_size,
        modified=datetime.fromtimestamp(int(st.st_mtime), UTC),
        media_type=media_type(path),
        facets={"file_format": (Path(path.name).suffix.lstrip(".").upper() or "unknown",)},
    )


class GenericHarvester(Harvester):
    name = "generic"
    priority = -100

    def matches(self, path: Path) -> bool:
        return True

    def harvest(self, path: Path, collection: str, relpath: str) -> AssetRecord:
        return file_record(path, collection, relpath)
