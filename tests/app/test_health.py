"""`gridbot health`: the queues' counts, ages and exit status; nothing personal in its output."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from core import health
from core import leader as leadership
from core.config import PROJECT_ROOT
from core.db import make_engine, make_session_factory, session_scope
from core.duties import events
from core.messaging import inbox, outbox
from core.messaging import updates as stored
from core.models import (
    Audience,
    Branch,
    DeadlineStep,
    EventKind,
    InboxState,
    OutboxMessage,
    Person,
    SendState,
    Ticket,
    TicketDeadline,
    utcnow,
)
from core.scheduler import DutyScheduler, LeaderLock
from tests.app.centre_helpers import file_ticket
from tests.app.conftest import _migrated

TZ = ZoneInfo("Asia/Shanghai")

SECRET_TEXT = "机密：张三住在3号楼502室"
RESIDENT = 730_000_001


def _inbox(factory: sessionmaker[Session], age: timedelta, state: InboxState = InboxState.pending,
           retry_in: timedelta | None = None) -> None:
    with session_scope(factory) as s:
        row = inbox.accept(s, sender_id=RESIDENT, chat_id=RESIDENT, text=SECRET_TEXT)
        row.received_at = utcnow() - age
        row.state = state
        row.retry_at = None if retry_in is None else utcnow() + retry_in


def _outbox(factory: sessionmaker[Session], key: str, age: timedelta, state: SendState,
            due_in: timedelta = timedelta(0), lease_in: timedelta | None = None) -> None:
    with session_scope(factory) as s:
        outbox.enqueue(s, dedupe_key=key, kind="reply", chat_id=RESIDENT, payload={"text": SECRET_TEXT})
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.dedupe_key == key)).one()
        row.created_at = utcnow() - age
        row.send_state = state
        row.next_attempt_at = utcnow() + due_in
        row.lease_until = None if lease_in is None else utcnow() + lease_in


def _owed_reminder(factory: sessionmaker[Session], due_ago: timedelta) -> int:
    """A study session whose 60-minute reminder fell due `due_ago` ago and was never queued."""
    with session_scope(factory) as s:
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        secretary = s.scalars(select(Person).where(Person.code == "P-0001")).one()
        member = s.scalars(select(Person).where(Person.code == "P-0002")).one()
        event = events.create_event(
            s, secretary, branch_id=branch.id, kind=EventKind.study, title="学习", place="201室",
            starts_at=utcnow() + timedelta(minutes=60) - due_ago, reminder_offsets=[60],
            audience=Audience.people, person_ids=[member.id], notify=False, tz=TZ.key)
        event.updated_at = utcnow() - due_ago - timedelta(hours=1)  # set up well before
        return event.id


def _state(factory: sessionmaker[Session]) -> health.Health:
    with session_scope(factory) as s:
        return health.check(s)


@contextmanager
def _leading(engine: Engine) -> Iterator[LeaderLock]:
    """A process holding the scheduler's lead (its lock only: no work runs)."""
    lock = LeaderLock(engine.url.render_as_string(hide_password=False))
    assert lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


@pytest.fixture
def leader(engine: Engine) -> Iterator[LeaderLock]:
    with _leading(engine) as lock:
        yield lock


