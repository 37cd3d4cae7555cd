"""The outbox: every outgoing chat message is a row before it is a send.

Services call `enqueue` inside the transaction that makes the change (a ticket
filed, a status changed), so a message exists if and only if the change was
committed. A dispatcher (in the bot process) repeatedly `claim`s due rows,
sends them, and records the outcome. A claim is a lease: if the dispatcher dies,
the rows become due again when the lease runs out. PostgreSQL claims with
FOR UPDATE SKIP LOCKED so that several dispatchers never take the same row;
SQLite serialises writers, which gives the same guarantee.

Exactly once. The Bot API has no idempotency key, so a request that may have
reached Telegram is never made again:

    pending --claim--> sending --begin_request (commit)--> request --answer-->
        piece_sent ... mark_sent | retry_later | mark_failed | mark_unconfirmed

* `begin_request` commits `in_flight` just before each request, and the answer
  clears it. A lease that runs out on a row still in flight was a dispatcher that
  died mid-request: the row becomes `unconfirmed` (never resent), not due again.
  A row whose lease runs out between requests is due again: nothing of it was
  left unanswered.
* A read timeout (the request was written, no answer came) is `unconfirmed` too;
  a connect or pool timeout (nothing was written) is retried.
* A message that goes out in several requests (long text, a photo and its text)
  records each confirmed piece (`pieces_sent`); a retry resumes with the next one.
* `retry_later` with Telegram's `retry_after` (429) does not count an attempt: no
  number of rate limits drops a message. Other temporary failures (network, 5xx)
  back off exponentially and give up after MAX_ATTEMPTS.
* A message that carries a secret (a /web login link) is queued with `payload_after`, what its
  payload becomes once the row is settled — sent, failed or unconfirmed, when no request of it
  will be made again — so the secret lives in the table only while it is on its way.
* `attempts` grows by one with every claim, so (id, attempts) names one lease: the
  dispatcher passes it as `token`, and a dispatcher whose lease another one has
  taken over changes nothing (`begin_request` refuses it, so it sends nothing).

Kinds (`KINDS`). A kind may differ from an ordinary notice in its priority, whether it is
essential (it reaches people who said /notify off, which holds back only broadcasts that are not
essential), whether an unknown outcome is resent, and whether the dispatcher fans it out (several
chats at a time). A call-out's call (CALLOUT, "mobilise.call") is all of these: it goes after replies
and before cards, and a missed call costs more than a duplicate, so a call that ends `unconfirmed` is
queued once more, due RESEND_AFTER after its request and marked 【重发】 (`resend_key` names the
copy, so it is queued once however many dispatchers settle the row, and a copy is never resent).
A confirmed send is never resent (a late answer that confirms the call calls off a copy still
waiting, and so does the person answering the call: `reached`), nor is a refusal (403 and the
like fail the row).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, func, null, or_, select, update
from sqlalchemy import insert as sa_insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core import audit
from core.messages import t
from core.messaging import buttons
from core.models import Branch, OutboxMessage, SendState, utcnow

log = logging.getLogger("gridbot.outbox")

# Priorities (the `priority` column; lower goes first; bot/ratelimit.py serves the budget in the
# same order). The call-out's level came in between replies and cards after rows had been stored
# with 0 (replies, emergencies), 1 and 2: replies moved to -1 so that no stored row changes meaning
# (a reply is sent as it is queued; one queued at 0 before still goes before every card).
PRIORITY_URGENT = -1  # replies to what someone just did, emergencies
PRIORITY_CALLOUT = 0  # a call-out to mobilise people (CALLOUT)
PRIORITY_NORMAL = 1  # ticket cards and notices, reminders
PRIORITY_BULK = 2  # broadcasts

CALLOUT = "mobilise.call"  # one per person called out for an emergency (core.mobilise queues them)
RESEND_AFTER = timedelta(seconds=60)
RESEND_PREFIX = "resend:"  # a copy's dedupe key: resend:<the original's id>


@dataclass(frozen=True)
class KindRule:
    """How the outbox treats one kind of message where it differs from an ordinary notice."""

    priority: int = PRIORITY_NORMAL
    # Reaches people who said /notify off (as an essential broadcast does); every outbox kind
    # does today, since /notify off holds back broadcasts only: this marks the kinds that must.
    essential: bool = False
    # An unknown outcome is queued once more this long after its request, the text marked with
    # the catalogue's `resend_mark`; None: never sent again (at most once).
    resend_after: timedelta | None = None
    resend_mark: str = ""
    # One message to very many chats at once: the dispatcher sends a run of them to several
    # chats at a time, each chat's in order (bot/dispatcher.py), not one after the other.
    fan_out: bool = False


NOTICE = KindRule()
KINDS: dict[str, KindRule] = {
    "reply": KindRule(priority=PRIORITY_URGENT),
    CALLOUT: KindRule(priority=PRIORITY_CALLOUT, essential=True, resend_after=RESEND_AFTER,
                      resend_mark="callout.resend_mark", fan_out=True),
}
KIND_PRIORITY = {kind: rule.priority for kind, rule in KINDS.items()}  # any other kind: PRIORITY_NORMAL
RESENT_KINDS = tuple(kind for kind, rule in KINDS.items() if rule.resend_after is not None)

MAX_ATTEMPTS = 8
BASE_BACKOFF = timedelta(seconds=2)
MAX_BACKOFF = timedelta(minutes=10)
LEASE = timedelta(seconds=60)
# States a row may be in while its dispatcher still holds it: `unconfirmed` because another
# dispatcher's claim may settle an in-flight row whose lease ran out while its answer was late.
HELD = (SendState.sending, SendState.unconfirmed)
# Rows whose chat id follows a group's migration to a supergroup: those still to be sent.
OPEN = (SendState.pending, SendState.sending)


@dataclass(frozen=True)
class Claimed:
    id: int
    kind: str
    chat_id: int
    payload: dict[str, Any]
    attempts: int  # also the lease's token (see the module docstring)
    pieces_sent: int = 0
    dedupe_key: str = ""
    priority: int = PRIORITY_NORMAL


def rule_of(kind: str) -> KindRule:
    return KINDS.get(kind, NOTICE)


def priority_of(kind: str, priority: int | None = None) -> int:
    return priority if priority is not None else rule_of(kind).priority


def essential(kind: str) -> bool:
    """Whether messages of `kind` reach people who said /notify off."""
    return rule_of(kind).essential


def resend_key(message_id: int) -> str:
    return f"{RESEND_PREFIX}{message_id}"


def _resend(session: Session, message_id: int, dedupe_key: str, kind: str, chat_id: int,
            payload: dict[str, Any], priority: int | None, request_at: datetime) -> bool:
    """Queue the one copy of a message whose outcome is unknown, if its kind wants one (never of
    a copy, nor of an edit). True if queued now."""
    rule = rule_of(kind)
    if rule.resend_after is None or dedupe_key.startswith(RESEND_PREFIX) or payload.get("edit") is not None:
        return False
    copy = buttons.plain(session, payload)  # its buttons are issued afresh, meaning the same
    copy = {**copy, "text": t(rule.resend_mark) + str(copy.get("text") or "")}
    queued = enqueue(session, dedupe_key=resend_key(message_id), kind=kind, chat_id=chat_id, payload=copy,
                     not_before=request_at + rule.resend_after, priority=priority)
    if queued:
        log.warning("outbox %s (%s): outcome unknown; sent once more (marked) from %s", message_id, kind,
                    (request_at + rule.resend_after).isoformat(timespec="seconds"))
    return queued


@functools.cache
def _insert(dialect: str) -> Any:
    """INSERT of one message that does nothing when its dedupe key is queued already, RETURNING id.

    On SQLite it is INSERT OR IGNORE: SQLAlchemy caches its compiled form, where ON CONFLICT
    statements are compiled afresh each time (a third of the cost of queueing a message). OR
    IGNORE would also skip a NOT NULL violation, but every column is given a value above."""
    table = OutboxMessage.__table__
    assert isinstance(table, Table)
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(table.c.id)
    return sa_insert(table).prefix_with("OR IGNORE").returning(table.c.id)


def enqueue(session: Session, *, dedupe_key: str, kind: str, chat_id: int, payload: dict[str, Any],
            not_before: datetime | None = None, priority: int | None = None,
            payload_after: dict[str, Any] | None = None) -> bool:
    """Queue a message in the caller's transaction; False if `dedupe_key` was already queued.
    Its buttons' data is stored in the same transaction (core.messaging.buttons): they carry tokens.
    `payload_after`: what the row keeps instead of `payload` once it is settled (a secret's message)."""
    payload, issued = buttons.tokenize(payload)
    values = dict(dedupe_key=dedupe_key, kind=kind, chat_id=chat_id, payload=payload, payload_after=payload_after,
                  priority=priority_of(kind, priority), send_state=SendState.pending, attempts=0,
                  next_attempt_at=(not_before or utcnow()), created_at=utcnow(), updated_at=utcnow())
    # Core, not the ORM's bulk path: the statement is compiled once, not once per message.
    connection = session.connection()
    queued = connection.execute(_insert(connection.dialect.name), values).scalar_one_or_none() is not None
    if queued:
        buttons.store(session, issued)
    return queued


def enqueue_many(session: Session, messages: list[dict[str, Any]], *, kind: str = "notice",
                 chunk: int = 500, priority: int | None = None) -> int:
    """Queue many messages ({"dedupe_key", "chat_id", "payload"}) in a few multi-row INSERTs;
    how many were new (a dedupe key already queued is skipped, as with `enqueue`)."""
    now = utcnow()
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    queued = 0
    for start in range(0, len(messages), chunk):
        rows, issued = [], {}
        for m in messages[start:start + chunk]:
            payload, issued[m["dedupe_key"]] = buttons.tokenize(m["payload"])
            rows.append(dict(dedupe_key=m["dedupe_key"], kind=kind, chat_id=m["chat_id"], payload=payload,
                             priority=priority_of(kind, priority), send_state=SendState.pending, attempts=0, next_attempt_at=now, created_at=now,
                             updated_at=now))
        stmt = dialect.insert(OutboxMessage).values(rows).on_conflict_do_nothing(index_elements=["dedupe_key"])
        new = session.execute(stmt.returning(OutboxMessage.dedupe_key)).scalars().all()
        buttons.store(session, {token: data for key in new for token, data in issued[key].items()}, now)
        queued += len(new)
    return queued


# Set with every settled state: a secret's payload is replaced by what it may keep.
SETTLED = {"payload": func.coalesce(OutboxMessage.payload_after, OutboxMessage.payload), "payload_after": null()}


def _lapsed(now: datetime) -> Any:
    return (OutboxMessage.send_state == SendState.sending) & (OutboxMessage.lease_until <= now)


def _due(now: datetime) -> Any:
    """Messages to send now: pending and due, or leased by a sender whose lease ran out between
    two requests (nothing of it is unanswered)."""
    return or_((OutboxMessage.send_state == SendState.pending) & (OutboxMessage.next_attempt_at <= now),
               _lapsed(now) & OutboxMessage.in_flight.is_(False))


def has_due(session: Session, now: datetime | None = None) -> bool:
    """Whether `claim` has anything to do: a read, so an idle dispatcher pass takes no write lock."""
    now = now or utcnow()
    return session.scalar(select(OutboxMessage.id).where(_due(now) | _lapsed(now)).limit(1)) is not None


def settle_abandoned(session: Session, now: datetime | None = None, lease: timedelta = LEASE) -> int:
    """Rows whose lease ran out while a request was in flight become `unconfirmed`: their
    dispatcher died (or hung) after it may have reached Telegram. A kind that is resent on an
    unknown outcome gets its copy, due `resend_after` from that request (its lease, `lease`
    long, began with it). How many."""
    now = now or utcnow()
    o = OutboxMessage
    found = (select(o.id, o.dedupe_key, o.kind, o.chat_id, o.payload, o.priority, o.lease_until)
             .where(_lapsed(now), o.in_flight.is_(True)))
    if session.get_bind().dialect.name == "postgresql":  # SQLite: the write lock is held already
        found = found.with_for_update(skip_locked=True)
    rows = session.execute(found).all()
    if not rows:
        return 0
    session.execute(
        update(o).where(o.id.in_([row.id for row in rows]))
        .values(send_state=SendState.unconfirmed, lease_until=None, in_flight=False,
                last_error="no answer: the dispatcher stopped during the request", **SETTLED)
        .execution_options(synchronize_session=False))
    for row in rows:
        if row.kind in RESENT_KINDS:
            _resend(session, row.id, row.dedupe_key, row.kind, row.chat_id, row.payload, row.priority,
                    request_at=row.lease_until - lease)
    log.warning("%d outbox message(s) were in flight when their dispatcher stopped: unconfirmed", len(rows))
    return len(rows)


def claim(session: Session, limit: int = 50, now: datetime | None = None,
          lease: timedelta = LEASE) -> list[Claimed]:
    """Take up to `limit` due messages for sending, the most urgent (lowest `priority`) first,
    then the oldest; commit promptly after."""
    now = now or utcnow()
    settle_abandoned(session, now)
    due = (select(OutboxMessage).where(_due(now))
           .order_by(OutboxMessage.priority, OutboxMessage.next_attempt_at, OutboxMessage.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    return _lease(session, list(session.scalars(due)), now + lease)


def _lease(session: Session, rows: list[OutboxMessage], until: datetime) -> list[Claimed]:
    claimed = []
    for row in rows:
        row.send_state = SendState.sending
        row.lease_until = until
        row.attempts += 1
        row.in_flight = False
        claimed.append(Claimed(row.id, row.kind, row.chat_id, dict(row.payload), row.attempts,
                               row.pieces_sent or 0, row.dedupe_key,
                               PRIORITY_NORMAL if row.priority is None else row.priority))
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


def _mine(message_id: int, token: int | None) -> Any:
    """The row, if (with a token) the lease `token` names still holds it."""
    clause = OutboxMessage.id == message_id
    if token is not None:
        clause = clause & (OutboxMessage.attempts == token) & OutboxMessage.send_state.in_(HELD)
    return clause


def _updated(session: Session, message_id: int, token: int | None, what: str, **values: Any) -> bool:
    result = session.execute(update(OutboxMessage).where(_mine(message_id, token)).values(**values)
                             .execution_options(synchronize_session=False))
    done = bool(getattr(result, "rowcount", 0))
    if not done and token is not None:
        log.warning("outbox %s: lease %s no longer holds the row; %s not recorded", message_id, token, what)
    return done


def begin_request(session: Session, message_id: int, token: int, now: datetime | None = None,
                  lease: timedelta = LEASE) -> bool:
    """Commit this just before a request: the row is in flight (and its lease renewed).
    False if the lease `token` lost the row (taken over, or settled): send nothing then."""
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.attempts == token,
               OutboxMessage.send_state == SendState.sending, OutboxMessage.in_flight.is_(False))
        .values(in_flight=True, lease_until=(now or utcnow()) + lease)
        .execution_options(synchronize_session=False))
    return bool(getattr(result, "rowcount", 0))


def piece_sent(session: Session, message_id: int, token: int, pieces_sent: int, *,
               next_in_flight: bool, now: datetime | None = None, lease: timedelta = LEASE) -> bool:
    """Telegram confirmed the first `pieces_sent` pieces; `next_in_flight`: the next request
    goes out right after this commit (it is its `begin_request`)."""
    return _updated(session, message_id, token, "piece", send_state=SendState.sending,
                    pieces_sent=pieces_sent, in_flight=next_in_flight,
                    lease_until=(now or utcnow()) + lease)


def request_answered(session: Session, message_id: int, token: int) -> bool:
    """The request in flight got an answer that says nothing was sent (e.g. ChatMigrated)."""
    return _updated(session, message_id, token, "answer", in_flight=False)


def mark_sent(session: Session, message_id: int, telegram_message_id: int | None = None,
              now: datetime | None = None, *, token: int | None = None,
              pieces_sent: int | None = None, kind: str | None = None) -> bool:
    """Telegram confirmed the message. `kind` (the row's): for a kind resent on an unknown
    outcome, a copy still waiting is called off — an answer so late that another dispatcher had
    settled the row `unconfirmed` meanwhile."""
    values: dict[str, Any] = dict(send_state=SendState.sent, sent_at=now or utcnow(), lease_until=None,
                                  in_flight=False, telegram_message_id=telegram_message_id, last_error=None,
                                  **SETTLED)
    if pieces_sent is not None:
        values["pieces_sent"] = pieces_sent
    done = _updated(session, message_id, token, "sent", **values)
    if done and kind in RESENT_KINDS and _call_off_copy(session, message_id):
        log.info("outbox %s: confirmed after all; its copy is not sent", message_id)
    return done


def _call_off_copy(session: Session, message_id: int) -> bool:
    """Drop the copy of message `message_id` if it is still waiting; whether there was one."""
    result = session.execute(delete(OutboxMessage).where(OutboxMessage.dedupe_key == resend_key(message_id),
                                                         OutboxMessage.send_state == SendState.pending)
                             .execution_options(synchronize_session=False))
    return bool(getattr(result, "rowcount", 0))


def reached(session: Session, dedupe_key: str) -> bool:
    """The message queued under `dedupe_key` reached its chat after all (its reader answered
    it, e.g. pressed one of its buttons): a copy of it still waiting is called off. Whether one was."""
    message_id = session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key))
    if message_id is None or not _call_off_copy(session, message_id):
        return False
    log.info("outbox %s: answered, so it arrived; its copy is not sent", message_id)
    return True


