"""Small random asset records for the AssetIndex contract and property tests (hypothesis strategies)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

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
        w, s = draw(st.integers(-180, 170)), draw(st.integers(-90, 80))
        bbox = (float(w), float(s), float(w + draw(st.integers(0, 120))), float(s + draw(st.integers(0, 60))))
    collections = draw(st.one_of(st.none(), st.sets(st.sampled_from(COLLECTIONS)).map(frozenset)))
    return dict(facets=facets, start=start, end=end, text=text, bbox=bbox, collections=collections)
