"""Getting a browser into a lab on the lab's own origin, without the platform session ever going there.

1. On the platform's origin, a logged-in browser asks for `/datalabs/{id}/...`; the proxy checks that the
   user may use the lab and issues a **code** (`issue_code`): random, single use, valid for
   `CODE_TTL` seconds, bound to the user, their session and the lab. Only its hash is stored.
2. The browser is redirected to the lab's origin with the code; the proxy there redeems it
   (`redeem_code`: marks it used in one UPDATE, so two replicas cannot both accept it) and sets a
   **lab cookie** (`lab_cookie`): HttpOnly, host-only on that lab's origin, valid for
   `labs.cookie_ttl` seconds and renewed while the lab is in use.
3. The lab cookie names the lab and the session (by the session's hash, as the DB keys it) under an
   HMAC of the platform's secret key: a cookie of one lab is worthless on another, and logging out ends
   every lab cookie of that session (the session is looked up on use).

The session value itself never appears in a URL, a code or a lab cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from datalabs.config import Settings
from datalabs.db.models import AuthSession, LabCode
from datalabs.db.types import utcnow

CODE_TTL = 60  # seconds: the browser follows the redirect at once
_VERSION = "1"


@dataclass(frozen=True)
class LabCookie:
    session_id: str  # the SHA-256 of the session cookie value (AuthSession.id)
    expires: int  # unix time
    value: str  # the cookie as set


def issue_code(db: Session, user_id: int, session_id: str, lab_id: str) -> str:
    """A new one-time code for this user's session and lab (the caller has authorised the user)."""
    code = secrets.token_urlsafe(32)
    now = utcnow()
    db.execute(delete(LabCode).where(LabCode.expires_at < now))  # housekeeping on a rare path
    db.add(
        LabCode(
            id=_digest(code),
            lab_id=lab_id,
            user_id=user_id,
            session_id=session_id,
            expires_at=now + timedelta(seconds=CODE_TTL),
        )
    )
    db.commit()
    return code


def redeem_code(db: Session, code: str, lab_id: str) -> str | None:
    """The session id the code was issued to, if it is for `lab_id`, unexpired and unused (it is used
    now); None otherwise. A code presented for another lab is used up as well: it was leaked."""
    if not code or len(code) > 100:
        return None
    now = utcnow()
    claimed = db.execute(
        update(LabCode)
        .where(LabCode.id == _digest(code), LabCode.used_at.is_(None), LabCode.expires_at > now)
        .values(used_at=now)
    ).rowcount
    db.commit()
    if not claimed:
        return None
    row = db.execute(
        select(LabCode.lab_id, AuthSession.id, AuthSession.expires_at)
        .join(AuthSession, AuthSession.id == LabCode.session_id)
        .where(LabCode.id == _digest(code))
    ).first()
    if row is None or row[0] != lab_id or row[2] <= now:
        return None
    return row[1]


def lab_cookie(settings: Settings, lab_id: str, session_id: str, now: float | None = None) -> LabCookie:
    """A fresh lab cookie value for this lab and session."""
    expires = int((now if now is not None else time.time()) + settings.labs.cookie_ttl)
    mac = _mac(settings, lab_id, session_id, expires)
    return LabCookie(session_id, expires, f"{_VERSION}.{session_id}.{expires}.{mac}")


def read_lab_cookie(
    settings: Settings, lab_id: str, value: str, now: float | None = None
) -> LabCookie | None:
    """The cookie's session if it was made by this platform for this lab and has not expired."""
    parts = value.split(".")
    if len(parts) != 4 or parts[0] != _VERSION or not parts[2].isdigit():
        return None
    _, session_id, expires_text, mac = parts
    expires = int(expires_text)
    if expires <= (now if now is not None else time.time()):
        return None
    if not hmac.compare_digest(mac, _mac(settings, lab_id, session_id, expires)):
        return None
    return LabCookie(session_id, expires, value)


def _mac(settings: Settings, lab_id: str, session_id: str, expires: int) -> str:
    message = f"lab-cookie:{_VERSION}:{lab_id}:{session_id}:{expires}".encode()
    return hmac.new(settings.secret_key.encode(), message, "sha256").hexdigest()


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
