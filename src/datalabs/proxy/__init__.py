"""The authenticated reverse proxy in front of labs: `/datalabs/{id}/...` (HTTP and WebSocket).

Wiring (done by the platform app):

    routes = MemoryRouteTable()                      # the runtime service keeps it reconciled
    activity = ActivityRecorder()                    # read by the idle culler
    proxy = LabProxy(routes, make_authenticator(app.state.sessions), on_activity=activity)
    # serve paths under proxy.prefix with `proxy`, everything else with the platform app;
    # call proxy.close() at shutdown.
"""

import importlib

# Resolved on first use (PEP 562): importing one module of the package (runtimes/desktop.py needs only
# `rfb`, and so does the lab's Slurm job on its node) must not import the whole proxy, its auth and the
# database layer with it: that was 0.4 s of every Slurm lab's start.
_EXPORTS = {
    "ActivityRecorder": "datalabs.proxy.activity",
    "CachedAuthenticator": "datalabs.proxy.auth",
    "LabProxy": "datalabs.proxy.app",
    "MemoryRouteTable": "datalabs.proxy.routes",
    "PoolOptions": "datalabs.proxy.pool",
    "Route": "datalabs.proxy.routes",
    "RouteChanges": "datalabs.proxy.base",
    "RouteTable": "datalabs.proxy.base",
    "WebSocketOptions": "datalabs.proxy.websocket",
    "make_authenticator": "datalabs.proxy.auth",
    "owner_only": "datalabs.proxy.auth",
    "owner_or_team": "datalabs.proxy.auth",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'datalabs.proxy' has no attribute {name!r}")
