"""Access tokens from a sign-in provider as API Bearer tokens (issue 19).

A JWT whose `iss` is a configured provider with `api_audience` is verified like an ID token (the
provider's JWKS signature, an asymmetric alg it advertises, never `none` or HMAC; iss, aud ==
api_audience, exp) and maps to the user linked to its (issuer, sub). Anything else (another issuer,
an unknown subject, a bad token) is no principal, so the API answers 401. The platform's own `dl_`
tokens never come here. Answers are cached by the authenticator like any token's (auth.cache_ttl).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy.orm import Session

from datalabs.accounts.oidc import OidcError, Registry, _b64, check_claims, decode_jwt
from datalabs.accounts.principal import Principal
from datalabs.accounts.scopes import SCOPES
from datalabs.accounts.service import user_groups
from datalabs.db.models import OidcIdentity, User

Verifier = Callable[[Session, str], Principal | None]


def unverified_issuer(token: str) -> str:
    """The `iss` a JWT claims (only to pick the provider whose keys then verify it), or ''."""
    parts = token.split(".")
    if len(parts) != 3 or len(token) > 16_384:
        return ""
    try:
        issuer = json.loads(_b64(parts[1])).get("iss", "")
    except (ValueError, AttributeError):
        return ""
    return issuer if isinstance(issuer, str) else ""


def principal_from_access_token(db: Session, registry: Registry, token: str) -> Principal | None:
    provider = registry.by_issuer(unverified_issuer(token))
    if provider is None or not provider.api_audience:
        return None
    try:
        claims = decode_jwt(registry.info(provider.name), token)
        check_claims(claims, issuer=provider.issuer, audience=provider.api_audience)
    except OidcError:
        return None
    link = db.get(OidcIdentity, (provider.issuer, claims["sub"]))
    user = db.get(User, link.user_id) if link is not None else None
    if user is None or not user.active:
        return None
    granted = str(claims.get("scope", "")).split()
    scopes = frozenset(s for s in granted if s in SCOPES) or frozenset({"all"})
    return Principal(user=user, groups=frozenset(user_groups(db, user.id)), scopes=scopes, via="token")


def verifier(registry: Registry) -> Verifier | None:
    """The authenticator's check for provider access tokens; None when no provider sets api_audience."""
    if not any(p.api_audience for p in registry.providers.values()):
        return None
    return lambda db, token: principal_from_access_token(db, registry, token)
