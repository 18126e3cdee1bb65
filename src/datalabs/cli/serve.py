"""`datalabs serve`: API, web UI (and, as they arrive, proxy, scheduler, worker) in one process."""

from __future__ import annotations

import logging

import typer
import uvicorn

from datalabs.config import Settings


def serve(
    host: str = typer.Option(None, help="Address to bind (default: settings server.host, 127.0.0.1)."),
    port: int = typer.Option(None, help="Port to bind (default: settings server.port, 8000)."),
) -> None:
    """Run the platform (DATALABS_HOME from the environment)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = Settings()
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
        proxy_headers=False,
        server_header=False,
        access_log=False,
        ws=websocket_protocol(app.state.proxy),  # lab WebSockets piped as bytes after the handshake
        # Only platform and desktop-lab (VNC) WebSockets go through uvicorn's own protocol: RFB is already
        # encoded, and deflating it cut the desktop's frame rate by ~2.4x (bench/desktop.py).
        ws_per_message_deflate=False,
    )  # /metrics counts requests; a log line each costs ~5-10% here
