"""Columnar batches: what the bitmap index stores, built row by row from records or vectorised from listings.

Every searchable attribute is a *coded column*: a dictionary of distinct `values`, a dictionary of
distinct value `sets` (a file may observe several satellites; single-valued columns have one-element
sets, and the empty set means "none"), and one set code per row. Coding whole sets keeps one small
integer per row even for multi-valued facets, so counting is one `bincount` plus a tiny set->value step.

Hidden columns beside the FACETS: `dir` (directory), `loc` (bbox) and `t0`..`t7` (name tokens, by
position), which serve text search, bbox search and id look-ups through the same bitmaps as facets.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from datalabs.assets.base import FACETS, NAME_TOKENS, AssetRecord, name_tokens

TOKEN_COLUMNS = tuple(f"t{i}" for i in range(NAME_TOKENS))
HIDDEN = ("dir", "loc", *TOKEN_COLUMNS)
COLUMNS = FACETS + HIDDEN
NONE = -1  # a missing datetime, in seconds columns


def smallest_uint(n: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if n <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise ValueError(f"{n} distinct sets do not fit a 32-bit code")


@dataclass
class Coded:
    """One coded column: `values`, `sets` (code -> sorted value indices) and per-row `codes`."""

    values: list[Any]
    sets: list[tuple[int, ...]]
    codes: np.ndarray

    @classmethod
    def empty(cls, n: int) -> Coded:
        return cls([], [()], np.zeros(n, np.uint8))

    @classmethod
    def single(cls, labels: np.ndarray, blank_is_none: bool = True) -> Coded:
        """From one label per row (numpy array of str/bytes/numbers; '' means none if `blank_is_none`)."""
        uniq, inverse = np.unique(labels, return_inverse=True)
        values = [v.decode() if isinstance(v, bytes) else v.item() if hasattr(v, "item") else v for v in uniq]
        sets = [() if blank_is_none and v == "" else (i,) for i, v in enumerate(values)]
        return cls(values, sets, inverse.astype(smallest_uint(len(sets)))).compacted()

    def compacted(self) -> Coded:
        """Drop values no set uses (e.g. the '' placeholder of `single`) and renumber."""
        used = sorted({i for s in self.sets for i in s})
        if len(used) == len(self.values):
            return self
        renumber = {old: new for new, old in enumerate(used)}
        sets = [tuple(renumber[i] for i in s) for s in self.sets]
        return Coded([self.values[i] for i in used], sets, self.codes)

    def row_values(self, row: int) -> tuple[Any, ...]:
        return tuple(self.values[i] for i in self.sets[int(self.codes[row])])


class CodedBuilder:
    """Builds a Coded column one row at a time (the record path; listings use `Coded.single`)."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._value_ix: dict[Any, int] = {}
        self.sets: list[tuple[int, ...]] = [()]
        self._set_ix: dict[tuple[int, ...], int] = {(): 0}
        self.codes: list[int] = []

    def add(self, values: Iterable[Any]) -> None:
        ixs = []
        for v in values:
            ix = self._value_ix.get(v)
            if ix is None:
                ix = self._value_ix[v] = len(self.values)
                self.values.append(v)
            ixs.append(ix)
        key = tuple(sorted(set(ixs)))
        code = self._set_ix.get(key)
        if code is None:
            code = self._set_ix[key] = len(self.sets)
            self.sets.append(key)
        self.codes.append(code)

    def build(self) -> Coded:
        return Coded(self.values, self.sets, np.asarray(self.codes, dtype=smallest_uint(len(self.sets))))


@dataclass
class Rows:
    """Per-row payload that is shown, not searched: kept in compressed blocks (`rowstore`)."""

    names: Sequence[str]
    sizes: np.ndarray  # int64 bytes
    modified: np.ndarray  # int64 epoch seconds, NONE if unknown
    ends: np.ndarray  # int64 epoch seconds, NONE if unknown
    dated: np.ndarray  # int64 1 where the row's date is its observation start, 0 where it is a fallback
    media_types: Sequence[str] | str = "application/octet-stream"  # one for all rows, or one per row
    titles: Sequence[str] | str = ""
    properties: Sequence[dict[str, Any]] | None = None  # None: {} for every row


