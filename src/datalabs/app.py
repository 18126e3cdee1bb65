"""`create_app(settings)`: wires the database, services, API routers, web pages and middleware."""

from __future__ import annotations

import asyncio
import gc
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from datalabs import __version__, limits, recovery, route_gates
from datalabs.accounts import oidc, oidc_tokens
from datalabs.api import apps as apps_api
from datalabs.api import assets as assets_api
from datalabs.api import audit as audit_api
from datalabs.api import auth, datalabs, errors, groups, health, lab_callbacks, tokens, users
from datalabs.api import clusters as clusters_api
from datalabs.api import labs as labs_api
from datalabs.api import notifications as notifications_api
from datalabs.api import pipelines as pipelines_api
from datalabs.api import runs as runs_api
from datalabs.api import shares as shares_api
from datalabs.api import stac as stac_api
from datalabs.api import triggers as triggers_api
from datalabs.api import usage as usage_api
from datalabs.api import volumes as volumes_api
from datalabs.api import workspaces as workspaces_api
from datalabs.assets.service import Assets
from datalabs.audit.middleware import AuditMiddleware
from datalabs.builder.runner import BuildQueue
from datalabs.catalogue import service as catalogue_service
from datalabs.catalogue.entries import GpuSources
from datalabs.catalogue.search import Catalogue
from datalabs.config import Settings
from datalabs.db.engine import open_database, transaction
from datalabs.labs import origins as lab_origins
from datalabs.labs import routing
from datalabs.labs.api_socket import LabApiServer
from datalabs.labs.duties import ManagerDuties, ReplicaSync
from datalabs.labs.manager import LabManager
from datalabs.pipelines.trigger_watch import on_index_written
from datalabs.proxy.app import LabProxy
from datalabs.proxy.auth import make_authenticator
from datalabs.sandbox import report
from datalabs.volumes.indexing import VolumeIndexer
from datalabs.web import routes as web
from datalabs.workspaces.service import UsageCache

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    settings.ensure_home()
    _ = settings.secret_key  # made now if missing, not by whichever request first signs something
    engine, sessions = open_database(settings.database_url, settings.db.echo)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        roles = set(settings.server.roles)
        problems = await asyncio.to_thread(catalogue_service.reload_at_start, sessions, settings)
        if problems:
            log.warning("%d problem(s) in datalab definitions; see /admin/catalogue", len(problems))
        app.state.isolation = await asyncio.to_thread(report.probe, settings)
        _report_isolation(app.state.isolation)
        lab_origins.report(settings)
        await asyncio.to_thread(recovery.at_start, settings, sessions)  # dead processes' temporaries; quotas
        await asyncio.to_thread(builds.reap)
        duties = None
        indexer.here = False  # until this process holds the manager lease
        if "manager" in roles:
            lab_api = LabApiServer(settings, app) if settings.labs.network != "host" else None

            async def start_more() -> None:
                if lab_api is not None:
                    await lab_api.start()  # before labs re-attach: their launchers forward to it
                indexer.here = True
                indexer.start()

            async def stop_more() -> None:
                indexer.here = False
                await asyncio.to_thread(indexer.stop)
                if lab_api is not None:
                    await lab_api.stop()

            duties = ManagerDuties(settings, sessions, labs, start_more=start_more, stop_more=stop_more)
            await duties.start()
        else:
            labs.holding = False
        proxied = routes if "proxy" in roles else None
        replica = ReplicaSync(settings, sessions, proxied, labs, app.state.authenticator)
        replica.start()
        worker = await asyncio.to_thread(_start_pipelines, app) if "worker" in roles else None
        # What start made (modules, routes, models, schemas: ~200,000 objects) lives as long as the
        # process: kept out of the collector's full passes, which a warm worker's wide scatters trigger
        # hundreds of times (0.1 s of every 500-way run).
        gc.freeze()
        yield
        await replica.stop()
        if worker is not None:
            await asyncio.to_thread(worker.stop)
        if duties is not None:
            await duties.stop()
        await labs.shutdown()
        builds.shutdown()
        app.state.proxy.close()
        engine.dispose()

    app = FastAPI(
        title="Datalabs API",
        version=__version__,
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
        description="Public API v1 of the Datalabs platform. Authenticate with the session cookie "
        "(POST /api/v1/login) or `Authorization: Bearer <token>`.",
    )
    # Every route's default body limit (routes taking uploads set their own: limits.py). Set on the
    # router, not FastAPI(max_body_size=...): the app-level limiter answers outside the API's error format.
    app.router.max_body_size = limits.BODY
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.catalogue = Catalogue(GpuSources.of(settings), settings.catalogue.refresh_interval)
    app.state.oidc = oidc.Registry(settings)  # sign-in providers: discovery and keys, cached
    bearer_jwt = oidc_tokens.verifier(app.state.oidc)  # their access tokens as API Bearer tokens
    app.state.authenticator = make_authenticator(sessions, ttl=settings.auth.cache_ttl, bearer_jwt=bearer_jwt)
    app.state.routes = routes = routing.shared_table(sessions)
    app.state.labs = labs = LabManager(settings, sessions, routes)
    app.state.builds = builds = BuildQueue(settings, sessions)
    errors.install(app)
    app.state.usage = UsageCache(settings.workspaces.usage_ttl)
    app.state.assets = assets = Assets(settings)
    app.state.indexer = indexer = VolumeIndexer(
        settings, sessions, assets.writer, written=on_index_written(assets.changed)
    )
    modules = (health, auth, tokens, users, groups, datalabs, labs_api, workspaces_api, volumes_api)
    more = (
        assets_api,
        stac_api,
        pipelines_api,
        runs_api,
        triggers_api,
        apps_api,
        notifications_api,
        clusters_api,
        usage_api,
        shares_api,
        audit_api,
    )
    serves_api = "api" in settings.server.roles  # else: /healthz and /metrics only (a proxy replica)
    for module in (*modules, *more) if serves_api else (health,):
        app.include_router(module.router)
    if serves_api:
        app.include_router(lab_callbacks.router)  # Slurm jobs report their lab's port: no user's route
        web.install(app)
    route_gates.install(app)  # once every router is in: requests skip the routers that cannot match
    app.add_middleware(health.MetricsMiddleware)
    app.add_middleware(limits.TooLargeAsJson)
    if serves_api:
        app.add_middleware(AuditMiddleware)  # one audit record per POST/PUT/PATCH/DELETE, status as sent
    gate = lab_origins.gate(settings, app.state.authenticator, sessions)
    app.state.proxy = proxy = LabProxy(routes, app.state.authenticator, on_activity=labs.activity, gate=gate)
    labs.on_route_removed = proxy.forget
    if "proxy" in settings.server.roles:
        app.add_middleware(ProxyFirst, proxy=proxy)  # outermost: lab traffic skips the API's middleware
    return app


