"""Identity and read-only sharing inside a JupyterLab datalab (issue 19).

Loaded by the lab's own jupyter_server (``--ServerApp.identity_provider_class=
datalabs.labs.jupyter_identity.DatalabsIdentityProvider`` and ``--ServerApp.authorizer_class=
datalabs.labs.jupyter_identity.DatalabsAuthorizer``). The platform's proxy forwards, for the owner
and every guest, ``X-Datalabs-User`` and ``X-Datalabs-Share: owner|view|collaborate`` after
stripping any such header the browser sent, and injects the lab's token. Contract here:

- a request is authenticated only by the lab token carried by the request itself (header or
  ``?token=``); a login cookie alone never authenticates, so nothing but the proxy (which alone
  holds the token) can assert a user or a share mode;
- with the token and ``X-Datalabs-User``, the user is that name (display name, a stable colour);
  with the token and no header, the owner;
- ``view`` may read (contents, sessions, kernel and kernelspec lists, the collaboration room as a
  reader) and nothing else: writes, execution and terminals are refused; an unknown mode is
  treated as ``view``.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from jupyter_server.auth import Authorizer, IdentityProvider, User

USER_HEADER = "X-Datalabs-User"
SHARE_HEADER = "X-Datalabs-Share"
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
_MAX_NAME = 64


def _colour(name: str) -> str:
    return _COLOURS[hashlib.sha256(name.encode()).digest()[0] % len(_COLOURS)]


def share_mode(handler) -> str:
    """The share mode the proxy asserted; 'owner' without a header, 'view' if unknown."""
    mode = handler.request.headers.get(SHARE_HEADER)
    if mode is None:
        return "owner"
    return mode if mode in ("owner", "view", "collaborate") else "view"


class DatalabsIdentityProvider(IdentityProvider):
    """The user is the one the proxy names, on token-carrying requests only."""

    def get_user(self, handler) -> User | None:
        token = self.token
        given = self.get_token(handler) or ""
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            return None
        name = handler.request.headers.get(USER_HEADER)
        if name is None:
            name = os.environ.get("DATALABS_LAB_OWNER", "owner")
        name = name.strip()[:_MAX_NAME]
        if not name or not name.isprintable():
            return None
        handler._token_authenticated = True
        return User(
            username=name, name=name, display_name=name, initials=name[:2].upper(), color=_colour(name)
        )


class DatalabsAuthorizer(Authorizer):
    """Owner and collaborators may do anything; viewers may only read (no terminals)."""

    def is_authorized(self, handler, user: User, action: str, resource: str) -> bool:
        if share_mode(handler) in ("owner", "collaborate"):
            return True
        return action == "read" and resource != "terminals"
