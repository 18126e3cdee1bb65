"""Asset explorer contracts: `Harvester` (file -> `AssetRecord`) and `AssetIndex` (records -> faceted search).

Every implementation passes the shared suites in `tests/contracts/`. The search semantics are defined
here once, so an index, its tests and a brute-force reference (`datalabs.assets.reference`) agree:

- facet filters: OR within a facet, AND across facets (`Query.facets`);
- text (`Query.text`): every word of the text (split on white space and on `TOKEN_SEPARATORS`) is a
  case-insensitive substring of at least one token of the file (`record_tokens`);
- time range (`Query.start`, `Query.end`): the asset's date (`AssetRecord.date`) is in `[start, end)`;
- bbox (`Query.bbox`, west/south/east/north degrees): the asset's bbox intersects it (edges included);
  a box whose west is greater than its east crosses the antimeridian (`bbox_intersects`);
- `Query.where` (`datalabs.assets.where`): a boolean filter with three-valued logic, kept where it is true;
- facet counts: for each facet, the number of assets matching every filter of the query *except* that
  facet's own selection (multi-select faceting: the other values of a selected facet keep their counts);
  values with a zero count are left out; listed by count descending, then value;
- the caller's visibility (`Query.collections`, None = everything) restricts everything, counts included.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

# Facets: GSSC Now's list made cross-domain (issue 5); astronomy adds mission, instrument, target.
FACETS: tuple[str, ...] = (
    "domain",
    "collection",
    "dataset",
    "resource_class",
    "resource_type",
    "constellation",
    "satellite",
    "instrument_type",
    "station",
    "observation_code",
    "sampling_rate",
    "file_format",
    "network",
    "source",
    "tags",
    "mission",
    "instrument",
    "target",
)

TOKEN_SEPARATORS = "._-+,;:= "
_SPLIT = re.compile("[" + re.escape(TOKEN_SEPARATORS) + "]+")
NAME_TOKENS = 8  # names split into at most this many tokens; the last keeps the rest whole
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class HarvestError(Exception):
    """A file could not be harvested; `reason` says why in words a user understands."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass
class AssetRecord:
    """One archived file with its harvested metadata.

    `path` is relative to the collection's root ('/'-separated); (`collection`, `path`) is unique and
    makes the asset id. `facets` maps facet names (FACETS) to their values (a file may observe several
    constellations, satellites, observation codes). `bbox` is (west, south, east, north) in degrees;
    a point has west == east and south == north. `properties` keeps whatever else the harvester read.
    """

    collection: str
    path: str
    size: int = 0
    modified: datetime | None = None
    start: datetime | None = None
    end: datetime | None = None
    facets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    bbox: tuple[float, float, float, float] | None = None
    media_type: str = "application/octet-stream"
    title: str = ""
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return asset_id(self.collection, self.path)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def directory(self) -> str:
        return self.path.rsplit("/", 1)[0] if "/" in self.path else ""

    @property
    def date(self) -> datetime:
        """What the index sorts and filters on: the observation start, else the file's time, else 1970."""
        return self.start or self.modified or EPOCH


def asset_id(collection: str, path: str) -> str:
    return f"{collection}:{path}"


def split_asset_id(value: str) -> tuple[str, str]:
    collection, sep, path = value.partition(":")
    if not sep or not collection or not path:
        raise ValueError(f"asset id {value!r} is not '<collection>:<path>'")
    return collection, path


def name_tokens(name: str) -> list[str]:
    """A file name's tokens, lower case: split on TOKEN_SEPARATORS, at most NAME_TOKENS (the last whole)."""
    parts = _SPLIT.split(name.lower(), maxsplit=NAME_TOKENS - 1)
    return [p for p in parts if p]


def directory_tokens(directory: str) -> list[str]:
    return [p for p in directory.lower().split("/") if p]


def record_tokens(record: AssetRecord) -> list[str]:
    return name_tokens(record.name) + directory_tokens(record.directory)


