"""CQL2 filters (text or JSON) as `datalabs.assets.where` expressions, without approximation.

cql2-rs parses both encodings into one canonical CQL2 JSON; this module translates that. Queryables:
- `id` (=, <>, IN), `collection` and every facet `datalabs:<facet>` (an array of strings: =, <, <=, >,
  >=, LIKE, BETWEEN, IN hold when one of the item's values does; <> is NOT =; A_CONTAINS, A_OVERLAPS,
  A_CONTAINEDBY, A_EQUALS compare the whole array), `datetime` (comparisons, BETWEEN, IN, T_INTERSECTS,
  T_EQUALS, T_BEFORE, T_AFTER, T_DURING, T_DISJOINT), `geometry` (S_INTERSECTS, S_DISJOINT, S_WITHIN,
  S_CONTAINS, S_OVERLAPS, S_TOUCHES, S_CROSSES, S_EQUALS with any GeoJSON geometry or BBOX);
- with AND, OR, NOT and IS NULL over all of them;
- any other property name is a property no item has (queryables say `additionalProperties: true`), so
  comparing it is unknown (null) for every item, as the STAC filter extension specifies — except the
  properties items do carry but the index cannot search (`NOT_QUERYABLE`), which are refused.
Anything else (functions, arithmetic, property-property comparisons) is a 400 naming what is unsupported.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import cql2
import shapely

from datalabs.assets import where as w
from datalabs.assets.base import FACETS
from datalabs.assets.stac_params import after_second, ceil_second, instant
from datalabs.errors import BadRequest

PREFIX = "datalabs:"
NOT_QUERYABLE = {"title", "start_datetime", "end_datetime", f"{PREFIX}path"}
COMPARISONS = {"=", "<>", "<", "<=", ">", ">="}
TEMPORAL = {"t_intersects", "t_equals", "t_before", "t_after", "t_during", "t_disjoint"}
_FLIP = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def parse(value, lang: str | None, default_lang: str) -> dict:
    """The filter in canonical CQL2 JSON; `lang` (filter-lang) defaults per method."""
    lang = lang or default_lang
    try:
        if lang == "cql2-text":
            if not isinstance(value, str):
                raise BadRequest("a cql2-text filter must be a string", code="bad_filter")
            expr = cql2.parse_text(value)
        elif lang == "cql2-json":
            expr = cql2.parse_json(value if isinstance(value, str) else json.dumps(value))
        else:
            raise BadRequest(f"filter-lang must be cql2-text or cql2-json, not {lang!r}", code="bad_filter")
        expr.validate()
        return expr.to_json()
    except (cql2.ParseError, cql2.ValidationError, ValueError) as e:
        raise BadRequest(f"filter is not valid {lang}: {str(e).strip()[:500]}", code="bad_filter") from None


def translate(node):
    """A `where` expression for a canonical CQL2 JSON node."""
    if isinstance(node, bool):
        return w.TRUE if node else w.FALSE
    if not isinstance(node, dict) or "op" not in node:
        raise _unsupported(f"expression {json.dumps(node)[:200]}")
    op, args = node["op"], node.get("args", [])
    if op in ("and", "or"):
        return (w.And if op == "and" else w.Or)(tuple(translate(a) for a in args))
    if op == "not":
        return w.Not(translate(args[0]))
    if op == "isNull":
        return _is_null(_property(args[0]))
    if op in COMPARISONS:
        if not _is_property(args[0]) and _is_property(args[1]):
            op, args = _FLIP[op], [args[1], args[0]]
        return _compare(_property(args[0]), op, args[1])
    if op in ("like", "between", "in") or op.startswith("a_"):
        return _set_test(_property(args[0]), op, args[1:])
    if op.startswith("s_"):
        return _spatial(op, args)
    if op in TEMPORAL:
        return _temporal(op, args)
    raise _unsupported(f"operator '{op}'")


def _unsupported(what: str) -> BadRequest:
    return BadRequest(
        f"filter: {what} is not supported here (see /stac/queryables)", code="unsupported_filter"
    )


def _is_property(node) -> bool:
    return isinstance(node, dict) and "property" in node


def _property(node) -> str:
    if not _is_property(node):
        raise _unsupported(f"{json.dumps(node)[:200]} where a property is expected")
    name = node["property"].removeprefix("properties.")
    if name in NOT_QUERYABLE:
        raise BadRequest(f"filter: '{name}' is not queryable (see /stac/queryables)", code="bad_filter")
    return name


def _facet(name: str) -> str | None:
    """The index column behind a string queryable, if it is one."""
    if name == "collection":
        return name
    bare = name.removeprefix(PREFIX)
    return bare if name.startswith(PREFIX) and bare in FACETS and bare != "collection" else None


def _known(name: str) -> bool:
    return name in ("id", "datetime", "geometry") or _facet(name) is not None


def _is_null(name: str):
    if name == "geometry":
        return w.Not(w.Has(w.GEOMETRY))
    if name in ("id", "datetime", "collection"):
        return w.FALSE
    facet = _facet(name)
    return w.Not(w.Has(facet)) if facet else w.TRUE


def _compare(name: str, op: str, literal):
    if not _known(name):
        return w.UNKNOWN
    if op == "<>":
        return w.Not(_compare(name, "=", literal))
    if name == "datetime":
        first, last = _moment(literal)
        return {
            "=": w.Dated(ceil_second(first), after_second(last)),
            "<": w.Dated(None, ceil_second(first)),
            "<=": w.Dated(None, after_second(last)),
            ">": w.Dated(after_second(last), None),
            ">=": w.Dated(ceil_second(first), None),
        }[op]
    text = _string(name, literal)
    if name == "id":
        if op != "=":
            raise _unsupported(f"'{op}' on id (id supports =, <> and IN)")
        return w.IdIn(frozenset({text}))
    return w.Holds(_facet(name), w.Test("in", frozenset({text})) if op == "=" else w.Test(op, text))


def _set_test(name: str, op: str, rest: list):
    if not _known(name):
        return w.UNKNOWN
    values = rest[0] if len(rest) == 1 and isinstance(rest[0], list) else rest
    if name == "datetime" and op in ("between", "in"):
        if op == "in":
            return w.Or(tuple(_compare(name, "=", v) for v in values))
        return w.And((_compare(name, ">=", values[0]), _compare(name, "<=", values[1])))
    strings = [_string(name, v) for v in values]
    if name == "id":
        if op != "in":
            raise _unsupported(f"{op.upper()} on id (id supports =, <> and IN)")
        return w.IdIn(frozenset(strings))
    facet = _facet(name)
    if facet is None:
        raise _unsupported(f"{op.upper()} on '{name}'")
    if op == "like":
        return w.Holds(facet, w.Test("like", w.like(strings[0])))
    if op == "between":
        return w.Holds(facet, w.Test("between", (strings[0], strings[1])))
    if op in ("in", "a_overlaps"):
        return w.Holds(facet, w.Test("in", frozenset(strings)))
    contains = w.And(tuple(w.Holds(facet, w.Test("in", frozenset({s}))) for s in strings))
    contained = w.And((w.Has(facet), w.Not(w.Holds(facet, w.Test("notin", frozenset(strings))))))
    if op == "a_contains":
        return contains
    if op == "a_containedby":
        return contained
    if op == "a_equals":
        return w.And((contains, contained))
    raise _unsupported(f"operator '{op}'")


def _string(name: str, literal) -> str:
    if not isinstance(literal, str):
        raise BadRequest(
            f"filter: '{name}' is compared with strings, not {json.dumps(literal)}", code="bad_filter"
        )
    return literal


def _moment(literal) -> tuple[datetime, datetime]:
    """The first and last instant a timestamp (itself twice) or a date (its whole day) covers."""
    if isinstance(literal, dict) and "timestamp" in literal:
        t = instant(literal["timestamp"])
        return t, t
    if isinstance(literal, dict) and "date" in literal:
        try:
            day = date.fromisoformat(literal["date"])
        except (TypeError, ValueError):
            raise BadRequest(f"filter: bad date {literal['date']!r}", code="bad_filter") from None
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return start, start + timedelta(days=1, microseconds=-1)
    if isinstance(literal, str):  # a bare RFC 3339 string, as many clients write it
        t = instant(literal)
        return t, t
    raise BadRequest(
        f"filter: datetime is compared with timestamps, not {json.dumps(literal)}", code="bad_filter"
    )


def _interval(literal) -> tuple[datetime | None, datetime | None]:
    """The first and last instant of an interval literal (None where open, '..'), or of a moment."""
    if isinstance(literal, dict) and "interval" in literal:
        ends = literal["interval"]
        if not isinstance(ends, list) or len(ends) != 2:
            raise BadRequest("filter: an interval has two ends", code="bad_filter")
        first, last = (
            None if e == ".." else _moment(e if isinstance(e, dict) else {"timestamp": e}) for e in ends
        )
        return (first[0] if first else None), (last[1] if last else None)
    return _moment(literal)


def _temporal(op: str, args: list):
    if not (_is_property(args[0]) and _property(args[0]) == "datetime"):
        raise _unsupported(f"{op.upper()} other than on datetime with a literal second")
    first, last = _interval(args[1])
    inside = w.Dated(first and ceil_second(first), last and after_second(last))
    if op == "t_intersects":
        return inside
    if op == "t_equals":  # an instant equals only an instant
        return inside if first is not None and first == last else w.FALSE
    if op == "t_disjoint":
        return w.Not(inside)
    if op == "t_before":
        return w.Dated(None, ceil_second(first)) if first else w.FALSE
    if op == "t_after":
        return w.Dated(after_second(last), None) if last else w.FALSE
    return w.Dated(first and after_second(first), last and ceil_second(last))  # t_during: strictly inside


def _spatial(op: str, args: list):
    relation = op.removeprefix("s_")
    if relation not in w.SPATIAL_RELATIONS:
        raise _unsupported(f"operator '{op}'")
    first, second = args
    if not _is_property(first):
        first, second = second, first
        relation = {"within": "contains", "contains": "within"}.get(relation, relation)
    name = _property(first)
    if name != "geometry":
        if _known(name):
            raise _unsupported(f"a spatial function on '{name}'")
        return w.UNKNOWN
    return w.Spatial(relation, _shape(second))


def _shape(literal):
    try:
        if isinstance(literal, dict) and "bbox" in literal:
            box = literal["bbox"]
            west, south, east, north = (box[0], box[1], box[3], box[4]) if len(box) == 6 else box
            return w.footprint((west, south, east, north))
        return shapely.geometry.shape(literal)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, shapely.errors.ShapelyError):
        raise BadRequest(f"filter: not a geometry: {json.dumps(literal)[:200]}", code="bad_filter") from None
