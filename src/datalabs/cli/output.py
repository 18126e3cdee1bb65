"""Shared Rich console, error exit and API client helpers for client commands."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

from datalabs.client import ApiError, Client, NotConfigured

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/] {message}")
    raise typer.Exit(code)


def client(**options) -> Client:
    """The configured API client, or a clear exit when `datalabs login` has not been run."""
    try:
        return Client(**options)
    except NotConfigured as exc:
        fail(str(exc))


def call(fn):
    """`fn()`, with an API error turned into its message and exit code 1."""
    try:
        return fn()
    except ApiError as exc:
        fail(exc.message)
