"""Write tokens for machines: a random secret shown once, stored as its SHA-256 (a leaked database does
not leak usable tokens; the secret has 256 bits, so an unsalted fast hash is enough)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from ktriage.fleet.ingest import utcnow
from ktriage.fleet.models import Token

__all__ = ["check_token", "create_token", "revoke_token"]

PREFIX = "kt_"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(s: Session, name: str) -> str:
    from ktriage.fleet.bucketing import FleetError

    if not name or len(name) > 200:
        raise FleetError("a token name is 1 to 200 characters")
    old = s.get(Token, name)
    if old is not None and old.revoked_at is None:
        raise FleetError(f"token {name} exists; revoke it first")
    secret = PREFIX + secrets.token_urlsafe(32)
    if old is not None:
        s.delete(old)
        s.flush()
    s.add(Token(name=name, secret_hash=_hash(secret), created_at=utcnow()))
    return secret


def revoke_token(s: Session, name: str) -> None:
    from ktriage.fleet.bucketing import FleetError

    t = s.get(Token, name)
    if t is None or t.revoked_at is not None:
        raise FleetError(f"no active token {name}")
    t.revoked_at = utcnow()


def check_token(s: Session, secret: str) -> str | None:
    if not secret or not secret.startswith(PREFIX):
        return None
    h = _hash(secret)
    t = s.scalars(select(Token).where(Token.secret_hash == h)).first()
    if t is None or t.revoked_at is not None or not hmac.compare_digest(t.secret_hash, h):
        return None
    return t.name
