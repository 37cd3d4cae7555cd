"""The state of the queues, for `gridbot health`: counts and ages only, never a text or a person.

| queue | rows | stuck when |
| --- | --- | --- |
| inbox pending | residents' messages not yet answered, never failed | received longer ago than `stuck_after` |
| inbox retrying | messages whose answer failed, waiting for their next try | the try is overdue by `stuck_after` |
| inbox failed | messages given up after the last try (`core.messaging.inbox.RETRY_SECONDS`) | (failed) |
| outbox pending | messages waiting for their (next) attempt | the attempt is overdue by `stuck_after` |
| outbox sending | messages a dispatcher holds | its lease ran out `stuck_after` ago |
| outbox unconfirmed | sent, no answer from Telegram (may have arrived; never resent) | (informational) |
| outbox failed | given up: blocked, chat gone, attempts used up | (failed) |
| reminders unqueued | due duty reminders with no outbox row (`core.duties.reminders.unqueued_reminders`) | due `stuck_after` ago |

A queue's age is that of its oldest row: since a message was received (inbox), queued
(outbox), or since a reminder fell due.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from core.duties import reminders
from core.models import InboxMessage, InboxState, OutboxMessage, SendState, utcnow

STUCK_AFTER = timedelta(minutes=5)
# Exit statuses of `gridbot health`.
OK, FAILED, STUCK = 0, 1, 3


@dataclass(frozen=True)
class Queue:
    name: str
    count: int
    oldest_seconds: float | None  # age of the oldest row; None when empty
    stuck: int = 0  # rows that should have moved on `stuck_after` ago
    failure: bool = False  # its rows are failures

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "oldest_seconds": self.oldest_seconds, "stuck": self.stuck}


@dataclass(frozen=True)
class Health:
    queues: list[Queue]
    stuck_after: timedelta
    at: datetime
    problems: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(q.count for q in self.queues if q.failure)

    @property
    def stuck(self) -> int:
        return sum(q.stuck for q in self.queues)

    @property
    def exit_status(self) -> int:
        """FAILED (1) if any row failed, else STUCK (3) if any is stuck, else OK (0)."""
        return FAILED if self.failed else STUCK if self.stuck else OK

    def as_dict(self) -> dict[str, Any]:
        return {"status": {OK: "ok", FAILED: "failed", STUCK: "stuck"}[self.exit_status],
                "failed": self.failed, "stuck": self.stuck,
                "stuck_after_seconds": self.stuck_after.total_seconds(),
                "queues": {q.name: q.as_dict() for q in self.queues}}


def _age(now: datetime, at: datetime | None) -> float | None:
    return None if at is None else round(max(0.0, (now - at).total_seconds()), 1)


def _queue(session: Session, name: str, now: datetime, where: ColumnElement[bool], since: Any,
           stuck: ColumnElement[bool] | None = None, failure: bool = False) -> Queue:
    stuck_count = func.sum(case((stuck, 1), else_=0)) if stuck is not None else func.sum(0)
    count, oldest, n_stuck = session.execute(
        select(func.count(), func.min(since), stuck_count).where(where)).one()
    return Queue(name, int(count), _age(now, oldest), int(n_stuck or 0), failure)


def check(session: Session, *, now: datetime | None = None, stuck_after: timedelta = STUCK_AFTER) -> Health:
    now = now or utcnow()
    late = now - stuck_after
    inbox_pending = InboxMessage.state == InboxState.pending
    outbox = OutboxMessage.send_state
    queues = [
        _queue(session, "inbox_pending", now, inbox_pending & InboxMessage.retry_at.is_(None),
               InboxMessage.received_at, InboxMessage.received_at < late),
        _queue(session, "inbox_retrying", now, inbox_pending & InboxMessage.retry_at.is_not(None),
               InboxMessage.received_at, InboxMessage.retry_at < late),
        _queue(session, "inbox_failed", now, InboxMessage.state == InboxState.failed,
               InboxMessage.received_at, failure=True),
        _queue(session, "outbox_pending", now, outbox == SendState.pending, OutboxMessage.created_at,
               OutboxMessage.next_attempt_at < late),
        _queue(session, "outbox_sending", now, outbox == SendState.sending, OutboxMessage.created_at,
               OutboxMessage.lease_until < late),
        _queue(session, "outbox_unconfirmed", now, outbox == SendState.unconfirmed, OutboxMessage.created_at),
        _queue(session, "outbox_failed", now, outbox == SendState.failed, OutboxMessage.created_at,
               failure=True),
    ]
    owed = reminders.unqueued_reminders(session, now)
    queues.append(Queue("reminders_unqueued", len(owed), _age(now, owed[0].due_at) if owed else None,
                        sum(1 for r in owed if r.due_at < late)))
    problems = [f"{q.name}: {q.count} failed" for q in queues if q.failure and q.count]
    problems += [f"{q.name}: {q.stuck} stuck" for q in queues if q.stuck]
    return Health(queues, stuck_after, now, problems)
