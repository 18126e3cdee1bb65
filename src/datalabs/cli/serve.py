"""`datalabs serve`: the API, web UI, lab proxy, lab manager and pipeline worker in one process, or the
roles `--role` names (replicas behind nginx: README, deploy/)."""

from __future__ import annotations

import logging

import typer
import uvicorn

from datalabs.config import ROLES, Settings


def serve(
    host: str = typer.Option(None, help="Address to bind (default: settings server.host, 127.0.0.1)."),
    port: int = typer.Option(None, help="Port to bind (default: settings server.port, 8000)."),
    role: str = typer.Option(
        None,
        help="What this replica does, comma-separated: api, proxy, manager, worker (default: settings "
        "server.roles, all of them). Replicas share one PostgreSQL database; one manager at a time works.",
    ),
) -> None:
    """Run the platform (DATALABS_HOME from the environment)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = Settings()
    if role is not None:
        roles = [r.strip() for r in role.split(",") if r.strip()]
        unknown = sorted(set(roles) - set(ROLES))
        if unknown or not roles:
            raise typer.BadParameter(
                f"unknown role {', '.join(unknown) or '(none given)'}: choose from {', '.join(ROLES)}",
                param_hint="--role",
            )
        settings.server.roles = roles
    host = settings.server.host = host or settings.server.host
    port = settings.server.port = port or settings.server.port
    from datalabs.app import create_app
    from datalabs.proxy.passthrough import websocket_protocol

    app = create_app(settings)
    url = (
        settings.server.public_url
        or f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0') else host}:{port}"
    )
    typer.echo(f"Datalabs {app.version} on {url}  (home: {settings.home.resolve()})")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        # Only the proxies the operator names may say who the client is (never the client itself).
        proxy_headers=bool(settings.server.forwarded_allow_ips),
        forwarded_allow_ips=settings.server.forwarded_allow_ips or None,
        server_header=False,
        access_log=False,
        ws=websocket_protocol(app.state.proxy),  # lab WebSockets piped as bytes after the handshake
        # Only platform and desktop-lab (VNC) WebSockets go through uvicorn's own protocol: RFB is already
        # encoded, and deflating it cut the desktop's frame rate by ~2.4x (bench/desktop.py).
        ws_per_message_deflate=False,
    )  # /metrics counts requests; a log line each costs ~5-10% here
