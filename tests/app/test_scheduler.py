"""The duty scheduler: persistent reminder jobs, exactly-once across restarts, one leader per database.

These tests run the real APScheduler against the real databases in real time: reminders are
set a few seconds ahead (an event starting in 60 min + a few seconds, reminded 60 min before).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from core import scheduler
from core.config import PROJECT_ROOT
from core.db import session_scope
from core.duties import events, shifts
from core.duties import reminders as duty_reminders
from core.messaging import buttons
from core.models import (
    Audience,
    Branch,
    Building,
    EventKind,
    EventOccurrence,
    OutboxMessage,
    Person,
    Ticket,
    TicketStatus,
    utcnow,
)
from core.scheduler import DutyScheduler, remind, stored_jobs
from core.tickets import service as ticket_service
from core.tickets.lifecycle import NewTicket

SECRETARY = "P-0001"
PEOPLE = ["P-0002", "P-0003"]
FAST = dict(sync_interval=0.5, poll_interval=0.2)

TZ = ZoneInfo("Asia/Shanghai")


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def who(s: Session, code: str) -> Person:
    return s.scalars(select(Person).where(Person.code == code)).one()


def reminded(factory: sessionmaker[Session], seconds: float, offsets: list[int] | None = None,
             title: str = "学习") -> int:
    """A study session for PEOPLE whose `offsets[0]` reminder (default 60 min) is due in `seconds`;
    the id of its occurrence."""
    offsets = offsets or [60]
    with session_scope(factory) as s:
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        event = events.create_event(
            s, who(s, SECRETARY), branch_id=branch.id, kind=EventKind.study, title=title, place="201室",
            starts_at=utcnow() + timedelta(minutes=offsets[0], seconds=seconds), reminder_offsets=offsets,
            audience=Audience.people, person_ids=[who(s, c).id for c in PEOPLE], notify=False, tz=TZ.key)
        occ = s.scalars(select(EventOccurrence).where(EventOccurrence.event_id == event.id)).one()
        return occ.id


def reminders(factory: sessionmaker[Session]) -> list[OutboxMessage]:
    with session_scope(factory) as s:
        return list(s.scalars(select(OutboxMessage).where(OutboxMessage.dedupe_key.startswith("remind:"))
                              .order_by(OutboxMessage.id)))


def sent_for(factory: sessionmaker[Session], occ_id: int) -> list[OutboxMessage]:
    return [m for m in reminders(factory) if m.dedupe_key.startswith(f"remind:{occ_id}:")]


def wait_for(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def assert_each_once(factory: sessionmaker[Session], occ_ids: list[int]) -> list[OutboxMessage]:
    rows = reminders(factory)
    keys = [m.dedupe_key for m in rows]
    assert len(keys) == len(set(keys))
    for occ_id in occ_ids:  # every reminder of every occurrence: once per person
        assert len([m for m in rows if m.dedupe_key.startswith(f"remind:{occ_id}:")]) == len(PEOPLE), occ_id
    return rows


@pytest.fixture
def fast_late(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler, "LATE_AFTER", timedelta(seconds=1))


@pytest.fixture
def running() -> Iterator[list[DutyScheduler]]:
    started: list[DutyScheduler] = []
    yield started
    for s in started:
        s.stop()


def start(url: str, running: list[DutyScheduler], **kw: float) -> DutyScheduler:
    sched = DutyScheduler(url, tz=TZ, **{**FAST, **kw})  # type: ignore[arg-type]
    running.append(sched)
    sched.start()
    return sched


# -- jobs -------------------------------------------------------------------------------

def test_sync_writes_one_job_per_occurrence_and_offset(engine: Engine, demo_factory: sessionmaker[Session],
                                                        running: list[DutyScheduler]) -> None:
    occ_id = reminded(demo_factory, 3600, offsets=[1440, 60])
    sched = start(url_of(engine), running, sync_interval=3600)
    assert sched.wait_until_leader(10)
    wait_for(lambda: not _dirty(demo_factory, occ_id), what="the first sync")
    with session_scope(demo_factory) as s:
        jobs = {j["id"]: j["next_run_time"] for j in stored_jobs(s)}
        occ = s.get(EventOccurrence, occ_id)
        assert occ is not None
        starts_at: datetime = occ.starts_at
    assert jobs == {f"remind:{occ_id}:60": starts_at - timedelta(minutes=60),
                    f"remind:{occ_id}:1440": starts_at - timedelta(minutes=1440)}
    job = sched.scheduler.get_job(f"remind:{occ_id}:60")  # type: ignore[union-attr]
    assert job.func is remind and job.args == (occ_id, 60) and job.misfire_grace_time == 3600
    # moving the event rewrites both jobs in place (same ids, replace_existing)
    with session_scope(demo_factory) as s:
        occ = s.get(EventOccurrence, occ_id)
        events.update_event(s, occ.event_id, who(s, SECRETARY), starts_at=starts_at + timedelta(hours=2))  # type: ignore[union-attr]
    assert sched.sync() == 2
    assert not _dirty(demo_factory, occ_id)
    with session_scope(demo_factory) as s:
        jobs = {j["id"]: j["next_run_time"] for j in stored_jobs(s)}
    assert jobs == {f"remind:{occ_id}:60": starts_at + timedelta(hours=1),
                    f"remind:{occ_id}:1440": starts_at + timedelta(hours=2) - timedelta(minutes=1440)}
    assert sched.sync() == 0  # nothing dirty: nothing rewritten
    with session_scope(demo_factory) as s:
        occ = s.get(EventOccurrence, occ_id)
        events.cancel_event(s, occ.event_id, who(s, SECRETARY))  # type: ignore[union-attr]
    sched.sync()
    with session_scope(demo_factory) as s:
        assert stored_jobs(s) == []


def test_a_job_run_twice_queues_its_reminders_once(demo_factory: sessionmaker[Session],
                                                   running: list[DutyScheduler], engine: Engine) -> None:
    occ_id = reminded(demo_factory, 0)
    start(url_of(engine), running, sync_interval=3600).wait_until_leader(10)  # binds remind() to this DB
    assert remind(occ_id, 60) == 2
    assert remind(occ_id, 60) == 0
    assert len(sent_for(demo_factory, occ_id)) == 2


# -- the sweep: a reminder whose job was lost or failed --------------------------------------

def _unqueued(factory: sessionmaker[Session], now: datetime | None = None) -> list[tuple[int, int]]:
    with session_scope(factory) as s:
        return [(r.occurrence_id, r.offset_minutes) for r in duty_reminders.unqueued_reminders(s, now)]


def test_a_due_reminder_whose_job_vanished_is_queued_by_the_sweep_once(
        engine: Engine, demo_factory: sessionmaker[Session], running: list[DutyScheduler]) -> None:
    occ_id = reminded(demo_factory, 2)
    sched = start(url_of(engine), running, sync_interval=3600)  # one sync (and sweep) at the start
    assert sched.wait_until_leader(10)
    wait_for(lambda: not _dirty(demo_factory, occ_id), what="the job")
    # What a kill -9 during the job leaves: APScheduler took the job out of its store, no outbox row.
    sched.scheduler.remove_job(f"remind:{occ_id}:60")  # type: ignore[union-attr]
    assert _unqueued(demo_factory) == []  # not due yet
    wait_for(lambda: _past_due(demo_factory, occ_id), timeout=10, what="the reminder's time")
    assert _unqueued(demo_factory) == [(occ_id, 60)]
    assert sent_for(demo_factory, occ_id) == []
    assert sched.sweep() == 1
    assert sched.sweep() == 0  # already queued: the dedupe keys hold
    assert _unqueued(demo_factory) == []
    assert len(sent_for(demo_factory, occ_id)) == len(PEOPLE)
    assert_each_once(demo_factory, [occ_id])


def test_an_exception_in_one_reminder_does_not_stop_the_sweep(
        engine: Engine, demo_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = reminded(demo_factory, 1, title="学习一"), reminded(demo_factory, 1, title="学习二")
    wait_for(lambda: _past_due(demo_factory, second), timeout=10, what="the reminders' time")
    assert sorted(_unqueued(demo_factory)) == sorted([(first, 60), (second, 60)])
    send = duty_reminders.send_reminders

    def failing(session: Session, occurrence_id: int, offset_minutes: int, **kw: object) -> int:
        if occurrence_id == first:
            raise RuntimeError("the job failed")
        return send(session, occurrence_id, offset_minutes, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(duty_reminders, "send_reminders", failing)
    sched = DutyScheduler(url_of(engine), tz=TZ)  # the sweep needs no election
    try:
        assert sched.sweep() == 1
        assert sent_for(demo_factory, first) == []
        assert len(sent_for(demo_factory, second)) == len(PEOPLE)
        assert _unqueued(demo_factory) == [(first, 60)]  # still owed: the next sweep tries again
        monkeypatch.setattr(duty_reminders, "send_reminders", send)
        assert sched.sweep() == 1
    finally:
        sched.stop()
    assert_each_once(demo_factory, [first, second])


def test_reminders_already_past_when_the_event_was_set_up_are_not_owed(
        demo_factory: sessionmaker[Session]) -> None:
    # Set up 30 min before its start: the 24 h and 1 h reminders were never scheduled.
    occ_id = reminded(demo_factory, -30 * 60, offsets=[60, 1440])
    assert _unqueued(demo_factory) == []
    # Its remaining (10 min) reminder is owed once due, and no longer once the meeting started.
    with session_scope(demo_factory) as s:
        occ = s.get(EventOccurrence, occ_id)
        assert occ is not None
        events.update_event(s, occ.event_id, who(s, SECRETARY), reminder_offsets=[10])
        starts_at = occ.starts_at
    assert _unqueued(demo_factory, starts_at - timedelta(minutes=11)) == []
    assert _unqueued(demo_factory, starts_at - timedelta(minutes=9)) == [(occ_id, 10)]
    assert _unqueued(demo_factory, starts_at + timedelta(seconds=1)) == []


# -- exactly once across a restart ----------------------------------------------------------

def test_reminders_fire_exactly_once_across_a_restart(engine: Engine, demo_factory: sessionmaker[Session],
                                                      running: list[DutyScheduler], fast_late: None) -> None:
    url = url_of(engine)
    before, during, after = (reminded(demo_factory, sec, title=f"学习{sec}") for sec in (3, 7, 11))
    first = start(url, running)
    assert first.wait_until_leader(10)
    wait_for(lambda: len(sent_for(demo_factory, before)) == 2, what="the first reminder")
    first.stop()  # the bot goes down; `during` falls due while nobody runs
    assert not first.is_leader
    wait_for(lambda: _past_due(demo_factory, during), timeout=15, what="the missed reminder's time")
    time.sleep(1.5)  # more than LATE_AFTER
    assert sent_for(demo_factory, during) == []
    second = start(url, running)  # a new process on the same database
    assert second.wait_until_leader(10)
    wait_for(lambda: len(sent_for(demo_factory, after)) == 2, what="the last reminder")
    time.sleep(1.0)  # anything that would fire twice has had its chance
    second.stop()
    rows = assert_each_once(demo_factory, [before, during, after])
    texts = {m.dedupe_key.split(":")[1]: m.payload["text"] for m in rows}
    assert texts[str(during)].endswith("（迟到的提醒）")  # sent late, with the note
    assert "迟到" not in texts[str(before)] and "迟到" not in texts[str(after)]
    with session_scope(demo_factory) as s:
        assert stored_jobs(s) == []  # fired jobs are gone from the store


def _dirty(factory: sessionmaker[Session], occ_id: int) -> bool:
    with session_scope(factory) as s:
        occ = s.get(EventOccurrence, occ_id)
        assert occ is not None
        return occ.reminders_dirty


def _past_due(factory: sessionmaker[Session], occ_id: int) -> bool:
    with session_scope(factory) as s:
        occ = s.get(EventOccurrence, occ_id)
        assert occ is not None
        return utcnow() > occ.starts_at - timedelta(minutes=60)


def test_a_reminder_missed_until_the_event_started_is_dropped(engine: Engine, demo_factory: sessionmaker[Session],
                                                              running: list[DutyScheduler]) -> None:
    with session_scope(demo_factory) as s:
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        event = events.create_event(
            s, who(s, SECRETARY), branch_id=branch.id, kind=EventKind.study, title="短会", place="201室",
            starts_at=utcnow() + timedelta(minutes=1, seconds=3), reminder_offsets=[1],
            audience=Audience.people, person_ids=[who(s, "P-0002").id], notify=False, tz=TZ.key)
        occ_id = s.scalars(select(EventOccurrence.id).where(EventOccurrence.event_id == event.id)).one()
    first = start(url_of(engine), running)
    assert first.wait_until_leader(10)
    wait_for(lambda: not _dirty(demo_factory, occ_id), what="the job")
    first.stop()
    with session_scope(demo_factory) as s:  # the bot stays down until after the start
        s.get(EventOccurrence, occ_id).starts_at = utcnow() - timedelta(seconds=1)  # type: ignore[union-attr]
    second = start(url_of(engine), running)
    assert second.wait_until_leader(10)
    time.sleep(1.5)
    assert sent_for(demo_factory, occ_id) == []


def test_a_short_shift_is_reported_by_the_scheduler_once(engine: Engine, demo_factory: sessionmaker[Session],
                                                         running: list[DutyScheduler]) -> None:
    with session_scope(demo_factory) as s:
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        soon = utcnow() + timedelta(hours=20)
        shift = shifts.publish_shift(s, who(s, SECRETARY), branch_id=branch.id, title="卡口执勤", place="东门",
                                     starts_at=soon, ends_at=soon + timedelta(hours=4), capacity=4, notify=False, tz=TZ)
        shift_id = shift.id
    sched = start(url_of(engine), running)
    assert sched.wait_until_leader(10)
    time.sleep(2.0)  # several syncs
    with session_scope(demo_factory) as s:
        keys = list(s.scalars(select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.startswith("shift-short:"))))
        secretary = who(s, SECRETARY).id
    assert keys == [f"shift-short:{shift_id}:{secretary}"]


def test_the_leader_closes_unrated_tickets_and_forgets_old_buttons(engine: Engine, demo_factory: sessionmaker[Session],
                                                                  running: list[DutyScheduler]) -> None:
    """One periodic mechanism: the leader's round also does the ticket loop's housekeeping."""
    long_ago = utcnow() - timedelta(days=4)
    with session_scope(demo_factory) as s:
        building = s.scalars(select(Building).where(Building.code == "B-HPL-01-04")).one()
        ticket = ticket_service.submit_report(s, NewTicket(
            category_code="sanitation", description="4号楼垃圾三天没清", grid_id=building.grid_id,
            community_id=building.grid.community_id, building_id=building.id,
            reporter_id=who(s, "P-0071").id), tz=TZ, now=long_ago)
        ticket_service.claim(s, ticket.id, who(s, "P-0002"), now=long_ago)
        ticket_service.resolve(s, ticket.id, who(s, "P-0002"), "已清运", now=long_ago)
        stale, fresh = buttons.new_token(), buttons.new_token()
        buttons.store(s, {stale: {"old": True}}, now=utcnow() - buttons.BUTTON_TTL - timedelta(hours=1))
        buttons.store(s, {fresh: {"new": True}})
        ticket_id = ticket.id
    sched = start(url_of(engine), running)
    assert sched.wait_until_leader(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with session_scope(demo_factory) as s:
            if s.get(Ticket, ticket_id).status is TicketStatus.closed:
                break
        time.sleep(0.2)
    with session_scope(demo_factory) as s:
        assert s.get(Ticket, ticket_id).status is TicketStatus.closed
        assert buttons.resolve(s, buttons.callback(stale)) == (False, None)
        assert buttons.resolve(s, buttons.callback(fresh)) == (True, {"new": True})


# -- one leader per PostgreSQL database --------------------------------------------------------

pg_only = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)


def leaders(*scheds: DutyScheduler) -> list[bool]:
    return [s.is_leader for s in scheds]


@pytest.mark.postgres
@pg_only
def test_second_scheduler_waits_and_takes_over_when_the_first_stops(
        engine: Engine, demo_factory: sessionmaker[Session], running: list[DutyScheduler]) -> None:
    url = url_of(engine)
    early, late = reminded(demo_factory, 3, title="早"), reminded(demo_factory, 9, title="晚")
    first = start(url, running)
    assert first.wait_until_leader(10)
    second = start(url, running)
    time.sleep(1.0)
    assert leaders(first, second) == [True, False]
    wait_for(lambda: len(sent_for(demo_factory, early)) == 2, what="the first leader's reminder")
    assert leaders(first, second) == [True, False]
    first.stop()
    assert second.wait_until_leader(5)
    wait_for(lambda: len(sent_for(demo_factory, late)) == 2, what="the second leader's reminder")
    time.sleep(1.0)
    assert_each_once(demo_factory, [early, late])


@pytest.mark.postgres
@pg_only
def test_a_leader_whose_connection_dies_stands_down_and_another_takes_over(
        engine: Engine, demo_factory: sessionmaker[Session], running: list[DutyScheduler]) -> None:
    url = url_of(engine)
    early, late = reminded(demo_factory, 3, title="早"), reminded(demo_factory, 10, title="晚")
    first = start(url, running, poll_interval=1.0)  # slower to retry, so the second one wins the lock
    assert first.wait_until_leader(10)
    second = start(url, running)
    wait_for(lambda: len(sent_for(demo_factory, early)) == 2, what="the first leader's reminder")
    with engine.connect() as conn:  # as if the first process's database connection broke
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first.lock_backend_pid}).scalar()
    assert second.wait_until_leader(5)
    wait_for(lambda: not first.is_leader, timeout=5, what="the first to stand down")
    time.sleep(2.5)  # the first keeps trying, and keeps failing while the second holds the lock
    assert leaders(first, second) == [False, True]
    wait_for(lambda: len(sent_for(demo_factory, late)) == 2, what="the second leader's reminder")
    time.sleep(1.0)
    assert_each_once(demo_factory, [early, late])


LEADER_PROCESS = """
import sys, time
from zoneinfo import ZoneInfo
from core.scheduler import DutyScheduler
sched = DutyScheduler(sys.argv[1], tz=ZoneInfo("Asia/Shanghai"), sync_interval=0.5, poll_interval=0.2)
sched.start()
if sched.wait_until_leader(30):
    print("leader", flush=True)
