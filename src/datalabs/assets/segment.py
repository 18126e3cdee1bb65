"""One immutable segment of the bitmap index on disk, and its loaded form.

A segment's rows are numbered by date, newest first (ties by station, so a station's files sit
together and its bitmaps compress to runs): the first page of a date-sorted search is the head of the
filter bitmap, and a time range is one contiguous row range. On disk:

    meta.json    row count, per column: values, sets and where each set's bitmap starts in <column>.roar
    dates.bin    zlib of the date deltas (rows are sorted, so the deltas are small and repetitive)
    <col>.roar   the column's roaring bitmaps (portable format), one per non-empty set
    rows.bin     the row payload (`rowstore`)
    deleted.roar rows removed later (absent while none are)

The per-row set codes are not stored: they are rebuilt from the bitmaps when the segment loads.
"""

from __future__ import annotations

import array
import json
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pyroaring import BitMap

from datalabs.assets import rowstore
from datalabs.assets.columns import COLUMNS, TOKEN_COLUMNS, Batch, Coded, Rows, smallest_uint

_ORDER_TIEBREAK = "station"


def row_order(batch: Batch) -> np.ndarray:
    """Newest first; ties by station code then arrival (stable)."""
    return np.lexsort((batch.columns[_ORDER_TIEBREAK].codes, -batch.dates))


def _permute_rows(rows: Rows, order: np.ndarray) -> Rows:
    def pick(seq):
        if isinstance(seq, str) or seq is None:
            return seq
        if isinstance(seq, np.ndarray):
            return seq[order]
        return [seq[i] for i in order]

    return Rows(
        names=pick(rows.names),
        sizes=rows.sizes[order],
        modified=rows.modified[order],
        ends=rows.ends[order],
        dated=rows.dated[order],
        media_types=pick(rows.media_types),
        titles=pick(rows.titles),
        properties=pick(rows.properties),
    )


def bitmap(rows: np.ndarray) -> BitMap:
    """A bitmap of row numbers; through array.array, which pyroaring reads 8x faster than numpy."""
    buffer = array.array("I")
    buffer.frombytes(np.ascontiguousarray(rows, np.uint32).tobytes())
    return BitMap(buffer)


def bitmaps_of(coded: Coded) -> list[BitMap | None]:
    """One bitmap per set code (None for the empty set, which no filter ever needs)."""
    order = np.argsort(coded.codes, kind="stable").astype(np.uint32)
    bounds = np.concatenate([[0], np.cumsum(np.bincount(coded.codes, minlength=len(coded.sets)))])
    out: list[BitMap | None] = []
    for code, members in enumerate(coded.sets):
        if not members:
            out.append(None)
            continue
        bm = bitmap(order[bounds[code] : bounds[code + 1]])
        bm.run_optimize()
        out.append(bm)
    return out


def write(directory: Path, batch: Batch) -> None:
    """Write `batch` as a new segment at `directory` (built aside, then renamed into place)."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    order = row_order(batch)
    dates = batch.dates[order]
    meta: dict = {"rows": len(dates), "columns": {}}
    for name in COLUMNS:
        coded = batch.columns[name]
        coded = Coded(coded.values, coded.sets, coded.codes[order])
        meta["columns"][name] = _write_column(tmp / f"{name}.roar", coded)
    (tmp / "dates.bin").write_bytes(zlib.compress(_date_deltas(dates).tobytes(), 6))
    meta["rows_offsets"] = rowstore.write(tmp / "rows.bin", _permute_rows(batch.rows, order), dates).tolist()
    (tmp / "meta.json").write_text(json.dumps(meta, separators=(",", ":")))
    os.replace(tmp, directory)


def _write_column(path: Path, coded: Coded) -> dict:
    offsets = [0]
    with path.open("wb") as out:
        for bm in bitmaps_of(coded):
            if bm is not None:
                out.write(bm.serialize())
            offsets.append(out.tell())
    return {"values": coded.values, "sets": coded.sets, "offsets": offsets}


def _date_deltas(dates: np.ndarray) -> np.ndarray:
    return np.concatenate([dates[:1], -np.diff(dates)]).astype("<i8") if len(dates) else dates


@dataclass
class Column:
    values: list
    sets: list[tuple[int, ...]]
    bitmaps: list[BitMap | None]
    codes: np.ndarray


@dataclass
class Segment:
    directory: Path
    rows: int
    dates: np.ndarray
    columns: dict[str, Column]
    reader: rowstore.RowReader
    deleted: BitMap

    @property
    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.directory.iterdir())

    def reload_deleted(self) -> None:
        path = self.directory / "deleted.roar"
        self.deleted = BitMap.deserialize(path.read_bytes()) if path.exists() else BitMap()

    def save_deleted(self) -> None:
        tmp = self.directory / "deleted.roar.tmp"
        tmp.write_bytes(self.deleted.serialize())
        os.replace(tmp, self.directory / "deleted.roar")


def load(directory: Path) -> Segment:
    meta = json.loads((directory / "meta.json").read_text())
    n = meta["rows"]
    deltas = np.frombuffer(zlib.decompress((directory / "dates.bin").read_bytes()), "<i8")
    dates = np.concatenate([deltas[:1], deltas[:1] - np.cumsum(deltas[1:])]) if n else np.zeros(0, np.int64)
    columns = {
        name: _load_column(directory / f"{name}.roar", meta["columns"][name], n, name not in TOKEN_COLUMNS)
        for name in COLUMNS
    }
    reader = rowstore.RowReader(directory / "rows.bin", np.asarray(meta["rows_offsets"], np.int64), dates)
    deleted_path = directory / "deleted.roar"
    deleted = BitMap.deserialize(deleted_path.read_bytes()) if deleted_path.exists() else BitMap()
    return Segment(directory, n, dates, columns, reader, deleted)


def _load_column(path: Path, meta: dict, n: int, with_codes: bool) -> Column:
    """The column's bitmaps, and its per-row codes where something reads them (facets, dir, loc; name
    tokens are only ever used through their bitmaps, so their codes would be memory for nothing)."""
    sets = [tuple(s) for s in meta["sets"]]
    values = [tuple(v) if isinstance(v, list) else v for v in meta["values"]]
    offsets = meta["offsets"]
    data = path.read_bytes()
    bitmaps: list[BitMap | None] = []
    empty = next((code for code, members in enumerate(sets) if not members), 0)
    codes = np.full(n if with_codes else 0, empty, smallest_uint(len(sets)))
    for code in range(len(sets)):
        if offsets[code + 1] == offsets[code]:
            bitmaps.append(None)
            continue
        bm = BitMap.deserialize(data[offsets[code] : offsets[code + 1]])
        bitmaps.append(bm)
        if with_codes:
            codes[np.frombuffer(bm.to_array(), np.uint32)] = code
    return Column(values, sets, bitmaps, codes)
