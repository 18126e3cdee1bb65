"""Telling a run's owner that it ended: an in-app notice, and the e-mail and webhooks they asked for,
each recorded as a `RunNotification` the run page lists.

Guarantee: effectively once. The notice is written exactly once; each e-mail and webhook is sent at
least once and every send of it carries the same idempotency key (the e-mail's Message-ID, the webhook's
`X-Datalabs-Delivery` header and signed body field: see `notify`), so a receiver that drops keys it has
seen acts on it exactly once, whichever worker dies when. A delivery recorded sent is never sent again.

1. decided: `decide`, in one transaction, flips the run's `notified` flag (whoever flips it does the
   rest; a second caller, or the same run reaped again, finds it flipped and does nothing), writes the
   notice, and one record per delivery (per run, channel and recipient) in state `sending` with its key,
   held by the deciding worker for `hold()` seconds;
2. sent: `deliver` sends each record still `sending` and sets it `delivered` (or `failed`, with the
   reason: a refusal, or no answer within the timeout, is recorded and not retried).
A worker that dies between 1 and 2, or after sending and before recording it, leaves records `sending`
whose hold runs out: the next worker's maintenance pass (`resume`) takes them over and sends them again,
with the same key, at most `MAX_SENDS` times in all. A send slower than the hold may be repeated by
another worker meanwhile: with the same key too.

Which runs get a notice: a scientist wants to hear of a run that ended while they were away, not of one
they watched finish. So: every run whose notifications asked for this outcome; a run launched by hand
that took `NOTICE_AFTER` seconds or more from queueing to its end (whatever its outcome, except a
cancel: whoever cancelled it knows); and a scheduled run that failed (a schedule's successes would bury
the bell). Quick runs launched by hand end on the page their owner is looking at.
"""

from __future__ import annotations

import hashlib
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
# A record without a key (made before keys existed) still `sending` this long after it was written: its
# sender stopped before recording how it went, and nobody sends it again.
STUCK_AFTER = timedelta(minutes=10)
MAX_SENDS = 5  # sends started for one delivery before it is given up (a send that kills its worker)


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


def hold(settings: Settings) -> float:
    """Seconds a worker holds a delivery it sends: its slower channel's timeout plus the worker lease, so
    a live worker's slow send is not taken over, and a dead worker's is soon."""
    p = settings.pipelines
    return p.lease + max(p.webhook_timeout, p.smtp_timeout)


def key_for(run_id: str, channel: str, target: str) -> str:
    """A delivery's idempotency key: stable for (run, channel, recipients), and no hint of the target (a
    webhook's URL may hold its receiver's secret)."""
    return hashlib.sha256(f"{run_id}\0{channel}\0{target}".encode()).hexdigest()[:32]


def decide(
    sessions: sessionmaker[Session], run_id: str, *, sender: str = "", held_for: float = 60.0
) -> list[int]:
    """Step 1 (see the module): the ids of the deliveries this caller must now make, held by `sender`
    for `held_for` seconds; [] if another caller decided already or nothing was asked for."""
    until = utcnow() + timedelta(seconds=held_for)
    with transaction(sessions) as db:
        run = db.get(PipelineRun, run_id)
        if run is None or run.state not in queue.FINAL or not queue.mark_notified(db, run_id):
            return []
        if notice_wanted(run):
            notifications.add(db, run.owner_id, notice_text(run), f"/runs/{run.id}")
        if not notify.wanted(run):
            return []
        wanted = []
        if run.notify.get("email"):
            wanted.append(("email", ", ".join(dict.fromkeys(recipients(run)))))
        wanted += [("webhook", url) for url in dict.fromkeys(run.notify.get("webhooks", []))]
        records = [
            RunNotification(
                run_id=run.id,
                channel=channel,
                target=target,
                state=SENDING,
                key=key_for(run.id, channel, target),
                sender=sender,
                lease_until=until,
                attempts=1,
            )
            for channel, target in wanted
        ]
        for record in records:
            if record.channel == "email" and not record.target:  # the owner's address, and there is none
                record.state, record.detail = FAILED, "your account has no e-mail address"
                record.ended_at, record.attempts = utcnow(), 0
        db.add_all(records)
        db.flush()
        return [r.id for r in records if r.state == SENDING]