def test_every_queue_is_counted_with_its_oldest_age_and_what_is_stuck(demo_factory: sessionmaker[Session],
                                                                      leader: LeaderLock) -> None:
    assert _state(demo_factory).exit_status == health.OK
    assert all(q.count == 0 and q.oldest_seconds is None for q in _state(demo_factory).queues)

    _inbox(demo_factory, timedelta(seconds=30))
    _inbox(demo_factory, timedelta(minutes=20))  # Rasa has not answered for 20 minutes: stuck
    _inbox(demo_factory, timedelta(minutes=2), retry_in=timedelta(seconds=100))  # retried soon
    _outbox(demo_factory, "a", timedelta(seconds=10), SendState.pending)
    _outbox(demo_factory, "b", timedelta(minutes=40), SendState.pending, due_in=timedelta(minutes=-30))
    _outbox(demo_factory, "c", timedelta(minutes=15), SendState.sending, lease_in=timedelta(minutes=-10))
    _outbox(demo_factory, "d", timedelta(minutes=3), SendState.unconfirmed)
    _owed_reminder(demo_factory, timedelta(minutes=7))
    state = _state(demo_factory)
    queues = {q.name: q for q in state.queues}
    assert {n: (q.count, q.stuck) for n, q in queues.items()} == {
        "inbox_pending": (2, 1), "inbox_retrying": (1, 0), "inbox_failed": (0, 0),
        "outbox_pending": (2, 1), "outbox_sending": (1, 1), "outbox_unconfirmed": (1, 0),
        "outbox_failed": (0, 0), "reminders_unqueued": (1, 1), "updates_pending": (0, 0)}
    assert queues["inbox_pending"].oldest_seconds == pytest.approx(20 * 60, abs=5)
    assert queues["outbox_pending"].oldest_seconds == pytest.approx(40 * 60, abs=5)
    assert queues["reminders_unqueued"].oldest_seconds == pytest.approx(7 * 60, abs=5)
    assert state.exit_status == health.STUCK and state.stuck == 4 and state.failed == 0
    # an overdue retry is stuck too; any failure outranks being stuck
    _inbox(demo_factory, timedelta(minutes=30), retry_in=timedelta(minutes=-6))
    assert {q.name: q.stuck for q in _state(demo_factory).queues}["inbox_retrying"] == 1
    _inbox(demo_factory, timedelta(hours=2), state=InboxState.failed)
    _outbox(demo_factory, "e", timedelta(hours=1), SendState.failed)
    state = _state(demo_factory)
    assert (state.failed, state.exit_status) == (2, health.FAILED)
    assert state.problems[:2] == ["inbox_failed: 1 failed", "outbox_failed: 1 failed"]


def test_a_reminder_the_sweep_queued_is_no_longer_owed(demo_factory: sessionmaker[Session],
                                                        engine: Engine, leader: LeaderLock) -> None:
    _owed_reminder(demo_factory, timedelta(minutes=1))
    assert {q.name: q.count for q in _state(demo_factory).queues}["reminders_unqueued"] == 1
    sweeper = DutyScheduler(engine.url.render_as_string(hide_password=False), tz=ZoneInfo("Asia/Shanghai"))
    try:
        assert sweeper.sweep() == 1
    finally:
        sweeper.stop()
    state = _state(demo_factory)
    assert {q.name: q.count for q in state.queues}["reminders_unqueued"] == 0
    assert {q.name: q.count for q in state.queues}["outbox_pending"] == 1
    assert state.exit_status == health.OK


