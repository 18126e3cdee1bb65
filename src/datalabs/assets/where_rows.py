"""`Query.where` over the bitmap index: the rows where an expression is true (or false), as bitmaps.

Three-valued logic needs no third bitmap: `rows(expr, True)` and `rows(expr, False)` are computed
separately (De Morgan pushes NOT down to the leaves), and the unknown rows are simply in neither.
Leaves work on dictionaries, not rows: a facet test runs over the facet's distinct values and unions
their bitmaps; a spatial relation runs once per distinct footprint (shapely, vectorised); a date range is
one contiguous row range per segment. So a filter costs what the equivalent facet selection costs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import shapely
from pyroaring import BitMap

from datalabs.assets.columns import seconds
from datalabs.assets.state import State
from datalabs.assets.where import (
    GEOMETRY,
    And,
    Dated,
    Has,
    Holds,
    IdIn,
    Not,
    Or,
    Spatial,
    Unknown,
    footprint,
)

Lookup = Callable[[State, str], "int | None"]  # asset id -> live row


def rows(state: State, expr, truth: bool, lookup: Lookup) -> BitMap:
    """The live rows where `expr` is `truth` (rows where it is unknown are in neither answer)."""
    match expr:
        case Holds(facet, test):
            hit = _holds(state, facet, test)
            return hit if truth else _present(state, facet) - hit
        case Has(facet):
            found = _present(state, "loc" if facet == GEOMETRY else facet)
            return found if truth else state.alive - found
        case Dated(start, end):
            found = state.date_rows(_sec(start), _sec(end)) & state.alive
            return found if truth else state.alive - found
        case IdIn(ids):
            found = BitMap(r for r in (lookup(state, i) for i in ids) if r is not None)
            return found if truth else state.alive - found
        case Spatial(relation, shape):
            hit = _spatial(state, relation, shape)
            return hit if truth else _present(state, "loc") - hit
        case And(parts) | Or(parts):
            # AND is true where all parts are, false where any is; OR the other way round.
            meet = isinstance(expr, And) == truth
            found = [rows(state, p, truth, lookup) for p in parts]
            if not found:
                return state.alive.copy() if meet else BitMap()
            return BitMap.intersection(*sorted(found, key=len)) if meet else BitMap.union(*found)
        case Not(part):
            return rows(state, part, not truth, lookup)
        case Unknown():
            return BitMap()
    raise TypeError(f"not a filter expression: {expr!r}")


def _holds(state: State, facet: str, test) -> BitMap:
    # IN, the common case, goes straight to the values' bitmaps; other tests scan the dictionary.
    values = test.operand if test.op == "in" else [v for v in state.columns[facet].values if test(v)]
    return BitMap.union(BitMap(), *(state.value_bitmap(facet, v) for v in values))


def _present(state: State, column: str) -> BitMap:
    """Live rows with at least one value in `column` (cached with the state's value bitmaps)."""
    key = (column, _PRESENT)
    found = state._value_bitmaps.get(key)
    if found is None:
        live = [bm for _, bm in state.columns[column].live]
        found = state._value_bitmaps[key] = BitMap.union(BitMap(), *live) - state.deleted
    return found


_PRESENT, _SHAPES = object(), object()


def _spatial(state: State, relation: str, shape) -> BitMap:
    column = state.columns["loc"]
    if not column.values:
        return BitMap()
    key = ("loc", _SHAPES)
    shapes = state._value_bitmaps.get(key)
    if shapes is None:
        shapes = state._value_bitmaps[key] = np.array([footprint(v) for v in column.values], dtype=object)
    shapely.prepare(shape)
    hits = getattr(shapely, relation)(shapes, shape)
    found = [state.value_bitmap("loc", column.values[i]) for i in np.flatnonzero(hits)]
    return BitMap.union(BitMap(), *found) - state.deleted


def _sec(dt) -> int | None:
    return None if dt is None else seconds(dt)