def deliver(
    settings: Settings,
    sessions: sessionmaker[Session],
    run_id: str,
    ids: list[int],
    base_url: str = "",
    *,
    sender: str = "",
) -> None:
    """Step 2: send the records `decide` (or `resume`) returned that are still `sending` (and, with
    `sender`, still held by it) and record each outcome. Failures are recorded and logged, never raised:
    the run is over, and a broken receiver must not break the worker."""
    if not ids:
        return
    query = select(RunNotification).where(RunNotification.id.in_(ids), RunNotification.state == SENDING)
    if sender:
        query = query.where(RunNotification.sender == sender)
    with sessions() as db:
        event = notify.run_event(db.get(PipelineRun, run_id), base_url)
        todo = [(r.id, r.channel, r.target, r.key) for r in db.scalars(query.order_by(RunNotification.id))]
    senders = {"email": notify.EmailNotifier(settings), "webhook": notify.WebhookNotifier(settings)}
    for record_id, channel, target, key in todo:
        to = target.split(", ") if channel == "email" else [target]
        try:
            senders[channel].send({**event, "to": to, "delivery": key})
        except Exception as exc:
            log.warning("notification %s for run %s via %s failed: %s", record_id, run_id, channel, exc)
            why = reason(exc) if channel == "email" else reason(exc).replace(target, host(target))
            _settle(sessions, record_id, FAILED, why)
        else:
            _settle(sessions, record_id, DELIVERED)


def resume(settings: Settings, sessions: sessionmaker[Session], sender: str, base_url: str = "") -> int:
    """Take over the deliveries whose sender stopped (still `sending`, their hold run out) and send them,
    with their keys; those already started `MAX_SENDS` times are recorded failed instead. Any number of
    workers may call this at once: each record is taken by one (a conditional UPDATE). Returns how many
    this caller sent."""
    now = utcnow()
    with sessions() as db:
        stale = db.execute(
            select(RunNotification.id, RunNotification.run_id, RunNotification.attempts).where(
                RunNotification.state == SENDING,
                RunNotification.key.is_not(None),
                RunNotification.lease_until < now,
            )
        ).all()
    mine: dict[str, list[int]] = {}
    for record_id, run_id, attempts in stale:
        if attempts >= MAX_SENDS:
            why = f"the platform stopped {attempts} times while sending it: given up"
            _settle(sessions, record_id, FAILED, why, stale_at=now)
            continue
        with transaction(sessions) as db:
            taken = db.execute(
                update(RunNotification)
                .where(
                    RunNotification.id == record_id,
                    RunNotification.state == SENDING,
                    RunNotification.lease_until < now,
                )
                .values(
                    sender=sender,
                    lease_until=utcnow() + timedelta(seconds=hold(settings)),
                    attempts=RunNotification.attempts + 1,
                )
            ).rowcount
        if taken:
            log.info("notification %s for run %s: its sender stopped; sending it again", record_id, run_id)
            mine.setdefault(run_id, []).append(record_id)
    for run_id, ids in mine.items():
        deliver(settings, sessions, run_id, ids, base_url, sender=sender)
    return sum(len(ids) for ids in mine.values())


def _settle(
    sessions: sessionmaker[Session],
    record_id: int,
    state: str,
    detail: str = "",
    stale_at: datetime | None = None,
) -> None:
    """Record an outcome, if none is yet (whichever sender records first; `stale_at`: only if no one
    holds it since)."""
    query = update(RunNotification).where(RunNotification.id == record_id, RunNotification.state == SENDING)
    if stale_at is not None:
        query = query.where(RunNotification.lease_until < stale_at)
    with transaction(sessions) as db:
        db.execute(query.values(state=state, detail=detail[:1000], ended_at=utcnow(), lease_until=None))


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
    if isinstance(exc, httpx.ConnectTimeout):
        return "could not connect in time"
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return "no answer in time (it may still have arrived)"
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
    if state == SENDING and r.key is None and utcnow() - r.created_at > STUCK_AFTER:
        state, detail = "unknown", "the platform stopped while sending: it may or may not have arrived"
    elif state == SENDING and r.attempts > 1:
        detail = f"its sender stopped; sending it again (attempt {r.attempts}, the same delivery key)"
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
