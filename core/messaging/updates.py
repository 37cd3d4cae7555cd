"""Telegram updates kept from getUpdates until the bot has handled them (bot/polling.py).

An update is a row (`store`, committed) before the next getUpdates call carries the higher
offset that tells Telegram it arrived; a kill at any moment loses nothing. Rows are handled
in update_id order and marked (`mark_processed`); storing is idempotent by update_id, so an
update Telegram sends again is not handled twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.models import ReceivedUpdate, utcnow

KEEP_PROCESSED = timedelta(days=3)  # handled updates are kept this long (for looking into a problem)
OFFSET_STALE = timedelta(days=6)  # see next_offset


def store(session: Session, updates: list[dict[str, Any]], now: datetime | None = None) -> int:
    """Insert updates (JSON with "update_id") in the caller's transaction; how many were new.
    One already stored is left alone, processed or not."""
    if not updates:
        return 0
    now = now or utcnow()
    rows = [{"update_id": u["update_id"], "payload": u, "received_at": now, "processed_at": None}
            for u in updates]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(ReceivedUpdate).values(rows).on_conflict_do_nothing(index_elements=["update_id"])
    return len(session.execute(stmt.returning(ReceivedUpdate.update_id)).all())


def next_offset(session: Session, now: datetime | None = None) -> int | None:
    """The getUpdates offset after everything stored: None when nothing was, or when the newest
    update is older than OFFSET_STALE. After a week without updates Telegram picks the next
    update_id at random, possibly below an old offset; without an offset Telegram sends what
    it still holds unacknowledged, and `store` ignores any of it already stored."""
    newest = session.execute(select(ReceivedUpdate.update_id, ReceivedUpdate.received_at)
                             .order_by(ReceivedUpdate.update_id.desc()).limit(1)).first()
    if newest is None or newest.received_at < (now or utcnow()) - OFFSET_STALE:
        return None
    return int(newest.update_id) + 1


def unprocessed(session: Session, limit: int = 100,
                skip: set[int] | frozenset[int] = frozenset()) -> list[tuple[int, dict[str, Any]]]:
    """Stored updates not handled yet, oldest (lowest update_id) first: (update_id, JSON);
    without those in `skip` (another bot process is handling them)."""
    query = select(ReceivedUpdate.update_id, ReceivedUpdate.payload).where(ReceivedUpdate.processed_at.is_(None))
    if skip:
        query = query.where(ReceivedUpdate.update_id.not_in(sorted(skip)))
    rows = session.execute(query.order_by(ReceivedUpdate.update_id).limit(limit))
    return [(int(update_id), payload) for update_id, payload in rows]


def still_unprocessed(session: Session, update_ids: list[int]) -> set[int]:
    """Which of `update_ids` are not handled yet (as of now: another process may have just)."""
    if not update_ids:
        return set()
    return {int(u) for u in session.scalars(select(ReceivedUpdate.update_id).where(
        ReceivedUpdate.update_id.in_(update_ids), ReceivedUpdate.processed_at.is_(None)))}


def mark_processed(session: Session, update_id: int, now: datetime | None = None) -> None:
    row = session.get(ReceivedUpdate, update_id)
    if row is not None and row.processed_at is None:
        row.processed_at = now or utcnow()


def prune(session: Session, now: datetime | None = None, keep: timedelta = KEEP_PROCESSED) -> int:
    """Delete updates handled more than `keep` ago; the newest row always stays, as it holds
    the offset the next start continues from."""
    cutoff = (now or utcnow()) - keep
    newest = select(func.max(ReceivedUpdate.update_id)).scalar_subquery()
    result = session.execute(delete(ReceivedUpdate).where(
        ReceivedUpdate.processed_at.is_not(None), ReceivedUpdate.processed_at < cutoff,
        ReceivedUpdate.update_id < newest))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
