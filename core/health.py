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
| updates pending | Telegram updates stored (polling or webhook) and not handled yet | received longer ago than `stuck_after` |

Besides the queues (each a reason to exit non-zero, named in `problems`):
- the scheduler leader (core/leader.py): none on PostgreSQL is a problem; SQLite cannot tell;
- scheduler lag: how long the oldest ticket time-limit step (core/tickets/deadlines.py) has
  been due and not done, a problem past `stuck_after`;
- Redis, when REDIS_URL is set: unreachable is a problem (Rasa's lock store cannot do without it).

A queue's age is that of its oldest row: since a message was received (inbox), queued
(outbox), or since a reminder fell due.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from core import leader as leadership
from core.duties import reminders
from core.models import (
    InboxMessage,
    InboxState,
    OutboxMessage,
    ReceivedUpdate,
    SendState,
    TicketDeadline,
    utcnow,
)

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
    leader: leadership.Leader = leadership.Leader(known=False)
    scheduler_lag_seconds: float = 0.0  # 0 when nothing is overdue
    redis: str | None = None  # "ok", "unreachable: <why>"; None when REDIS_URL is not set
    alarms: list[str] = field(default_factory=list)  # stuck beyond the queues: leader, lag, Redis

    @property
    def failed(self) -> int:
        return sum(q.count for q in self.queues if q.failure)

    @property
    def stuck(self) -> int:
        return sum(q.stuck for q in self.queues)

    @property
    def exit_status(self) -> int:
        """FAILED (1) if any row failed, else STUCK (3) if any is stuck, else OK (0)."""
        return FAILED if self.failed else STUCK if self.stuck or self.alarms else OK

    def as_dict(self) -> dict[str, Any]:
        return {"status": {OK: "ok", FAILED: "failed", STUCK: "stuck"}[self.exit_status],
                "failed": self.failed, "stuck": self.stuck,
                "stuck_after_seconds": self.stuck_after.total_seconds(),
                "queues": {q.name: q.as_dict() for q in self.queues},
                "leader": self.leader.holder if self.leader.known else "unknown (SQLite)",
                "scheduler_lag_seconds": self.scheduler_lag_seconds, "redis": self.redis,
                "problems": self.problems}


def _age(now: datetime, at: datetime | None) -> float | None:
    return None if at is None else round(max(0.0, (now - at).total_seconds()), 1)


def _queue(session: Session, name: str, now: datetime, where: ColumnElement[bool], since: Any,
           stuck: ColumnElement[bool] | None = None, failure: bool = False) -> Queue:
    stuck_count = func.sum(case((stuck, 1), else_=0)) if stuck is not None else func.sum(0)
    count, oldest, n_stuck = session.execute(
        select(func.count(), func.min(since), stuck_count).where(where)).one()
    return Queue(name, int(count), _age(now, oldest), int(n_stuck or 0), failure)


def scheduler_lag(session: Session, now: datetime) -> float:
    """Seconds the oldest time-limit step has been due and not done (the leader does them every
    fraction of a second); 0 when none is overdue."""
    oldest = session.scalar(select(func.min(TicketDeadline.due_at)).where(
        TicketDeadline.done_at.is_(None), TicketDeadline.due_at <= now))
    return _age(now, oldest) or 0.0


def redis_problem(url: str, timeout: float = 2.0) -> str | None:
    """None if the Redis at `url` answers PING (after AUTH when the URL has a password), else why
    not. A plain RESP exchange: nothing else here talks to Redis."""
    parsed = make_url(url.replace("rediss://", "redis+tls://", 1)) if "://" in url else None
    if parsed is None or parsed.drivername not in ("redis", "redis+tls"):
        return f"not a redis:// URL ({url.split('://')[0]}://)"
    host, port = parsed.host or "127.0.0.1", parsed.port or 6379
    commands = []
    if parsed.password:
        user = [parsed.username] if parsed.username else []
        commands.append(["AUTH", *user, str(parsed.password)])
    commands.append(["PING"])
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            conn: socket.socket = raw
            if parsed.drivername == "redis+tls":
                conn = ssl.create_default_context().wrap_socket(raw, server_hostname=host)
            for command in commands:
                conn.sendall(b"".join([f"*{len(command)}\r\n".encode()] + [
                    f"${len(part.encode())}\r\n".encode() + part.encode() + b"\r\n" for part in command]))
                answer = conn.recv(512).split(b"\r\n")[0]
                if answer.startswith(b"-"):
                    return f"{host}:{port} answered {command[0]} with an error"
                if not answer:
                    return f"{host}:{port} closed the connection"
        return None
    except OSError as exc:
        return f"{host}:{port} unreachable ({type(exc).__name__}: {exc.strerror or exc})"


def check(session: Session, *, now: datetime | None = None, stuck_after: timedelta = STUCK_AFTER,
          redis_url: str | None = None) -> Health:
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
    queues.append(_queue(session, "updates_pending", now, ReceivedUpdate.processed_at.is_(None),
                         ReceivedUpdate.received_at, ReceivedUpdate.received_at < late))
    problems = [f"{q.name}: {q.count} failed" for q in queues if q.failure and q.count]
    problems += [f"{q.name}: {q.stuck} stuck" for q in queues if q.stuck]
    alarms = []
    leader = leadership.current(session)
    if leader.missing:
        alarms.append("no scheduler leader (no bot process holds the lock)")
    lag = scheduler_lag(session, now)
    if lag > stuck_after.total_seconds():
        alarms.append(f"scheduler lag {lag:.0f} s")
    redis = None
    if redis_url:
        why = redis_problem(redis_url)
        redis = "ok" if why is None else f"unreachable: {why}"
        if why is not None:
            alarms.append(f"Redis (REDIS_URL) {redis}")
    return Health(queues, stuck_after, now, problems + alarms, leader, lag, redis, alarms)
