"""API keys: created once and shown once, stored as a hash, checked in constant time.

A key looks like ``lsk_<prefix>_<secret>``. Only the prefix (to find the row) and a SHA-256
of the whole key are stored; keys are 190 bits of randomness, so a fast hash is enough and a
stolen database reveals no usable key. Scopes: ``ingest`` (send records, feedback, traces and
gateway calls), ``read`` (read records, runs, alerts, the dashboard), ``admin`` (everything).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from llmscope.db.models import ApiKey

SCOPES = ("ingest", "read", "admin")
KEY_PREFIX = "lsk_"


class KeyError_(ValueError):
    """A key operation that cannot be done (duplicate name, unknown name, bad scope)."""


@dataclass(frozen=True)
class KeyInfo:
    name: str
    scope: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, *, name: str, scope: str = "ingest") -> str:
    """Store a new key and return it; it cannot be shown again."""
    if scope not in SCOPES:
        raise KeyError_(f"unknown scope {scope!r} (choose from {', '.join(SCOPES)})")
    if not name or len(name) > 128:
        raise KeyError_("a key needs a name of 1 to 128 characters")
    if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise KeyError_(f"a key named {name!r} exists already")
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(24)}"
    session.add(ApiKey(name=name, scope=scope, prefix=prefix, key_hash=_hash(key)))
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create with the same name
        raise KeyError_(f"a key named {name!r} exists already") from exc
    return key


def list_keys(session: Session) -> list[KeyInfo]:
    rows = session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)).all()
    return [
        KeyInfo(r.name, r.scope, r.prefix, r.created_at, r.revoked_at, r.last_used_at) for r in rows
    ]


def revoke_key(session: Session, name: str) -> None:
    row = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if row is None:
        raise KeyError_(f"no key named {name!r}")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)


def any_keys(session: Session) -> bool:
    """True once any key was ever created: from then on every API call needs one."""
    return session.scalar(select(ApiKey.id).limit(1)) is not None


def verify_key(session: Session, presented: str) -> str | None:
    """The scope of ``presented`` if it is a live key, else None."""
    if not presented.startswith(KEY_PREFIX):
        return None
    prefix = presented[len(KEY_PREFIX) :].split("_", 1)[0]
    digest = _hash(presented)
    found = None
    for row in session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).all():
        # compare every candidate in constant time; never short-circuit on the first byte
        if hmac.compare_digest(row.key_hash, digest) and row.revoked_at is None:
            found = row
    if found is None:
        return None
    found.last_used_at = datetime.now(UTC)
    return found.scope


def allows(scope: str, needed: str) -> bool:
    return scope == "admin" or scope == needed
