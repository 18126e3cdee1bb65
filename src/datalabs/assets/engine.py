"""`BitmapIndex`: the embedded asset index (roaring bitmaps via pyroaring + numpy), chosen by benchmark.

Why this engine (bench/RESULTS.md, sections assets-search-1m/10m/100m; /work/shared ANCHORS "Faceted
search"): every click in the explorer asks for the total, the first page by date and the counts of all
facets. On the same 10M synthetic GNSS assets and searches, in the same run, DuckDB (dictionary-coded
columns, GROUPING SETS, rows sorted by date) took 40-440x longer and PostgreSQL (btree per facet,
trigram name index) 390-16,000x longer; both scan what the filter matches and group it, so they grow
with the rows. At 100M assets on 2 cores the bitmap index answers the issue's target searches
(1-5 facets + time range + text) in p50 ~35 ms / p95 ~90 ms, unfiltered in ~4 ms, in 6.7 GiB of RAM
and 27 bytes per asset on disk, after ingesting a listing at ~350,000 assets/s. What makes it fast:

- rows are numbered by date, newest first, so the first page is the head of the filter bitmap and a
  time range is one contiguous row range per segment (counted from per-block prefix sums, `prefix`);
- a filter is a few bitmap unions/intersections (one bitmap per facet value set, per name token, per
  directory, per location); text is matched against value dictionaries, not rows;
- counts come from `numpy.bincount` over per-column set codes when few rows match, bitmap intersection
  cardinalities when the filter is dense, the rows left out when most rows match, and set co-occurrence
  when one facet is the only filter (`counting`); unfiltered counts are computed once.

Storage: DATALABS_HOME/assets/index/seg-*/ (`segment`); segments are immutable, deletions are
tombstones, bulk ingests merge into memory lazily in one pass.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pyroaring import BitMap

from datalabs.assets import paging, segment, where_rows
from datalabs.assets.base import (
    FACETS,
    AssetIndex,
    AssetRecord,
    Page,
    Query,
    bbox_intersects,
    name_tokens,
    split_asset_id,
    text_words,
)
from datalabs.assets.columns import TOKEN_COLUMNS, Batch, from_records, from_seconds, seconds
from datalabs.assets.counting import Counter, count_all, value_counts
from datalabs.assets.state import State, merged

RECORD_CHUNK = 200_000  # records encoded per segment on the record path


class BitmapIndex(AssetIndex):
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write = threading.Lock()
        for stale in self.directory.glob("*.tmp"):  # a crash mid-write leaves only these
            shutil.rmtree(stale, ignore_errors=True)
        self._state = merged(State(), [segment.load(p) for p in self._segment_dirs()])
        # Bulk ingests write segments now and merge them into memory on the next read, all in one pass;
        # with each pending segment, the (collection, directory) pairs it holds.
        self._pending: list[tuple[Path, set[tuple[str, str]]]] = []

    @property
    def state(self) -> State:
        """The loaded index (all segments written so far merged in); for benchmarks and tests."""
        return self._settled()

    def _settled(self) -> State:
        """The state with every segment written so far."""
        if self._pending:
            with self._write:
                self._merge_pending()
        return self._state

    def _merge_pending(self) -> None:
        if self._pending:
            self._state = merged(self._state, [segment.load(path) for path, _ in self._pending])
            self._pending = []

    def _segment_dirs(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if p.name.startswith("seg-") and p.is_dir())

    def refresh(self) -> None:
        """Take in what another process (the `datalabs assets` commands) wrote since: new segments are
        merged in and tombstones re-read, without reloading what is already in memory."""
        with self._write:
            self._merge_pending()
            state = self._state
            known = {seg.directory.name for seg in state.segments}
            added = [segment.load(p) for p in self._segment_dirs() if p.name not in known]
            deleted = []
            for base, seg in zip(state.bases, state.segments, strict=True):
                seg.reload_deleted()
                if seg.deleted:
                    deleted.append(seg.deleted.shift(base))
            state = State(
                state.segments, state.bases, state.columns, state.dates, BitMap.union(BitMap(), *deleted)
            )
            self._state = merged(state, added) if added else state

    # ---- writing -------------------------------------------------------------------------------

    def ingest(self, records: Iterable[AssetRecord]) -> int:
        stored, chunk = 0, {}
        for record in records:
            chunk[record.id] = record  # the last of a duplicated id wins
            if len(chunk) >= RECORD_CHUNK:
                stored += self._ingest_records(list(chunk.values()))
                chunk = {}
        if chunk:
            stored += self._ingest_records(list(chunk.values()))
        return stored

    def _ingest_records(self, records: list[AssetRecord]) -> int:
        with self._write:
            self._merge_pending()
            self._tombstone(self._state, [self._lookup(self._state, r.collection, r.path) for r in records])
            if not records:
                return 0
            path = self._write_segment(from_records(records))
            self._state = merged(self._state, [segment.load(path)])
            return len(records)

    def ingest_batch(self, batch: Batch) -> int:
        """The bulk path (listings, synthetic archives): replaces rows only where a directory of the same
        collection already has files, so a fresh archive is appended without per-row look-ups; the new
        segment joins the in-memory index on the next read."""
        if not len(batch):
            return 0
        with self._write:
            pairs = paging.directory_pairs(batch)
            if any(pairs & held for _, held in self._pending):
                self._merge_pending()
            self._tombstone(self._state, list(paging.overlapping_rows(self._state, batch, self._lookup)))
            self._pending.append((self._write_segment(batch), pairs))
            return len(batch)

    def delete(self, ids: Iterable[str]) -> int:
        with self._write:
            self._merge_pending()
            state = self._state
            rows = [self._lookup(state, *split_asset_id(i)) for i in ids]
            return self._tombstone(state, rows)

    def _write_segment(self, batch: Batch) -> Path:
        numbers = [int(p.name[4:]) for p in self._segment_dirs()]
        path = self.directory / f"seg-{max(numbers, default=-1) + 1:06d}"
        segment.write(path, batch)
        return path

    def _tombstone(self, state: State, rows: list[int | None]) -> int:
        """Mark rows deleted, on disk (per segment) and in a new State."""
        found = [r for r in rows if r is not None]
        touched = set()
        for row in found:
            seg, local = state.segment_of(row)
            seg.deleted.add(local)
            touched.add(seg.directory)
        for seg in state.segments:
            if seg.directory in touched:
                seg.save_deleted()
        if found:
            self._state = _with_deleted(state, found)
        return len(found)

    # ---- reading -------------------------------------------------------------------------------

    def get(self, asset_id: str) -> AssetRecord | None:
        try:
            collection, path = split_asset_id(asset_id)
        except ValueError:
            return None
        state = self._settled()
        row = self._lookup(state, collection, path)
        return None if row is None else self._records(state, [row])[0]

    def search(self, query: Query) -> Page:
        began = time.perf_counter()
        state = self._settled()
        if not state.rows:
            return Page(0, [], {f: [] for f in FACETS} if query.with_facets else {})
        base, selections = self._filters(state, query)
        matches = BitMap.intersection(base, *selections.values()) if selections else base
        facets = self._facet_counts(state, query, base, selections, matches) if query.with_facets else {}
        rows = paging.page(state, matches, query.sort, query.offset, query.limit)
        items = self._records(state, rows)
        page = Page(len(matches), items, facets)
        if query.histogram:
            page.histogram = paging.histogram(
                state, matches, query.histogram, _sec(query.start), _sec(query.end)
            )
        if query.locations:
            page.locations = Counter(matches).value_counts(state.columns["loc"])
        page.took_ms = (time.perf_counter() - began) * 1000
        return page

    def warm(self) -> None:
        """Build now what the first searches would otherwise build: unfiltered counts, prefix sums for
        time ranges, the text-matching dictionaries."""
        state = self._settled()
        if not state.rows:
            return
        universe = state.universe
        for facet in FACETS:
            universe.set_counts(state.columns[facet])
            universe.prefix.run_counts(state.columns[facet], 0, min(state.rows, 1 << 17))
        for name in (*TOKEN_COLUMNS, "dir"):
            state.values_containing(name, "\t")

    def stats(self) -> dict[str, Any]:
        state = self._settled()
        disk = sum(s.disk_bytes for s in state.segments)
        alive = len(state.alive)
        return {
            "assets": alive,
            "bytes": disk,
            "bytes_per_asset": round(disk / alive, 2) if alive else 0.0,
            "segments": len(state.segments),
            "deleted": len(state.deleted),
            "collections": sorted(
                v for v, _ in Counter(state.alive, state.universe).value_counts(state.columns["collection"])
            )
            if state.rows
            else [],
        }

    # ---- internals -----------------------------------------------------------------------------

    def _filters(self, state: State, query: Query) -> tuple[BitMap, dict[str, BitMap]]:
        """The query's restrictions except facet selections (intersected into `base`), and each selected
        facet's bitmap (OR of its values), kept apart for multi-select counting."""
        parts = [state.alive]
        if query.collections is not None:
            parts.append(self._union(state, "collection", query.collections))
        if query.start is not None or query.end is not None:
            parts.append(state.date_rows(_sec(query.start), _sec(query.end)))
        for word in text_words(query.text):
            parts.append(self._word_rows(state, word))
        if query.bbox is not None:
            parts.append(self._bbox_rows(state, query.bbox))
        if query.ids is not None:
            found = (self._lookup_id(state, i) for i in query.ids)
            parts.append(BitMap(r for r in found if r is not None))
        if query.where is not None:
            parts.append(where_rows.rows(state, query.where, True, self._lookup_id))
        base = BitMap.intersection(*sorted(parts, key=len)) if len(parts) > 1 else parts[0]
        selections = {
            facet: self._union(state, facet, values)
            for facet, values in query.facets.items()
            if facet in FACETS and values
        }
        return base, selections

    def _facet_counts(self, state, query, base, selections, matches) -> dict[str, list[tuple[str, int]]]:
        universe = state.universe
        if len(selections) == 1 and len(base) == len(universe.rows) and not state.deleted:
            return self._one_facet_counts(state, query, next(iter(selections)))
        shared = Counter(matches, universe)
        own = {
            facet: Counter(
                BitMap.intersection(base, *(s for f, s in selections.items() if f != facet)), universe
            )
            for facet in selections
        }
        return count_all(state.columns, list(FACETS), lambda facet: own.get(facet, shared))

    def _one_facet_counts(self, state: State, query: Query, facet: str) -> dict[str, list[tuple[str, int]]]:
        """One facet selected and nothing else: every other facet's counts come from the co-occurrence
        of its sets with the selected facet's sets (built once per pair), whatever share of rows matches."""
        universe, selected = state.universe, state.columns[facet]
        chosen = sorted(
            {
                c
                for v in query.facets[facet]
                if v in selected.value_ix
                for c in selected.sets_of_value[selected.value_ix[v]]
            }
        )
        out = {}
        for name in FACETS:
            column = state.columns[name]
            if name == facet:
                out[name] = value_counts(column, universe.set_counts(column))
            else:
                out[name] = value_counts(column, universe.cooccurrence(selected, column)[chosen].sum(axis=0))
        return out

    def _union(self, state: State, column: str, values: Iterable) -> BitMap:
        return BitMap.union(BitMap(), *(state.value_bitmap(column, v) for v in values))

    def _word_rows(self, state: State, word: str) -> BitMap:
        """Rows with a name token or a directory component containing `word`."""
        parts = []
        # Words never contain '/', so a substring of a whole directory lies within one component.
        for name in (*TOKEN_COLUMNS, "dir"):
            parts += [state.value_bitmap(name, v) for v in state.values_containing(name, word)]
        return BitMap.union(BitMap(), *parts)

    def _bbox_rows(self, state: State, bbox) -> BitMap:
        hits = [v for v in state.columns["loc"].values if bbox_intersects(v, bbox)]
        return self._union(state, "loc", hits)

    def _lookup_id(self, state: State, asset_id: str) -> int | None:
        try:
            return self._lookup(state, *split_asset_id(asset_id))
        except ValueError:
            return None

    def _lookup(self, state: State, collection: str, path: str) -> int | None:
        """The live row of (collection, path): intersect collection, directory and name-token bitmaps,
        then compare the few candidates' names."""
        if not state.rows:
            return None
        directory, _, name = path.rpartition("/")
        parts = [state.value_bitmap("collection", collection), state.value_bitmap("dir", directory)]
        parts += [state.value_bitmap(c, t) for c, t in zip(TOKEN_COLUMNS, name_tokens(name), strict=False)]
        candidates = BitMap.intersection(*parts) - state.deleted
        for row in candidates:
            seg, local = state.segment_of(row)
            if seg.reader.rows([local])[0]["name"] == name:
                return row
        return None

    def _records(self, state: State, rows: list[int]) -> list[AssetRecord]:
        """Records of `rows`, reading each segment's payload in one call (a block is inflated once)."""
        located = [state.segment_of(row) for row in rows]
        payloads: dict[int, dict] = {}
        for seg in {id(s): s for s, _ in located}.values():
            mine = [(row, local) for row, (s, local) in zip(rows, located, strict=True) if s is seg]
            payloads.update(zip((r for r, _ in mine), seg.reader.rows([lo for _, lo in mine]), strict=True))
        return [self._record(state, row, payloads[row]) for row in rows]

    def _record(self, state: State, row: int, payload: dict) -> AssetRecord:
        cols = state.columns
        facets = {f: tuple(cols[f].values[i] for i in cols[f].sets[cols[f].codes[row]]) for f in FACETS}
        directory = cols["dir"].values[cols["dir"].sets[cols["dir"].codes[row]][0]]
        loc = [cols["loc"].values[i] for i in cols["loc"].sets[cols["loc"].codes[row]]]
        return AssetRecord(
            collection=facets.pop("collection")[0],
            path=f"{directory}/{payload['name']}" if directory else payload["name"],
            size=payload["size"],
            modified=from_seconds(payload["modified"]),
            start=from_seconds(payload["start"]),
            end=from_seconds(payload["end"]),
            facets={f: v for f, v in facets.items() if v},
            bbox=tuple(loc[0]) if loc else None,
            media_type=payload["media_type"],
            title=payload["title"],
            properties=payload["properties"],
        )


def _with_deleted(state: State, rows: list[int]) -> State:
    out = State(state.segments, state.bases, state.columns, state.dates, state.deleted | BitMap(rows))
    return out


def _sec(dt) -> int | None:
    return None if dt is None else seconds(dt)
