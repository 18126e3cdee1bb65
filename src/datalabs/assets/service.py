"""The asset explorer service: the installation's index, who may see what, and search/get with that.

Visibility: an asset's collection is the data volume it was harvested from (or the collection a
listing was ingested as); a user sees the collections of the volumes the volume registry allows them,
admins see everything. `visible_collections` is the one place that asks the registry.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.assets.base import AssetRecord, Page, Query
from datalabs.assets.engine import BitmapIndex
from datalabs.config import Settings
from datalabs.errors import NotFound

REFRESH_SECONDS = 2.0  # how often a running server looks for segments written by `datalabs assets ...`


def index_dir(settings: Settings) -> Path:
    return settings.home / "assets" / "index"


def harvest_state_dir(settings: Settings) -> Path:
    return settings.home / "assets" / "harvest"


def download_href(record: AssetRecord) -> str:
    """Files are served by the volume API (the collection is the volume)."""
    return f"/api/v1/volumes/{quote(record.collection)}/files/{quote(record.path)}"


def visible_collections(db: Session, principal: Principal) -> frozenset[str] | None:
    """The collections `principal` may see (None: all, for admins): those of the volumes allowed to them."""
    if principal.is_admin:
        return None
    from datalabs.volumes import service as volumes

    return frozenset(v.name for v in volumes.list_visible(db, principal))


class Assets:
    """The index of one installation, opened on first use and refreshed when another process
    (the `datalabs assets` commands) has added segments or tombstones."""

    def __init__(self, settings: Settings):
        self.directory = index_dir(settings)
        self._index: BitmapIndex | None = None
        self._lock = threading.Lock()
        self._checked = 0.0
        self._signature: tuple = ()

    @property
    def index(self) -> BitmapIndex:
        with self._lock:
            now = time.monotonic()
            if self._index is None or now - self._checked > REFRESH_SECONDS:
                self._checked = now
                signature = self._disk_signature()
                if self._index is None:
                    self._index = BitmapIndex(self.directory)
                    threading.Thread(target=self._index.warm, name="assets-warm", daemon=True).start()
                elif signature != self._signature:
                    self._index.refresh()
                self._signature = signature
            return self._index

    def writer(self) -> BitmapIndex:
        """An instance of the index of its own to write with (its readers' must not be written to)."""
        return BitmapIndex(self.directory)

    def changed(self) -> None:
        """Another writer (a harvest) has just written: look at the disk on the next use."""
        with self._lock:
            self._checked = 0.0

    def count(self, collection: str) -> int:
        """Assets in the index from `collection` (a data volume or an ingested listing)."""
        query = Query(collections=frozenset({collection}), limit=0, with_facets=False)
        return self.index.search(query).total

    def _disk_signature(self) -> tuple:
        if not self.directory.exists():
            return ()
        found = []
        for seg in sorted(self.directory.glob("seg-*[0-9]")):
            deleted = seg / "deleted.roar"
            found.append((seg.name, deleted.stat().st_mtime_ns if deleted.exists() else 0))
        return tuple(found)

    def search(self, query: Query, allowed: frozenset[str] | None) -> Page:
        query.collections = (
            allowed
            if query.collections is None
            else (query.collections if allowed is None else query.collections & allowed)
        )
        return self.index.search(query)

    def get(self, asset_id: str, allowed: frozenset[str] | None) -> AssetRecord:
        record = self.index.get(asset_id)
        if record is None or (allowed is not None and record.collection not in allowed):
            raise NotFound(f"no asset '{asset_id}' available to you", code="asset_not_found")
        return record
