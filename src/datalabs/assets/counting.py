"""Exact facet counts over a filter bitmap, by whichever of two methods is cheaper for this filter.

- gather + `numpy.bincount`: read the set code of every matching row; cost grows with the matches,
  so it wins when few rows match (the usual case once a time range or text narrows the search);
- bitmap intersection cardinalities, one per set of the column: cost grows with the filter's
  containers times the column's sets, so it wins for broad filters over columns with few sets.

Either way the result is a count per *set*, turned into counts per *value* through the column's
set -> value incidence (a file observing G01 and G05 counts once for each).
The constants are calibrated on the 10M-row benchmark (bench/assets_search.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pyroaring import BitMap

from datalabs.assets.counting_base import Column
from datalabs.assets.prefix import PrefixCounts, runs

GATHER_NS_PER_ROW = 12.0
INTERSECT_NS_PER_CONTAINER = 250.0
_CONTAINER = 1 << 16
_COOCCURRENCE_CHUNK = 1 << 22


def _containers(bm: BitMap) -> int:
    return min(len(bm), (bm.max() - bm.min()) // _CONTAINER + 1)


class Universe:
    """All live rows and, computed once per column, their counts per set: unfiltered counts are free,
    and a filter matching most rows is counted through the few rows it leaves out."""

    def __init__(self, rows: BitMap, bounds: list[tuple[int, int]] | None = None):
        self.rows = rows
        self.bounds = bounds or []  # each segment's rows [begin, end)
        self.prefix = PrefixCounts()
        self._counts: dict = {}

    def cooccurrence(self, a: Column, b: Column) -> np.ndarray:
        """Rows per (set of `a`, set of `b`), over every row (only used while no row is deleted)."""
        key = (id(a), id(b))
        found = self._counts.get(key)
        if found is None:
            width = len(b.sets)
            found = np.zeros(len(a.sets) * width, np.int64)
            for start in range(0, len(a.codes), _COOCCURRENCE_CHUNK):  # bounded temporary arrays
                pairs = a.codes[start : start + _COOCCURRENCE_CHUNK].astype(np.int64) * width
                pairs += b.codes[start : start + _COOCCURRENCE_CHUNK]
                found += np.bincount(pairs, minlength=len(found))
            found = self._counts[key] = found.reshape(len(a.sets), width)
        return found

    def set_counts(self, column: Column) -> np.ndarray:
        found = self._counts.get(id(column))
        if found is None:
            found = self._counts[id(column)] = Counter(self.rows).set_counts(column)
        return found


class Counter:
    """Counts columns over one filter; the matching rows are gathered at most once."""

    def __init__(self, matches: BitMap, universe: Universe | None = None):
        self.matches = matches
        self.universe = universe
        self._rows: np.ndarray | None = None
        self._containers = _containers(matches) if matches else 0
        self._complement: Counter | None = None
        self._run_list: list[tuple[int, int]] | None | bool = False  # False: not looked at yet

    def rows(self) -> np.ndarray:
        if self._rows is None:
            self._rows = np.frombuffer(self.matches.to_array(), np.uint32)
        return self._rows

    def set_counts(self, column: Column) -> np.ndarray:
        everything = len(self.universe.rows) if self.universe else 0
        if self.universe and len(self.matches) == everything:
            return self.universe.set_counts(column)
        if self.universe and len(self.matches) * 2 > everything:
            if self._complement is None:
                self._complement = Counter(self.universe.rows - self.matches)
            return self.universe.set_counts(column) - self._complement.set_counts(column)
        return self._direct(column)

    def _runs(self) -> list[tuple[int, int]] | None:
        """The matches as one run of rows per segment (a time range alone), or None."""
        if self._run_list is False:
            self._run_list = runs(self.matches, self.universe.bounds) if self.universe else None
        return self._run_list

    def _direct(self, column: Column) -> np.ndarray:
        out = np.zeros(len(column.sets), np.int64)
        if not self.matches or not column.live:
            return out
        if len(column.live) > 1 and self._runs():  # runs of consecutive rows: prefix sums, no gather
            return sum(self.universe.prefix.run_counts(column, a, z) for a, z in self._runs())
        first, last = self.matches.min(), self.matches.max()
        if len(column.live) > 1 and last - first + 1 == len(self.matches):  # one run, no prefix sums at hand
            return np.bincount(column.codes[first : last + 1], minlength=len(column.sets)).astype(np.int64)
        gather = len(self.matches) * GATHER_NS_PER_ROW * (0.2 if self._rows is not None else 1.0)
        intersect = len(column.live) * self._containers * INTERSECT_NS_PER_CONTAINER
        if len(column.live) > 1 and gather < intersect:
            counts = np.bincount(column.codes[self.rows()], minlength=len(column.sets))
            return counts.astype(np.int64)
        for code, bm in column.live:
            out[code] = self.matches.intersection_cardinality(bm)
        return out

    def value_counts(self, column: Column) -> list[tuple[str, int]]:
        return value_counts(column, self.set_counts(column))


def value_counts(column: Column, set_counts: np.ndarray) -> list[tuple[str, int]]:
    """Counts per value, zero counts left out, most frequent first (ties by value)."""
    codes, values = column.incidence
    if not len(codes):
        return []
    counts = np.bincount(values, weights=set_counts[codes], minlength=len(column.values)).astype(np.int64)
    nonzero = np.flatnonzero(counts)
    return sorted(((column.values[i], int(counts[i])) for i in nonzero), key=lambda vc: (-vc[1], vc[0]))


def count_all(columns: dict[str, Column], names: list[str], counter_for: Callable[[str], Counter]):
    """Counts for each named column, each under the counter `counter_for(name)` gives."""
    return {name: counter_for(name).value_counts(columns[name]) for name in names}
