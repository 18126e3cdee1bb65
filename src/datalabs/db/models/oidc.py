"""OpenID Connect identities (issue 19): a platform user linked to a provider's subject."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from datalabs.db.models.base import Base
from datalabs.db.types import utcnow


class OidcIdentity(Base):
    """One link: (issuer, subject) -> user. A subject signs in as exactly one user; a user may be linked
    to several providers. Deleting the user deletes its links."""

    __tablename__ = "oidc_identities"

    issuer: Mapped[str] = mapped_column(String(255), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OidcState(Base):
    """A sign-in under way at a provider: the hash of its state, deleted when the browser comes back
    (a state is used once, on any replica). Rows past expires_at are swept at the next sign-in."""

    __tablename__ = "oidc_states"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column()
