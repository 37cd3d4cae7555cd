"""The outbox: queued once, claimed by one dispatcher at a time, retried with backoff."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core import outbox
from core.db import session_scope
from core.models import OutboxMessage, SendState, utcnow


def _queue(factory: sessionmaker[Session], n: int, prefix: str = "m") -> None:
    with session_scope(factory) as s:
        for i in range(n):
            outbox.enqueue(s, dedupe_key=f"{prefix}:{i}", kind="notice", chat_id=1000 + i % 7, payload={"text": f"第{i}条"})


def test_same_key_is_queued_once(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as s:
        assert outbox.enqueue(s, dedupe_key="ticket-card:2026-000001", kind="card", chat_id=-1001, payload={"a": 1})
        assert not outbox.enqueue(s, dedupe_key="ticket-card:2026-000001", kind="card", chat_id=-1001, payload={"a": 2})
    with session_scope(factory) as s:
        rows = s.scalars(select(OutboxMessage)).all()
        assert [(r.dedupe_key, r.payload, r.send_state) for r in rows] == [("ticket-card:2026-000001", {"a": 1}, SendState.pending)]


def test_a_rolled_back_change_queues_nothing(factory: sessionmaker[Session]) -> None:
    with pytest.raises(RuntimeError), session_scope(factory) as s:
        outbox.enqueue(s, dedupe_key="k", kind="card", chat_id=1, payload={})
        raise RuntimeError("the change failed")
    with session_scope(factory) as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_claim_lease_and_recovery_after_a_crash(factory: sessionmaker[Session]) -> None:
    _queue(factory, 3)
    now = utcnow()
    with session_scope(factory) as s:
        first = outbox.claim(s, limit=10, now=now)
    assert len(first) == 3 and all(c.attempts == 1 for c in first)
    with session_scope(factory) as s:
        assert outbox.claim(s, limit=10, now=now + timedelta(seconds=30)) == []  # leased
    # The dispatcher died without reporting: after the lease the rows are due again.
    with session_scope(factory) as s:
        again = outbox.claim(s, limit=10, now=now + outbox.LEASE + timedelta(seconds=1))
    assert sorted(c.id for c in again) == sorted(c.id for c in first)
    assert all(c.attempts == 2 for c in again)


def test_has_due_agrees_with_claim(factory: sessionmaker[Session]) -> None:
    now = utcnow()
    with session_scope(factory) as s:
        assert not outbox.has_due(s, now)  # empty
    _queue(factory, 2)
    now = utcnow()
    with session_scope(factory) as s:
        assert outbox.has_due(s, now)
        a, b = outbox.claim(s, limit=10, now=now)
    with session_scope(factory) as s:
        assert not outbox.has_due(s, now)  # both leased
        assert outbox.has_due(s, now + outbox.LEASE + timedelta(seconds=1))  # the lease ran out
        outbox.mark_sent(s, a.id, telegram_message_id=1)
        outbox.mark_failed(s, b.id, "Forbidden")
    with session_scope(factory) as s:
        assert not outbox.has_due(s, now + outbox.LEASE + timedelta(seconds=1))


def test_sent_and_failed_are_never_claimed_again(factory: sessionmaker[Session]) -> None:
    _queue(factory, 2)
    with session_scope(factory) as s:
        a, b = outbox.claim(s, limit=10)
        outbox.mark_sent(s, a.id, telegram_message_id=77)
        outbox.mark_failed(s, b.id, "Forbidden: bot was blocked by the user")
    with session_scope(factory) as s:
        assert outbox.claim(s, limit=10, now=utcnow() + timedelta(days=1)) == []
        assert outbox.counts(s) == {"sent": 1, "failed": 1}
        sent = s.get(OutboxMessage, a.id)
        assert sent is not None and sent.telegram_message_id == 77 and sent.sent_at is not None


def test_retry_after_and_backoff_then_give_up(factory: sessionmaker[Session]) -> None:
    _queue(factory, 1)
    now = utcnow()
    with session_scope(factory) as s:
        (msg,) = outbox.claim(s, now=now)
        assert outbox.retry_later(s, msg.id, "Too Many Requests", retry_after=3, now=now) is SendState.pending
    with session_scope(factory) as s:
        assert outbox.claim(s, now=now + timedelta(seconds=2)) == []
        (msg,) = outbox.claim(s, now=now + timedelta(seconds=3))
        outbox.retry_later(s, msg.id, "Internal Server Error", now=now)
        row = s.get(OutboxMessage, msg.id)
        assert row is not None and row.next_attempt_at == now + outbox.backoff(2) == now + timedelta(seconds=4)
        assert row.last_error == "Internal Server Error"
    when = now
    for _ in range(outbox.MAX_ATTEMPTS):
        when += outbox.MAX_BACKOFF
        with session_scope(factory) as s:
            claimed = outbox.claim(s, now=when)
            if not claimed:
                break
            state = outbox.retry_later(s, claimed[0].id, "Internal Server Error", now=when)
    assert state is SendState.failed
    with session_scope(factory) as s:
        row = s.get(OutboxMessage, msg.id)
        assert row is not None and row.attempts == outbox.MAX_ATTEMPTS
        assert row.last_error is not None and row.last_error.startswith("gave up after")


def test_backoff_is_exponential_and_capped() -> None:
    assert [outbox.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert outbox.backoff(30) == outbox.MAX_BACKOFF


def test_concurrent_dispatchers_never_claim_the_same_message(factory: sessionmaker[Session]) -> None:
    _queue(factory, 200)
    taken: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def dispatcher() -> None:
        barrier.wait()
        while True:
            try:
                with session_scope(factory) as s:
                    batch = outbox.claim(s, limit=7)
                    for c in batch:
                        outbox.mark_sent(s, c.id)
            except BaseException as exc:  # noqa: BLE001 - asserted below
                errors.append(exc)
                return
            if not batch:
                return
            with lock:
                taken.extend(c.id for c in batch)

    threads = [threading.Thread(target=dispatcher) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(taken) == 200 and len(set(taken)) == 200


def test_claim_keys_takes_only_those_pending_rows_and_a_crash_leaves_them_to_the_dispatcher(
        factory: sessionmaker[Session]) -> None:
    _queue(factory, 4)
    now = utcnow()
    with session_scope(factory) as s:
        outbox.mark_sent(s, outbox.claim_keys(s, ["m:3"], now=now)[0].id, 42)
    with session_scope(factory) as s:
        mine = outbox.claim_keys(s, ["m:2", "m:0", "m:3", "nope"], now=now)
    # queue order, the sent one and unknown keys left out, each leased once
    assert [c.payload["text"] for c in mine] == ["第0条", "第2条"] and all(c.attempts == 1 for c in mine)
    with session_scope(factory) as s:
        assert outbox.claim_keys(s, ["m:0", "m:2"], now=now) == []  # already taken
        others = outbox.claim(s, limit=10, now=now)
    assert [c.payload["text"] for c in others] == ["第1条"]
    # The process that claimed them died before sending: after the lease the dispatcher sends them.
    with session_scope(factory) as s:
        later = outbox.claim(s, limit=10, now=now + outbox.LEASE + timedelta(seconds=1))
    assert sorted(c.payload["text"] for c in later) == ["第0条", "第1条", "第2条"]
