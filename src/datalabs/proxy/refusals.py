"""Why a request is not forwarded, rendered like the platform API's errors."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Refusal:
    """An answer instead of the lab's: `{"error": {"code", "message"}}` with HTTP `status`."""

    status: int
    code: str
    message: str

    def body(self) -> bytes:
        return json.dumps({"error": {"code": self.code, "message": self.message}}).encode()


NOT_AUTHENTICATED = Refusal(401, "not_authenticated", "log in or send 'Authorization: Bearer <token>'")
NOT_A_LAB_PATH = Refusal(404, "not_found", "not a lab path")
AUTH_UNAVAILABLE = Refusal(503, "auth_unavailable", "authentication is unavailable; try again shortly")


def not_found(lab_id: str) -> Refusal:
    return Refusal(404, "lab_not_found", f"no lab '{lab_id}'")


def forbidden(lab_id: str) -> Refusal:
    # Only for a caller already logged in, about a lab whose unguessable id (64 random bits) they hold:
    # saying "not yours" tells them nothing they could not know, and is clearer than pretending it is gone.
    return Refusal(403, "lab_forbidden", f"lab '{lab_id}' is not yours: only its owner can open it")


def unreachable(lab_id: str, why: object) -> Refusal:
    return Refusal(
        502, "lab_unreachable", f"lab '{lab_id}' is not answering ({why}); it may be starting or stopping"
    )


def timed_out(lab_id: str) -> Refusal:
    return Refusal(504, "lab_timeout", f"lab '{lab_id}' did not answer in time")