@dataclass
class Batch:
    """Rows ready for a segment: dates (epoch seconds), coded columns (all of COLUMNS) and payload."""

    dates: np.ndarray
    columns: dict[str, Coded]
    rows: Rows
    notes: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.dates)


def seconds(dt: datetime | None) -> int:
    if dt is None:
        return NONE
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def from_seconds(value: int) -> datetime | None:
    return None if value == NONE else datetime.fromtimestamp(int(value), UTC)


def from_records(records: Sequence[AssetRecord]) -> Batch:
    """The record path: encode each record's facets, directory, bbox and name tokens."""
    builders = {name: CodedBuilder() for name in COLUMNS}
    for r in records:
        for facet in FACETS:
            builders[facet].add(r.facets.get(facet, ()))
        builders["collection"].codes.pop()  # the collection is the record's own field, never a free facet
        builders["collection"].add((r.collection,))
        builders["dir"].add((r.directory,))
        builders["loc"].add((tuple(float(x) for x in r.bbox),) if r.bbox else ())
        tokens = name_tokens(r.name)
        for i, column in enumerate(TOKEN_COLUMNS):
            builders[column].add(tokens[i : i + 1])
    rows = Rows(
        names=[r.name for r in records],
        sizes=np.array([r.size for r in records], np.int64),
        modified=np.array([seconds(r.modified) for r in records], np.int64),
        ends=np.array([seconds(r.end) for r in records], np.int64),
        dated=np.array([r.start is not None for r in records], np.int64),
        media_types=[r.media_type for r in records],
        titles=[r.title for r in records],
        properties=[json.loads(json.dumps(r.properties, default=str)) for r in records],
    )
    dates = np.array([seconds(r.date) for r in records], np.int64)
    return Batch(dates, {name: b.build() for name, b in builders.items()}, rows)


def coded_from_groups(group_values: Sequence[Iterable[Any]], inverse: np.ndarray) -> Coded:
    """A column where rows of group g hold `group_values[g]`: coded per group, then spread to rows."""
    builder = CodedBuilder()
    for values in group_values:
        builder.add(values)
    per_group = np.asarray(builder.codes, dtype=smallest_uint(len(builder.sets)))
    return Coded(builder.values, builder.sets, per_group[inverse])


def concat(batches: Sequence[Batch]) -> Batch:
    """One batch holding the rows of all `batches` (dictionaries merged, codes renumbered)."""
    if len(batches) == 1:
        return batches[0]
    columns = {name: _concat_coded([b.columns[name] for b in batches]) for name in COLUMNS}
    rows = [b.rows for b in batches]
    return Batch(
        np.concatenate([b.dates for b in batches]),
        columns,
        Rows(
            names=_concat_seq([r.names for r in rows], [len(b) for b in batches]),
            sizes=np.concatenate([r.sizes for r in rows]),
            modified=np.concatenate([r.modified for r in rows]),
            ends=np.concatenate([r.ends for r in rows]),
            dated=np.concatenate([r.dated for r in rows]),
            media_types=_concat_seq([r.media_types for r in rows], [len(b) for b in batches]),
            titles=_concat_seq([r.titles for r in rows], [len(b) for b in batches]),
            properties=None
            if all(r.properties is None for r in rows)
            else [p for r, b in zip(rows, batches, strict=True) for p in (r.properties or [{}] * len(b))],
        ),
    )


def _concat_coded(parts: Sequence[Coded]) -> Coded:
    builder = CodedBuilder()
    codes = []
    for part in parts:
        start = len(builder.codes)
        for members in part.sets:
            builder.add(part.values[i] for i in members)
        code_map = np.asarray(builder.codes[start:], np.int64)
        codes.append(code_map[part.codes])
    return Coded(builder.values, builder.sets, np.concatenate(codes).astype(smallest_uint(len(builder.sets))))


def _concat_seq(parts: Sequence, lengths: Sequence[int]):
    """Names, media types or titles: one string for all rows where they agree, else one per row."""
    if all(isinstance(p, str) for p in parts) and len(set(parts)) == 1:
        return parts[0]
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts)
    out: list[str] = []
    for part, n in zip(parts, lengths, strict=True):
        if isinstance(part, str):
            out.extend([part] * n)
        else:
            out.extend(p.decode("utf-8", "surrogateescape") if isinstance(p, bytes) else p for p in part)
    return out
