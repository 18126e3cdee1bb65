"""RINEX long names of a listing, parsed column-wise: each name is a row of a byte matrix.

Long names have fixed layouts (observation and meteo files carry a sampling field, navigation files
do not), so every field sits at a known column. Rows that agree on everything but the start time
share a *profile*; the (few) profiles are parsed with the regular expression and the station table
(`gnss.facets_from_name`), and their facets spread back to the rows. Any row whose profile the
regular expression rejects is left to the caller's record path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from datalabs.assets import gnss, textmatrix
from datalabs.assets.base import FACETS
from datalabs.assets.columns import TOKEN_COLUMNS, Batch, Coded, Rows, coded_from_groups

_TIME = slice(12, 23)  # YYYYDDDHHMM


@dataclass(frozen=True)
class Layout:
    lengths: tuple[int, ...]  # with no compression, .Z, .gz
    underscores: tuple[int, ...]
    dot: int
    tokens: tuple[tuple[int, int], ...]  # name token columns, lower-cased


OBSERVATION = Layout(
    (38, 40, 41),
    (9, 11, 23, 27, 31),
    34,
    ((0, 9), (10, 11), (12, 23), (24, 27), (28, 31), (32, 34), (35, 38), (39, 41)),
)
NAVIGATION = Layout(
    (34, 36, 37), (9, 11, 23, 27), 30, ((0, 9), (10, 11), (12, 23), (24, 27), (28, 30), (31, 34), (35, 37))
)


def _rows_of(names: np.ndarray, layout: Layout) -> np.ndarray:
    width = names.shape[1]
    if width < layout.lengths[0]:
        return np.zeros(0, np.int64)
    lengths = (names != 0).sum(axis=1)
    ok = np.isin(lengths, layout.lengths)
    for column in layout.underscores:
        ok &= names[:, column] == ord("_")
    ok &= names[:, layout.dot] == ord(".")
    digits = names[:, _TIME]
    ok &= ((digits >= 48) & (digits <= 57)).all(axis=1)
    return np.flatnonzero(ok)


def _dates(names: np.ndarray) -> np.ndarray:
    d = names[:, _TIME].astype(np.int64) - 48

    def number(a: int, b: int) -> np.ndarray:
        out = np.zeros(len(d), np.int64)
        for column in range(a, b):
            out = out * 10 + d[:, column]
        return out

    years = (number(0, 4) - 1970).astype("datetime64[Y]").astype("datetime64[D]")
    days = years + (number(4, 7) - 1).astype("timedelta64[D]")
    return days.astype(np.int64) * 86400 + number(7, 9) * 3600 + number(9, 11) * 60


def _decoded(matrix: np.ndarray) -> tuple[list[str], np.ndarray]:
    first, inverse = textmatrix.group(matrix)
    return [v.decode("utf-8", "surrogateescape") for v in textmatrix.strings(matrix[first])], inverse


def _batch(names, dirs, sizes, mtimes, collection, layout) -> tuple[Batch, np.ndarray] | None:
    rows = _rows_of(names, layout)
    if not len(rows):
        return None
    names, dirs = names[rows], dirs[rows]
    profile = names.copy()
    profile[:, _TIME] = 0
    first, inverse = textmatrix.group(profile)
    representatives = names[first]  # one name per profile (taken before any rows are dropped)
    parsed = [gnss.parse_name(n.decode("ascii", "replace")) for n in textmatrix.strings(representatives)]
    accepted = np.array([p is not None for p in parsed])[inverse]
    if not accepted.all():  # the record path deals with these
        keep = np.flatnonzero(accepted)
        rows, names, dirs, inverse = rows[keep], names[keep], dirs[keep], inverse[keep]
        if not len(rows):
            return None
    facets = [gnss.facets_from_name(p) if p else {} for p in parsed]
    columns = {f: coded_from_groups([fs.get(f, ()) for fs in facets], inverse) for f in FACETS}
    columns["collection"] = Coded([collection], [(0,)], np.zeros(len(rows), np.uint8))
    bboxes = [gnss.station_bbox(p.station) if p else None for p in parsed]
    columns["loc"] = coded_from_groups([(b,) if b else () for b in bboxes], inverse)
    dir_values, dir_inverse = _decoded(dirs)
    columns["dir"] = coded_from_groups([(d,) for d in dir_values], dir_inverse)
    # Name tokens: only the start time differs within a profile, so every other token is read once
    # per profile and spread like the facets; the time token is grouped over the rows themselves.
    profile_names = textmatrix.lower(representatives)
    for column, (a, b) in zip(TOKEN_COLUMNS, layout.tokens + ((0, 0),) * 8, strict=False):
        if b <= a or b > names.shape[1]:
            columns[column] = Coded.empty(len(rows))
        elif (a, b) == (_TIME.start, _TIME.stop):
            values, token_inverse = _decoded(names[:, a:b])  # digits: nothing to lower-case
            columns[column] = coded_from_groups([(v,) if v else () for v in values], token_inverse)
        else:
            values = [v.decode("utf-8", "surrogateescape") for v in textmatrix.strings(profile_names[:, a:b])]
            columns[column] = coded_from_groups([(v,) if v else () for v in values], inverse)
    dates = _dates(names)
    periods = np.array([gnss.period_seconds(p.period) if p else 0 for p in parsed], np.int64)[inverse]
    payload = Rows(
        names=textmatrix.strings(names),
        sizes=sizes[rows],
        modified=mtimes[rows],
        ends=dates + periods,
        dated=np.ones(len(rows), np.int64),
        media_types="application/x-rinex",
    )
    return Batch(dates, columns, payload), rows


def rinex_batches(names, dirs, sizes, mtimes, collection: str) -> Iterator[tuple[Batch, np.ndarray]]:
    """(batch, the listing rows it holds) for each long-name layout present."""
    for layout in (OBSERVATION, NAVIGATION):
        found = _batch(names, dirs, sizes, mtimes, collection, layout)
        if found is not None:
            yield found
