"""`MemoryIndex`: the search semantics of `datalabs.assets.base`, spelled out by brute force.

It is the yardstick the property tests compare `BitmapIndex` with, and a second implementation for
the AssetIndex contract suite. Every search looks at every record: fine for tests, not for archives.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from datalabs.assets import where
from datalabs.assets.base import (
    FACETS,
    AssetIndex,
    AssetRecord,
    Page,
    Query,
    bbox_intersects,
    record_tokens,
    text_words,
)


def _utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def matches_text(record: AssetRecord, text: str) -> bool:
    tokens = record_tokens(record)
    return all(any(word in token for token in tokens) for word in text_words(text))


def matches_bbox(record: AssetRecord, bbox) -> bool:
    return record.bbox is not None and bbox_intersects(record.bbox, bbox)


def matches_base(record: AssetRecord, q: Query) -> bool:
    """Every restriction of `q` except its facet selections."""
    date = _utc(record.date).replace(microsecond=0)
    return (
        (q.collections is None or record.collection in q.collections)
        and (q.start is None or date >= _utc(q.start))
        and (q.end is None or date < _utc(q.end))
        and matches_text(record, q.text)
        and (q.bbox is None or matches_bbox(record, q.bbox))
        and (q.ids is None or record.id in q.ids)
        and (q.where is None or where.evaluate(q.where, record) is True)
    )


def facet_values(record: AssetRecord, facet: str) -> tuple[str, ...]:
    return (record.collection,) if facet == "collection" else tuple(record.facets.get(facet, ()))


def matches_facets(record: AssetRecord, selections: dict[str, list[str]], skip: str | None = None) -> bool:
    return all(
        set(facet_values(record, facet)) & set(values)
        for facet, values in selections.items()
        if facet != skip and facet in FACETS and values
    )


class MemoryIndex(AssetIndex):
    def __init__(self) -> None:
        self.records: dict[str, AssetRecord] = {}

    def ingest(self, records: Iterable[AssetRecord]) -> int:
        n = 0
        for r in records:
            self.records[r.id] = r
            n += 1
        return n

    def delete(self, ids: Iterable[str]) -> int:
        return sum(self.records.pop(i, None) is not None for i in ids)

    def get(self, asset_id: str) -> AssetRecord | None:
        return self.records.get(asset_id)

    def stats(self) -> dict[str, Any]:
        return {"assets": len(self.records), "bytes": 0}

    def search(self, q: Query) -> Page:
        base = [r for r in self.records.values() if matches_base(r, q)]
        hits = [r for r in base if matches_facets(r, q.facets)]
        facets = {}
        if q.with_facets:
            for facet in FACETS:
                pool = [r for r in base if matches_facets(r, q.facets, skip=facet)]
                counts = Counter(v for r in pool for v in set(facet_values(r, facet)))
                facets[facet] = sorted(counts.items(), key=lambda vc: (-vc[1], vc[0]))
        hits.sort(key=sort_key(q.sort), reverse=q.sort in ("date", "-name"))
        return Page(len(hits), hits[q.offset : q.offset + q.limit], facets)


def sort_key(sort: str):
    if sort in ("date", "-date"):
        return lambda r: _utc(r.date).replace(microsecond=0)
    return lambda r: r.name
