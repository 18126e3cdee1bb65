"""Where users open their labs: each lab's own origin (`labs.origin_url`), or — only when the operator
opted in with `labs.unsafe_platform_origin` — a path on the platform's origin.

One place for the decision, used by the app's wiring (the proxy's OriginGate), the API's and pages'
lab URLs, and the warnings at start and on the admin page.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker

from datalabs.config import Settings
from datalabs.origins import LabOrigins
from datalabs.proxy.gate import OriginGate

log = logging.getLogger("datalabs.labs")

UNSAFE_WARNING = (
    "labs are served on the platform's own origin (labs.unsafe_platform_origin = true): any script on "
    "a lab page (a notebook output, a published app) can act as its user on the whole platform"
)


def origins(settings: Settings) -> LabOrigins | None:
    """The labs' origins, or None when labs share the platform's (the unsafe opt-in)."""
    if settings.labs.unsafe_platform_origin:
        return None
    return LabOrigins(settings.labs.origin_url, settings.server.port)


def platform_url(settings: Settings) -> str:
    """The platform's address for browsers: `server.public_url`, else what `datalabs serve` prints."""
    if settings.server.public_url:
        return settings.server.public_url.rstrip("/")
    host = settings.server.host
    host = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::", "") else host
    return f"http://{host}:{settings.server.port}"


def lab_url(settings: Settings, lab_id: str) -> str:
    """The address a user opens a lab at: on its own origin (absolute), or its path (unsafe mode)."""
    found = origins(settings)
    return found.url(lab_id) if found is not None else f"/datalabs/{lab_id}/"


def csp_source(settings: Settings) -> str:
    """The labs' origins as one CSP source expression ("" in unsafe mode: they are the platform's)."""
    found = origins(settings)
    return found.csp_source() if found is not None else ""


def gate(settings: Settings, authenticator, sessions: sessionmaker[Session]) -> OriginGate | None:
    """The proxy's origin policy (None in unsafe mode). `authenticator`: the app's CachedAuthenticator."""
    found = origins(settings)
    if found is None:
        return None
    return OriginGate(found, authenticator.lookup, settings, sessions, platform_url(settings))


def status(settings: Settings) -> tuple[bool, str]:
    """(enforced, sentence) for the admin page and the start-up log."""
    found = origins(settings)
    if found is None:
        return False, UNSAFE_WARNING
    return True, f"each lab is served on its own origin ({found.url('<lab>', '/')}) with a lab cookie"


def report(settings: Settings) -> None:
    """Say at start how labs are served; loudly when they share the platform's origin."""
    ok, sentence = status(settings)
    if ok:
        log.info("labs: %s", sentence)
    else:
        log.warning("labs: UNSAFE: %s", sentence)
