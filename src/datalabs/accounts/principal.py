"""Who is making a request, and what they may do."""

from __future__ import annotations

from dataclasses import dataclass, field

from datalabs.accounts.scopes import grants
from datalabs.db.models import User
from datalabs.errors import Forbidden


@dataclass(frozen=True)
class Principal:
    user: User
    groups: frozenset[str]
    scopes: frozenset[str] = frozenset({"all"})
    via: str = "session"  # session | token
    session_id: str = ""
    token_id: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        return self.user.name

    @property
    def is_admin(self) -> bool:
        return self.user.role == "admin" and grants(self.scopes, "admin")

    @property
    def is_moderator(self) -> bool:
        return self.is_admin or self.user.role == "moderator"

    def require(self, scope: str) -> None:
        if not grants(self.scopes, scope):
            raise Forbidden(f"this token lacks the '{scope}' scope", code="insufficient_scope")

    def require_admin(self) -> None:
        if self.user.role != "admin":
            raise Forbidden("administrators only")
        self.require("admin")

    def in_any(self, groups: list[str]) -> bool:
        """True if no groups are required, the principal is an admin, or shares one of `groups`."""
        return not groups or self.user.role == "admin" or bool(self.groups.intersection(groups))