def _gridbot(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "LOG_LEVEL": "WARNING"}
    return subprocess.run([sys.executable, "-m", "cli.main", "health", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_command_prints_counts_only_and_exits_by_the_worst_state(tmp_path: Path) -> None:
    db = tmp_path / "gridbot.db"
    _migrated(f"sqlite:///{db}").dispose()
    factory = make_session_factory(make_engine(f"sqlite:///{db}"))
    ok = _gridbot(db)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[-1] == "status: ok"

    _inbox(factory, timedelta(minutes=10))
    stuck = _gridbot(db, "--json")
    assert stuck.returncode == health.STUCK, stuck.stderr
    body = json.loads(stuck.stdout)
    assert body["status"] == "stuck"
    assert body["queues"]["inbox_pending"] == {"count": 1, "oldest_seconds": pytest.approx(600, abs=10),
                                               "stuck": 1}
    assert _gridbot(db, "--stuck-after", "3600").returncode == health.OK  # ten minutes is not an hour

    _outbox(factory, "failed", timedelta(minutes=1), SendState.failed)
    failed = _gridbot(db)
    assert failed.returncode == health.FAILED
    assert "outbox_failed" in failed.stdout and "status: failed" in failed.stdout
    for output in (stuck.stdout, failed.stdout, failed.stderr):
        assert SECRET_TEXT not in output and "张三" not in output and str(RESIDENT) not in output


def _update(factory: sessionmaker[Session], update_id: int, age: timedelta) -> None:
    with session_scope(factory) as s:
        stored.store(s, [{"update_id": update_id, "message": {"text": SECRET_TEXT}}], now=utcnow() - age)


def _overdue_step(factory: sessionmaker[Session], due_ago: timedelta) -> None:
    """A ticket's time-limit step due `due_ago` ago that no leader has done."""
    number = file_ticket(factory, "B-HPL-01-03", "楼道灯坏了")
    with session_scope(factory) as s:
        ticket = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        s.add(TicketDeadline(ticket_id=ticket.id, step=DeadlineStep.respond_first, round=99,
                             due_at=utcnow() - due_ago))


def test_a_stored_update_not_handled_is_stuck(demo_factory: sessionmaker[Session], leader: LeaderLock) -> None:
    _update(demo_factory, 41, timedelta(seconds=20))
    state = _state(demo_factory)
    assert {q.name: (q.count, q.stuck) for q in state.queues}["updates_pending"] == (1, 0)
    assert state.exit_status == health.OK
    _update(demo_factory, 42, timedelta(minutes=9))
    state = _state(demo_factory)
    assert {q.name: (q.count, q.stuck) for q in state.queues}["updates_pending"] == (2, 1)
    assert state.exit_status == health.STUCK and "updates_pending: 1 stuck" in state.problems


def test_scheduler_lag_past_the_threshold_is_stuck(demo_factory: sessionmaker[Session], leader: LeaderLock) -> None:
    _overdue_step(demo_factory, timedelta(seconds=40))
    state = _state(demo_factory)
    assert state.scheduler_lag_seconds == pytest.approx(40, abs=5) and state.exit_status == health.OK
    _overdue_step(demo_factory, timedelta(minutes=12))
    state = _state(demo_factory)
    assert state.scheduler_lag_seconds == pytest.approx(720, abs=5)
    assert state.exit_status == health.STUCK and any("scheduler lag" in p for p in state.problems)


@pytest.mark.postgres
def test_no_leader_on_postgresql_is_stuck_and_the_leader_is_named(postgres_templates: Any) -> None:
    url = postgres_templates.create(demo=False)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    try:
        state = _state(factory)
        assert state.leader.known and state.leader.holder is None
        assert state.exit_status == health.STUCK and any("no scheduler leader" in p for p in state.problems)
        with _leading(engine):
            state = _state(factory)
            assert state.leader.holder == leadership.identity()  # host:pid of the leading process
            assert state.exit_status == health.OK
        cli = _gridbot_url(url)
        assert cli.returncode == health.STUCK and "scheduler leader: none" in cli.stdout
        assert "no scheduler leader" in cli.stdout.splitlines()[-1]
    finally:
        engine.dispose()
        postgres_templates.drop(url)


def test_sqlite_cannot_tell_the_leader_and_does_not_complain(sqlite_engine: Engine) -> None:
    state = _state(make_session_factory(sqlite_engine))
    assert not state.leader.known and state.exit_status == health.OK


def _gridbot_url(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING", **env}
    full.pop("REDIS_URL", None) if "REDIS_URL" not in env else None
    return subprocess.run([sys.executable, "-m", "cli.main", "health", *args], cwd=PROJECT_ROOT, env=full,
                          capture_output=True, text=True, timeout=120)


def test_redis_unreachable_is_named_and_stuck(tmp_path: Path) -> None:
    db = tmp_path / "gridbot.db"
    _migrated(f"sqlite:///{db}").dispose()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = _gridbot_url(f"sqlite:///{db}", REDIS_URL=f"redis://127.0.0.1:{port}/0")
    assert down.returncode == health.STUCK, down.stderr
    assert f"redis: unreachable: 127.0.0.1:{port} unreachable" in down.stdout
    assert "Redis (REDIS_URL)" in down.stdout.splitlines()[-1]
    assert _gridbot_url(f"sqlite:///{db}").returncode == health.OK  # no REDIS_URL: not checked


def test_a_redis_that_answers_ping_is_ok(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    heard: list[bytes] = []

    def answer() -> None:  # a Redis that wants AUTH, then PING
        conn, _ = server.accept()
        with conn:
            for reply in (b"+OK\r\n", b"+PONG\r\n"):
                heard.append(conn.recv(512))
                conn.sendall(reply)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        assert health.redis_problem(f"redis://:pw-123@127.0.0.1:{port}/0") is None
    finally:
        thread.join(5)
        server.close()
    assert heard == [b"*2\r\n$4\r\nAUTH\r\n$6\r\npw-123\r\n", b"*1\r\n$4\r\nPING\r\n"]
