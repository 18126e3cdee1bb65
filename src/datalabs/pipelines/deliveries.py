"""Telling a run's owner that it ended: an in-app notice, and the e-mail and webhooks they asked for,
each recorded as a `RunNotification` the run page lists.

Order, so nothing is sent twice and nothing sent goes unrecorded:
1. `decide`, in one transaction: flip the run's `notified` flag (whoever flips it does the rest; a
   second caller, or the same run reaped again, finds it flipped and does nothing), write the notice,
   and write one record per delivery in state `sending`;
2. `deliver`: send each of those records, then set it `delivered` or `failed` with the reason.
A crash between 1 and 2 leaves records in `sending`: shown as "outcome unknown", never resent.

Which runs get a notice: a scientist wants to hear of a run that ended while they were away, not of one
they watched finish. So: every run whose notifications asked for this outcome; a run launched by hand
that took `NOTICE_AFTER` seconds or more from queueing to its end (whatever its outcome, except a
cancel: whoever cancelled it knows); and a scheduled run that failed (a schedule's successes would bury
the bell). Quick runs launched by hand end on the page their owner is looking at.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from datalabs.config import Settings
from datalabs.db.engine import transaction
from datalabs.db.models import PipelineRun, RunNotification
from datalabs.db.types import utcnow
from datalabs.errors import DatalabsError
from datalabs.notifications import service as notifications
from datalabs.pipelines import notify, queue

log = logging.getLogger(__name__)
NOTICE_AFTER = 60  # seconds
SENDING, DELIVERED, FAILED = "sending", "delivered", "failed"
# A record still `sending` this long after it was written: its sender stopped before recording how it went.
STUCK_AFTER = timedelta(minutes=10)


def notice_wanted(run: PipelineRun) -> bool:
    if notify.wanted(run):
        return True
    if run.state == queue.CANCELLED or run.state not in queue.FINAL:
        return False
    if run.schedule_id is not None:
        return run.state == queue.FAILED
    ended = run.ended_at or utcnow()
    return (ended - run.created_at).total_seconds() >= NOTICE_AFTER


def notice_text(run: PipelineRun) -> str:
    what = f"Run {run.id} of {run.pipeline.name}"
    if run.state == queue.SUCCEEDED:
        return f"{what} succeeded."
    if run.state == queue.FAILED:
        return f"{what} failed: {run.reason[:300]}" if run.reason else f"{what} failed."
    return f"{what} was cancelled."


def recipients(run: PipelineRun) -> list[str]:
    """The e-mail addresses asked for: the owner's own (`email: true`) or a list."""
    email = run.notify.get("email") if run.notify else None
    if email is True:
        return [run.owner.email] if run.owner.email else []
    return list(email) if isinstance(email, list) else []


def decide(sessions: sessionmaker[Session], run_id: str) -> list[int]:
    """Step 1 (see the module): the ids of the deliveries this caller must now make; [] if another
    caller decided already or nothing was asked for."""
    with transaction(sessions) as db:
        run = db.get(PipelineRun, run_id)
        if run is None or run.state not in queue.FINAL or not queue.mark_notified(db, run_id):
            return []
        if notice_wanted(run):
            notifications.add(db, run.owner_id, notice_text(run), f"/runs/{run.id}")
        if not notify.wanted(run):
            return []
        records = []
        if run.notify.get("email"):
            to = recipients(run)
            record = RunNotification(run_id=run.id, channel="email", target=", ".join(to), state=SENDING)
            if not to:  # asked for the owner's address, and their account has none
                record.state, record.detail = FAILED, "your account has no e-mail address"
                record.ended_at = utcnow()
            records.append(record)
        records += [
            RunNotification(run_id=run.id, channel="webhook", target=url, state=SENDING)
            for url in run.notify.get("webhooks", [])
        ]
        db.add_all(records)
        db.flush()
        return [r.id for r in records if r.state == SENDING]


