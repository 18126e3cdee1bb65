"""The loaded index: every segment's columns merged into one row-id space (segment after segment).

Merging happens once per load or ingest, so a search does its bitmap work on one bitmap per set
whatever the number of segments; only date ranges and paging look at segment boundaries. A State is
never changed after it is built: an ingest builds the next one and swaps it in, so searches running
meanwhile keep a consistent view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from pyroaring import BitMap

from datalabs.assets.columns import COLUMNS, smallest_uint
from datalabs.assets.counting import Universe
from datalabs.assets.counting_base import Column
from datalabs.assets.segment import Segment


@dataclass
class State:
    segments: list[Segment] = field(default_factory=list)
    bases: list[int] = field(default_factory=list)
    columns: dict[str, Column] = field(default_factory=dict)
    dates: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    deleted: BitMap = field(default_factory=BitMap)

    @property
    def rows(self) -> int:
        return len(self.dates)

    @cached_property
    def alive(self) -> BitMap:
        everything = BitMap(range(self.rows)) if self.rows else BitMap()
        return everything - self.deleted if self.deleted else everything

    @cached_property
    def universe(self) -> Universe:
        return Universe(self.alive, [(b, b + s.rows) for b, s in zip(self.bases, self.segments, strict=True)])

    def segment_of(self, row: int) -> tuple[Segment, int]:
        i = int(np.searchsorted(self.bases, row, side="right")) - 1
        return self.segments[i], row - self.bases[i]

    def value_bitmap(self, column: str, value) -> BitMap:
        """Rows whose `column` includes `value` (cached: a union over the sets containing it)."""
        key = (column, value)
        found = self._value_bitmaps.get(key)
        if found is None:
            col = self.columns[column]
            ix = col.value_ix.get(value)
            codes = [] if ix is None else col.sets_of_value[ix]
            found = BitMap.union(BitMap(), *(col.bitmaps[c] for c in codes if col.bitmaps[c] is not None))
            if len(self._value_bitmaps) > 4096:  # bound the cache; it refills with what is used
                self._value_bitmaps.clear()
            self._value_bitmaps[key] = found
        return found

    @cached_property
    def _value_bitmaps(self) -> dict:
        return {}

    def values_containing(self, column: str, word: str) -> list:
        """Values of `column` whose lower case contains `word` (no newline in it): one C-speed scan of
        the column's values joined by newlines, then one step per hit, so a dictionary of a million
        values costs milliseconds when few match."""
        joined, starts = self._joined(column)
        values = self.columns[column].values
        hits = []
        position = joined.find(word)
        while position != -1:
            i = int(np.searchsorted(starts, position, "right")) - 1
            hits.append(values[i])
            position = joined.find(word, int(starts[i + 1])) if i + 1 < len(starts) else -1
        return hits

    def _joined(self, column: str) -> tuple[str, np.ndarray]:
        found = self._lowered.get(column)
        if found is None:
            lowered = [str(v).lower() for v in self.columns[column].values]
            lengths = np.fromiter((len(v) + 1 for v in lowered), np.int64, len(lowered))
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lowered) else np.zeros(0, np.int64)
            found = self._lowered[column] = ("\n".join(lowered), starts)
        return found

    @cached_property
    def _lowered(self) -> dict:
        return {}

    @cached_property
    def name_order(self) -> tuple[np.ndarray, np.ndarray]:
        """(rank of each row by name, rows in name order), built on first use from the row store."""
        names: list[str] = []
        for seg in self.segments:
            names.extend(seg.reader.names())
        order = np.argsort(np.asarray(names, dtype=str), kind="stable").astype(np.uint32)
        ranks = np.empty(len(order), np.uint32)
        ranks[order] = np.arange(len(order), dtype=np.uint32)
        return ranks, order

    def date_rows(self, start: int | None, end: int | None) -> BitMap:
        """Rows dated in [start, end): one contiguous range per segment (rows are newest first)."""
        out = BitMap()
        for base, seg in zip(self.bases, self.segments, strict=True):
            ascending = self.dates[base : base + seg.rows][::-1]
            lo = np.searchsorted(ascending, start, "left") if start is not None else 0
            hi = np.searchsorted(ascending, end, "left") if end is not None else seg.rows
            if hi > lo:
                out.add_range(base + seg.rows - int(hi), base + seg.rows - int(lo))
        return out


def merged(previous: State, added: list[Segment]) -> State:
    """A new State: `previous` plus `added` segments, their row ids following the existing ones."""
    state = State(list(previous.segments), list(previous.bases), dict(previous.columns), previous.dates)
    deleted = [previous.deleted]
    parts = [previous.dates]
    for seg in added:
        base = state.rows if not state.segments else state.bases[-1] + state.segments[-1].rows
        state.bases.append(base)
        state.segments.append(seg)
        parts.append(seg.dates)
        deleted.append(seg.deleted.shift(base) if seg.deleted else BitMap())
        for name in COLUMNS:
            state.columns[name] = _merge_column(state.columns.get(name), seg.columns[name], base)
            seg.columns[name] = None  # the merged column holds the data now; free the copy
    state.dates = np.concatenate(parts) if len(parts) > 1 else previous.dates
    state.deleted = BitMap.union(*deleted)
    for base, seg in zip(state.bases, state.segments, strict=True):
        seg.dates = seg.reader.dates = state.dates[base : base + seg.rows]
    return state


def _merge_column(into: Column | None, seg, base: int) -> Column:
    if into is None:
        return Column(list(seg.values), list(seg.sets), list(seg.bitmaps), seg.codes)
    values, value_ix = list(into.values), dict(into.value_ix)
    sets, set_ix, bitmaps = list(into.sets), dict(into.set_ix), list(into.bitmaps)
    value_map = []
    for v in seg.values:
        if v not in value_ix:
            value_ix[v] = len(values)
            values.append(v)
        value_map.append(value_ix[v])
    code_map = np.zeros(len(seg.sets), np.int64)
    for code, members in enumerate(seg.sets):
        key = tuple(sorted(value_map[i] for i in members))
        if key not in set_ix:
            set_ix[key] = len(sets)
            sets.append(key)
            bitmaps.append(None)
        g = code_map[code] = set_ix[key]
        if seg.bitmaps[code] is not None:
            shifted = seg.bitmaps[code].shift(base)
            bitmaps[g] = shifted if bitmaps[g] is None else bitmaps[g] | shifted
    dtype = smallest_uint(len(sets))
    codes = np.concatenate([into.codes.astype(dtype, copy=False), code_map[seg.codes].astype(dtype)])
    return Column(values, sets, bitmaps, codes, value_ix, set_ix)
