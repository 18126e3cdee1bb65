"""`datalabs admin ...`: bootstrap commands that work on the database directly (DESIGN §6)."""

from __future__ import annotations

import json
import os
import secrets

import typer

from datalabs.cli import admin_audit
from datalabs.cli._db import admin_session

app = typer.Typer(help="Bootstrap and administration commands (run on the platform host).")
app.add_typer(admin_audit.app, name="audit")
# Services (and SQLAlchemy) are imported inside the commands: client commands should start fast.


@app.command("create-user")
def create_user(
    name: str,
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
    admin: bool = typer.Option(False, "--admin", help="Make the user an administrator."),
    role: str = typer.Option("user", help="admin, moderator or user."),
    email: str = typer.Option("", help="E-mail address (for notifications)."),
) -> None:
    """Create a user account."""
    from datalabs.accounts import service

    with admin_session() as (db, _):
        service.create_user(db, name, password, role="admin" if admin else role, email=email)
    typer.echo(f"created user {name}")


@app.command("create-group")
def create_group(name: str, description: str = typer.Option("", help="What the team is for.")) -> None:
    """Create a group (team)."""
    from datalabs.accounts import service

    with admin_session() as (db, _):
        service.create_group(db, name, description)
    typer.echo(f"created group {name}")


@app.command("add-member")
def add_member(
    group: str, user: str, role: str = typer.Option("member", help="owner, member or readonly.")
) -> None:
    """Add a user to a group (or change their role there)."""
    from datalabs.accounts import service

    with admin_session() as (db, _):
        service.set_member(db, group, user, role)
    typer.echo(f"{user} is {role} of {group}")


@app.command("create-token")
def create_token(
    user: str,
    scopes: str = typer.Option("all", help="Comma-separated scopes."),
    expires_in: int = typer.Option(None, "--expires-in", help="Lifetime in seconds (default: no expiry)."),
    name: str = typer.Option("admin-cli", help="A name to recognise the token by."),
) -> None:
    """Create an API token for USER and print the token alone."""
    from datalabs.accounts import auth, service

    with admin_session() as (db, settings):
        wanted = [s.strip() for s in scopes.split(",") if s.strip()]
        _, secret = auth.create_token(db, settings, service.get_user(db, user), name, wanted, expires_in)
    typer.echo(secret)


@app.command("reload-catalogue")
def reload_catalogue() -> None:
    """Re-read the datalab definition directories and report rejected files."""
    from datalabs.catalogue import service as catalogue_service

    with admin_session() as (db, _):
        problems = catalogue_service.reload(db, _)
    for p in problems:
        typer.secho(f"rejected: {p}", fg="yellow", err=True)
    typer.echo(f"catalogue reloaded; {len(problems)} problem(s)")
    raise typer.Exit(1 if problems else 0)


@app.command("gc-environments")
def gc_environments(
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be removed, remove nothing."),
    grace: float = typer.Option(3600, help="Keep environments younger than this many seconds."),
) -> None:
    """Remove built datalab environments no app version uses and no running lab has mounted."""
    from datalabs.builder import gc

    with admin_session() as (db, settings):
        collected = gc.collect(db, settings, grace=grace, dry_run=dry_run)
    for item in collected:
        typer.echo(f"{'would remove' if dry_run else 'removed'} {item.key} ({item.size / 2**20:.1f} MiB)")
    freed = sum(item.size for item in collected) / 2**20
    typer.echo(f"{len(collected)} environment(s), {freed:.1f} MiB {'to free' if dry_run else 'freed'}")


@app.command("build-datalabs")
def build_datalabs(
    names: list[str] = typer.Argument(None, help="Datalabs to build (default: every one that needs it)."),
) -> None:
    """Build the Python environments of catalogue datalabs that declare requirements, here and now
    (unchanged requirements reuse the environment built before). Exit code 1 if one failed."""
    from datalabs.config import Settings

    settings = Settings()
    settings.ensure_home()
    statuses = _build_environments(settings, tuple(names or ()), verbose=True)
    raise typer.Exit(1 if any(s.state != "built" for s in statuses) else 0)


