"""Counts over runs of consecutive rows from prefix sums: a time range is one run of rows per segment
(rows are newest first), so its facet counts need no gather, only two look-ups per run plus the
partial blocks at its ends."""

from __future__ import annotations

import numpy as np
from pyroaring import BitMap

from datalabs.assets.counting_base import Column

BLOCK = 1 << 16


def runs(matches: BitMap, bounds: list[tuple[int, int]]) -> list[tuple[int, int]] | None:
    """`matches` as runs [a, z), if it is at most one run per segment (`bounds`); else None."""
    out = []
    for begin, end in bounds:
        lo = matches.rank(begin - 1) if begin else 0
        n = matches.rank(end - 1) - lo
        if n == 0:
            continue
        first, last = matches[lo], matches[lo + n - 1]
        if last - first + 1 != n:
            return None
        out.append((first, last + 1))
    return out


class PrefixCounts:
    """Per column: counts per set of all rows before each multiple of BLOCK (built on first use)."""

    def __init__(self) -> None:
        self._cumulative: dict[int, np.ndarray] = {}

    def _of(self, column: Column) -> np.ndarray:
        found = self._cumulative.get(id(column))
        if found is None:
            sets, n = len(column.sets), len(column.codes)
            blocks = [np.bincount(column.codes[i : i + BLOCK], minlength=sets) for i in range(0, n, BLOCK)]
            found = np.zeros((len(blocks) + 1, sets), np.int64)
            if blocks:
                np.cumsum(np.vstack(blocks), axis=0, out=found[1:])
            self._cumulative[id(column)] = found
        return found

    def run_counts(self, column: Column, a: int, z: int) -> np.ndarray:
        sets = len(column.sets)
        first_full, last_full = -(-a // BLOCK), z // BLOCK
        if first_full >= last_full and not (a == 0 and z >= BLOCK):  # within two blocks: count directly
            return np.bincount(column.codes[a:z], minlength=sets).astype(np.int64)
        cumulative = self._of(column)
        out = cumulative[last_full] - cumulative[first_full]
        out = out + np.bincount(column.codes[a : first_full * BLOCK], minlength=sets)
        return out + np.bincount(column.codes[last_full * BLOCK : z], minlength=sets)
