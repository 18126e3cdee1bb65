"""The loaded index: every segment's columns merged into one row-id space (segment after segment).

Merging happens once per load or ingest, so a search does its bitmap work on one bitmap per set
whatever the number of segments; only date ranges and paging look at segment boundaries. A State is
never changed after it is built: an ingest builds the next one and swaps it in, so searches running
meanwhile keep a consistent view.
"""

from __future__ import annotations

import contextlib
import ctypes
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
    """A new State: `previous` plus `added` segments, their row ids following the existing ones. Each
    column is concatenated once and each set's bitmap unioned once, however many segments are added."""
    if not added:
        return previous
    bases, next_base = [], previous.rows
    for seg in added:
        bases.append(next_base)
        next_base += seg.rows
    columns = {}
    for name in COLUMNS:  # column by column, freeing the segments' copies at once: peak = data + 1 column
        columns[name] = _merge_columns(
            previous.columns.get(name), [(seg.columns[name], b) for seg, b in zip(added, bases, strict=True)]
        )
        for seg in added:
            seg.columns[name] = None
    deleted = [seg.deleted.shift(b) for seg, b in zip(added, bases, strict=True) if seg.deleted]
    dates = np.concatenate([previous.dates, *(seg.dates for seg in added)])
    state = State(
        [*previous.segments, *added],
        [*previous.bases, *bases],
        columns,
        dates,
        BitMap.union(previous.deleted, *deleted) if deleted else previous.deleted,
    )
    for base, seg in zip(state.bases, state.segments, strict=True):
        seg.dates = seg.reader.dates = state.dates[base : base + seg.rows]
    release_memory()
    return state


def release_memory() -> None:
    """Hand freed heap back to the system: merging frees millions of small bitmap containers, which
    glibc would otherwise keep (RSS at 10M assets: 0.99 GiB before, 0.57 GiB after)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _merge_columns(into: Column | None, parts: list) -> Column:
    """`into` (or nothing) followed by each (segment column, row base) of `parts`."""
    if into is None and len(parts) == 1 and parts[0][1] == 0:
        seg = parts[0][0]
        return Column(list(seg.values), list(seg.sets), list(seg.bitmaps), seg.codes)
    values = list(into.values) if into else []
    value_ix = dict(into.value_ix) if into else {}
    sets = list(into.sets) if into else []
    set_ix = dict(into.set_ix) if into else {}
    pieces: list[list[BitMap]] = [[bm] if bm is not None else [] for bm in (into.bitmaps if into else [])]
    code_parts = [into.codes] if into else []
    for seg, base in parts:
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
                pieces.append([])
            code_map[code] = set_ix[key]
            if seg.bitmaps[code] is not None:
                pieces[code_map[code]].append(seg.bitmaps[code].shift(base) if base else seg.bitmaps[code])
        code_parts.append(code_map.astype(smallest_uint(len(sets)))[seg.codes])
    dtype = smallest_uint(len(sets))
    codes = np.concatenate([p.astype(dtype, copy=False) for p in code_parts])
    bitmaps = [None if not p else p[0] if len(p) == 1 else BitMap.union(*p) for p in pieces]
    return Column(values, sets, bitmaps, codes, value_ix, set_ix)
