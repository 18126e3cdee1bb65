"""'New data' triggers on a saved asset search: assets that a harvest or a listing ingest put in the index
and that match the trigger's search (collection, facets, text, bbox, time, as the explorer's query
parameters) fire it, with the file as `volume:<collection>/<path>`.

The watcher (trigger_watch.py) asks this module at each scan for the matches of every active trigger
with a search and no watched folder, searching as the trigger's owner (only the collections of the
volumes they may read). "New" is the asset's file modification time at or after the trigger's creation
or last resume (the index keeps no time of indexing); the event key is the asset id with that time and
its size, so each asset fires once and a changed file fires again.
"""

from __future__ import annotations

import math
from typing import Any

from datalabs.assets import params
from datalabs.assets.base import FACETS, Query
from datalabs.errors import DatalabsError, Invalid


def query_of(search: dict[str, Any], limit: int) -> Query:
    """The index query of a saved search (refused with Invalid when the search cannot be read)."""
    facets = {f: [str(v) for v in vs][:50] for f, vs in (search.get("facets") or {}).items() if f in FACETS}
    collection = search.get("collection")
    if isinstance(collection, str):
        collection = [collection]
    start, end = params.interval(search.get("datetime")) if search.get("datetime") else (None, None)
    return Query(
        text=str(search.get("q", ""))[:200],
        facets=facets,
        start=start,
        end=end,
        bbox=params.bbox(search.get("bbox")) if search.get("bbox") else None,
        sort="name",
        limit=limit,
        collections=frozenset(str(c) for c in collection) if collection else None,
        with_facets=False,
    )


def check(search: dict[str, Any]) -> None:
    """Refuse a saved search the matcher could not run (at the trigger's creation)."""
    try:
        query_of(search, 1)
    except DatalabsError as exc:
        raise Invalid(f"config.search: {exc.message}", code="bad_trigger_config") from None


def matches(assets, search: dict[str, Any], allowed: frozenset[str] | None, armed: float, limit: int):
    """(event key, file reference, modification time) of the assets matching `search` in the collections
    `allowed` (None: all) modified at or after `armed` (seconds since the epoch)."""
    page = assets.search(query_of(search, limit), allowed)
    for record in page.items:
        modified = record.modified.timestamp() if record.modified is not None else None
        if modified is None or modified < math.floor(armed):  # the index keeps whole seconds
            continue
        key = f"asset:{record.id}@{record.modified.isoformat()}:{record.size}"
        yield key, f"volume:{record.collection}/{record.path}", modified
