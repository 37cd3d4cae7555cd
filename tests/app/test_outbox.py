"""The outbox: queued once, claimed by one dispatcher at a time, retried with backoff."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import String, func, select
from sqlalchemy.orm import Session, sessionmaker

from core.db import session_scope
from core.messaging import outbox
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
        assert msg.attempts == 1  # the 429 did not count as an attempt
        outbox.retry_later(s, msg.id, "Internal Server Error", now=now)
        row = s.get(OutboxMessage, msg.id)
        assert row is not None and row.next_attempt_at == now + outbox.backoff(1) == now + timedelta(seconds=2)
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


def test_a_row_in_flight_when_its_lease_runs_out_is_unconfirmed_not_due(factory: sessionmaker[Session]) -> None:
    """kill -9 during a request: Telegram may have it, so it is never sent again; the batch's
    other rows, which no request had started for, are due again."""
    _queue(factory, 3)
    now = utcnow()
    with session_scope(factory) as s:
        a, b, c = outbox.claim(s, limit=10, now=now)
    with session_scope(factory) as s:
        assert outbox.begin_request(s, a.id, a.attempts, now=now)
        assert outbox.piece_sent(s, a.id, a.attempts, 1, next_in_flight=False, now=now)
        assert outbox.begin_request(s, b.id, b.attempts, now=now)  # ... and the process dies
    later = now + outbox.LEASE + timedelta(seconds=1)
    with session_scope(factory) as s:
        assert outbox.has_due(s, later)
        again = outbox.claim(s, limit=10, now=later)
    assert sorted(x.id for x in again) == sorted([a.id, c.id])
    assert {x.id: x.pieces_sent for x in again} == {a.id: 1, c.id: 0}  # a resumes after its first piece
    with session_scope(factory) as s:
        row = s.get(OutboxMessage, b.id)
        assert row is not None and row.send_state is SendState.unconfirmed and not row.in_flight
        assert outbox.counts(s) == {"sending": 2, "unconfirmed": 1}
    with session_scope(factory) as s:  # an unconfirmed row is never claimed again
        assert b.id not in [x.id for x in outbox.claim(s, limit=10, now=later + outbox.LEASE * 10)]


def test_a_lease_taken_over_changes_nothing(factory: sessionmaker[Session]) -> None:
    _queue(factory, 1)
    now = utcnow()
    with session_scope(factory) as s:
        (stale,) = outbox.claim(s, now=now)
    with session_scope(factory) as s:
        (fresh,) = outbox.claim(s, now=now + outbox.LEASE + timedelta(seconds=1))
    with session_scope(factory) as s:
        assert not outbox.begin_request(s, stale.id, stale.attempts)
        assert outbox.retry_later(s, stale.id, "late", token=stale.attempts) is None
        assert outbox.mark_failed(s, stale.id, "late", token=stale.attempts) is None
        assert outbox.mark_unconfirmed(s, stale.id, "late", token=stale.attempts) is None
        assert not outbox.mark_sent(s, stale.id, 1, token=stale.attempts)
        assert outbox.begin_request(s, fresh.id, fresh.attempts)
        assert not outbox.begin_request(s, fresh.id, fresh.attempts)  # one request at a time
        assert outbox.mark_sent(s, fresh.id, 7, token=fresh.attempts, pieces_sent=1)
    with session_scope(factory) as s:
        row = s.get(OutboxMessage, fresh.id)
        assert row is not None and (row.send_state, row.telegram_message_id, row.in_flight) == (
            SendState.sent, 7, False)


def test_429s_never_count_as_attempts_and_never_give_up(factory: sessionmaker[Session]) -> None:
    _queue(factory, 1)
    when = utcnow()
    for _ in range(5 * outbox.MAX_ATTEMPTS):
        with session_scope(factory) as s:
            (msg,) = outbox.claim(s, now=when)
            assert msg.attempts == 1
            assert outbox.retry_later(s, msg.id, "RetryAfter 1s", retry_after=1, now=when,
                                      token=msg.attempts) is SendState.pending
        when += timedelta(seconds=1)
    with session_scope(factory) as s:
        (msg,) = outbox.claim(s, now=when)
        outbox.mark_sent(s, msg.id, token=msg.attempts)
        assert outbox.counts(s) == {"sent": 1}


def test_migration_adds_pieces_and_in_flight_and_downgrade_fails_unconfirmed(empty_db_url: str) -> None:
    from sqlalchemy import inspect, text

    from core.db import make_engine
    from core.migrate import downgrade, upgrade

    engine = make_engine(empty_db_url)
    upgrade(engine, "e5f6a7b8c9d0")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO outbox (dedupe_key, kind, chat_id, payload, send_state, attempts, next_attempt_at) "
            "VALUES ('old', 'notice', 1, '{}', 'sending', 1, CURRENT_TIMESTAMP)"))
    upgrade(engine)
    assert {"pieces_sent", "in_flight"} <= {c["name"] for c in inspect(engine).get_columns("outbox")}
    with engine.begin() as conn:
        assert conn.execute(text("SELECT pieces_sent, in_flight FROM outbox")).one() == (0, False)
        conn.execute(text("UPDATE outbox SET send_state = 'unconfirmed'"))
    downgrade(engine, "e5f6a7b8c9d0")
    assert "in_flight" not in {c["name"] for c in inspect(engine).get_columns("outbox")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT send_state FROM outbox")).scalar_one() == "failed"
    engine.dispose()


def test_claims_take_the_most_urgent_first(factory: sessionmaker[Session]) -> None:
    """-1 replies and emergencies, 1 cards and reminders, 2 broadcasts: a claim of fewer rows than
    are due takes the urgent ones, whatever their age; equal priorities go oldest first."""
    now = utcnow()
    with session_scope(factory) as s:
        for i in range(3):
            outbox.enqueue(s, dedupe_key=f"bulk:{i}", kind="notice", chat_id=10 + i, payload={"text": "通知"},
                           priority=outbox.PRIORITY_BULK, not_before=now - timedelta(minutes=5))
        outbox.enqueue(s, dedupe_key="card", kind="card", chat_id=-100, payload={"text": "工单"},
                       not_before=now - timedelta(minutes=1))
        outbox.enqueue(s, dedupe_key="reply", kind="reply", chat_id=20, payload={"text": "收到"}, not_before=now)
        outbox.enqueue(s, dedupe_key="emergency", kind="card", chat_id=-100, payload={"text": "【紧急】"},
                       priority=outbox.PRIORITY_URGENT, not_before=now - timedelta(seconds=1))
    with session_scope(factory) as s:
        priorities = dict(s.execute(select(OutboxMessage.dedupe_key, OutboxMessage.priority)).tuples().all())
        assert priorities == {"bulk:0": 2, "bulk:1": 2, "bulk:2": 2, "card": 1, "reply": -1, "emergency": -1}
        first = outbox.claim(s, limit=3, now=now)
        assert [(c.dedupe_key, c.priority) for c in first] == [("emergency", -1), ("reply", -1), ("card", 1)]
        rest = outbox.claim(s, limit=10, now=now)
        assert [c.dedupe_key for c in rest] == ["bulk:0", "bulk:1", "bulk:2"]


def test_a_secret_is_kept_only_until_its_row_is_settled(factory: sessionmaker[Session]) -> None:
    """payload_after replaces the payload once no request of the row will be made again: sent,
    failed (at once or after its attempts), or unconfirmed (a read timeout, or a dispatcher that died
    in the middle); a retry, a release or a 429 keeps the secret, since the message still has to go."""
    secret, kept = {"text": "链接 https://x/centre/login/SECRET", "no_preview": True}, {"text": "链接已发出"}
    with session_scope(factory) as s:
        for name in ("sent", "failed", "timeout", "died", "plain"):
            outbox.enqueue(s, dedupe_key=f"secret:{name}", kind="reply", chat_id=1,
                           payload=secret if name != "plain" else {"text": "普通"},
                           payload_after=kept if name != "plain" else None)
    now = utcnow()
    with session_scope(factory) as s:
        rows = {c.dedupe_key.split(":")[1]: c for c in outbox.claim(s, limit=10, now=now)}
        assert all("SECRET" in c.payload["text"] for name, c in rows.items() if name != "plain")
    with session_scope(factory) as s:
        sent, failed, timeout, died = (rows[n] for n in ("sent", "failed", "timeout", "died"))
        # still to go: the secret stays
        assert outbox.retry_later(s, sent.id, "429", retry_after=1, now=now, token=sent.attempts)
        assert "SECRET" in s.get(OutboxMessage, sent.id, populate_existing=True).payload["text"]  # type: ignore[union-attr]
        assert outbox.begin_request(s, failed.id, failed.attempts, now=now)
        assert outbox.mark_failed(s, failed.id, "Forbidden", token=failed.attempts)
        assert outbox.begin_request(s, timeout.id, timeout.attempts, now=now)
        assert outbox.mark_unconfirmed(s, timeout.id, "TimedOut", token=timeout.attempts)
        assert outbox.begin_request(s, died.id, died.attempts, now=now)  # ... and the process dies
        assert outbox.mark_sent(s, rows["plain"].id, 1, token=rows["plain"].attempts)
    later = now + outbox.LEASE + timedelta(seconds=2)
    with session_scope(factory) as s:
        [again] = outbox.claim(s, now=later)  # the 429'd one; `died` is settled as unconfirmed
        assert again.id == sent.id and "SECRET" in again.payload["text"]
    with session_scope(factory) as s:
        assert outbox.begin_request(s, again.id, again.attempts, now=later)
        assert outbox.mark_sent(s, again.id, 9, token=again.attempts, pieces_sent=1)
    with session_scope(factory) as s:
        stored = {r.dedupe_key.split(":")[1]: r for r in s.scalars(select(OutboxMessage))}
        assert {n: r.send_state for n, r in stored.items()} == {
            "sent": SendState.sent, "failed": SendState.failed, "timeout": SendState.unconfirmed,
            "died": SendState.unconfirmed, "plain": SendState.sent}
        for name in ("sent", "failed", "timeout", "died"):
            assert stored[name].payload == kept and stored[name].payload_after is None, name
        assert stored["plain"].payload == {"text": "普通"} and stored["plain"].payload_after is None
        # nothing of the secret is left anywhere in the table
        assert s.scalar(select(func.count()).select_from(OutboxMessage).where(
            func.cast(OutboxMessage.payload, String).like("%SECRET%"))) == 0
