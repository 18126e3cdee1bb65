"""Ingest an archive's file listing without touching the files.

A listing has one file per line: `SIZE MTIME PATH` (what `find DIR -type f -printf '%s %T@ %P\n'`
prints; PATH relative to the volume root, may contain spaces) or just `PATH`. RINEX long names are
parsed column-wise with numpy (`rinex_listing`), at several hundred thousand lines a second; any
other name goes through the record path (the RINEX short-name parser, else name tokens only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from datalabs.assets import gnss, textmatrix
from datalabs.assets.base import AssetRecord
from datalabs.assets.columns import NONE, Batch, concat, from_records, from_seconds
from datalabs.assets.rinex_listing import rinex_batches

CHUNK_BYTES = 64 << 20
SEGMENT_ROWS = 8_000_000  # rows gathered into one batch (one index segment); ~1 GB in flight


def read_batches(
    path: Path,
    collection: str,
    segment_rows: int = SEGMENT_ROWS,
    progress: Callable[[int], None] | None = None,
) -> Iterator[Batch]:
    """Batches of about `segment_rows` rows from the listing at `path` (few, large index segments);
    `progress` is told the bytes read so far."""
    pending: list[Batch] = []
    for batch in read_chunks(path, collection, progress=progress):
        pending.append(batch)
        if sum(len(b) for b in pending) >= segment_rows:
            yield concat(pending)
            pending = []
    if pending:
        yield concat(pending)


def read_chunks(
    path: Path, collection: str, chunk_bytes: int = CHUNK_BYTES, progress: Callable[[int], None] | None = None
) -> Iterator[Batch]:
    """Batches of the listing at `path`, read `chunk_bytes` at a time (memory stays bounded)."""
    with Path(path).open("rb") as f:
        carry = b""
        while True:
            data = f.read(chunk_bytes)
            if progress:
                progress(f.tell())
            if not data and not carry:
                return
            block = carry + data
            cut = block.rfind(b"\n") + 1 if data else len(block)
            if not data and not block.endswith(b"\n"):
                block, cut = block + b"\n", len(block) + 1
            carry = block[cut:]
            if cut:
                yield from parse(np.frombuffer(block[:cut], np.uint8), collection)


def parse(buffer: np.ndarray, collection: str) -> Iterator[Batch]:
    starts, ends = textmatrix.lines(buffer)
    keep = ends > starts  # blank lines
    starts, ends = starts[keep], ends[keep]
    if not len(starts):
        return
    sizes, mtimes, path_starts = _fields(buffer, starts, ends)
    paths = textmatrix.cut(buffer, path_starts, ends)
    slash = textmatrix.last_index(paths, ord("/"))
    names = textmatrix.cut(buffer, path_starts + slash + 1, ends)
    dirs = textmatrix.cut(buffer, path_starts, path_starts + np.maximum(slash, 0))
    done = np.zeros(len(starts), bool)
    for batch, rows in rinex_batches(names, dirs, sizes, mtimes, collection):
        done[rows] = True
        yield batch
    rest = np.flatnonzero(~done)
    if len(rest):
        yield from_records(
            [_record(collection, p, int(sizes[i]), int(mtimes[i])) for i, p in _paths(paths, rest)]
        )


def _fields(buffer, starts, ends) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SIZE and MTIME where a line has them (NONE/0 otherwise), and where each PATH starts."""
    spaces = np.flatnonzero(buffer == 32)
    at = np.searchsorted(spaces, starts)
    first = spaces[np.minimum(at, len(spaces) - 1)] if len(spaces) else starts
    second = spaces[np.minimum(at + 1, len(spaces) - 1)] if len(spaces) else starts
    digit_start = (buffer[starts] >= 48) & (buffer[starts] <= 57)
    has = digit_start & (at + 1 < len(spaces)) & (second < ends) & (first > starts)
    sizes = np.where(has, textmatrix.integers(buffer, starts, np.where(has, first, starts)), 0)
    mtimes = np.where(has, textmatrix.integers(buffer, first + 1, np.where(has, second, first + 1)), NONE)
    return sizes, mtimes, np.where(has, second + 1, starts)


def _paths(paths: np.ndarray, rows: np.ndarray) -> Iterator[tuple[int, str]]:
    for i, raw in zip(rows, textmatrix.strings(paths[rows]), strict=True):
        yield int(i), raw.decode("utf-8", "surrogateescape").lstrip("/")


def _record(collection: str, path: str, size: int, mtime: int) -> AssetRecord:
    name = path.rsplit("/", 1)[-1]
    rinex = gnss.parse_name(name)
    record = AssetRecord(collection, path, size=size, modified=from_seconds(mtime))
    if rinex is not None:
        record.start = rinex.start
        record.facets = gnss.facets_from_name(rinex)
        record.bbox = gnss.station_bbox(rinex.station)
        record.media_type = "application/x-rinex"
    return record
