"""API token scopes. `all` grants whatever the user may do; `<area>:write` implies `<area>:read`."""

from __future__ import annotations

AREAS = ("catalogue", "labs", "files", "volumes", "assets", "pipelines", "apps", "notifications", "tracking")
SCOPES: dict[str, str] = {
    "all": "everything the user may do, including managing tokens",
    **{f"{a}:read": f"read {a}" for a in AREAS},
    **{f"{a}:write": f"change {a}" for a in AREAS},
    # tracking:write: your teams' MLflow tracking servers (and nothing else of your labs) through the proxy
    "models:invoke": "call the served models you may use",
    "admin": "administration (only effective for admins)",
}


def unknown(scopes: list[str]) -> list[str]:
    return [s for s in scopes if s not in SCOPES]


def grants(held: frozenset[str], needed: str) -> bool:
    if "all" in held or needed in held:
        return True
    area, _, mode = needed.partition(":")
    return mode == "read" and f"{area}:write" in held