def _build_environments(settings, names: tuple[str, ...], *, verbose: bool) -> list:
    """Build catalogue datalabs' environments, printing a line as each starts and ends (and every log
    line when `verbose`). Never raises: a datalab whose build failed stays unavailable with the reason."""
    from datalabs.catalogue import build_service
    from datalabs.db.engine import open_database

    def say(line: str) -> None:
        if verbose:
            typer.echo(line)
        elif line.startswith("[") and "] Building the environment of" in line:
            typer.echo(f"  {line.split('] ', 1)[1]} ...")

    engine, sessions = open_database(settings.database_url)
    try:
        by = "datalabs admin" if verbose else "seed-demo"
        statuses = build_service.build_all(settings, sessions, names, say=say, by=by)
    except Exception as exc:  # e.g. a datalab named that does not exist: the demo still starts
        typer.secho(f"  datalab environments not built: {getattr(exc, 'message', exc)}", fg="yellow")
        return []
    finally:
        engine.dispose()
    for s in statuses:
        took = (s.finished_at or 0) - (s.started_at or 0)
        if s.state == "built":
            how = "reused (requirements unchanged)" if s.cached else f"built in {took:.0f} s"
            typer.echo(f"  datalab {s.name} {s.version}: environment {how}")
        else:
            typer.secho(
                f"  datalab {s.name} {s.version}: NOT AVAILABLE, its build failed: {s.error}", fg="yellow"
            )
    return statuses


DEMO_TEAMS = {"astro-team": "Astronomers sharing FITS work", "gnss-team": "GNSS station analysis"}


@app.command("seed-demo")
def seed_demo() -> None:
    """Create the demo accounts and teams once (idempotent) and print how to log in."""
    from datalabs.accounts import service

    with admin_session() as (db, settings):
        path = settings.home / "demo-credentials.json"
        creds = json.loads(path.read_text()) if path.exists() else {}
        for name, role in (("admin", "admin"), ("scientist", "user")):
            if name in creds:
                continue
            creds[name] = secrets.token_urlsafe(9)
            try:
                service.create_user(db, name, creds[name], role=role, full_name=name.title() + " (demo)")
            except Exception:
                service.update_user(db, name, password=creds[name])
        for team, description in DEMO_TEAMS.items():
            if team not in {g.name for g in service.list_groups(db)}:
                service.create_group(db, team, description)
        service.set_member(db, "astro-team", "scientist", "member")
        service.set_member(db, "gnss-team", "scientist", "owner")
        counts = _seed_workspaces_and_volumes(db, settings)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(creds, f)
        os.replace(tmp, path)
    for name in ("admin", "scientist"):
        typer.echo(f"  demo login: {name} / {creds[name]}")
    _build_environments(settings, (), verbose=False)  # after the DB session: builds take minutes
    real = sum(n for c, n in counts.items() if c != "GsscArchive")
    typer.echo(
        f"  explorer: {real} demo files and {counts.get('GsscArchive', 0):,} synthetic GNSS files indexed"
    )


def _seed_workspaces_and_volumes(db, settings) -> dict[str, int]:
    """Team workspaces for the demo teams, the demo data volumes with real sample files and the
    synthetic archive, all indexed for the explorer (idempotent); {collection: files indexed}."""
    from sqlalchemy import select

    from datalabs.accounts import service
    from datalabs.accounts.principal import Principal
    from datalabs.db.models import TeamWorkspace, Volume
    from datalabs.volumes import demo
    from datalabs.volumes import service as volumes

    for team in DEMO_TEAMS:
        group = service.get_group(db, team)
        if db.get(TeamWorkspace, group.id) is None:
            db.add(TeamWorkspace(group_id=group.id, created_by="seed-demo"))
    admin = Principal(service.get_user(db, "admin"), frozenset())
    folders = demo.write_all(settings.home)
    folders[demo.SYNTHETIC.name] = settings.home / "volumes" / demo.SYNTHETIC.name
    folders[demo.SYNTHETIC.name].mkdir(parents=True, exist_ok=True)
    known = set(db.scalars(select(Volume.name)))
    for v in (*demo.DEMO_VOLUMES, demo.SYNTHETIC):
        if v.name not in known:
            volumes.create(
                db,
                settings,
                admin,
                name=v.name,
                host_path=str(folders[v.name]),
                description=v.description,
                allowed_groups=v.allowed_groups,
                mission=v.mission,
                domain=v.domain,
                tags=v.tags,
            )
    return demo.index_all(settings.home, folders)
