"""`datalabs assets ...`: search and open through the API; synth, ingest, harvest and stats on this
machine's DATALABS_HOME (operator commands, like `datalabs admin`: they read archives and write the index)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from datalabs.cli.output import call, client, console, fail

app = typer.Typer(help="Explore archived files (assets): search, and build the index.")


def _index():
    from datalabs.assets.engine import BitmapIndex
    from datalabs.assets.service import index_dir
    from datalabs.config import Settings

    settings = Settings()
    settings.ensure_home()
    return BitmapIndex(index_dir(settings)), settings


def _ingest_listing(listing: Path, collection: str) -> int:
    from datalabs.assets import listing as listing_mod

    index, _ = _index()
    total, began = 0, time.perf_counter()
    columns = (TextColumn("ingesting"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("ingest", total=listing.stat().st_size)
        for batch in listing_mod.read_batches(
            listing, collection, progress=lambda b: bar.update(task, completed=b)
        ):
            total += index.ingest_batch(batch)
    seconds = time.perf_counter() - began
    console.print(
        f"{total:,} assets ingested into '{collection}' in {seconds:.1f} s ({total / seconds:,.0f}/s)"
    )
    return total


@app.command("synth")
def synth(
    n: int = typer.Option(100_000, "--n", help="Number of synthetic files."),
    out: Path = typer.Option(Path("synthetic-listing.txt"), help="Listing file to write."),
    ingest: bool = typer.Option(False, help="Also ingest the listing into the index."),
    collection: str = typer.Option("GsscDataProducts", help="Collection (data volume name) when ingesting."),
) -> None:
    """Write a realistic synthetic GNSS archive listing (RINEX long names, real IGS stations)."""
    from datalabs.assets import synth as synth_mod

    size = synth_mod.write_listing(out, n)
    console.print(f"{n:,} files listed in {out} ({size / 2**20:,.1f} MiB)")
    if ingest:
        _ingest_listing(out, collection)


@app.command("ingest")
def ingest(
    listing: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="Lines of 'SIZE MTIME PATH' or 'PATH'."
    ),
    collection: str = typer.Option(..., help="Collection the files belong to (the data volume's name)."),
) -> None:
    """Ingest an archive's file listing without touching the files."""
    _ingest_listing(listing, collection)


@app.command("harvest")
def harvest(
    volume: str = typer.Argument(..., help="Name of a registered data volume."),
    workers: int = typer.Option(2, help="Worker processes reading files."),
) -> None:
    """Harvest a data volume: read new or changed files (in parallel), drop vanished ones."""
    from sqlalchemy import select

    from datalabs.assets.service import harvest_state_dir
    from datalabs.cli._db import admin_session
    from datalabs.db.models import Volume
    from datalabs.volumes import indexing

    with admin_session() as (db, _):
        found = db.scalar(select(Volume).where(Volume.name == volume))
        if found is None:
            fail(f"no data volume named '{volume}' (see `datalabs volumes ls`)")
        root = Path(found.host_path)
    index, settings = _index()
    with Progress(
        TextColumn("harvesting"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} files"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("harvest", total=None)
        report = indexing.harvest(
            index,
            root,
            indexing.Status(volume, requested_by="datalabs assets harvest", queued_at=time.time()),
            harvest_state_dir(settings),
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            workers=workers,
        )
    console.print(
        f"{report.seen:,} files: {report.added:,} new, {report.updated:,} changed, "
        f"{report.unchanged:,} unchanged, {report.removed:,} removed, {report.error_count:,} with errors"
    )
    for path, reason in report.errors[:50]:
        console.print(f"  [yellow]{path}[/]: {reason}")


@app.command("stats")
def stats() -> None:
    """Size of the local index."""
    index, _ = _index()
    typer.echo(json.dumps(index.stats(), indent=2))


@app.command("search")
def search(
    q: str = typer.Argument("", help="Words matched in file names and directories."),
    facet: list[str] = typer.Option(
        [], "--facet", "-f", help="FACET=V1,V2 (repeatable): OR within, AND across."
    ),
    bbox: str = typer.Option("", help="west,south,east,north"),
    datetime: str = typer.Option("", "--datetime", help="RFC 3339 instant or START/END interval."),
    sort: str = typer.Option("date", help="date, -date, name, -name"),
    limit: int = typer.Option(20),
    offset: int = typer.Option(0),
    show_facets: bool = typer.Option(False, "--facets", help="Also print the facet counts."),
    as_json: bool = typer.Option(False, "--json", help="Print the raw JSON answer."),
) -> None:
    """Search the assets you may see, through the API."""
    from datalabs.client import ApiError, Client, NotConfigured

    query: dict[str, str | int] = {
        "q": q,
        "bbox": bbox,
        "datetime": datetime,
        "sort": sort,
        "limit": limit,
        "offset": offset,
    }
    for item in facet:
        name, sep, values = item.partition("=")
        if not sep:
            fail(f"--facet wants FACET=VALUES, not '{item}'")
        query[name.strip()] = values
    try:
        with Client() as client:
            result = client.get("/api/v1/assets/search", **{k: v for k, v in query.items() if v != ""})
    except (ApiError, NotConfigured) as exc:
        fail(getattr(exc, "message", str(exc)))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    first = offset + 1 if result["items"] else 0
    table = Table(
        title=f"{first:,} - {offset + len(result['items']):,} of {result['total']:,} ({result['took_ms']} ms)"
    )
    for col in ("date", "collection", "path", "size"):
        table.add_column(col)
    for item in result["items"]:
        table.add_row(
            (item["start"] or item["modified"] or "")[:19],
            item["collection"],
            item["path"],
            f"{item['size']:,}",
        )
    console.print(table)
    if show_facets:
        for name, counts in result["facets"].items():
            if counts:
                console.print(
                    f"[bold]{name}[/]: " + ", ".join(f"{c['value']} ({c['count']:,})" for c in counts[:10])
                )


@app.command("open")
def open_asset(
    asset_id: str = typer.Argument(..., help="The asset's id, <collection>:<path> (see `search --json`)."),
    lab: str = typer.Option("", "--lab", help="A running lab of yours, by id."),
    datalab: str = typer.Option("", "--datalab", help="Launch this datalab with the asset's volume."),
    as_json: bool = typer.Option(False, "--json", help="Print the raw JSON answer."),
) -> None:
    """Open an asset in a running lab of yours (--lab) or in a new one (--datalab); prints where the file
    is inside the lab and the URL that opens it."""
    from urllib.parse import quote

    if bool(lab) == bool(datalab):
        fail("give either --lab ID (a running lab of yours) or --datalab NAME (a datalab to launch)")
    body = {"lab_id": lab} if lab else {"datalab": datalab}
    with client() as api:
        opened = call(lambda: api.post(f"/api/v1/assets/{quote(asset_id, safe='/:')}/open", body))
        base = api.url
    if as_json:
        typer.echo(json.dumps(opened, indent=2))
        return
    how = "on its data volume" if opened["placement"] == "mounted" else "copied into your workspace"
    state = "launched (starting)" if opened["launched"] else "running"
    console.print(f"lab [bold]{opened['lab_id']}[/] ({state}): the file is {how}")
    console.print(f"path in the lab: {opened['path']}", soft_wrap=True)
    console.print(f"open: {base}{opened['url']}", soft_wrap=True)
