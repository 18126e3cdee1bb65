"""Listing ingest: the column-wise RINEX parser agrees with the record path line by line; odd lines."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from datalabs.assets import listing, synth
from datalabs.assets.base import Query
from datalabs.assets.engine import BitmapIndex
from datalabs.assets.reference import MemoryIndex


def _by_record_path(path) -> MemoryIndex:
    memory = MemoryIndex()
    for line in path.read_text().splitlines():
        size, mtime, rel = line.split(" ", 2)
        memory.ingest([listing._record("Gssc", rel, int(size), int(mtime))])
    return memory


@pytest.mark.parametrize("chunk_bytes", [1 << 20, 50_000])  # one chunk, and many (in worker processes)
def test_column_wise_parse_equals_the_record_path(tmp_path, chunk_bytes, monkeypatch):
    monkeypatch.setattr(listing, "CHUNK_BYTES", chunk_bytes)
    path = tmp_path / "listing.txt"
    synth.write_listing(path, 4000)
    index = BitmapIndex(tmp_path / "index")
    for batch in listing.read_batches(path, "Gssc"):
        index.ingest_batch(batch)
    memory = _by_record_path(path)
    for query in (
        Query(),
        Query(text="kiru"),
        Query(facets={"constellation": ["Galileo"], "sampling_rate": ["30S"]}),
        Query(facets={"resource_type": ["navigation"]}, text="2026"),
    ):
        got, want = index.search(query), memory.search(query)
        assert (got.total, got.facets) == (want.total, want.facets)
    some = memory.search(Query(limit=5, sort="name")).items
    for record in some:
        stored = index.get(record.id)
        assert (stored.start, stored.end, stored.size, stored.modified, stored.bbox) == (
            record.start,
            record.end,
            record.size,
            record.modified,
            record.bbox,
        )


def test_odd_lines(tmp_path):
    path = tmp_path / "odd.txt"
    path.write_bytes(
        b"12 1700000000.5 gnss/ABMF00GLP_R_20240010000_01D_30S_MO.crx.gz\n"
        b"\n"
        b"gnss/old/kiru0010.24o.Z\n"
        b"7 1700000000 astro/My Image 001.fits\n"
        b"root-file.txt"  # no newline at the end
    )
    index = BitmapIndex(tmp_path / "index")
    for batch in listing.read_batches(path, "Mixed"):
        index.ingest_batch(batch)
    assert index.stats()["assets"] == 4
    rinex = index.get("Mixed:gnss/ABMF00GLP_R_20240010000_01D_30S_MO.crx.gz")
    assert rinex.size == 12 and rinex.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert rinex.facets["station"] == ("ABMF00GLP",)
    short = index.get("Mixed:gnss/old/kiru0010.24o.Z")
    assert short.facets["station"] == ("KIRU00SWE",) and short.size == 0
    spaced = index.get("Mixed:astro/My Image 001.fits")
    assert spaced.size == 7 and spaced.modified == datetime.fromtimestamp(1700000000, UTC)
    assert index.search(Query(text="image")).total == 1
    assert index.get("Mixed:root-file.txt") is not None


def test_long_names_the_parser_rejects_go_to_the_record_path_and_the_rest_keep_their_tokens(tmp_path):
    # The rejected name sorts into the first profile group: the profiles kept must still be read from
    # their own names (their tokens answer text searches), not from rows shifted by the rejection.
    path = tmp_path / "mixed.txt"
    path.write_bytes(
        b"1 1700000000 gnss/ABMF00GLP_X_20240010000_01D_30S_MO.crx.gz\n"
        b"2 1700000000 gnss/KIRU00SWE_R_20240020000_01D_30S_GO.crx.gz\n"
        b"3 1700000000 gnss/ZIM200CHE_R_20240030000_01D_01S_RO.rnx\n"
    )
    index = BitmapIndex(tmp_path / "index")
    for batch in listing.read_batches(path, "Gssc"):
        index.ingest_batch(batch)
    assert index.stats()["assets"] == 3
    assert index.get("Gssc:gnss/ABMF00GLP_X_20240010000_01D_30S_MO.crx.gz").facets.get("station") is None
    memory = _by_record_path(path)
    for text in ("kiru00swe", "zim2", "01s", "rnx", "go", "2024002", "abmf"):
        got, want = index.search(Query(text=text)), memory.search(Query(text=text))
        assert (got.total, got.facets) == (want.total, want.facets), text
