"""Small random asset records for the AssetIndex contract and property tests (hypothesis strategies)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import shapely
from hypothesis import strategies as st

from datalabs.assets import where as w
from datalabs.assets.base import AssetRecord

T0 = datetime(2024, 1, 1, tzinfo=UTC)
COLLECTIONS = ["igs-daily", "jwst-public", "era5"]
FACET_VALUES = {
    "constellation": ["GPS", "GLONASS", "Galileo", "BeiDou"],
    "satellite": ["G01", "G02", "R01", "E11", "C20"],
    "station": ["ABMF00GLP", "ZIM200CHE", "KIRU00SWE"],
    "sampling_rate": ["30S", "01S"],
    "file_format": ["RINEX", "FITS"],
    "tags": ["calibrated", "quicklook"],
}
MULTI = {"constellation", "satellite", "tags"}
NAME_PARTS = ["ABMF", "zim2", "kiru", "obs", "nav", "2024", "001", "x1", "B-2"]
DIRS = ["", "gnss", "gnss/2024/001", "astro/Jwst", "era5/2024"]


@st.composite
def records(draw) -> AssetRecord:
    facets = {}
    for facet, values in FACET_VALUES.items():
        if facet in MULTI:
            chosen = draw(st.lists(st.sampled_from(values), max_size=3, unique=True))
        else:
            chosen = draw(st.lists(st.sampled_from(values), max_size=1))
        if chosen:
            facets[facet] = tuple(chosen)
    parts = draw(st.lists(st.sampled_from(NAME_PARTS), min_size=1, max_size=10))
    seps = draw(st.lists(st.sampled_from("._-"), min_size=len(parts), max_size=len(parts)))
    name = "".join(p + s for p, s in zip(parts, seps, strict=True))[:-1] or "x"
    directory = draw(st.sampled_from(DIRS))
    has_start = draw(st.booleans())
    date = T0 + timedelta(hours=draw(st.integers(0, 60)))
    bbox = None
    if draw(st.booleans()):
        lon, lat = draw(st.integers(-180, 180)), draw(st.integers(-90, 90))
        bbox = (float(lon), float(lat), float(min(lon + draw(st.integers(0, 20)), 180)), float(lat))
    return AssetRecord(
        collection=draw(st.sampled_from(COLLECTIONS)),
        path=f"{directory}/{name}" if directory else name,
        size=draw(st.integers(0, 10**12)),
        modified=date if not has_start else date + timedelta(minutes=5),
        start=date if has_start else None,
        end=date + timedelta(days=1) if has_start and draw(st.booleans()) else None,
        facets=facets,
        bbox=bbox,
        title=draw(st.sampled_from(["", "a title"])),
        properties=draw(st.sampled_from([{}, {"marker": "ABMF", "interval": 30.0}])),
    )


@st.composite
def queries(draw) -> dict:
    facets = {}
    for facet in draw(st.lists(st.sampled_from([*FACET_VALUES, "collection"]), max_size=5, unique=True)):
        pool = COLLECTIONS if facet == "collection" else FACET_VALUES[facet]
        facets[facet] = draw(
            st.lists(st.sampled_from([*pool, "missing"]), min_size=1, max_size=3, unique=True)
        )
    start = end = None
    if draw(st.booleans()):
        start = T0 + timedelta(hours=draw(st.integers(-2, 50)))
        end = start + timedelta(hours=draw(st.integers(0, 30)))
    text = " ".join(
        draw(st.lists(st.sampled_from(["abm", "2024", "OBS", "b", "gnss/2024", "jw", "zz"]), max_size=2))
    )
    bbox = None
    if draw(st.booleans()):
        west, s = draw(st.integers(-180, 170)), draw(st.integers(-90, 80))
        east = west + draw(st.integers(0, 120))
        if draw(st.booleans()):  # across the antimeridian: east wraps round to the western hemisphere
            east = east - 360 if east > 180 else draw(st.integers(-180, west - 1)) if west > -180 else 180
        bbox = (float(west), float(s), float(east), float(s + draw(st.integers(0, 60))))
    collections = draw(st.one_of(st.none(), st.sets(st.sampled_from(COLLECTIONS)).map(frozenset)))
    where = draw(st.one_of(st.none(), wheres()))
    return dict(
        facets=facets, start=start, end=end, text=text, bbox=bbox, collections=collections, where=where
    )


@st.composite
def leaves(draw):
    """One `datalabs.assets.where` test: facet tests of every kind, presence, dates, ids, footprints."""
    facet = draw(st.sampled_from([*FACET_VALUES, "collection"]))
    pool = COLLECTIONS if facet == "collection" else FACET_VALUES[facet]
    value = draw(st.sampled_from([*pool, "missing", "G"]))
    kind = draw(
        st.sampled_from(["in", "notin", "<", ">=", "between", "like", "has", "dated", "ids", "shape"])
    )
    if kind in ("in", "notin"):
        return w.Holds(facet, w.Test(kind, frozenset(draw(st.lists(st.sampled_from(pool), max_size=3)))))
    if kind in ("<", ">="):
        return w.Holds(facet, w.Test(kind, value))
    if kind == "between":
        return w.Holds(facet, w.Test(kind, tuple(sorted((value, draw(st.sampled_from(pool)))))))
    if kind == "like":
        return w.Holds(facet, w.Test(kind, w.like(draw(st.sampled_from(["G%", "%0_", "_L%", "%S"])))))
    if kind == "has":
        return w.Has(draw(st.sampled_from([facet, w.GEOMETRY])))
    if kind == "dated":
        start = T0 + timedelta(hours=draw(st.integers(-2, 50)))
        return w.Dated(
            draw(st.sampled_from([start, None])), start + timedelta(hours=draw(st.integers(0, 30)))
        )
    if kind == "ids":
        names = ["gnss/ABMF", "x", "ABMF.obs"]
        return w.IdIn(
            frozenset(f"{c}:{n}" for c in COLLECTIONS[:2] for n in draw(st.sets(st.sampled_from(names))))
        )
    west, south = draw(st.integers(-180, 150)), draw(st.integers(-90, 60))
    shape = shapely.box(west, south, west + draw(st.integers(0, 30)), south + draw(st.integers(0, 30)))
    return w.Spatial(draw(st.sampled_from(["intersects", "within", "disjoint"])), shape)


def wheres():
    """Random filter expressions, nested up to a few levels, unknowns included."""
    return st.recursive(
        st.one_of(leaves(), st.just(w.UNKNOWN)),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3).map(lambda parts: w.And(tuple(parts))),
            st.lists(inner, max_size=3).map(lambda parts: w.Or(tuple(parts))),
            inner.map(w.Not),
        ),
        max_leaves=6,
    )
