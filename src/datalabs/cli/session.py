"""`datalabs login URL` and `datalabs whoami`."""

from __future__ import annotations

import typer

from datalabs.cli.output import console, fail
from datalabs.client import ApiError, Client, save_credentials


def login(
    url: str = typer.Argument(..., help="The platform's address, e.g. http://localhost:8000"),
    username: str = typer.Option(..., prompt=True),
    password: str = typer.Option(..., prompt=True, hide_input=True),
) -> None:
    """Log in and keep an API token under your config directory for later commands."""
    try:
        with Client(url) as client:
            token = client.login(username, password)
            me = client.me()
    except ApiError as exc:
        fail(exc.message)
    path = save_credentials(url, token)
    console.print(f"logged in to {url} as [bold]{me['name']}[/] (token stored in {path})")


def whoami() -> None:
    """Show who the stored credentials belong to."""
    try:
        with Client() as client:
            me = client.me()
    except (ApiError, Exception) as exc:
        fail(str(getattr(exc, "message", exc)))
    console.print(f"{me['name']} ({me['role']}) on {client.url}; groups: {', '.join(me['groups']) or '-'}")
