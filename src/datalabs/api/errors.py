"""Every error leaves the API as `{"error": {"code": ..., "message": ...}}` with a fitting status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from datalabs import redaction
from datalabs.api import limits
from datalabs.errors import DatalabsError, TooManyRequests, Unauthorized

log = logging.getLogger(__name__)


def error_response(
    status: int, code: str, message: str, headers: dict | None = None, **extra
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, **extra}}
    return JSONResponse(body, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(DatalabsError)
    async def domain_error(request: Request, exc: DatalabsError):
        message = redaction.error_message(request.app.state.settings, exc.message)
        headers = {}
        if isinstance(exc, TooManyRequests):
            headers["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = "Bearer"
        if request.url.path.startswith(("/api/", "/stac", "/healthz", "/metrics")) or not _wants_html(
            request
        ):
            return error_response(exc.status, exc.code, message, headers)
        return await app.state.render_error(request, exc.status, message, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        details = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "reason": e["msg"]}
            for e in exc.errors()
        ]
        message = "; ".join(f"{d['field'] or 'body'}: {d['reason']}" for d in details)
        return error_response(422, "invalid", message, details=details)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 413: "too_large"}.get(
            exc.status_code, "error"
        )
        if exc.status_code == 404 and _wants_html(request) and not request.url.path.startswith("/api/"):
            return await app.state.render_error(request, 404, "There is no page here.", None)
        message = limits.too_large_message(request.scope) if exc.status_code == 413 else str(exc.detail)
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(
            500, "internal", "internal error; the operator can find details in the server log"
        )


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")
