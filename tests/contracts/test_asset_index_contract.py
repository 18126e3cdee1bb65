"""The AssetIndex contract, run against every implementation; exact counts checked against brute force."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datalabs.assets.base import AssetIndex, AssetRecord, Query
from datalabs.assets.engine import BitmapIndex
from datalabs.assets.reference import MemoryIndex
from tests.contracts.asset_records import T0, queries, records, wheres


def make_bitmap(tmp: Path) -> AssetIndex:
    return BitmapIndex(tmp / "assets")


def make_memory(tmp: Path) -> AssetIndex:
    return MemoryIndex()


IMPLEMENTATIONS = {"bitmap": make_bitmap, "memory": make_memory}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def index(request, tmp_path) -> AssetIndex:
    return IMPLEMENTATIONS[request.param](tmp_path)


def rec(path: str, hours: int, collection: str = "igs-daily", **facets) -> AssetRecord:
    return AssetRecord(
        collection=collection,
        path=path,
        size=hours,
        start=T0 + timedelta(hours=hours),
        facets={k: tuple(v) for k, v in facets.items()},
        bbox=(10.0, 50.0, 10.0, 50.0),
    )


def same_record(a: AssetRecord, b: AssetRecord) -> bool:
    def norm(r):
        return (
            r.id,
            r.size,
            r.modified,
            r.start,
            r.end,
            r.bbox,
            r.media_type,
            r.title,
            r.properties,
            {k: set(v) for k, v in r.facets.items() if k != "collection" and v},
        )

    return norm(a) == norm(b)


def test_ingest_then_search_get_and_stats(index):
    assert index.ingest([rec("a/ABMF.rnx", 1, station=["ABMF"]), rec("b/ZIM2.rnx", 2, station=["ZIM2"])]) == 2
    page = index.search(Query())
    assert page.total == 2
    assert [r.path for r in page.items] == ["b/ZIM2.rnx", "a/ABMF.rnx"]  # newest first
    assert dict(page.facets["station"]) == {"ABMF": 1, "ZIM2": 1}
    assert same_record(index.get("igs-daily:a/ABMF.rnx"), rec("a/ABMF.rnx", 1, station=["ABMF"]))
    assert index.get("igs-daily:a/nothing.rnx") is None
    assert index.get("not an id") is None
    assert index.stats()["assets"] == 2


def test_ingest_of_an_existing_id_replaces_it(index):
    index.ingest([rec("a/x.rnx", 1, station=["OLD"])])
    index.ingest([rec("a/x.rnx", 5, station=["NEW"])])
    page = index.search(Query())
    assert page.total == 1
    assert dict(page.facets["station"]) == {"NEW": 1}
    assert index.get("igs-daily:a/x.rnx").size == 5


def test_delete(index):
    index.ingest([rec("a/x.rnx", 1), rec("a/y.rnx", 2)])
    assert index.delete(["igs-daily:a/x.rnx", "igs-daily:a/missing"]) == 1
    assert [r.path for r in index.search(Query()).items] == ["a/y.rnx"]


def test_multi_select_counts_keep_other_values_of_the_selected_facet(index):
    index.ingest(
        [
            rec("1", 1, constellation=["GPS"], station=["A"]),
            rec("2", 2, constellation=["GPS", "Galileo"], station=["B"]),
            rec("3", 3, constellation=["GLONASS"], station=["A"]),
        ]
    )
    page = index.search(Query(facets={"constellation": ["GPS"], "station": ["A"]}))
    assert page.total == 1
    assert dict(page.facets["constellation"]) == {"GPS": 1, "GLONASS": 1}  # station A only
    assert dict(page.facets["station"]) == {"A": 1, "B": 1}  # GPS only


def test_paging_and_sort(index):
    index.ingest([rec(f"d/f{i:02d}.rnx", i) for i in range(30)])
    assert [r.name for r in index.search(Query(limit=3, offset=2)).items] == ["f27.rnx", "f26.rnx", "f25.rnx"]
    assert [r.name for r in index.search(Query(sort="-date", limit=2)).items] == ["f00.rnx", "f01.rnx"]
    assert [r.name for r in index.search(Query(sort="name", limit=2, offset=1)).items] == [
        "f01.rnx",
        "f02.rnx",
    ]
    assert [r.name for r in index.search(Query(sort="-name", limit=1)).items] == ["f29.rnx"]
    assert index.search(Query(offset=100)).items == []


def test_visibility_restricts_counts_too(index):
    index.ingest([rec("1", 1, collection="open"), rec("2", 2, collection="secret")])
    page = index.search(Query(collections=frozenset({"open"})))
    assert page.total == 1
    assert dict(page.facets["collection"]) == {"open": 1}
    assert index.search(Query(collections=frozenset())).total == 0


def _compare(tmp: Path, batches: list[list[AssetRecord]], deletions: list[str], q: dict, sort: str) -> None:
    bitmap, memory = BitmapIndex(tmp), MemoryIndex()
    for batch in batches:
        bitmap.ingest(batch)
        memory.ingest(batch)
    bitmap.delete(deletions)
    memory.delete(deletions)
    bitmap = BitmapIndex(tmp)  # and everything survives a reload
    query = Query(**q, sort=sort, limit=7)
    got, want = bitmap.search(query), memory.search(query)
    assert got.total == want.total
    assert got.facets == want.facets
    key = {
        "date": lambda r: r.date,
        "-date": lambda r: r.date,
        "name": lambda r: r.name,
        "-name": lambda r: r.name,
    }
    assert [key[sort](r) for r in got.items] == [key[sort](r) for r in want.items]
    for item in got.items:
        assert same_record(item, memory.get(item.id))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(st.lists(records(), max_size=25), min_size=1, max_size=3),
    deletions=st.lists(st.integers(0, 60), max_size=5),
    q=queries(),
    sort=st.sampled_from(["date", "-date", "name", "-name"]),
)
def test_counts_and_pages_equal_brute_force(batches, deletions, q, sort):
    everything = [r for batch in batches for r in batch]
    ids = [everything[i].id for i in deletions if i < len(everything)]
    with tempfile.TemporaryDirectory() as tmp:
        _compare(Path(tmp), batches, ids, q, sort)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batch=st.lists(records(), min_size=5, max_size=40),
    where=wheres(),
    bbox=st.sampled_from([None, (170.0, -60.0, -170.0, 60.0)]),
)
def test_filters_equal_brute_force(batch, where, bbox):
    """`Query.where` (three-valued logic) and antimeridian boxes alone, so that most searches match."""
    with tempfile.TemporaryDirectory() as tmp:
        _compare(Path(tmp), [batch], [], {"where": where, "bbox": bbox}, "date")
