"""Filters beyond facet selections (`Query.where`): a small boolean algebra over what the index knows of
a file, with the three-valued logic of SQL and CQL2.

A comparison with a value the file does not have is *unknown*, neither true nor false; NOT unknown is
unknown; AND and OR follow Kleene (false AND unknown is false, true OR unknown is true). A search keeps
the files for which the whole expression is true. So `NOT station = 'X'` keeps the files that have a
station other than X, never the files that have none: exactly what CQL2 says, and what
`datalabs.assets.stac_filter` relies on when it translates CQL2 into these nodes.

Facets hold sets of values (a file may observe several constellations): `Holds` is true when at least one
of the file's values passes its test, false when the file has values and none passes, unknown when the
file has none. `collection` is a facet every file has.

This module defines the meaning once, record by record (`evaluate`, used by the reference index);
`datalabs.assets.where_rows` computes the same over the bitmap index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import shapely

from datalabs.assets.base import AssetRecord, lon_ranges

GEOMETRY = "geometry"  # `Has(GEOMETRY)`: the file has a footprint (a bbox)


@dataclass(frozen=True)
class Test:
    """A test of one facet value: `op` is one of in, notin (`operand` a frozenset), <, <=, >, >=
    (a string), between (a pair of strings, both ends included) or like (a compiled regex)."""

    op: str
    operand: Any

    def __call__(self, value: str) -> bool:
        op, x = self.op, self.operand
        if op == "in":
            return value in x
        if op == "notin":
            return value not in x
        if op == "like":
            return x.fullmatch(value) is not None
        if op == "between":
            return x[0] <= value <= x[1]
        return {"<": value < x, "<=": value <= x, ">": value > x, ">=": value >= x}[op]


@dataclass(frozen=True)
class Holds:
    """At least one of the file's values of `facet` passes `test`; unknown when the file has none."""

    facet: str
    test: Test


@dataclass(frozen=True)
class Has:
    """The file has a value of `facet` (or a footprint, for GEOMETRY). Never unknown."""

    facet: str


@dataclass(frozen=True)
class Dated:
    """start <= the file's date < end (either end open). Every file has a date: never unknown."""

    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class IdIn:
    """The file's id is one of `ids`. Never unknown."""

    ids: frozenset[str]


@dataclass(frozen=True)
class Spatial:
    """`relation` (a shapely predicate: intersects, disjoint, within, contains, ...) holds between the
    file's footprint and `shape` (lon/lat degrees); unknown when the file has no footprint."""

    relation: str
    shape: Any


@dataclass(frozen=True)
class And:
    parts: tuple = ()  # And(()) is true


@dataclass(frozen=True)
class Or:
    parts: tuple = ()  # Or(()) is false


@dataclass(frozen=True)
class Not:
    part: Any


@dataclass(frozen=True)
class Unknown:
    """A comparison with a property no file has (CQL2: it is null everywhere)."""


TRUE, FALSE, UNKNOWN = And(), Or(), Unknown()
SPATIAL_RELATIONS = (
    "intersects",
    "disjoint",
    "within",
    "contains",
    "overlaps",
    "touches",
    "crosses",
    "equals",
)


def like(pattern: str) -> re.Pattern:
    """A CQL2 LIKE pattern ('%' any run, '_' one character, '\\' escapes) as a regex to fullmatch."""
    out, chars = [], iter(pattern)
    for c in chars:
        if c == "\\":
            out.append(re.escape(next(chars, "\\")))
        else:
            out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
    return re.compile("".join(out), re.DOTALL)


def footprint(bbox) -> Any:
    """A file's bbox as a shapely geometry: a point, a box, or two boxes across the antimeridian."""
    west, south, east, north = bbox
    if (west, south) == (east, north):
        return shapely.Point(west, south)
    boxes = [shapely.box(w, south, e, north) for w, e in lon_ranges(west, east)]
    return boxes[0] if len(boxes) == 1 else shapely.MultiPolygon(boxes)


def evaluate(expr, record: AssetRecord) -> bool | None:
    """The truth of `expr` for one file: True, False or None (unknown)."""
    match expr:
        case Holds(facet, test):
            values = _values(record, facet)
            return any(test(v) for v in values) if values else None
        case Has(facet):
            return record.bbox is not None if facet == GEOMETRY else bool(_values(record, facet))
        case Dated(start, end):
            date = record.date.replace(microsecond=0)
            return (start is None or date >= start) and (end is None or date < end)
        case IdIn(ids):
            return record.id in ids
        case Spatial(relation, shape):
            if record.bbox is None:
                return None
            return bool(getattr(shapely, relation)(footprint(record.bbox), shape))
        case And(parts):
            found = [evaluate(p, record) for p in parts]
            return False if False in found else None if None in found else True
        case Or(parts):
            found = [evaluate(p, record) for p in parts]
            return True if True in found else None if None in found else False
        case Not(part):
            found = evaluate(part, record)
            return None if found is None else not found
        case Unknown():
            return None
    raise TypeError(f"not a filter expression: {expr!r}")


def _values(record: AssetRecord, facet: str) -> tuple[str, ...]:
    return (record.collection,) if facet == "collection" else tuple(record.facets.get(facet, ()))