def backoff(attempts: int) -> timedelta:
    """2 s, 4 s, 8 s … capped at 10 minutes."""
    return min(MAX_BACKOFF, BASE_BACKOFF * (2 ** max(0, attempts - 1)))


def retry_later(session: Session, message_id: int, error: str, *, retry_after: float | None = None,
                now: datetime | None = None, token: int | None = None) -> SendState | None:
    """Nothing (more) reached Telegram: due again after `retry_after` (Telegram's 429, which
    does not count as an attempt) or after the backoff (a failed attempt; after MAX_ATTEMPTS
    the row fails). None if the lease `token` no longer holds the row."""
    now = now or utcnow()
    row = session.get(OutboxMessage, message_id, populate_existing=True, with_for_update=True)
    if row is None:
        raise LookupError(f"outbox message {message_id} does not exist")
    if token is not None and (row.attempts != token or row.send_state not in HELD):
        log.warning("outbox %s: lease %s no longer holds the row; retry not recorded", message_id, token)
        return None
    if retry_after is None and row.attempts >= MAX_ATTEMPTS:
        return mark_failed(session, message_id, f"gave up after {row.attempts} attempts: {error}")
    if retry_after is not None:
        row.attempts = max(0, row.attempts - 1)  # Telegram's pace, not a failed attempt
        delay = timedelta(seconds=retry_after)
    else:
        delay = backoff(row.attempts)
    row.send_state = SendState.pending
    row.next_attempt_at = now + delay
    row.lease_until = None
    row.in_flight = False
    row.last_error = error[:1000]
    session.flush()
    return SendState.pending


