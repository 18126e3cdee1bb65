"""Faceted asset search: the bitmap index beside PostgreSQL and DuckDB on the same synthetic GNSS archive.

`datalabs.assets.synth` writes a listing of N realistic RINEX files; the listing is ingested (timed:
the listing-ingest rate), then searches run in a fresh process that only loads the index (its RSS is
the index's): each returns the total, the first 20 by date and the counts of all 18 facets.
Query classes: `unfiltered`; `mix` (the issue's target: 1-5 facet filters + a time range + text);
`time` (one year, nothing else); `broad` (one facet matching ~half the rows, nothing else).
The peers (bench/assets_sql.py) run the same searches; totals are compared query by query.

    .venv/bin/python -m bench.assets_search [--n 1000000] [--peers postgres,duckdb] [--queries 200]
    .venv/bin/python -m bench.assets_search --n 10000000 --peer-queries 20     # ~10 min
    .venv/bin/python -m bench.assets_search --n 100000000 --peers '' --workdir /big/disk   # ~20 min, 15 GB
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import resource
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import machine, revision, write_section
from datalabs.assets import listing, synth
from datalabs.assets.base import Query
from datalabs.assets.engine import BitmapIndex

ENGINE_CHOICE = """\
Engine choice: the bitmap index (`datalabs.assets.engine`) is the default and only AssetIndex because every
explorer click needs total + first page by date + counts of all facets, and on the same data and searches
it answers that tens to thousands of times faster than DuckDB and PostgreSQL here, in less disk (see the
ratio rows); DuckDB's one-scan GROUPING SETS grows with the rows, PostgreSQL's more so. The bitmap index
numbers rows newest first (first page = head of the filter bitmap, a time range = one row range per
segment, counted from prefix sums), intersects roaring bitmaps for filters, and counts with numpy
`bincount` over per-column set codes when few rows match, bitmap intersections when many do, and the
rows left out when most do. Its weak spot is a broad filter with nothing else (`broad`)."""

FACET_POOL = [
    "constellation",
    "satellite",
    "sampling_rate",
    "dataset",
    "network",
    "tags",
    "observation_code",
    "resource_type",
    "source",
    "instrument_type",
    "station",
]


def queries(index: BitmapIndex, count: int, seed: int = 7) -> list[tuple[str, Query]]:
    """A reproducible mix of searches over the values present in the index."""
    rng = random.Random(seed)
    totals = index.search(Query(limit=0)).facets
    newest = datetime.fromtimestamp(int(index.state.dates.max()), UTC)
    oldest = datetime.fromtimestamp(int(index.state.dates.min()), UTC)
    span = (newest - oldest).days or 1
    stations = [v for v, _ in totals["station"]]
    out: list[tuple[str, Query]] = []
    for i in range(count):
        kind = ["mix", "mix", "mix", "mix", "mix", "mix", "unfiltered", "time", "broad", "mix"][i % 10]
        if kind == "unfiltered":
            out.append((kind, Query()))
        elif kind == "broad":
            out.append((kind, Query(facets={"constellation": ["GLONASS"]})))
        elif kind == "time":
            start = oldest + timedelta(days=rng.randrange(span))
            out.append((kind, Query(start=start, end=start + timedelta(days=365))))
        else:
            facets = {}
            for facet in rng.sample(FACET_POOL, rng.randint(1, 5)):
                values = [v for v, _ in totals[facet]]
                facets[facet] = rng.sample(values, min(len(values), rng.randint(1, 2)))
            start = oldest + timedelta(days=rng.randrange(span))
            text = rng.choice(stations)[: rng.randint(2, 4)].lower()
            out.append(
                (
                    kind,
                    Query(
                        facets=facets,
                        start=start,
                        end=start + timedelta(days=rng.randint(30, 730)),
                        text=text,
                    ),
                )
            )
    return out


def _rss_gib() -> tuple[float, float]:
    status = Path("/proc/self/status").read_text()
    field = {
        line.split(":")[0]: int(line.split()[1]) for line in status.splitlines() if line.startswith("Vm")
    }
    return field["VmRSS"] / 2**20, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def bitmap_searches(directory: str, count: int, result: dict) -> None:
    """In a fresh process: load the index, run the searches (after one warm-up pass), report."""
    began = time.perf_counter()
    index = BitmapIndex(Path(directory))
    result["load_s"] = time.perf_counter() - began
    began = time.perf_counter()
    index.warm()
    result["warm_s"] = time.perf_counter() - began
    result["rss_loaded"] = _rss_gib()[0]
    qs = queries(index, count)
    for _, q in qs[:10]:
        index.search(q)
    timings: dict[str, list[float]] = {}
    totals = []
    for kind, q in qs:
        began = time.perf_counter()
        page = index.search(q)
        timings.setdefault(kind, []).append((time.perf_counter() - began) * 1000)
        totals.append(page.total)
    result["timings"], result["totals"] = timings, totals
    result["rss"], result["peak"] = _rss_gib()
    result["stats"] = index.stats()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run_peer(name: str, index: BitmapIndex, work: Path, qs, count: int) -> dict:
    from bench import assets_sql

    files = assets_sql.export(index.state, work / "csv")
    began = time.perf_counter()
    if name == "postgres":
        import psycopg
        from tests.pg import PostgresServer, find_bin

        server = PostgresServer(find_bin()).start()
        try:
            server.execute("CREATE DATABASE bench")
            conn = psycopg.connect(server.dsn("bench"))
            assets_sql.load_postgres(conn, files)
            load = time.perf_counter() - began
            with conn.cursor() as cur:
                cur.execute("SELECT pg_total_relation_size('assets')")
                size = cur.fetchone()[0]
            out = _peer_queries(
                lambda sql: conn.execute(sql).fetchall(),
                assets_sql.SqlSearch(assets_sql.set_codes(index.state), "ILIKE"),
                qs,
                count,
            )
            conn.close()
        finally:
            server.stop()
    else:
        import duckdb

        conn = duckdb.connect(str(work / "bench.duckdb"))
        assets_sql.load_duckdb(conn, files)
        conn.execute("CHECKPOINT")
        load = time.perf_counter() - began
        size = (work / "bench.duckdb").stat().st_size
        out = _peer_queries(
            lambda sql: conn.execute(sql).fetchall(),
            assets_sql.SqlSearch(assets_sql.set_codes(index.state), "ILIKE"),
            qs,
            count,
        )
        conn.close()
    return out | {"load_s": load, "bytes": size}


def _peer_queries(execute, search, qs, count: int) -> dict:
    picked = _spread(qs, count)
    timings: dict[str, list[float]] = {}
    totals = {}
    for i, (kind, q) in picked:
        execute(search.statements(q)[0][1])  # warm the caches for this query shape
        began = time.perf_counter()
        for purpose, sql in search.statements(q):
            rows = execute(sql)
            if purpose == "total":
                totals[i] = rows[0][0]
        timings.setdefault(kind, []).append((time.perf_counter() - began) * 1000)
    return {"timings": timings, "totals": totals}


def _spread(qs, count: int):
    """`count` queries per class at most, spread over the list."""
    taken: dict[str, int] = {}
    out = []
    for i, (kind, q) in enumerate(qs):
        if taken.get(kind, 0) < count:
            taken[kind] = taken.get(kind, 0) + 1
            out.append((i, (kind, q)))
    return out


def run(
    n: int = 1_000_000,
    peers: tuple[str, ...] = ("postgres", "duckdb"),
    count: int = 200,
    peer_count: int = 10,
    keep: Path | None = None,
) -> bool:
    work = Path(tempfile.mkdtemp(prefix="bench-assets-", dir=keep))
    try:
        began = time.perf_counter()
        synth.write_listing(work / "listing.txt", n)
        synth_s = time.perf_counter() - began
        index = BitmapIndex(work / "index")
        began = time.perf_counter()
        for batch in listing.read_batches(work / "listing.txt", "GsscDataProducts"):
            index.ingest_batch(batch)
        ingest_s = time.perf_counter() - began
        del index  # the searches load the index in a fresh process; this one's copy would only take memory
        result = multiprocessing.Manager().dict()
        child = multiprocessing.get_context("spawn").Process(
            target=bitmap_searches, args=(str(work / "index"), count, result)
        )
        child.start()
        child.join()
        mine = dict(result)
        peer_results = {}
        if peers:
            index = BitmapIndex(work / "index")
            qs = queries(index, count)
            peer_results = {p: run_peer(p, index, work, qs, peer_count) for p in peers}
        report(n, synth_s, ingest_s, mine, peer_results)
        return True
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(n, synth_s, ingest_s, mine, peers) -> None:
    kinds = ["unfiltered", "mix", "time", "broad"]
    stats = mine["stats"]
    lines = [
        f"## Asset search, {n:,} synthetic GNSS assets",
        "",
        f"- Command: `.venv/bin/python -m bench.assets_search --n {n}` (regular `make bench`: 1,000,000)",
        f"- Machine: {machine()}",
        f"- Date: {datetime.now(UTC):%Y-%m-%d}; code: {revision()}",
        f"- Listing written in {synth_s:.1f} s; **ingest from the listing: {n / ingest_s:,.0f} assets/s** "
        f"({ingest_s:.1f} s); index on disk **{stats['bytes_per_asset']:.1f} bytes/asset** "
        f"({stats['bytes'] / 2**20:,.0f} MiB, {stats['segments']} segments); load {mine['load_s']:.1f} s "
        f"+ warm-up {mine['warm_s']:.1f} s (unfiltered counts, prefix sums, text dictionaries)",
        f"- Bitmap index RSS while searching: {mine['rss']:.2f} GiB (peak {mine['peak']:.2f} GiB)",
        "",
        "p50 / p95 ms per search (total + first 20 by date + counts of all 18 facets), queries per class "
        "(`mix` = the issue's target: 1-5 facet filters + a time range + text; `broad` = one facet matching "
        "~95% of rows and nothing else):",
        "",
        "| engine | " + " | ".join(kinds) + " | load | size on disk |",
        "| --- | " + " | ".join("---:" for _ in kinds) + " | ---: | ---: |",
        _row("bitmap index (pyroaring + numpy)", mine["timings"], kinds)
        + f" {n / ingest_s:,.0f} rows/s | {stats['bytes_per_asset']:.0f} B/row |",
    ]
    for name, result in peers.items():
        agree = all(result["totals"][i] == mine["totals"][i] for i in result["totals"])
        lines.append(
            _row(name, result["timings"], kinds) + f" {n / result['load_s']:,.0f} rows/s | "
            f"{result['bytes'] / n:.0f} B/row |"
        )
        ratios = {
            k: statistics.median(result["timings"][k]) / statistics.median(mine["timings"][k])
            for k in kinds
            if k in result["timings"]
        }
        lines.append(
            f"| ratio {name} / bitmap (p50) | "
            + " | ".join(f"{ratios.get(k, 0):.0f}x" for k in kinds)
            + f" | totals agree: {'yes' if agree else '**NO**'} | |"
        )
    lines += ["", ENGINE_CHOICE]
    write_section(f"assets-search-{_scale(n)}", "\n".join(lines))
    print("\n".join(lines))


def _row(name: str, timings: dict, kinds: list[str]) -> str:
    cells = []
    for k in kinds:
        values = timings.get(k, [])
        cells.append(
            f"{statistics.median(values):.1f} / {percentile(values, 95):.1f} ({len(values)})"
            if values
            else ""
        )
    return f"| {name} | " + " | ".join(cells) + " |"


def _scale(n: int) -> str:
    return f"{n // 1_000_000}m" if n >= 1_000_000 else f"{n // 1000}k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--peers", default="postgres,duckdb")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--peer-queries", type=int, default=10, help="searches per class on each peer")
    parser.add_argument("--workdir", type=Path, default=None, help="where the temporary data goes")
    args = parser.parse_args()
    peers = tuple(p for p in args.peers.split(",") if p)
    run(args.n, peers, args.queries, args.peer_queries, args.workdir)


if __name__ == "__main__":
    main()
