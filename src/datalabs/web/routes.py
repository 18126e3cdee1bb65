"""Web pages (placeholder: being written)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse


def install(app: FastAPI) -> None:
    async def render_error(request, status, message, headers):
        return HTMLResponse(f"<h1>{status}</h1><p>{message}</p>", status_code=status, headers=headers)

    app.state.render_error = render_error
