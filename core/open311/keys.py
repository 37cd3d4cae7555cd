"""API keys of the client systems that POST Open311 requests.

A key is shown once, when it is created; only its SHA-256 is stored (a key is 43 random
URL-safe characters, so a fast hash is enough: there is nothing to guess from). Its first
PREFIX_LENGTH characters are stored as they are, to find the row and to name the key in the
audit log without revealing it. Every use — accepted or refused — is an audit entry
(`apikey.use`, `apikey.refused`); so are `apikey.create` and `apikey.revoke`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.models import ApiKey, AuditEntry, Community, utcnow

PREFIX_LENGTH = 8


class KeyError_(ValueError):
    """A key command that cannot be done (a name taken, an unknown name or community)."""


@dataclass(frozen=True)
class KeyInfo:
    name: str
    prefix: str
    community: str | None
    created_at: datetime
    revoked_at: datetime | None
    uses: int


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create(session: Session, name: str, community_code: str | None = None, *,
           now: datetime | None = None) -> tuple[ApiKey, str]:
    """A new key for the client system `name`; (its row, the key itself, to be shown once)."""
    name = name.strip()
    if not name:
        raise KeyError_("a key needs a name")
    if session.scalar(select(ApiKey).where(ApiKey.name == name)) is not None:
        raise KeyError_(f"a key named {name!r} exists already (revoke it, or choose another name)")
    community_id = None
    if community_code:
        community = session.scalar(select(Community).where(Community.code == community_code))
        if community is None:
            raise KeyError_(f"no community {community_code!r}")
        community_id = community.id
    key = secrets.token_urlsafe(32)
    row = ApiKey(name=name, prefix=key[:PREFIX_LENGTH], key_hash=_hash(key), community_id=community_id,
                 created_at=now or utcnow())
    session.add(row)
    session.flush()
    audit.record(session, None, "apikey.create", f"apikey:{row.id}",
                 {"name": name, "prefix": row.prefix, "community": community_code}, at=now)
    return row, key


def revoke(session: Session, name: str, *, now: datetime | None = None) -> ApiKey:
    row = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if row is None:
        raise KeyError_(f"no key named {name!r}")
    if row.revoked_at is None:
        row.revoked_at = now or utcnow()
        audit.record(session, None, "apikey.revoke", f"apikey:{row.id}", {"name": name, "prefix": row.prefix},
                     at=now)
    return row


def listing(session: Session) -> list[KeyInfo]:
    """Every key, oldest first, with how often it was used (from the audit log)."""
    rows = session.execute(select(ApiKey, Community.code).outerjoin(Community, Community.id == ApiKey.community_id)
                           .order_by(ApiKey.id)).all()
    uses: dict[str, int] = {}
    for subject in session.scalars(select(AuditEntry.subject).where(AuditEntry.action == "apikey.use")):
        uses[subject] = uses.get(subject, 0) + 1
    return [KeyInfo(k.name, k.prefix, code, k.created_at, k.revoked_at, uses.get(f"apikey:{k.id}", 0))
            for k, code in rows]


def authenticate(session: Session, presented: str | None, use: str, *,
                 now: datetime | None = None) -> ApiKey | None:
    """The live key `presented` is, or None; either way the attempt is audited (`use` names the
    endpoint, e.g. "POST requests"). Nothing presented is no use of a key and is not recorded."""
    if not presented:
        return None
    presented = presented.strip()
    prefix = presented[:PREFIX_LENGTH]
    digest = _hash(presented)
    found = None
    for row in session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)):
        if hmac.compare_digest(row.key_hash, digest):
            found = row
    if found is None or found.revoked_at is not None:
        subject = f"apikey:{found.id}" if found is not None else "apikey:unknown"
        # A refused string may be some other secret pasted by mistake: only its first 4 characters.
        audit.record(session, None, "apikey.refused", subject,
                     {"use": use, "presented": presented[:4], "revoked": found is not None}, at=now)
        return None
    audit.record(session, None, "apikey.use", f"apikey:{found.id}", {"use": use, "name": found.name}, at=now)
    return found
