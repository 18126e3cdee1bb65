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

Real-time collaboration (jupyter-collaboration): its document WebSocket
(``/api/collaboration/room/<room>``) asks the Authorizer once, at the handshake, for ``read`` on
``contents``; every Y message after that is applied to the shared document unasked. So a viewer's
room connection is made read-only here, when it is authorised: of what its browser sends, only
``SyncStep1`` (which asks the server for the document) and awareness (cursors, presence) reach the
room; Y updates (``SyncStep2``, ``Update``), chat and anything unknown are dropped, and a ``save``
request is answered ``failed``. A viewer may also ``PUT /api/collaboration/session/<path>`` (asked
as ``write`` on ``contents``): it only looks up the document's id, which opening it needs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os

from jupyter_server.auth import Authorizer, IdentityProvider, User

try:  # jupyter-collaboration is what JupyterLab datalabs run; a plain jupyter_server may lack it
    from jupyter_server_ydoc.handlers import DocSessionHandler, YDocWebSocketHandler
    from pycrdt import Decoder, Encoder, YMessageType, YSyncMessageType
except ImportError:  # pragma: no cover - without it there is no room to protect
    DocSessionHandler = YDocWebSocketHandler = None

USER_HEADER = "X-Datalabs-User"
SHARE_HEADER = "X-Datalabs-Share"
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
_MAX_NAME = 64
_RAW = 2  # jupyter_server_ydoc's MessageType.RAW: a JSON request such as {"save"}


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
    """Owner and collaborators may do anything; viewers may only read (no terminals), and their
    collaboration rooms are read-only."""

    def is_authorized(self, handler, user: User, action: str, resource: str) -> bool:
        if share_mode(handler) in ("owner", "collaborate"):
            return True
        if DocSessionHandler is not None and isinstance(handler, DocSessionHandler):
            return resource == "contents"  # the document's id only: reading, whatever the verb
        if action != "read" or resource == "terminals":
            return False
        if YDocWebSocketHandler is not None and isinstance(handler, YDocWebSocketHandler):
            read_only_room(handler)
        return True


def read_only_room(handler) -> None:
    """Make a room WebSocket `handler` drop what its browser sends except document requests and
    awareness (see the module docstring). Applied once per connection, before it opens."""
    if getattr(handler, "_datalabs_read_only", False):
        return
    handler._datalabs_read_only = True
    on_message = handler.on_message

    async def reader_on_message(message):
        kind = reader_message(message)
        if kind == "pass":
            return await on_message(message)
        if kind == "save":
            await handler.send(_save_failed(message))

    handler.on_message = reader_on_message


def reader_message(message) -> str:
    """What a reader's room `message` is: "pass" (a document request or awareness), "save" (a save
    request) or "drop" (an update, or anything else)."""
    if not isinstance(message, bytes) or not message:
        return "drop"
    try:
        decoder = Decoder(message)
        kind = decoder.read_var_uint()
        if kind == YMessageType.AWARENESS:
            return "pass"
        if kind == YMessageType.SYNC:
            return "pass" if decoder.read_var_uint() == YSyncMessageType.SYNC_STEP1 else "drop"
        if kind == _RAW and decoder.read_var_string() == "save":
            return "save"
    except Exception:  # a malformed message: nothing a reader needs
        return "drop"
    return "drop"


def _save_failed(message: bytes) -> bytes:
    decoder = Decoder(message)
    decoder.read_var_uint(), decoder.read_var_string()
    try:
        save_id = decoder.read_var_uint()
    except Exception:
        save_id = 0
    encoder = Encoder()
    encoder.write_var_uint(_RAW)
    encoder.write_var_string(json.dumps({"type": "save", "responseTo": save_id, "status": "failed"}))
    return encoder.to_bytes()
