"""Bitmap index specifics beyond the shared contract: another process's writes, reload, histogram."""

from __future__ import annotations

from datetime import timedelta

from datalabs.assets.base import AssetRecord, Query
from datalabs.assets.engine import BitmapIndex
from tests.contracts.asset_records import T0


def rec(path: str, hours: int) -> AssetRecord:
    return AssetRecord(
        collection="c", path=path, start=T0 + timedelta(hours=hours), facets={"station": ("S",)}
    )


def test_refresh_takes_in_what_another_writer_added_and_deleted(tmp_path):
    writer, reader = BitmapIndex(tmp_path), BitmapIndex(tmp_path)
    writer.ingest([rec("a", 1), rec("b", 2)])
    assert reader.search(Query()).total == 0
    reader.refresh()
    assert reader.search(Query()).total == 2
    writer.delete(["c:a"])
    writer.ingest([rec("d", 3)])
    reader.refresh()
    assert [r.path for r in reader.search(Query()).items] == ["d", "b"]
    assert dict(reader.search(Query()).facets["station"]) == {"S": 2}
    assert BitmapIndex(tmp_path).search(Query()).total == 2


def test_histogram_and_locations(tmp_path):
    index = BitmapIndex(tmp_path)
    index.ingest([rec(f"f{i}", i) for i in range(10)])
    index.ingest([rec(f"g{i}", i) for i in range(10, 20)])  # a second segment
    page = index.search(Query(histogram=4, start=T0, end=T0 + timedelta(hours=20)))
    assert [count for _, _, count in page.histogram] == [5, 5, 5, 5]
    assert page.histogram[0][0] == T0
    assert index.search(Query(locations=True)).locations == []  # no bbox on these records


def test_every_counting_method_agrees_on_a_larger_index(tmp_path, monkeypatch):
    """Prefix sums (time ranges), complements (broad filters), gathers and intersections must give the
    same counts; small property-test indexes never reach whole 65,536-row blocks, this one does."""
    from pyroaring import BitMap

    from datalabs.assets import counting, listing, synth
    from datalabs.assets.base import FACETS

    path = tmp_path / "listing.txt"
    synth.write_listing(path, 300_000)
    index = BitmapIndex(tmp_path / "index")
    for batch in listing.read_batches(path, "Gssc", segment_rows=120_000):  # three segments
        index.ingest_batch(batch)
    state = index.state
    newest = max(state.dates)
    queries = [
        Query(start=T0.fromtimestamp(int(newest) - 20 * 86400, T0.tzinfo)),  # one run in each of 2 segments
        Query(facets={"constellation": ["GLONASS"]}),  # most rows
        Query(text="kiru", facets={"sampling_rate": ["30S"]}),
    ]
    for query in queries:
        page = index.search(query)
        base, selections = index._filters(state, query)
        matches = BitMap.intersection(base, *selections.values()) if selections else base
        for cost in (0.0, 1e9):  # always gather, always intersect
            monkeypatch.setattr(counting, "GATHER_NS_PER_ROW", cost)
            for facet in FACETS:
                if facet not in selections:
                    plain = counting.Counter(matches).value_counts(state.columns[facet])
                    assert page.facets[facet] == plain, (query, facet, cost)
