"""STAC API item search parameters, parsed exactly as the spec writes them; anything else is a 400.

Small pure functions (strings or JSON values in, values or `BadRequest` out), so they are easy to fuzz.
Dates: the index keeps whole seconds, so an RFC 3339 instant t selects the files dated in
[ceil(t), floor(t) + 1 s): an instant with a fraction of a second selects none. Intervals are closed
('a/b' keeps a and b themselves) with '..' or nothing for an open end.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone

from datalabs.errors import BadRequest

MAX_LIMIT = 1000  # a larger limit is served as this many (STAC: the server may return fewer)
DEFAULT_LIMIT = 10
SECOND = timedelta(seconds=1)
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


def instant(text: str) -> datetime:
    """An RFC 3339 date-time (a leap second is the last microsecond of its minute); microseconds beyond
    the sixth digit round up to one, so that a fraction never reads as a whole second."""
    found = _RFC3339.fullmatch(text.strip()) if isinstance(text, str) else None
    if not found:
        raise BadRequest(
            f"{text!r} is not an RFC 3339 date-time (e.g. 2024-01-31T12:00:00Z)", code="bad_datetime"
        )
    year, month, day, hour, minute, second = (int(found.group(i)) for i in range(1, 7))
    fraction = found.group(7) or ""
    micro = int(fraction[:6].ljust(6, "0"))
    if not micro and fraction.strip("0"):
        micro = 1
    if second == 60:
        second, micro = 59, 999_999
    try:
        zone = UTC if found.group(8) else _offset(found.group(9), int(found.group(10)), int(found.group(11)))
        return datetime(year, month, day, hour, minute, second, micro, zone).astimezone(UTC)
    except ValueError:
        raise BadRequest(f"{text!r} is not a valid date-time", code="bad_datetime") from None


def _offset(sign: str, hours: int, minutes: int) -> timezone:
    if hours > 23 or minutes > 59:
        raise ValueError("offset out of range")
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if sign == "-" else delta)


def ceil_second(t: datetime) -> datetime:
    return t.replace(microsecond=0) + (SECOND if t.microsecond else timedelta(0))


def after_second(t: datetime) -> datetime:
    """The first whole second after t's own second: the exclusive end that keeps t's second."""
    return t.replace(microsecond=0) + SECOND


def interval(value) -> tuple[datetime | None, datetime | None]:
    """The `datetime` parameter as a half-open range of whole seconds [start, end)."""
    if value is None or value == "":
        return None, None
    if not isinstance(value, str):
        raise BadRequest("datetime must be a string", code="bad_datetime")
    parts = value.split("/")
    if len(parts) == 1:
        t = instant(value)
        return ceil_second(t), after_second(t)
    if len(parts) != 2 or all(p in ("", "..") for p in parts):
        raise BadRequest(f"{value!r} is not an instant or an interval 'start/end'", code="bad_datetime")
    first, last = (None if p in ("", "..") else instant(p) for p in parts)
    if first and last and last < first:
        raise BadRequest("datetime interval ends before it starts", code="bad_datetime")
    return (ceil_second(first) if first else None), (after_second(last) if last else None)


def bbox(value, from_query_string: bool) -> tuple[float, float, float, float] | None:
    """4 or 6 numbers (heights dropped); GET: comma-separated, POST: a JSON array. west > east crosses
    the antimeridian."""
    if value is None or (from_query_string and value == ""):
        return None
    if from_query_string:
        try:
            numbers = [float(p) for p in value.split(",")]
        except ValueError:
            raise BadRequest(
                f"bbox must be numbers separated by commas, not {value!r}", code="bad_bbox"
            ) from None
    else:
        if not isinstance(value, list) or not all(_is_number(n) for n in value):
            raise BadRequest("bbox must be an array of numbers", code="bad_bbox")
        numbers = [float(n) for n in value]
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
        raise BadRequest("bbox needs 4 (or 6) numbers: west,south,east,north", code="bad_bbox")
    west, south, east, north = numbers
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= north <= 90):
        raise BadRequest(
            "bbox out of range: longitudes in [-180, 180], -90 <= south <= north <= 90", code="bad_bbox"
        )
    return west, south, east, north


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def limit(value) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if isinstance(value, str):
        if not re.fullmatch(r"[+-]?\d+", value.strip()):
            raise BadRequest(f"limit must be an integer, not {value!r}", code="bad_limit")
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest("limit must be an integer of at least 1", code="bad_limit")
    return min(value, MAX_LIMIT)


def token(value) -> int:
    """The paging token of our next/prev links: 'next:<offset>'."""
    if value is None or value == "":
        return 0
    found = re.fullmatch(r"next:(\d{1,9})", value) if isinstance(value, str) else None
    if not found:
        raise BadRequest(f"unknown paging token {value!r}", code="bad_token")
    return int(found.group(1))


def strings(value, name: str, from_query_string: bool) -> list[str] | None:
    """`ids` or `collections`: comma-separated in GET; an array of strings in POST (a single string is
    taken as GET's form, as some clients send it)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [v for v in value.split(",") if v] if from_query_string or "," in value else [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"{name} must be an array of strings", code=f"bad_{name}")
    return value


def sortby(value, from_query_string: bool) -> list[tuple[str, bool]]:
    """[(field, descending)]: GET '-a,+b,c'; POST [{field, direction}] (or GET's string form)."""
    if value is None or value == "" or value == []:
        return []
    if isinstance(value, str):
        return [(f.strip().lstrip("+-"), f.strip().startswith("-")) for f in value.split(",") if f.strip()]
    if not isinstance(value, list):
        raise BadRequest("sortby must be an array of {field, direction}", code="bad_sort")
    out = []
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("field"), str):
            raise BadRequest("each sortby entry needs a 'field'", code="bad_sort")
        direction = entry.get("direction", "asc")
        if direction not in ("asc", "desc"):
            raise BadRequest("sortby direction must be 'asc' or 'desc'", code="bad_sort")
        out.append((entry["field"], direction == "desc"))
    return out


def fields(value, from_query_string: bool) -> tuple[list[str] | None, list[str] | None] | None:
    """The fields extension: (include, exclude), each None when not given; None when `fields` is absent.
    GET 'a,+b,-c' (an empty string asks for the default set); POST {include: [...], exclude: [...]}."""
    if from_query_string:
        if value is None:
            return None
        entries = [f.strip() for f in value.split(",") if f.strip()]
        include = [f.lstrip("+") for f in entries if not f.startswith("-")]
        exclude = [f[1:] for f in entries if f.startswith("-")]
        return (include or ([] if not entries else None)), (exclude or None)
    if not isinstance(value, dict):
        raise BadRequest("fields must be an object {include: [...], exclude: [...]}", code="bad_fields")
    out = []
    for key in ("include", "exclude"):
        given = value.get(key)
        if key in value and given is None:
            given = []
        if given is not None and (not isinstance(given, list) or not all(isinstance(f, str) for f in given)):
            raise BadRequest(f"fields.{key} must be an array of strings", code="bad_fields")
        out.append(given)
    return out[0], out[1]
