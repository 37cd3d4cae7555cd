"""`gridbot health`: the queues' counts, ages and exit status; nothing personal in its output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from core import health
from core.config import PROJECT_ROOT
from core.db import make_engine, make_session_factory, session_scope
from core.duties import events
from core.messaging import inbox, outbox
from core.models import (
    Audience,
    Branch,
    EventKind,
    InboxState,
    OutboxMessage,
    Person,
    SendState,
    utcnow,
)
from core.scheduler import DutyScheduler
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


def test_every_queue_is_counted_with_its_oldest_age_and_what_is_stuck(demo_factory: sessionmaker[Session]) -> None:
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
        "outbox_failed": (0, 0), "reminders_unqueued": (1, 1)}
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
                                                        engine: Engine) -> None:
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