def deliver(
    settings: Settings, sessions: sessionmaker[Session], run_id: str, ids: list[int], base_url: str = ""
) -> None:
    """Step 2: send the records `decide` returned and record each outcome. Failures are recorded and
    logged, never raised: the run is over, and a broken receiver must not break the worker."""
    if not ids:
        return
    with sessions() as db:
        event = notify.run_event(db.get(PipelineRun, run_id), base_url)
        todo = [
            (r.id, r.channel, r.target)
            for r in db.scalars(
                select(RunNotification).where(RunNotification.id.in_(ids), RunNotification.state == SENDING)
            )
        ]
    senders = {"email": notify.EmailNotifier(settings), "webhook": notify.WebhookNotifier(settings)}
    for record_id, channel, target in todo:
        to = target.split(", ") if channel == "email" else [target]
        try:
            senders[channel].send({**event, "to": to})
        except Exception as exc:
            log.warning("notification %s for run %s via %s failed: %s", record_id, run_id, channel, exc)
            why = reason(exc) if channel == "email" else reason(exc).replace(target, host(target))
            _settle(sessions, record_id, FAILED, why)
        else:
            _settle(sessions, record_id, DELIVERED)


def _settle(sessions: sessionmaker[Session], record_id: int, state: str, detail: str = "") -> None:
    with transaction(sessions) as db:
        db.execute(
            update(RunNotification)
            .where(RunNotification.id == record_id, RunNotification.state == SENDING)
            .values(state=state, detail=detail[:1000], ended_at=utcnow())
        )


def reason(exc: Exception) -> str:
    """Why a delivery failed, in words its owner can act on."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = "; ".join(f"{to}: {code} {_text(msg)}" for to, (code, msg) in exc.recipients.items())
        return f"the mail server refused the recipients ({refused})"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"the mail server answered {exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"the receiver answered HTTP {exc.response.status_code}"
    if isinstance(exc, DatalabsError):
        return exc.message
    if isinstance(exc, (httpx.TransportError, OSError)):
        return f"could not connect: {exc}" if str(exc) else f"could not connect ({type(exc).__name__})"
    return str(exc) or type(exc).__name__


def _text(message: bytes | str) -> str:
    return message.decode(errors="replace") if isinstance(message, bytes) else str(message)


@dataclass(frozen=True)
class Sent:
    """One delivery as the run page shows it."""

    channel: str
    to: str  # the recipients, or the webhook's host (its path and query may hold a secret)
    at: datetime
    state: str  # delivered | failed | sending | unknown
    detail: str


def for_run(db: Session, run_id: str) -> list[Sent]:
    rows = db.scalars(
        select(RunNotification).where(RunNotification.run_id == run_id).order_by(RunNotification.id)
    )
    return [_shown(r) for r in rows]


def host(url: str) -> str:
    """A webhook's host[:port], which the page shows instead of its URL: the path, query or user part
    of a receiver's URL often holds its secret."""
    return urlsplit(url).netloc.rsplit("@", 1)[-1]


def _shown(r: RunNotification) -> Sent:
    to = r.target if r.channel == "email" else host(r.target)
    state, detail = r.state, r.detail
    if state == SENDING and utcnow() - r.created_at > STUCK_AFTER:
        state, detail = "unknown", "the platform stopped while sending: it may or may not have arrived"
    return Sent(channel=r.channel, to=to, at=r.ended_at or r.created_at, state=state, detail=detail)


def unsent(run: PipelineRun) -> str:
    """What the run page says where no delivery is recorded: what was asked for, and why nothing was sent
    ("" if no notification was asked for)."""
    notify_ = run.notify or {}
    channels = []
    if notify_.get("email"):
        channels.append("e-mail to " + (", ".join(recipients(run)) or "your address (none on your account)"))
    channels += [f"webhook to {host(u)}" for u in notify_.get("webhooks", [])]
    if not channels or not notify_.get("on"):
        return ""
    asked = f"Asked for: {' and '.join(channels)}, on {' or '.join(notify_['on'])}."
    if run.state not in queue.FINAL:
        return f"{asked} Sent when the run ends."
    if not notify.wanted(run):
        return f"{asked} This run's outcome is not among them: nothing was sent."
    return f"{asked} No delivery is recorded (runs that ended before the platform kept records have none)."
