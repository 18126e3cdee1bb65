"""Platform users of single sign-on: linked by (issuer, subject), created on first sign-in, their
teams and admin role kept in step with the provider's groups claim at every sign-in."""

from __future__ import annotations

import re

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datalabs.accounts.oidc import OidcError
from datalabs.accounts.oidc_settings import OidcProvider
from datalabs.accounts.service import NAME_RE, create_group, set_member
from datalabs.db.models import Group, Membership, OidcIdentity, User
from datalabs.db.types import utcnow


def username_from(value: object) -> str:
    """A valid platform user name from a claim value ('Ada.Lovelace@esa.int' -> 'ada.lovelace'), or ''."""
    text = str(value or "").split("@", 1)[0].lower()
    text = re.sub(r"[^a-z0-9_.-]+", "-", text).strip("-_.")
    text = re.sub(r"^[^a-z]+", "", text)[:32].rstrip("-_.")
    return text if NAME_RE.fullmatch(text) else ""


def claim_groups(provider: OidcProvider, claims: dict) -> list[str]:
    if not provider.groups_claim:
        return []
    value = claims.get(provider.groups_claim, [])
    if isinstance(value, str):
        value = [value]
    return [v for v in value if isinstance(v, str)][:1000] if isinstance(value, list) else []


def sign_in(db: Session, provider: OidcProvider, claims: dict) -> User:
    """The user linked to the token's (issuer, subject), created on first sign-in; teams and role synced.
    A new subject whose user name is taken by an existing account is refused (never taken over).

    Two first sign-ins of the same subject at once (two tabs, two replicas) must not both create it. On
    SQLite the no-op write below takes the database's write lock until the caller commits, so the second
    waits and then finds the link. On PostgreSQL both may find no link and insert the user; the second
    insert fails on a unique index once the first commits. It runs in a savepoint, so the loser rolls back
    to it, reads the winner's rows and goes on with them."""
    issuer, subject = claims["iss"], claims["sub"]
    db.execute(
        update(OidcIdentity)
        .where(OidcIdentity.issuer == issuer, OidcIdentity.subject == subject)
        .values(user_id=OidcIdentity.user_id)
    )
    link = db.get(OidcIdentity, (issuer, subject))
    if link is None:
        try:
            with db.begin_nested():  # a savepoint: a lost race leaves the caller's transaction usable
                user = _create(db, provider, claims)
                db.add(OidcIdentity(issuer=issuer, subject=subject, user_id=user.id))
                db.flush()
        except IntegrityError:
            link = db.get(OidcIdentity, (issuer, subject), populate_existing=True)
            if link is None:
                raise  # not that race (say, a local account of that name created meanwhile)
    if link is not None:
        user = db.get(User, link.user_id)
        if user is None or not user.active:
            raise OidcError("this account is disabled", "account_disabled")
    sync(db, provider, user, claim_groups(provider, claims))
    user.last_login = utcnow()
    db.flush()
    return user


def _create(db: Session, provider: OidcProvider, claims: dict) -> User:
    name = username_from(claims.get(provider.username_claim))
    if not name:
        raise OidcError(
            f"the provider gave no usable user name (claim '{provider.username_claim}')", "oidc_no_username"
        )
    if db.scalar(select(User.id).where(User.name == name)) is not None:
        raise OidcError(
            f"an account named '{name}' already exists on this platform and is not linked to your "
            f"'{provider.title}' sign-in; ask an administrator",
            "oidc_name_taken",
        )
    email = claims.get("email") if isinstance(claims.get("email"), str) else ""
    full = claims.get("name") if isinstance(claims.get("name"), str) else ""
    user = User(name=name, password_hash="", email=email[:254], full_name=full[:200])  # no local password
    db.add(user)
    db.flush()
    return user


def managed(provider: OidcProvider, team: str) -> bool:
    """Whether the provider manages `team`: a mapping target, or (with group_prefix) any team."""
    return team in provider.mapping.values() or bool(provider.group_prefix)


def sync(db: Session, provider: OidcProvider, user: User, values: list[str]) -> None:
    """Memberships in provider-managed teams become exactly those the claim values map to (teams are
    created when missing); the role becomes admin when a value is in admin_values, and stops being
    admin when none is (only with admin_values configured)."""
    if not provider.groups_claim:
        return
    wanted = {team for v in values if (team := provider.team_for(v)) and NAME_RE.fullmatch(team)}
    current = dict(
        db.execute(select(Group.name, Membership).join(Membership).where(Membership.user_id == user.id)).all()
    )
    for team, membership in current.items():
        if team not in wanted and managed(provider, team):
            db.delete(membership)
    for team in sorted(wanted - current.keys()):
        if db.scalar(select(Group.id).where(Group.name == team)) is None:
            try:
                with db.begin_nested():  # another sign-in may be creating the same team right now
                    create_group(db, team, f"Managed by sign-in provider '{provider.name}'")
            except IntegrityError:
                pass  # it did: the team exists now
        set_member(db, team, user.name)
    if provider.admin_values:
        if set(values) & set(provider.admin_values):
            user.role = "admin"
        elif user.role == "admin":
            user.role = "user"
    db.flush()
