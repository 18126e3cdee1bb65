"""The platform API as labs reach it: a unix socket served by the platform, bound read-only into every
lab (`/run/datalabs-api/api.sock`) and forwarded there to `http://127.0.0.1:<labs.api_port>` by the
lab's launcher (sandbox/launcher.py), which is the lab's `DATALABS_API_URL`.

Labs live in network namespaces of their own, so this socket is the only way out to the platform. It
serves the API, the STAC API and /healthz only — not the web pages — and requests arrive without cookies:
labs authenticate with their scoped token (DATALABS_TOKEN). Lab paths (`/datalabs/...`) pass marked as
coming from a lab: the proxy opens only team-scoped labs to them (the team's MLflow tracking server,
reached with MLFLOW_TRACKING_TOKEN), never another lab.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from pathlib import Path

import uvicorn

from datalabs.config import Settings
from datalabs.proxy.auth import FROM_LAB

log = logging.getLogger(__name__)
SOCKET_NAME = "api.sock"
ALLOWED = ("/api/", "/stac", "/healthz", "/datalabs/")


def runtime_root(settings: Settings) -> Path:
    """Where labs' runtime folders (their sockets) live: short paths, as unix socket paths are limited to
    107 bytes. Made 0711: labs' folders inside are reachable by name, the list is not readable."""
    root = settings.labs.runtime_dir or (
        Path("/run/datalabs") if os.geteuid() == 0 else Path(f"/tmp/datalabs-{os.getuid()}")
    )
    root.mkdir(parents=True, exist_ok=True, mode=0o711)
    return root


def socket_dir(settings: Settings) -> Path:
    """This installation's API socket folder (one per DATALABS_HOME, so test platforms do not collide)."""
    key = hashlib.sha256(str(settings.home.resolve()).encode()).hexdigest()[:10]
    return runtime_root(settings) / f"api-{key}"


class LabApiOnly:
    """ASGI wrapper: only API paths, no cookies (a lab has none of the user's; it must use its token)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return
        if scope["type"] not in ("http", "websocket") or not scope["path"].startswith(ALLOWED):
            if scope["type"] == "http":
                body = b'{"error": {"code": "not_found", "message": "labs reach the platform API only"}}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 404,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", b"%d" % len(body)),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
            return
        headers = [(k, v) for k, v in scope["headers"] if k != b"cookie"]
        await self.app({**scope, "headers": headers, FROM_LAB: True}, receive, send)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):
        yield  # the platform's own server owns the process's signals


class LabApiServer:
    """Serves `app` on the installation's API socket inside the running event loop."""

    def __init__(self, settings: Settings, app) -> None:
        self.path = socket_dir(settings) / SOCKET_NAME
        self._app = app
        self._server: _Server | None = None
        self._task: asyncio.Task | None = None
        self._inode = 0

    async def start(self) -> None:
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o755)  # every lab's uid must reach the socket
        self.path.unlink(missing_ok=True)
        config = uvicorn.Config(
            LabApiOnly(self._app),
            uds=str(self.path),
            lifespan="off",
            log_level="warning",
            access_log=False,
            server_header=False,
            proxy_headers=False,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started and not self._task.done():
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()
        os.chmod(self.path, 0o666)  # connect() needs write permission; labs authenticate with tokens
        self._inode = self.path.stat().st_ino

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 10)
        # Not another replica's: the one that took the manager lease over may have bound it anew.
        with contextlib.suppress(FileNotFoundError):
            if self.path.stat().st_ino == self._inode:
                self.path.unlink()
