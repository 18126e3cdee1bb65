"""Search parameters as the API and STAC receive them (bbox, RFC 3339 datetime intervals, sort),
turned into a `Query`; bad input raises `Invalid` with what was wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from datalabs.errors import Invalid

MAX_LIMIT = 1000
MAX_WINDOW = 100_000  # offset + limit: deeper pages should narrow the search instead
_SECOND = timedelta(seconds=1)


def bbox(value: str | list | None) -> tuple[float, float, float, float] | None:
    if value in (None, "", []):
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        numbers = [float(p) for p in parts]
    except (TypeError, ValueError):
        raise Invalid(f"bbox must be numbers west,south,east,north, not {value!r}", code="bad_bbox") from None
    if len(numbers) == 6:  # 3D bbox: drop the heights
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4:
        raise Invalid("bbox needs 4 numbers: west,south,east,north", code="bad_bbox")
    west, south, east, north = numbers
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= north <= 90):
        raise Invalid(
            "bbox out of range: longitudes in [-180, 180], -90 <= south <= north <= 90", code="bad_bbox"
        )
    return west, south, east, north


def instant(value: str) -> datetime:
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(f"{value!r} is not an RFC 3339 date-time", code="bad_datetime") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def interval(value: str | None) -> tuple[datetime | None, datetime | None]:
    """'2024-01-01T00:00:00Z/2024-02-01T00:00:00Z', open ends '..' or '', or a single instant.
    The end is exclusive for intervals; a single instant matches that second."""
    if not value:
        return None, None
    if "/" not in value:
        start = instant(value)
        return start, start.replace(microsecond=0) + _SECOND
    first, _, last = value.partition("/")
    start = None if first in ("", "..") else instant(first)
    end = None if last in ("", "..") else instant(last)
    if start and end and end < start:
        raise Invalid("datetime interval ends before it starts", code="bad_datetime")
    return start, end


def sort(value: str | None) -> str:
    value = (value or "date").strip()
    if value not in ("date", "-date", "name", "-name"):
        raise Invalid("sort must be one of date, -date, name, -name", code="bad_sort")
    return value


def window(limit: int, offset: int) -> tuple[int, int]:
    if not 0 <= limit <= MAX_LIMIT:
        raise Invalid(f"limit must be between 0 and {MAX_LIMIT}", code="bad_limit")
    if offset < 0 or offset + limit > MAX_WINDOW:
        raise Invalid(f"offset must be >= 0 and offset + limit <= {MAX_WINDOW}", code="bad_offset")
    return limit, offset
