"""Argon2 password hashing (pwdlib's recommended parameters)."""

from __future__ import annotations

from functools import lru_cache

from pwdlib import PasswordHash

MIN_LENGTH = 8


@lru_cache(maxsize=1)
def _hasher() -> PasswordHash:
    return PasswordHash.recommended()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher().hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password: str, hashed: str | None) -> bool:
    """True when `password` matches. With no hash (unknown user) a dummy hash is checked anyway,
    so the time taken does not reveal whether the user exists."""
    ok = _hasher().verify(password, hashed or _dummy_hash())
    return ok and bool(hashed)