def release(session: Session, message_id: int, token: int, now: datetime | None = None) -> bool:
    """Give back a claimed row no request was started for (the dispatcher is stopping): due
    at once for the next one, the claim not counted as an attempt."""
    return _updated(session, message_id, token, "release", send_state=SendState.pending,
                    attempts=OutboxMessage.attempts - 1, next_attempt_at=now or utcnow(),
                    lease_until=None, in_flight=False)


def mark_failed(session: Session, message_id: int, error: str, *, token: int | None = None) -> SendState | None:
    """A permanent failure: never retried."""
    if not _updated(session, message_id, token, "failure", send_state=SendState.failed, lease_until=None,
                    in_flight=False, last_error=error[:1000], **SETTLED):
        return None
    return SendState.failed


def mark_unconfirmed(session: Session, message_id: int, error: str, *,
                     token: int | None = None, now: datetime | None = None) -> SendState | None:
    """Telegram may have the request, but no answer came: not a failure, and never sent again —
    except a kind that is resent on an unknown outcome, which gets its one copy (due
    `resend_after` from `now`)."""
    if not _updated(session, message_id, token, "unconfirmed", send_state=SendState.unconfirmed,
                    lease_until=None, in_flight=False, last_error=error[:1000], **SETTLED):
        return None
    o = OutboxMessage
    row = session.execute(select(o.dedupe_key, o.kind, o.chat_id, o.payload, o.priority)
                          .where(o.id == message_id)).one()
    if row.kind in RESENT_KINDS:
        _resend(session, message_id, row.dedupe_key, row.kind, row.chat_id, row.payload, row.priority,
                request_at=now or utcnow())
    return SendState.unconfirmed


