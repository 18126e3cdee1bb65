"""Logging in (with throttling), browser sessions, and API tokens."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from datalabs.accounts.passwords import verify_password
from datalabs.accounts.principal import Principal
from datalabs.accounts.scopes import unknown
from datalabs.accounts.service import user_groups
from datalabs.config import Settings
from datalabs.db.models import ApiToken, AuthSession, Counter, LoginFailure, User
from datalabs.db.types import utcnow
from datalabs.errors import Forbidden, Invalid, NotFound, TooManyRequests, Unauthorized

TOKEN_PREFIX = "dl_"
BAD_LOGIN = "wrong user name or password"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# ---- login and throttling -------------------------------------------------------------------------
# Throttling slows the client that fails, never the account: a stranger who types wrong passwords for
# ada only delays their own next attempt. Failures are counted per (client, user name) and, more
# loosely, per client (one client guessing many names); past the free attempts each further failure
# doubles the wait. Throttled attempts are answered at once (429 + Retry-After), without checking the
# password, so waiting is the only way on. Rows live in the DB so every replica sees the same counts.


def authenticate(db: Session, settings: Settings, name: str, password: str, client: str = "") -> User:
    """The user with this name and password, or Unauthorized; the same message whether or not the user
    exists. A client that failed too often (for this name, or in all) gets TooManyRequests with the
    seconds it must wait; other clients, the user's own included, are not affected. With
    `oidc.local_login = false` passwords are refused (Forbidden): people sign in through a provider."""
    if not settings.oidc.local_login:
        titles = ", ".join(p.title for p in settings.oidc.providers)
        raise Forbidden(
            f"passwords are not accepted here: sign in with {titles} (oidc.local_login = false)",
            code="local_login_disabled",
        )
    keys = _throttle_keys(settings, name, client)
    _check_throttle(db, settings, keys)
    user = db.scalar(select(User).where(User.name == name))
    ok = verify_password(password, user.password_hash if user else None)
    if not ok or user is None or not user.active:
        since = utcnow() - timedelta(seconds=settings.auth.throttle_window)
        db.execute(delete(LoginFailure).where(LoginFailure.at < since))  # forgotten: no longer counted
        for key, _ in keys:
            db.add(LoginFailure(key=key))
        db.commit()  # the failure must count even though the caller's request fails
        raise Unauthorized(BAD_LOGIN, code="bad_credentials")
    # This client knows this password now; its failures for other names still count.
    db.execute(delete(LoginFailure).where(LoginFailure.key == keys[0][0]))
    user.last_login = utcnow()
    return user


def _throttle_keys(settings: Settings, name: str, client: str) -> list[tuple[str, int]]:
    """(key, free failures) per counter: the pair (hashed: names are long) and the client alone."""
    pair = hashlib.sha256(f"{client}\0{name.lower()}".encode()).hexdigest()[:40]
    free = settings.auth.throttle_failures
    return [(f"pair:{pair}", free), (f"client:{client[:150]}", free * 4)]


def throttle_delay(settings: Settings, failures: int, free: int) -> float:
    """Seconds a client must wait after its `failures`-th failure: none for the first `free`, then
    `throttle_delay` doubling with each failure, at most `throttle_window`."""
    if failures < free:
        return 0.0
    return min(float(settings.auth.throttle_window), settings.auth.throttle_delay * 2 ** (failures - free))


def _check_throttle(db: Session, settings: Settings, keys: list[tuple[str, int]]) -> None:
    now = utcnow()
    since = now - timedelta(seconds=settings.auth.throttle_window)
    wait = 0.0
    for key, free in keys:
        count, last = db.execute(
            select(func.count(LoginFailure.id), func.max(LoginFailure.at)).where(
                LoginFailure.key == key, LoginFailure.at > since
            )
        ).one()
        if count:
            wait = max(wait, (last - now).total_seconds() + throttle_delay(settings, count, free))
    if wait > 0:
        retry = max(1, math.ceil(wait))
        raise TooManyRequests(
            f"too many failed logins from here; try again in {retry} seconds",
            retry_after=retry,
            code="login_throttled",
        )


# ---- browser sessions -----------------------------------------------------------------------------


def start_session(db: Session, settings: Settings, user: User) -> str:
    """Create a session and return the cookie value (only its hash is stored)."""
    value = secrets.token_urlsafe(32)
    expires = utcnow() + timedelta(seconds=settings.auth.session_ttl)
    db.add(AuthSession(id=_digest(value), user_id=user.id, expires_at=expires))
    # Housekeeping on a path that is rare (logins), not on every request.
    db.execute(delete(AuthSession).where(AuthSession.expires_at < utcnow()))
    return value


def end_session(db: Session, value: str) -> None:
    db.execute(delete(AuthSession).where(AuthSession.id == _digest(value)))


def principal_from_session(db: Session, value: str) -> Principal | None:
    return principal_from_session_id(db, _digest(value))


def principal_from_session_id(db: Session, session_id: str) -> Principal | None:
    """The session's user by the session's stored id (the hash of its cookie value): a lab cookie
    names the session this way (accounts/lab_login.py)."""
    row = db.execute(
        select(User, AuthSession.expires_at)
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(AuthSession.id == session_id)
    ).first()
    if row is None or row[1] < utcnow() or not row[0].active:
        return None
    user = row[0]
    return Principal(
        user=user, groups=frozenset(user_groups(db, user.id)), via="session", session_id=session_id
    )


def csrf_token(settings: Settings, session_key: str) -> str:
    """The CSRF token bound to a session (or anonymous) cookie value: forms must echo it back."""
    return hmac.new(settings.secret_key.encode(), f"csrf:{session_key}".encode(), "sha256").hexdigest()


def check_csrf(settings: Settings, session_key: str, sent: str | None) -> bool:
    return bool(session_key and sent) and hmac.compare_digest(csrf_token(settings, session_key), sent or "")


# ---- API tokens -----------------------------------------------------------------------------------


def create_token(
    db: Session,
    settings: Settings,
    user: User,
    name: str,
    scopes: list[str] | None = None,
    expires_in: int | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the secret, which is shown once and never stored."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise Invalid("token name must be 1-100 characters", code="invalid_token_name")
    scopes = sorted(set(scopes or ["all"]))
    if bad := unknown(scopes):
        raise Invalid(f"unknown scope(s): {', '.join(bad)}", code="invalid_scope")
    if expires_in is not None and not 60 <= expires_in <= settings.auth.token_max_ttl:
        raise Invalid(
            f"expires_in must be between 60 and {settings.auth.token_max_ttl} seconds", code="invalid_expiry"
        )
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        id=secrets.token_hex(6),
        user_id=user.id,
        name=name,
        token_hash=_digest(secret),
        scopes=scopes,
        expires_at=utcnow() + timedelta(seconds=expires_in) if expires_in else None,
    )
    db.add(token)
    db.flush()
    return token, secret


def list_tokens(db: Session, user: User) -> list[ApiToken]:
    return list(
        db.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
            .order_by(ApiToken.created_at.desc())
        )
    )


def revoke_token(db: Session, principal: Principal, token_id: str) -> None:
    token = db.get(ApiToken, token_id)
    if (
        token is None
        or token.revoked_at is not None
        or (token.user_id != principal.user.id and not principal.is_admin)
    ):
        raise NotFound(f"no token '{token_id}'", code="token_not_found")
    token.revoked_at = utcnow()


def principal_from_token(db: Session, secret: str) -> Principal | None:
    if not secret.startswith(TOKEN_PREFIX):
        return None
    row = db.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == _digest(secret))
    ).first()
    if row is None:
        return None
    token, user = row
    now = utcnow()
    if token.revoked_at is not None or (token.expires_at and token.expires_at <= now) or not user.active:
        return None
    # Throttle the write: last_used at minute resolution is plenty and keeps hot paths read-only.
    if token.last_used is None or now - token.last_used > timedelta(minutes=1):
        db.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used=now))
        db.commit()
    return Principal(
        user=user,
        groups=frozenset(user_groups(db, user.id)),
        scopes=frozenset(token.scopes),
        via="token",
        token_id=token.id,
    )


def require_full_access(principal: Principal) -> None:
    """Managing tokens needs a session or an `all` token, so a narrow token cannot mint a wider one."""
    if principal.via == "token" and "all" not in principal.scopes:
        raise Forbidden(
            "managing tokens needs a login session or a token with the 'all' scope", code="insufficient_scope"
        )


# Every replica caches who a session or token is for `auth.cache_ttl` seconds; a change that must take
# effect everywhere (a revoked token, an ended session, a changed membership) moves this counter, and
# each replica drops its cache once it sees it move (labs/duties.ReplicaSync, every server.sync_interval).
AUTH_COUNTER = "auth"


def bump_generation(db: Session) -> None:
    """Move the authentication generation (committed with `db`)."""
    moved = db.execute(
        update(Counter).where(Counter.name == AUTH_COUNTER).values(value=Counter.value + 1)
    ).rowcount
    if not moved:
        db.add(Counter(name=AUTH_COUNTER, value=1))


def generation(db: Session) -> int:
    return db.scalar(select(Counter.value).where(Counter.name == AUTH_COUNTER)) or 0
