"""Every error leaves the API as `{"error": {"code": ..., "message": ...}}` with a fitting status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from datalabs import limits, redaction
from datalabs.deps import page_request
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
        if not page_request(request):
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
        message = limits.too_large_message(request.scope) if exc.status_code == 413 else str(exc.detail)
        if page_request(request):  # e.g. a page's address with the wrong method: a page, not JSON
            text = {
                404: "There is no page here.",
                405: "this address does not take that kind of request; go back and use the page's own "
                "links and buttons",
            }.get(exc.status_code, message)
            return await app.state.render_error(request, exc.status_code, text, getattr(exc, "headers", None))
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        message = "internal error; the operator can find details in the server log"
        if page_request(request):
            try:
                return await app.state.render_error(request, 500, message, None)
            except Exception:  # the error page itself failing (say, the database is down): JSON it is
                log.exception("the error page failed too")
        return error_response(500, "internal", message)