def migrate_chat(session: Session, old_chat_id: int, new_chat_id: int) -> int:
    """A group became a supergroup (Telegram's ChatMigrated): the branch whose group it is and
    every message still to be sent there follow it. How many messages moved."""
    moved = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.chat_id == old_chat_id, OutboxMessage.send_state.in_(OPEN))
        .values(chat_id=new_chat_id)
        .execution_options(synchronize_session=False))
    branch = session.scalar(select(Branch).where(Branch.telegram_chat_id == old_chat_id))
    if branch is not None:
        taken = session.scalar(select(Branch.id).where(Branch.telegram_chat_id == new_chat_id))
        if taken is None:
            branch.telegram_chat_id = new_chat_id
            audit.record(session, None, "branch.chat_migrated", f"branch:{branch.id}",
                         {"from": old_chat_id, "to": new_chat_id})
            session.flush()
        else:
            log.warning("chat %s migrated to %s, which is already branch %s's group: branch %s keeps "
                        "its old chat id", old_chat_id, new_chat_id, taken, branch.id)
    n = int(getattr(moved, "rowcount", 0) or 0)
    log.info("chat %s migrated to %s: %d queued message(s) follow%s", old_chat_id, new_chat_id, n,
             f", branch {branch.id} updated" if branch is not None else "")
    return n


def counts(session: Session) -> dict[str, int]:
    """How many messages are in each send state (for `gridbot` and metrics)."""
    rows = session.execute(select(OutboxMessage.send_state, func.count()).group_by(OutboxMessage.send_state))
    return {state.value if isinstance(state, SendState) else str(state): n for state, n in rows}
