"""Ingest an archive's file listing without touching the files.

A listing has one file per line: `SIZE MTIME PATH` (what `find DIR -type f -printf '%s %T@ %P\n'`
prints; PATH relative to the volume root, may contain spaces) or just `PATH`. RINEX long names are
parsed column-wise with numpy (`rinex_listing`), at several hundred thousand lines a second; any
other name goes through the record path (the RINEX short-name parser, else name tokens only).
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path

import numpy as np

from datalabs.assets import gnss, textmatrix
from datalabs.assets.base import AssetRecord
from datalabs.assets.columns import NONE, Batch, concat, from_records, from_seconds
from datalabs.assets.rinex_listing import rinex_batches

CHUNK_BYTES = 32 << 20
PARSE_WORKERS = 2  # processes parsing listing chunks while the caller builds segments
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
    path: Path,
    collection: str,
    chunk_bytes: int = CHUNK_BYTES,
    progress: Callable[[int], None] | None = None,
    workers: int = PARSE_WORKERS,
) -> Iterator[Batch]:
    """Batches of the listing at `path`, in file order, parsed `chunk_bytes` at a time by `workers`
    processes (the caller meanwhile writes index segments); at most `workers + 1` chunks in flight,
    so memory stays bounded."""
    ranges = line_ranges(Path(path), chunk_bytes)
    if workers <= 1 or len(ranges) <= 1:
        for start, end in ranges:
            yield from parse_range(Path(path), start, end, collection)
            if progress:
                progress(end)
        return
    # fork: workers need nothing but this module, and fork works from scripts without a __main__ guard
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        pending: deque = deque()
        for start, end in ranges:
            pending.append((pool.submit(parse_range, Path(path), start, end, collection), end))
            if len(pending) > workers:
                yield from _finish(pending.popleft(), progress)
        while pending:
            yield from _finish(pending.popleft(), progress)


def _finish(job, progress) -> list[Batch]:
    future, end = job
    batches = future.result()
    if progress:
        progress(end)
    return batches


def line_ranges(path: Path, chunk_bytes: int) -> list[tuple[int, int]]:
    """Byte ranges of about `chunk_bytes` covering the file, each ending just after a newline."""
    size = path.stat().st_size
    ranges, start = [], 0
    with path.open("rb") as f:
        while start < size:
            f.seek(min(start + chunk_bytes, size))
            f.readline()  # to the end of the line the cut fell in
            end = min(f.tell(), size)
            ranges.append((start, end))
            start = end
    return ranges


def parse_range(path: Path, start: int, end: int, collection: str) -> list[Batch]:
    with path.open("rb") as f:
        f.seek(start)
        data = f.read(end - start)
    if data and not data.endswith(b"\n"):
        data += b"\n"
    return list(parse(np.frombuffer(data, np.uint8), collection)) if data else []


def parse(buffer: np.ndarray, collection: str) -> Iterator[Batch]:
    starts, ends = textmatrix.lines(buffer)
    keep = ends > starts  # blank lines
    starts, ends = starts[keep], ends[keep]
    if not len(starts):
        return
    sizes, mtimes, path_starts = _fields(buffer, starts, ends)
    slash = _last_slash(buffer, path_starts, ends)
    names = textmatrix.cut(buffer, path_starts + slash + 1, ends)
    dirs = textmatrix.cut(buffer, path_starts, path_starts + np.maximum(slash, 0))
    done = np.zeros(len(starts), bool)
    for batch, rows in rinex_batches(names, dirs, sizes, mtimes, collection):
        done[rows] = True
        yield batch
    rest = np.flatnonzero(~done)
    if len(rest):
        paths = textmatrix.cut(buffer, path_starts[rest], ends[rest])  # only the lines left to parse
        yield from_records(
            [_record(collection, p, int(sizes[i]), int(mtimes[i])) for i, p in _paths(paths, rest)]
        )


def _last_slash(buffer: np.ndarray, path_starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Where the last '/' of each line's PATH is, counted from the PATH's start (-1: none): from the
    positions of all slashes in the buffer, so no matrix of whole paths is built for it."""
    slashes = np.flatnonzero(buffer == ord("/"))
    if not len(slashes):
        return np.full(len(ends), -1, np.int64)
    at = np.searchsorted(slashes, ends) - 1  # the last slash before each line's end
    last = slashes[np.maximum(at, 0)]
    return np.where((at >= 0) & (last >= path_starts), last - path_starts, -1)


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
    """(row, path) for `rows`, whose paths are the rows of the matrix `paths`, in that order."""
    for i, raw in zip(rows, textmatrix.strings(paths), strict=True):
        yield int(i), raw.decode("utf-8", "surrogateescape").lstrip("/")


def _record(collection: str, path: str, size: int, mtime: int) -> AssetRecord:
    name = path.rsplit("/", 1)[-1]
    rinex = gnss.parse_name(name)
    record = AssetRecord(collection, path, size=size, modified=from_seconds(mtime))
    if rinex is not None:
        record.start = rinex.start
        if gnss.period_seconds(rinex.period):
            record.end = rinex.start + timedelta(seconds=gnss.period_seconds(rinex.period))
        record.facets = gnss.facets_from_name(rinex)
        record.bbox = gnss.station_bbox(rinex.station)
        record.media_type = "application/x-rinex"
    return record
