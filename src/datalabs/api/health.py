"""Liveness and Prometheus metrics (both public: load balancers and scrapers carry no credentials)."""

from __future__ import annotations

import time

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from sqlalchemy import text

from datalabs import __version__
from datalabs.usage import metrics as cluster_metrics

router = APIRouter(tags=["health"])

REQUESTS = Counter("datalabs_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "datalabs_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


@router.get("/healthz")
async def healthz(request: Request, deep: bool = False):
    """`ok` while the process serves; `?deep=true` also checks the database."""
    body = {"status": "ok", "version": __version__}
    if deep:
        try:
            await to_thread.run_sync(_ping, request.app.state.sessions)
        except Exception as exc:  # report, do not crash: this is what the probe is for
            return JSONResponse({"status": "error", "database": str(exc)}, status_code=503)
        body["database"] = "ok"
    return body


def _ping(sessions) -> None:
    with sessions() as db:
        db.execute(text("SELECT 1"))


@router.get("/metrics", response_class=Response)
def metrics(request: Request):
    state = request.app.state
    per_cluster = cluster_metrics.exposition(state.settings, state.sessions)
    return Response(generate_latest() + per_cluster, media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Counts and times requests by route template (not raw path, to keep label sets small)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", "other")
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - start)
            REQUESTS.labels(scope["method"], route, str(status["code"])).inc()