def lon_ranges(west: float, east: float) -> list[tuple[float, float]]:
    """The longitude intervals a box covers: one, or two when it crosses the antimeridian (west > east)."""
    return [(west, east)] if west <= east else [(west, 180.0), (-180.0, east)]


def bbox_intersects(a, b) -> bool:
    """Whether two (west, south, east, north) boxes share a point, edges included, either of them
    possibly crossing the antimeridian."""
    if a[1] > b[3] or a[3] < b[1]:
        return False
    if a[0] <= a[2] and b[0] <= b[2]:  # neither crosses the antimeridian: the common case, kept cheap
        return a[0] <= b[2] and a[2] >= b[0]
    return any(
        w1 <= e2 and e1 >= w2 for w1, e1 in lon_ranges(a[0], a[2]) for w2, e2 in lon_ranges(b[0], b[2])
    )


def text_words(text: str) -> list[str]:
    """The words of a search text, lower case (separators split words as they split tokens)."""
    return [w for w in _SPLIT.split(text.lower().replace("/", " ")) if w]


Sort = Literal["date", "-date", "name", "-name"]


@dataclass
class Query:
    """A search. `facets`: facet -> accepted values. `sort`: 'date' is newest first ('-date' oldest first),
    'name' is A to Z. `collections`: the collections the caller may see (None: no restriction)."""

    text: str = ""
    facets: dict[str, list[str]] = field(default_factory=dict)
    start: datetime | None = None
    end: datetime | None = None
    bbox: tuple[float, float, float, float] | None = None
    ids: list[str] | None = None
    sort: Sort = "date"
    offset: int = 0
    limit: int = 20
    collections: frozenset[str] | None = None
    where: Any = None  # a `datalabs.assets.where` expression (None: no restriction)
    with_facets: bool = True
    histogram: int = 0  # > 0: also count matches in this many equal date buckets (optional feature)
    locations: bool = False  # also count matches per distinct bbox, for a map (optional feature)


@dataclass
class Page:
    """One page of results: `total` matches, `items` from `offset`, and facet -> [(value, count)]."""

    total: int
    items: list[AssetRecord]
    facets: dict[str, list[tuple[str, int]]]
    took_ms: float = 0.0
    histogram: list[tuple[datetime, datetime, int]] = field(default_factory=list)  # (from, to, count)
    locations: list[tuple[tuple[float, float, float, float], int]] = field(default_factory=list)


class AssetIndex(ABC):
    """An embedded, append-mostly index of assets.

    Contract: after `ingest(records)` returns, `search` sees the records (an ingest of an existing id
    replaces it); results and counts follow the semantics in this module's docstring exactly;
    `get(id)` returns the stored record (all fields round-trip, datetimes to the second) or None;
    `stats()` reports at least {"assets": int, "bytes": int}. Safe to search from several threads
    while nothing is ingesting.
    """

    @abstractmethod
    def ingest(self, records: Iterable[AssetRecord]) -> int:
        """Add (or replace) records; returns how many were stored."""

    @abstractmethod
    def search(self, query: Query) -> Page: ...

    @abstractmethod
    def get(self, asset_id: str) -> AssetRecord | None: ...

    @abstractmethod
    def stats(self) -> dict[str, Any]: ...

    def delete(self, ids: Iterable[str]) -> int:
        """Remove assets by id; returns how many existed. Optional: used by incremental harvests."""
        raise NotImplementedError


class Harvester(ABC):
    """Reads one kind of file. `name` is its entry-point name in `datalabs.harvesters`; `priority` orders
    harvesters (highest first; the generic fallback is lowest).

    Contract: `matches(path)` looks at the name only (cheap, no I/O); `harvest(path, collection, relpath)`
    reads the file and returns a record, or raises `HarvestError` with a reason for a corrupt, truncated
    or unreadable file. It never raises anything else for bad file contents.
    """

    name: str = ""
    priority: int = 0

    @abstractmethod
    def matches(self, path: Path) -> bool: ...

    @abstractmethod
    def harvest(self, path: Path, collection: str, relpath: str) -> AssetRecord: ...