def _start_pipelines(app: FastAPI):
    """Register the shipped system pipelines, then start the embedded pipeline worker (+ scheduler)."""
    from datalabs.pipelines import registry
    from datalabs.pipelines.worker import Worker

    settings = app.state.settings
    if settings.pipelines.system:
        try:
            with transaction(app.state.sessions) as db:
                registry.sync_system(db, settings)
        except Exception:  # a broken shipped pipeline must not keep the platform from starting
            log.exception("pipelines: registering the system pipelines failed")
    if not settings.pipelines.worker:
        return None
    worker = Worker(settings, app.state.sessions)
    worker.start()
    app.state.pipeline_worker = worker
    return worker


def _report_isolation(facts: list[report.Fact]) -> None:
    """Say loudly at start what this host does not enforce (never pretend isolation)."""
    for fact in facts:
        if fact.enforced:
            log.info("isolation: %s: %s", fact.name, fact.how)
        else:
            log.warning("isolation: %s is NOT enforced: %s", fact.name, fact.how)


class ProxyFirst:
    """Sends `/datalabs/...` (HTTP and WebSocket) straight to the lab proxy; everything else to the app."""

    def __init__(self, app, proxy: LabProxy) -> None:
        self.app, self.proxy = app, proxy

    async def __call__(self, scope, receive, send):
        if self.proxy.claims(scope):  # lab paths, and everything sent to a lab's origin
            return await self.proxy(scope, receive, send)
        return await self.app(scope, receive, send)
