"""A realistic synthetic GNSS archive listing, for benchmarks and demos (`datalabs assets synth`).

It follows the RINEX 3 long-name convention with the real IGS/EUREF stations of the station table:
per station and day a 30 s daily observation file, one navigation file per tracked constellation,
24 hourly 30 s observation files, 96 fifteen-minute 1 Hz high-rate files (at about 60% of stations)
and a meteo file (about a third), in `obs|nav|met/<product>/<YYYY>/<DDD>/` directories: about 9,000
files a day, so 100 million files span some 30 years back from the end date. Lines are written as
`SIZE MTIME PATH` (the listing format), with plausible sizes; generation is vectorised per kind.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

from datalabs.assets import gnss

END = date(2026, 11, 1)
_SIZE_DIGITS = _TIME_DIGITS = 10


@dataclass(frozen=True)
class Kind:
    directory: str  # below the volume root, before /YYYY/DDD/
    suffix: str  # after the start time, e.g. "_01D_30S_MO.crx.gz"
    source: str
    slots_per_day: int  # files per station per day (start times spread evenly)
    size: tuple[int, int]  # bytes, uniform
    every: int = 1  # only every n-th station


def kinds_for(station: gnss.Station, index: int) -> list[Kind]:
    kinds = [
        Kind("obs/daily", "_01D_30S_MO.crx.gz", "R", 1, (800_000, 3_000_000)),
        Kind("obs/hourly", "_01H_30S_MO.crx.gz", "R", 24, (40_000, 160_000)),
    ]
    kinds += [
        Kind("nav/daily", f"_01D_{s}N.rnx.gz", "R", 1, (20_000, 250_000)) for s in station.constellations
    ]
    if index % 5 < 3:
        kinds.append(Kind("obs/highrate", "_15M_01S_MO.crx.gz", "S", 96, (150_000, 700_000)))
    if index % 3 == 0:
        kinds.append(Kind("met/daily", "_01D_05M_MM.rnx.gz", "R", 1, (3_000, 9_000)))
    return kinds


def _templates() -> list[tuple[Kind, list[bytes]]]:
    """Per kind, the name of every (station, slot) with the start time left as YYYYDDDHHMM."""
    by_kind: dict[Kind, list[bytes]] = {}
    for index, station in enumerate(gnss.stations().values()):
        for kind in kinds_for(station, index):
            step = 24 * 60 // kind.slots_per_day
            for slot in range(kind.slots_per_day):
                hhmm = f"{slot * step // 60:02d}{slot * step % 60:02d}"
                name = f"{station.id}_{kind.source}_YYYYDDD{hhmm}{kind.suffix}"
                by_kind.setdefault(kind, []).append(name.encode())
    return list(by_kind.items())


def files_per_day() -> int:
    return sum(len(names) for _, names in _templates())


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    out = np.empty((len(values), width), np.uint8)
    for column in range(width - 1, -1, -1):
        out[:, column] = values % 10 + 48
        values = values // 10
    return out


def _kind_lines(kind: Kind, names: list[bytes], days: list[date], rng: np.random.Generator) -> np.ndarray:
    """A (rows x line width) byte matrix of `SIZE MTIME DIR/NAME\\n` for `days` x `names`."""
    prefix = f"{kind.directory}/YYYY/DDD/".encode()
    template = np.frombuffer(b"".join(prefix + n for n in names), np.uint8).reshape(len(names), -1)
    paths = np.tile(template, (len(days), 1))
    day_of = np.repeat(np.arange(len(days)), len(names))
    year = np.array([d.year for d in days], np.int64)[day_of]
    doy = np.array([d.timetuple().tm_yday for d in days], np.int64)[day_of]
    dirlen = len(prefix)
    paths[:, len(kind.directory) + 1 : len(kind.directory) + 5] = _digits(year, 4)
    paths[:, len(kind.directory) + 6 : len(kind.directory) + 9] = _digits(doy, 3)
    paths[:, dirlen + 12 : dirlen + 16] = _digits(year, 4)
    paths[:, dirlen + 16 : dirlen + 19] = _digits(doy, 3)
    rows = len(paths)
    sizes = rng.integers(kind.size[0], kind.size[1], rows)
    midnight = np.array([datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() for d in days], np.int64)
    mtimes = midnight[day_of] + 86400 + rng.integers(600, 7200, rows)  # published after the day ends
    out = np.full((rows, _SIZE_DIGITS + _TIME_DIGITS + 3 + paths.shape[1]), ord(" "), np.uint8)
    out[:, :_SIZE_DIGITS] = _digits(sizes, _SIZE_DIGITS)
    out[:, _SIZE_DIGITS + 1 : _SIZE_DIGITS + 1 + _TIME_DIGITS] = _digits(mtimes, _TIME_DIGITS)
    out[:, _SIZE_DIGITS + _TIME_DIGITS + 2 : -1] = paths
    out[:, -1] = ord("\n")
    return out


def listing_chunks(n: int, end: date = END, seed: int = 5, days_per_chunk: int = 64) -> Iterator[bytes]:
    """The first `n` lines of the synthetic listing (newest days first), in chunks of bytes."""
    rng = np.random.default_rng(seed)
    templates = _templates()
    per_day = sum(len(names) for _, names in templates)
    left, day = n, end
    while left > 0:
        days = [day - timedelta(i) for i in range(min(days_per_chunk, -(-left // per_day)))]
        day = days[-1] - timedelta(1)
        for kind, names in templates:
            if left <= 0:
                break
            lines = _kind_lines(kind, names, days, rng)[:left]
            left -= len(lines)
            yield lines.tobytes()


def write_listing(path: Path, n: int, **kwargs) -> int:
    """Write the listing of `n` synthetic files to `path` (atomically); returns bytes written."""
    tmp = path.with_name(path.name + ".tmp")
    written = 0
    with tmp.open("wb") as out:
        for chunk in listing_chunks(n, **kwargs):
            out.write(chunk)
            written += len(chunk)
    tmp.replace(path)
    return written
