"""The peers of the asset index benchmark: the same data and searches on PostgreSQL and DuckDB.

Both get the design a careful engineer would give them: every facet dictionary-encoded as a small
integer column of *set* codes (multi-valued facets such as satellites code the whole set, exactly as
the bitmap index does), a `sets` table mapping codes to values, a `dirs` table, and the date as epoch
seconds. PostgreSQL adds a btree per facet column and on the date, and a trigram index on the name;
DuckDB stores rows sorted by date (zone maps) and needs no index. A search is one statement per
facet group: total, first page, one GROUPING SETS count over the facets without a selection, and one
count per selected facet (its own selection left out), the semantics of `datalabs.assets.base`.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from datalabs.assets.base import FACETS, Query, text_words
from datalabs.assets.columns import seconds
from datalabs.assets.state import State

COLS = [f"f_{f}" for f in FACETS]


def export(state: State, directory: Path) -> dict[str, Path]:
    """CSV files of the index's rows, sets and directories (what both SQL engines load)."""
    directory.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    for seg in state.segments:
        names.extend(seg.reader.names())
    rows = directory / "assets.csv"
    codes = np.column_stack([state.columns[f].codes.astype(np.int32) for f in FACETS])
    dirs = state.columns["dir"]
    dir_codes = np.asarray([s[0] if s else -1 for s in dirs.sets], np.int32)[dirs.codes]
    with rows.open("w", newline="") as out:
        writer = csv.writer(out)
        for start in range(0, state.rows, 200_000):
            stop = min(start + 200_000, state.rows)
            block = np.column_stack(
                [np.arange(start, stop), state.dates[start:stop], dir_codes[start:stop], codes[start:stop]]
            ).tolist()
            writer.writerows([r[:3] + [names[start + i]] + r[3:] for i, r in enumerate(block)])
    sets = directory / "sets.csv"
    with sets.open("w", newline="") as out:
        writer = csv.writer(out)
        for facet in FACETS:
            col = state.columns[facet]
            writer.writerows(
                [facet, code, col.values[v]] for code, members in enumerate(col.sets) for v in members
            )
    dirs_csv = directory / "dirs.csv"
    with dirs_csv.open("w", newline="") as out:
        csv.writer(out).writerows([i, v] for i, v in enumerate(dirs.values))
    return {"assets": rows, "sets": sets, "dirs": dirs_csv}


SCHEMA = (
    "CREATE TABLE assets (id BIGINT, date BIGINT, dir INTEGER, name TEXT, "
    + ", ".join(f"{c} SMALLINT" for c in COLS)
    + ")",
    "CREATE TABLE sets (facet TEXT, code INTEGER, value TEXT)",
    "CREATE TABLE dirs (code INTEGER, dir TEXT)",
)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class SqlSearch:
    """Builds the statements of one search; `codes` maps facet -> value -> set codes containing it."""

    def __init__(self, codes: dict[str, dict[str, list[int]]], like: str):
        self.codes, self.like = codes, like

    def base(self, q: Query) -> list[str]:
        where = []
        if q.start is not None:
            where.append(f"date >= {seconds(q.start)}")
        if q.end is not None:
            where.append(f"date < {seconds(q.end)}")
        for word in text_words(q.text):
            pattern = _quote(f"%{word}%")
            where.append(
                f"(name {self.like} {pattern} OR "
                f"dir IN (SELECT code FROM dirs WHERE dir {self.like} {pattern}))"
            )
        return where

    def selection(self, facet: str, values: list[str]) -> str:
        codes = sorted({c for v in values for c in self.codes[facet].get(v, [])})
        return f"f_{facet} IN ({', '.join(map(str, codes))})" if codes else "FALSE"

    def statements(self, q: Query) -> list[tuple[str, str]]:
        """(purpose, SQL) pairs: total, page, counts of facets without selection, one per selected facet."""
        base = self.base(q)
        selected = {f: self.selection(f, v) for f, v in q.facets.items() if v}
        everything = " AND ".join(base + list(selected.values())) or "TRUE"
        free = [f"f_{f}" for f in FACETS if f not in selected]
        out = [
            ("total", f"SELECT count(*) FROM assets WHERE {everything}"),
            (
                "page",
                f"SELECT id, name FROM assets WHERE {everything} ORDER BY date DESC, id LIMIT {q.limit}",
            ),
            (
                "counts",
                f"SELECT {', '.join(f'GROUPING({c})' for c in free)}, {', '.join(free)}, count(*) "
                f"FROM assets WHERE {everything} "
                f"GROUP BY GROUPING SETS ({', '.join(f'({c})' for c in free)})",
            ),
        ]
        for facet in selected:
            others = " AND ".join(base + [s for f, s in selected.items() if f != facet]) or "TRUE"
            out.append((facet, f"SELECT f_{facet}, count(*) FROM assets WHERE {others} GROUP BY f_{facet}"))
        return out


def set_codes(state: State) -> dict[str, dict[str, list[int]]]:
    out: dict[str, dict[str, list[int]]] = {}
    for facet in FACETS:
        col = state.columns[facet]
        out[facet] = {col.values[v]: codes for v, codes in enumerate(col.sets_of_value)}
    return out


def load_postgres(conn, files: dict[str, Path]) -> None:
    with conn.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for statement in SCHEMA:
            cur.execute(statement)
        for table in ("assets", "sets", "dirs"):
            with files[table].open() as src, cur.copy(f"COPY {table} FROM STDIN WITH (FORMAT csv)") as copy:
                while data := src.read(1 << 20):
                    copy.write(data)
        cur.execute("CREATE INDEX ON assets (date DESC, id)")
        for c in COLS:
            cur.execute(f"CREATE INDEX ON assets ({c})")
        cur.execute("CREATE INDEX ON assets USING gin (name gin_trgm_ops)")
        cur.execute("CREATE INDEX ON dirs USING gin (dir gin_trgm_ops)")
    conn.commit()
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE assets")


def load_duckdb(conn, files: dict[str, Path]) -> None:
    for statement in SCHEMA:
        conn.execute(statement)
    conn.execute(
        f"INSERT INTO assets SELECT * FROM read_csv('{files['assets']}', header=false) ORDER BY column01 DESC"
    )
    conn.execute(f"INSERT INTO sets SELECT * FROM read_csv('{files['sets']}', header=false)")
    conn.execute(f"INSERT INTO dirs SELECT * FROM read_csv('{files['dirs']}', header=false)")
