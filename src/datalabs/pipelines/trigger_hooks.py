"""Incoming webhooks: an external system (a station, an archive's ingest) starts a run by POSTing to
`/api/v1/triggers/{id}/hook`, signed with the trigger's secret. No platform login: the secret is the
credential, and the run is queued as the trigger's owner (their permissions, their quotas).

Signing (as Stripe and GitHub do it):

    timestamp = str(int(time.time()))                     # seconds since the epoch, UTC
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    headers:  X-Datalabs-Timestamp: <timestamp>
              X-Datalabs-Signature: sha256=<signature>
    body:     {"inputs": {...}}  (JSON; optional: an empty body fires with the trigger's own inputs)

Refused 401, starting nothing: a missing or wrong signature, a timestamp more than `triggers.hook_tolerance`
seconds (default 5 min) from the server's clock, a replay (the same signature again: each accepted one is
recorded as the event's key in the database, so a replay is refused after a restart and on every replica
too), an unknown or deleted trigger (the same answer as a bad signature: ids are not revealed). A paused
trigger answers 409; inputs the pipeline does not take, or files its owner may not read, 422/403/404 with
the reason; a body over `triggers.hook_body` bytes, 413.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from datalabs.config import Settings
from datalabs.db.models import PipelineTrigger
from datalabs.errors import Conflict, Invalid, Unauthorized
from datalabs.pipelines import trigger_events

SCHEME = "sha256="


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return SCHEME + mac


def receive(
    sessions: sessionmaker[Session],
    settings: Settings,
    trigger_id: int,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float | None = None,
) -> trigger_events.Fired:
    """Check the call and fire the trigger once; raises the refusal otherwise (nothing recorded then)."""
    with sessions() as db:
        trigger = db.get(PipelineTrigger, trigger_id)
        secret = trigger.secret if trigger is not None and trigger.kind == "webhook" else ""
        paused = trigger is not None and trigger.paused
    refused = Unauthorized("the webhook's signature does not match (see the trigger's signing scheme)",
                           code="bad_signature")  # fmt: skip
    if not secret or not signature or not timestamp:
        raise refused
    if not hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.strip().encode()):
        raise refused
    try:
        sent = int(timestamp)
    except ValueError:
        raise refused from None
    skew = abs((now if now is not None else time.time()) - sent)
    if skew > settings.triggers.hook_tolerance:
        raise Unauthorized(
            f"the webhook's timestamp is {skew:.0f} s from the server's clock (at most "
            f"{settings.triggers.hook_tolerance:.0f} s): send it at once, with the current time",
            code="stale_timestamp",
        )
    if paused:
        raise Conflict(f"trigger {trigger_id} is paused: its owner can resume it", code="trigger_paused")
    inputs = _inputs_of(body)
    fired = trigger_events.fire(
        sessions, settings, trigger_id, f"hook:{signature.strip()[len(SCHEME):]}",
        detail=f"webhook call signed at {sent}", inputs=inputs, strict=True,
    )  # fmt: skip
    if fired is None:  # recorded before: this exact call was made already
        raise Unauthorized("this webhook call was received before (a replay)", code="replayed")
    return fired


def _inputs_of(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise Invalid('the body is not JSON: send {"inputs": {...}}', code="bad_body") from None
    if not isinstance(data, dict) or set(data) - {"inputs"} or not isinstance(data.get("inputs", {}), dict):
        raise Invalid('the body is {"inputs": {input name: value}} and nothing else', code="bad_body")
    return data.get("inputs", {})
