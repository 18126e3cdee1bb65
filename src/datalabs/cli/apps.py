"""`datalabs apps create|build|logs|share|submit|unpublish|export|import|ls`: build, share and publish
datalabs."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import typer

from datalabs.cli.output import console, fail
from datalabs.client import ApiError, Client, NotConfigured

app = typer.Typer(help="The app builder: datalabs built from your notebooks, scripts and requirements.txt.")
DIR = typer.Option(None, "--dir", help="A local folder with datalab-meta.yml (zipped and uploaded).")
ZIP = typer.Option(None, "--zip", help="A zip of the sources.")
GIT = typer.Option("", "--git", help="A git repository URL to clone.")
REF = typer.Option("", "--ref", help="Branch or tag of --git.")
WS = typer.Option("", "--workspace", help="A folder of your workspace, e.g. mylab or team:astro/mylab.")
WAIT = typer.Option(True, "--wait/--no-wait", help="Follow the build log until it ends.")


def _call(fn):
    try:
        with Client(timeout=600) as client:
            return fn(client)
    except NotConfigured as exc:
        fail(str(exc))
    except ApiError as exc:
        fail(exc.message)


def _zip_dir(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and ".git" not in path.relative_to(folder).parts:
                zf.write(path, path.relative_to(folder).as_posix())
    return buf.getvalue()


def _new_version(c: Client, name: str, folder: Path | None, zip_: Path | None, git: str, ref: str, ws: str):
    if folder or zip_:
        data = _zip_dir(folder) if folder else zip_.read_bytes()
        return c.request("POST", f"/api/v1/apps/{name}/versions", files={"files": ("sources.zip", data)})
    if git:
        return c.request("POST", f"/api/v1/apps/{name}/versions", json={"git": {"url": git, "ref": ref}})
    if ws:
        space, _, path = ws.rpartition("/") if ws.startswith("team:") else ("me", "", ws)
        return c.request(
            "POST", f"/api/v1/apps/{name}/versions", json={"workspace": {"ws": space, "path": path}}
        )
    fail("give the sources: --dir, --zip, --git or --workspace")


def _follow(c: Client, name: str, version: str) -> None:
    state = "failed"
    with c.http.stream("GET", f"/api/v1/apps/{name}/versions/{version}/events", timeout=None) as events:
        kind = ""
        for line in events.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if kind == "log":
                    console.print(data, markup=False, highlight=False)
                else:
                    state = data["state"]
    if state != "built":
        fail(f"the build of {name} {version} failed")
    console.print(f"[green]{name} {version} built[/green]")


def _build(name: str, folder, zip_, git, ref, ws, wait: bool) -> None:
    def run(c: Client):
        v = _new_version(c, name, folder, zip_, git, ref, ws)
        console.print(f"version {v['version']} of {name}: build queued")
        if wait:
            _follow(c, name, v["version"])

    _call(run)


@app.command()
def create(
    name: str,
    base: str = typer.Option("jupyterlab", help="The datalab it runs like."),
    folder: Path | None = DIR,
    zip_: Path | None = ZIP,
    git: str = GIT,
    ref: str = REF,
    ws: str = WS,
    wait: bool = WAIT,
) -> None:
    """Create a datalab and, given sources, build its first version."""
    _call(lambda c: c.post("/api/v1/apps", {"name": name, "base": base}))
    console.print(f"created {name}")
    if folder or zip_ or git or ws:
        _build(name, folder, zip_, git, ref, ws, wait)


@app.command()
def build(
    name: str,
    folder: Path | None = DIR,
    zip_: Path | None = ZIP,
    git: str = GIT,
    ref: str = REF,
    ws: str = WS,
    wait: bool = WAIT,
) -> None:
    """Build a new version from new sources (0.1.0-0, 0.1.0-1, ...)."""
    _build(name, folder, zip_, git, ref, ws, wait)


@app.command()
def logs(name: str, version: str = typer.Argument("", help="Default: the newest version.")) -> None:
    """Print a build log."""

    def run(c: Client):
        v = version or c.get(f"/api/v1/apps/{name}")["versions"][-1]["version"]
        typer.echo(c.get(f"/api/v1/apps/{name}/versions/{v}/logs"), nl=False)

    _call(run)


@app.command("ls")
def ls(mine: bool = typer.Option(False, "--mine")) -> None:
    """Datalabs built on the platform that you can see."""
    for a in _call(lambda c: c.get("/api/v1/apps", mine=mine or None)):
        newest = a["versions"][-1] if a["versions"] else {"version": "-", "state": "no version"}
        published = ", ".join(v["version"] for v in a["versions"] if v.get("published")) or "-"
        console.print(
            f"{a['name']}  {a['state']}  {newest['version']} ({newest['state']})  published: {published}"
            f"  by {a['owner']}"
        )


@app.command()
def share(
    name: str,
    user: list[str] = typer.Option([], "--user", help="Repeat for several."),
    group: list[str] = typer.Option([], "--group", help="Repeat for several."),
) -> None:
    """Share privately with these users and groups (replaces the previous list)."""
    a = _call(lambda c: c.request("PUT", f"/api/v1/apps/{name}/share", json={"users": user, "groups": group}))
    console.print(f"{name} shared with users: {', '.join(a['shared_users']) or '-'}; groups: "
                  f"{', '.join(a['shared_groups']) or '-'}")  # fmt: skip


@app.command()
def submit(name: str, version: str = typer.Option("", help="Default: the newest built version.")) -> None:
    """Submit for publication: a moderator reviews it."""
    _call(lambda c: c.post(f"/api/v1/apps/{name}/submit", {"version": version or None}))
    console.print(f"{name} submitted for review")


@app.command()
def unpublish(
    name: str,
    version: str = typer.Option("", help="Only this version. Default: every version and any submission."),
) -> None:
    """Withdraw from the public: one version, or every version (the datalab is private again)."""
    a = _call(lambda c: c.post(f"/api/v1/apps/{name}/unpublish", {"version": version or None}))
    left = ", ".join(v["version"] for v in a["versions"] if v["published"]) or "none"
    console.print(f"{name} {version or 'every version'} unpublished; still published: {left}")


@app.command()
def export(name: str, output: Path = typer.Option(None, "-o", "--output")) -> None:
    """Save the datalab (metadata, sources, build recipe) as one zip."""
    target = output or Path(f"{name}.datalab.zip")

    def run(c: Client):
        response = c.http.get(f"/api/v1/apps/{name}/export")
        if response.status_code != 200:
            fail(response.json().get("error", {}).get("message", response.text[:200]))
        tmp = target.with_name(f".{target.name}.part")
        tmp.write_bytes(response.content)
        tmp.replace(target)  # never a half archive under the final name

    _call(run)
    console.print(f"wrote {target}")


@app.command("import")
def import_(
    archive: Path, name: str = typer.Option("", help="Another name for the imported datalab.")
) -> None:
    """Create a datalab from an exported archive; its versions build again here."""
    a = _call(
        lambda c: c.request(
            "POST",
            "/api/v1/apps/import",
            files={"archive": (archive.name, archive.read_bytes())},
            data={"name": name},
        )
    )
    console.print(f"imported {a['name']} with {len(a['versions'])} version(s); builds queued")
