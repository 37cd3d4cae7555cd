"""The outbox: every outgoing chat message is a row before it is a send.

Services call `enqueue` inside the transaction that makes the change (a ticket
filed, a status changed), so a message exists if and only if the change was
committed. A dispatcher (in the bot process) repeatedly `claim`s due rows,
sends them, and reports `mark_sent`, `retry_later` (rate limits, network and
server errors, with exponential backoff) or `mark_failed` (the user blocked the
bot, the chat is gone). A claim is a lease: if the dispatcher dies, the rows
become due again when the lease runs out. PostgreSQL claims with
FOR UPDATE SKIP LOCKED so that several dispatchers never take the same row;
SQLite serialises writers, which gives the same guarantee.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.models import OutboxMessage, SendState, utcnow

MAX_ATTEMPTS = 8
BASE_BACKOFF = timedelta(seconds=2)
MAX_BACKOFF = timedelta(minutes=10)
LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class Claimed:
    id: int
    kind: str
    chat_id: int
    payload: dict[str, Any]
    attempts: int


def enqueue(session: Session, *, dedupe_key: str, kind: str, chat_id: int, payload: dict[str, Any],
            not_before: datetime | None = None) -> bool:
    """Queue a message in the caller's transaction; False if `dedupe_key` was already queued."""
    values = dict(dedupe_key=dedupe_key, kind=kind, chat_id=chat_id, payload=payload,
                  send_state=SendState.pending, attempts=0,
                  next_attempt_at=(not_before or utcnow()), created_at=utcnow(), updated_at=utcnow())
    dialect = session.get_bind().dialect.name
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(OutboxMessage).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])
    else:
        stmt = sqlite.insert(OutboxMessage).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])
    return session.execute(stmt.returning(OutboxMessage.id)).scalar_one_or_none() is not None


def enqueue_many(session: Session, messages: list[dict[str, Any]], *, kind: str = "notice",
                 chunk: int = 500) -> int:
    """Queue many messages ({"dedupe_key", "chat_id", "payload"}) in a few multi-row INSERTs;
    how many were new (a dedupe key already queued is skipped, as with `enqueue`)."""
    now = utcnow()
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    queued = 0
    for start in range(0, len(messages), chunk):
        rows = [dict(dedupe_key=m["dedupe_key"], kind=kind, chat_id=m["chat_id"], payload=m["payload"],
                     send_state=SendState.pending, attempts=0, next_attempt_at=now, created_at=now,
                     updated_at=now) for m in messages[start:start + chunk]]
        stmt = dialect.insert(OutboxMessage).values(rows).on_conflict_do_nothing(index_elements=["dedupe_key"])
        queued += len(session.execute(stmt.returning(OutboxMessage.id)).all())
    return queued


def _due(now: datetime) -> Any:
    """Messages to send now: pending and due, or leased by a sender whose lease ran out."""
    return or_((OutboxMessage.send_state == SendState.pending) & (OutboxMessage.next_attempt_at <= now),
               (OutboxMessage.send_state == SendState.sending) & (OutboxMessage.lease_until <= now))


def has_due(session: Session, now: datetime | None = None) -> bool:
    """Whether `claim` would find anything: a read, so an idle dispatcher pass takes no write lock."""
    return session.scalar(select(OutboxMessage.id).where(_due(now or utcnow())).limit(1)) is not None


def claim(session: Session, limit: int = 50, now: datetime | None = None,
          lease: timedelta = LEASE) -> list[Claimed]:
    """Take up to `limit` due messages for sending, oldest first; commit promptly after."""
    now = now or utcnow()
    due = select(OutboxMessage).where(_due(now)).order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    return _lease(session, list(session.scalars(due)), now + lease)


def _lease(session: Session, rows: list[OutboxMessage], until: datetime) -> list[Claimed]:
    claimed = []
    for row in rows:
        row.send_state = SendState.sending
        row.lease_until = until
        row.attempts += 1
        claimed.append(Claimed(row.id, row.kind, row.chat_id, dict(row.payload), row.attempts))
    session.flush()
    return claimed


def claim_keys(session: Session, dedupe_keys: list[str], now: datetime | None = None,
               lease: timedelta = LEASE) -> list[Claimed]:
    """Take the pending messages with these dedupe keys for sending now, in queue order.

    The bot claims the replies it has just queued in the same transaction, then sends them
    itself, so a reply never waits behind other people's messages in a dispatcher pass.
    """
    if not dedupe_keys:
        return []
    now = now or utcnow()
    rows = list(session.scalars(select(OutboxMessage)
                                .where(OutboxMessage.dedupe_key.in_(dedupe_keys),
                                       OutboxMessage.send_state == SendState.pending)
                                .order_by(OutboxMessage.id)))
    return _lease(session, rows, now + lease)


def mark_sent(session: Session, message_id: int, telegram_message_id: int | None = None,
              now: datetime | None = None) -> None:
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(send_state=SendState.sent, sent_at=now or utcnow(), lease_until=None,
                telegram_message_id=telegram_message_id, last_error=None)
    )


def backoff(attempts: int) -> timedelta:
    """2 s, 4 s, 8 s … capped at 10 minutes."""
    return min(MAX_BACKOFF, BASE_BACKOFF * (2 ** max(0, attempts - 1)))


def retry_later(session: Session, message_id: int, error: str, *, retry_after: float | None = None,
                now: datetime | None = None) -> SendState:
    """A temporary failure: due again after `retry_after` (Telegram's word) or backoff."""
    now = now or utcnow()
    row = session.get(OutboxMessage, message_id)
    if row is None:
        raise LookupError(f"outbox message {message_id} does not exist")
    if row.attempts >= MAX_ATTEMPTS:
        return mark_failed(session, message_id, f"gave up after {row.attempts} attempts: {error}")
    delay = timedelta(seconds=retry_after) if retry_after is not None else backoff(row.attempts)
    row.send_state = SendState.pending
    row.next_attempt_at = now + delay
    row.lease_until = None
    row.last_error = error[:1000]
    session.flush()
    return SendState.pending


def mark_failed(session: Session, message_id: int, error: str) -> SendState:
    """A permanent failure: never retried."""
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(send_state=SendState.failed, lease_until=None, last_error=error[:1000])
    )
    return SendState.failed


def counts(session: Session) -> dict[str, int]:
    """How many messages are in each send state (for `gridbot` and metrics)."""
    from sqlalchemy import func

    rows = session.execute(select(OutboxMessage.send_state, func.count()).group_by(OutboxMessage.send_state))
    return {state.value if isinstance(state, SendState) else str(state): n for state, n in rows}
