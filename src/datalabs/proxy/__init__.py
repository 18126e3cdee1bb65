"""The authenticated reverse proxy in front of labs: `/datalabs/{id}/...` (HTTP and WebSocket).

Wiring (done by the platform app):

    routes = MemoryRouteTable()                      # the runtime service keeps it reconciled
    activity = ActivityRecorder()                    # read by the idle culler
    proxy = LabProxy(routes, make_authenticator(app.state.sessions), on_activity=activity)
    # serve paths under proxy.prefix with `proxy`, everything else with the platform app;
    # call proxy.close() at shutdown.
"""

from datalabs.proxy.activity import ActivityRecorder
from datalabs.proxy.app import LabProxy
from datalabs.proxy.auth import CachedAuthenticator, make_authenticator, owner_only
from datalabs.proxy.base import RouteChanges, RouteTable
from datalabs.proxy.pool import PoolOptions
from datalabs.proxy.routes import MemoryRouteTable, Route
from datalabs.proxy.websocket import WebSocketOptions

__all__ = [
    "ActivityRecorder",
    "CachedAuthenticator",
    "LabProxy",
    "MemoryRouteTable",
    "PoolOptions",
    "Route",
    "RouteChanges",
    "RouteTable",
    "WebSocketOptions",
    "make_authenticator",
    "owner_only",
]
