"""Pages of results in date or name order, and the rows a bulk batch would replace.

Rows are numbered newest first within each segment, so a date-ordered page is read off the head (or
tail) of the filter bitmap: with several segments, each contributes its own head and the heads merge.
Name order needs a permutation of all rows, built once per loaded state on the first name-sorted search.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from pyroaring import BitMap

from datalabs.assets.columns import Batch, from_seconds
from datalabs.assets.segment import bitmap
from datalabs.assets.state import State

_WALK = 1 << 16  # rows of the name order examined per step when most rows match


def page(state: State, matches: BitMap, sort: str, offset: int, limit: int) -> list[int]:
    if limit <= 0 or offset >= len(matches):
        return []
    if sort in ("date", "-date"):
        return _by_date(state, matches, sort == "-date", offset, limit)
    return _by_name(state, matches, sort == "-name", offset, limit)


def _by_date(state: State, matches: BitMap, oldest_first: bool, offset: int, limit: int) -> list[int]:
    want = offset + limit
    if len(state.segments) == 1:
        n = len(matches)
        picks = (
            range(n - 1 - offset, max(n - 1 - want, -1), -1) if oldest_first else range(offset, min(want, n))
        )
        return [matches[i] for i in picks]
    candidates: list[int] = []
    for base, seg in zip(state.bases, state.segments, strict=True):
        lo = matches.rank(base - 1) if base else 0  # matches before this segment
        hi = matches.rank(base + seg.rows - 1)
        take = min(want, hi - lo)
        picks = range(hi - 1, hi - 1 - take, -1) if oldest_first else range(lo, lo + take)
        candidates += [matches[i] for i in picks]
    rows = np.asarray(candidates, np.int64)
    dates = state.dates[rows]
    order = np.lexsort((-rows, dates)) if oldest_first else np.lexsort((rows, -dates))
    return rows[order][offset:want].tolist()


def _by_name(state: State, matches: BitMap, descending: bool, offset: int, limit: int) -> list[int]:
    ranks, order = state.name_order
    want = offset + limit
    if len(matches) * 16 < len(order):  # few matches: sort their ranks
        rows = np.frombuffer(matches.to_array(), np.uint32)
        keys = ranks[rows].astype(np.int64) * (-1 if descending else 1)
        if want < len(keys):
            part = np.argpartition(keys, want - 1)[:want]
            rows, keys = rows[part], keys[part]
        return rows[np.argsort(keys, kind="stable")][offset:want].tolist()
    found: list[int] = []
    walk = order[::-1] if descending else order
    for start in range(0, len(walk), _WALK):  # many matches: walk the name order until the page is full
        chunk = walk[start : start + _WALK]
        hits = bitmap(np.sort(chunk)) & matches
        if hits:
            chunk_hits = chunk[np.isin(chunk, np.frombuffer(hits.to_array(), np.uint32))]
            found.extend(chunk_hits.tolist())
            if len(found) >= want:
                break
    return found[offset:want]


def overlapping_rows(
    state: State, batch: Batch, lookup: Callable[[State, str, str], int | None]
) -> Iterator[int | None]:
    """Existing rows the batch replaces: looked up only in directories where the collection already has
    files, so appending a new archive (or a new day of one) costs no per-row look-up."""
    if not state.rows:
        return
    collection, directory = batch.columns["collection"], batch.columns["dir"]
    pairs = collection.codes.astype(np.int64) * len(directory.sets) + directory.codes
    for pair in np.unique(pairs):
        c_code, d_code = divmod(int(pair), len(directory.sets))
        c_value = collection.values[collection.sets[c_code][0]]
        d_value = directory.values[directory.sets[d_code][0]] if directory.sets[d_code] else ""
        present = state.value_bitmap("collection", c_value) & state.value_bitmap("dir", d_value)
        if not present:
            continue
        for row in np.flatnonzero(pairs == pair):
            name = batch.rows.names[row]
            name = name.decode() if isinstance(name, bytes) else str(name)
            yield lookup(state, c_value, f"{d_value}/{name}" if d_value else name)


def histogram(state: State, matches: BitMap, buckets: int, start: int | None, end: int | None):
    """Matches per date bucket: `buckets` equal spans between the query's (else the matches') first and
    last date. Each bucket is a contiguous row range per segment, so this is range counting only."""
    if not matches:
        return []
    extremes = state.dates[_extreme_rows(state, matches)]
    first = start if start is not None else int(extremes.min())
    last = end if end is not None else int(extremes.max()) + 1
    step = max(1, -(-(last - first) // buckets))
    out = []
    for lo in range(first, last, step):
        hi = min(lo + step, last)
        out.append(
            (from_seconds(lo), from_seconds(hi), matches.intersection_cardinality(state.date_rows(lo, hi)))
        )
    return out


def _extreme_rows(state: State, matches: BitMap) -> list[int]:
    """The newest and oldest match of each segment (rows are newest first within a segment)."""
    rows = []
    for base, seg in zip(state.bases, state.segments, strict=True):
        lo = matches.rank(base - 1) if base else 0
        hi = matches.rank(base + seg.rows - 1)
        if hi > lo:
            rows += [matches[lo], matches[hi - 1]]
    return rows


def directory_pairs(batch: Batch) -> set[tuple[str, str]]:
    """The (collection, directory) pairs a batch holds."""
    collection, directory = batch.columns["collection"], batch.columns["dir"]
    pairs = np.unique(collection.codes.astype(np.int64) * len(directory.sets) + directory.codes)
    out = set()
    for pair in pairs:
        c_code, d_code = divmod(int(pair), len(directory.sets))
        c_value = collection.values[collection.sets[c_code][0]]
        out.add((c_value, directory.values[directory.sets[d_code][0]] if directory.sets[d_code] else ""))
    return out
