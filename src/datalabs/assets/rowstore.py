"""Row payload (name, size, times, media type, title, properties) in zlib-compressed blocks of BLOCK rows.

Only a page of results is ever read, so blocks are small enough to inflate in well under a millisecond,
and large enough that neighbouring names (rows are in date order, so names share most characters)
compress to a few bytes each. Times are stored as offsets from the row's date, which are mostly
constant and cost almost nothing once compressed.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from datalabs.assets.columns import NONE, Rows

BLOCK = 1024
LEVEL = 1  # level 6 saves ~10% of the row store for 3x the ingest time
_MISSING = np.iinfo(np.int64).min


def _names_bytes(names) -> bytes:
    """Names joined by NUL, the one byte no file name contains."""
    if isinstance(names, np.ndarray) and names.dtype.kind == "S":
        return b"\0".join(names.tolist())
    return "\0".join(names).encode("utf-8", "surrogateescape")


def _pick(value, start: int, stop: int):
    return value if isinstance(value, str) or value is None else list(value[start:stop])


def _offsets(times: np.ndarray, dates: np.ndarray) -> np.ndarray:
    return np.where(times == NONE, _MISSING, times - dates)


def write(path: Path, rows: Rows, dates: np.ndarray) -> np.ndarray:
    """Write all rows; returns the byte offset of each block (plus the end) for `read`."""
    offsets = [0]
    modified, ends = _offsets(rows.modified, dates), _offsets(rows.ends, dates)
    with path.open("wb") as out:
        for start in range(0, len(dates), BLOCK):
            stop = min(start + BLOCK, len(dates))
            names = _names_bytes(rows.names[start:stop])
            text = json.dumps(
                [
                    _pick(rows.media_types, start, stop),
                    _pick(rows.titles, start, stop),
                    _pick(rows.properties, start, stop),
                ],
                separators=(",", ":"),
            ).encode()
            numbers = np.concatenate(
                [rows.sizes[start:stop], modified[start:stop], ends[start:stop], rows.dated[start:stop]]
            )
            head = struct.pack("<II", len(names), len(text))
            data = zlib.compress(head + names + text + numbers.astype("<i8").tobytes(), LEVEL)
            out.write(data)
            offsets.append(offsets[-1] + len(data))
    return np.asarray(offsets, np.int64)


class RowReader:
    """Reads rows of one segment by row number; inflates each block once per call."""

    def __init__(self, path: Path, offsets: np.ndarray, dates: np.ndarray):
        self.path, self.offsets, self.dates = path, offsets, dates

    def block(self, b: int) -> dict[str, Any]:
        with self.path.open("rb") as f:
            f.seek(int(self.offsets[b]))
            data = zlib.decompress(f.read(int(self.offsets[b + 1] - self.offsets[b])))
        names_size, size = struct.unpack_from("<II", data)
        names = data[8 : 8 + names_size].decode("utf-8", "surrogateescape").split("\0")
        media, titles, props = json.loads(data[8 + names_size : 8 + names_size + size])
        numbers = np.frombuffer(data[8 + names_size + size :], "<i8").reshape(4, -1)
        return {"names": names, "media": media, "titles": titles, "props": props, "numbers": numbers}

    def rows(self, row_numbers: list[int]) -> list[dict[str, Any]]:
        blocks: dict[int, dict[str, Any]] = {}
        out = []
        for row in row_numbers:
            b, i = divmod(row, BLOCK)
            block = blocks.get(b) or blocks.setdefault(b, self.block(b))
            size, modified, end, dated = (int(x) for x in block["numbers"][:, i])
            date = int(self.dates[row])
            out.append(
                {
                    "name": block["names"][i],
                    "media_type": _at(block["media"], i),
                    "title": _at(block["titles"], i),
                    "properties": _at(block["props"], i) or {},
                    "size": size,
                    "modified": NONE if modified == _MISSING else date + modified,
                    "end": NONE if end == _MISSING else date + end,
                    "start": date if dated else NONE,
                }
            )
        return out

    def names(self) -> list[str]:
        """Every name in row order (for building the name sort order)."""
        out: list[str] = []
        for b in range(len(self.offsets) - 1):
            out.extend(self.block(b)["names"])
        return out


def _at(value, i: int):
    return value if isinstance(value, str) or value is None else value[i]