time.sleep(600)
"""


@pytest.mark.postgres
@pg_only
def test_when_the_leading_process_is_killed_another_process_takes_over(
        engine: Engine, demo_factory: sessionmaker[Session], running: list[DutyScheduler]) -> None:
    url = url_of(engine)
    early, late = reminded(demo_factory, 4, title="早"), reminded(demo_factory, 11, title="晚")
    proc = subprocess.Popen([sys.executable, "-c", LEADER_PROCESS, url], cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "leader"
        standby = start(url, running)
        wait_for(lambda: len(sent_for(demo_factory, early)) == 2, what="the other process's reminder")
        assert not standby.is_leader
        proc.kill()  # SIGKILL: no clean-up at all; PostgreSQL frees the lock with the connection
        proc.wait(10)
        assert standby.wait_until_leader(10)
        wait_for(lambda: len(sent_for(demo_factory, late)) == 2, what="the new leader's reminder")
        time.sleep(1.0)
        assert_each_once(demo_factory, [early, late])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_the_leader_refreshes_sqlites_planner_statistics_once_a_day(engine: Engine) -> None:
    """Without statistics SQLite reads a month's tickets through the grid index (core.db.refresh_statistics)."""
    sched = DutyScheduler(url_of(engine), tz=TZ)
    sqlite = engine.dialect.name == "sqlite"

    def stats() -> int:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'")).first()
            return conn.execute(text("SELECT count(*) FROM sqlite_stat1")).scalar_one() if found else 0

    try:
        now = datetime(2026, 12, 7, 1, 0, tzinfo=TZ)
        sched.housekeeping(now)
        if not sqlite:  # PostgreSQL's autovacuum keeps its own
            return
        assert stats() > 0
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM sqlite_stat1"))
        sched.housekeeping(now + timedelta(hours=23))
        assert stats() == 0  # not again within the day
        sched.housekeeping(now + timedelta(days=1))
        assert stats() > 0
    finally:
        sched.stop()
