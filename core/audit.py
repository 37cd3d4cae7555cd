"""Write and read the audit log (core.models.AuditEntry).

Every access to a resident's phone or exact address, every broadcast, every binding
(/start) and every refused /join is recorded in the caller's transaction, so the record
exists exactly when the access happened. core.access.limits counts bindings and wrong /join
codes from here. `detail` holds counts and codes, never the personal data itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import AuditEntry, Person, utcnow


def record(session: Session, actor: Person | None, action: str, subject: str,
           detail: dict[str, Any] | None = None, *, at: datetime | None = None) -> AuditEntry:
    entry = AuditEntry(actor_id=actor.id if actor is not None else None, action=action,
                       subject=subject, detail=dict(detail or {}), at=at or utcnow())
    session.add(entry)
    session.flush()
    return entry


def entries(session: Session, *, since: datetime | None = None, action: str | None = None,
            limit: int = 200) -> list[AuditEntry]:
    """The newest entries first."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    return list(session.scalars(query))
