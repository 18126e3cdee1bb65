"""`datalabs files ls|get|put|rm|mkdir|mv|cp`: your workspaces' files through the API, with progress bars.

`--ws` picks the workspace: `me` (default) or `team:<name>`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from datalabs.cli import output
from datalabs.cli.output import call as _call
from datalabs.cli.output import console, fail
from datalabs.client import Client

app = typer.Typer(help="List, upload, download and organise the files of your workspaces.")
WS = typer.Option("me", "--ws", "-w", help="Workspace: 'me' or 'team:<name>'.")
CHUNK = 1 << 20


def _client() -> Client:
    return output.client(timeout=None)  # transfers of large files may take as long as they take


def url(ws: str, path: str) -> str:
    return f"/api/v1/workspaces/{quote(ws, safe=':')}/files/{quote(path.strip('/'), safe='/')}"


def _bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=True,
    )


def size_text(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


@app.command("ls")
def ls(
    path: str = typer.Argument("", help="Folder (default: the workspace's top)."),
    ws: str = WS,
    q: str = typer.Option("", "--find", help="Search names below the folder."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List a folder (every page of it)."""
    with _client() as client:
        items, offset = [], 0
        while True:
            page = _call(lambda o=offset: client.get(url(ws, path), offset=o, limit=5000, q=q))
            if not isinstance(page, dict):
                fail(f"'{path}' is a file; use `datalabs files get`")
            items += page["items"]
            offset += len(page["items"])
            if q or not page["items"] or offset >= page["total"]:
                break
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    table = Table(title=f"{ws}:/{path.strip('/')} ({len(items)} item(s))")
    for col in ("name", "type", "size", "modified"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for i in items:
        name = i["path"] if q else i["name"] + ("/" if i["type"] == "dir" else "")
        table.add_row(
            name, i["type"], size_text(i["size"]) if i["type"] == "file" else "", i["modified"][:19]
        )
    console.print(table)


@app.command()
def get(
    path: str = typer.Argument(..., help="File or folder in the workspace (a folder arrives as .zip)."),
    dest: Path = typer.Argument(None, help="Local file or folder (default: here)."),
    ws: str = WS,
) -> None:
    """Download a file, or a folder as a zip archive."""
    name = path.strip("/").rsplit("/", 1)[-1] or ws.replace(":", "-")
    with _client() as client:
        folder = False
        for params in ({"limit": 1}, {"format": "zip"}):
            with client.http.stream("GET", url(ws, path), params=params) as r:
                if r.status_code >= 400:
                    r.read()
                    fail(_message(r))
                if "content-disposition" not in r.headers:  # a folder's listing: fetch it as zip
                    folder = True
                    continue
                target = dest or Path(name + (".zip" if folder else ""))
                if target.is_dir():
                    target = target / (name + (".zip" if folder else ""))
                _save(r, target, name)
                break
    console.print(f"saved {target}")


def _save(response, target: Path, name: str) -> None:
    tmp = target.with_name(f".{target.name}.part")
    with _bar() as bar, tmp.open("wb") as out:
        task = bar.add_task(f"get {name}", total=int(response.headers.get("content-length", 0)) or None)
        for chunk in response.iter_bytes(CHUNK):
            out.write(chunk)
            bar.advance(task, len(chunk))
    tmp.replace(target)  # a complete file or nothing under the final name


def _message(response) -> str:
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


@app.command()
def put(
    source: Path = typer.Argument(..., exists=True, help="Local file or folder."),
    dest: str = typer.Argument("", help="Target path (ending in '/' or empty: into that folder)."),
    ws: str = WS,
    overwrite: bool = typer.Option(True, help="Replace existing files."),
) -> None:
    """Upload a file, or a folder with everything in it."""
    base = dest if dest and not dest.endswith("/") else f"{dest}{source.name}"
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    with _client() as client, _bar() as bar:
        task = bar.add_task(f"put {source.name}", total=total)
        for p in files:
            remote = base if p == source else f"{base}/{p.relative_to(source).as_posix()}"

            def body(p=p) -> Iterator[bytes]:
                with p.open("rb") as f:
                    while chunk := f.read(CHUNK):
                        bar.advance(task, len(chunk))
                        yield chunk

            headers = {"Content-Length": str(p.stat().st_size), "Content-Type": "application/octet-stream"}
            r = client.http.put(
                url(ws, remote), content=body(), headers=headers, params={"overwrite": overwrite}
            )
            if r.status_code >= 400:
                fail(f"{remote}: {_message(r)}")
    console.print(f"uploaded {len(files)} file(s), {size_text(total)}, to {ws}:/{base}")


@app.command()
def rm(path: str, ws: str = WS) -> None:
    """Delete a file, or a folder with everything in it."""
    if not path.strip("/"):
        fail("refusing to delete the whole workspace")
    with _client() as client:
        _call(lambda: client.delete(url(ws, path)))
    console.print(f"deleted {ws}:/{path.strip('/')}")


@app.command()
def mkdir(path: str, ws: str = WS, parents: bool = typer.Option(False, "--parents", "-p")) -> None:
    """Make a folder."""
    with _client() as client:
        _call(lambda: client.post(url(ws, path), {"op": "mkdir", "parents": parents}))
    console.print(f"made {ws}:/{path.strip('/')}/")


def _op(op: str, src: str, dst: str, ws: str, to_ws: str | None) -> None:
    with _client() as client:
        body = {"op": op, "to": dst, **({"to_ws": to_ws} if to_ws else {})}
        _call(lambda: client.post(url(ws, src), body))
    console.print(
        f"{op}d {ws}:/{src.strip('/')} -> {to_ws or ws}:/{dst.strip('/')}".replace("moved", "moved")
    )


@app.command()
def mv(
    src: str, dst: str, ws: str = WS, to_ws: str = typer.Option(None, "--to-ws", help="Another workspace.")
) -> None:
    """Move or rename a file or folder."""
    _op("move", src, dst, ws, to_ws)


@app.command()
def cp(
    src: str, dst: str, ws: str = WS, to_ws: str = typer.Option(None, "--to-ws", help="Another workspace.")
) -> None:
    """Copy a file or folder."""
    _op("copy", src, dst, ws, to_ws)
