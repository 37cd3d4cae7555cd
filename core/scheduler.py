"""Duty reminders on APScheduler 3, with its jobs in the application's database.

One `DutyScheduler` runs in each bot process; exactly one of them (per database) leads.
On PostgreSQL the leader holds `pg_try_advisory_lock(LOCK_KEY)` on a dedicated
connection for as long as it leads; when its process dies the connection closes, the
lock is free, and a waiting process takes over within `poll_interval`. A leader that
finds its lock connection gone stands down at once. On SQLite one process is assumed
and it always leads.

The leader runs an APScheduler BackgroundScheduler whose job store is the
`apscheduler_jobs` table (migrated with the schema), and every `sync_interval`:
materialises occurrences HORIZON ahead, (re)writes the reminder jobs of occurrences
marked `reminders_dirty` (one date job per (occurrence, offset), id
"remind:<occurrence>:<offset>", replace_existing), tells secretaries about shifts still short
24 h before, and runs the 战时 round (core.mobilise.sweep). So services never talk to the
scheduler: they change rows in the caller's transaction, the sync follows.

Exactly once: a reminder job only enqueues into the outbox with a dedupe key per
(occurrence, start, person, offset), so a job that runs twice (a restart in the middle,
two leaders for a moment) still queues each reminder once. A job missed while no
scheduler ran is still run late (misfire_grace_time = its offset) if the event has not
started yet, and its text carries 迟到的提醒.

At least once: APScheduler removes a one-off job from its store before running it, so a
kill during the job, or an exception in it, would lose the reminder. The leader's `sweep`
(after each sync) therefore queues every reminder that is due and has no outbox row
(`core.duties.reminders.unqueued_reminders`) through the same `remind`: the dedupe keys make it
harmless when the job did run, and one reminder that fails does not stop the others.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import Connection, Engine, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, selectinload, sessionmaker
from sqlalchemy.pool import NullPool

from core import leader
from core.consult import proposals
from core.consult import service as consult_service
from core.db import (
    make_engine,
    make_session_factory,
    normalise_url,
    refresh_statistics,
    session_scope,
)
from core.duties import recurrence, reminders, shifts
from core.messaging import buttons
from core.mobilise import sweep as mobilise_sweep
from core.models import Event, EventOccurrence, utcnow
from core.models.duties import scheduler_jobs
from core.spaces import reminders as space_reminders
from core.spaces.rules import Rules as SpaceRules
from core.study import catchup
from core.tickets import deadlines as deadline_steps
from core.tickets import rate_reports
from core.tickets import service as ticket_service

log = logging.getLogger("gridbot.scheduler")

LOCK_KEY = leader.LOCK_KEY  # the advisory lock of the scheduler leader
JOB_TABLE = "apscheduler_jobs"
REMIND_FUNC = "core.scheduler:remind"
LATE_AFTER = timedelta(minutes=2)  # a reminder later than this says 迟到的提醒
SYNC_INTERVAL = 30.0
POLL_INTERVAL = 5.0
DEADLINE_INTERVAL = 0.2  # how often the leader looks for due deadline steps (core.tickets.deadlines)
DEADLINE_CHUNK = 50  # deadline steps done in one transaction
DIGEST_INTERVAL = 10.0  # how often the leader looks for branch groups whose digest may go (windows are minutes)
STATISTICS_EVERY = timedelta(days=1)  # SQLite ANALYZE on the leader (core.db.refresh_statistics)

# The leader in this process. The one module-level name left: a stored job is a pickled
# reference ("core.scheduler:remind" and its arguments), so the job finds the leader's
# database here rather than in its arguments. Set while leading, cleared on standing down.
_active: DutyScheduler | None = None


def remind(occurrence_id: int, offset_minutes: int, *, factory: sessionmaker[Session] | None = None) -> int:
    """The reminder job (stored by reference): queue one occurrence's reminders for one offset."""
    if factory is None:
        if _active is None:
            raise RuntimeError("a reminder job ran with no scheduler leading in this process")
        factory = _active.factory
    with session_scope(factory) as session:
        queued = reminders.send_reminders(session, occurrence_id, offset_minutes, now=utcnow(),
                                       late_after=LATE_AFTER)
    log.info("reminder %s:%s queued %d message(s)", occurrence_id, offset_minutes, queued)
    return queued


def reminder_job_id(occurrence_id: int, offset_minutes: int) -> str:
    return f"remind:{occurrence_id}:{offset_minutes}"


def schedule_reminders(scheduler: BaseScheduler, occurrence: EventOccurrence,
                       now: datetime | None = None) -> list[str]:
    """Write the reminder jobs of one occurrence (ids of the jobs written).

    Offsets already due are left alone: either their job fired, or it is still in the store
    as a missed job and fires late, or the occurrence was set up too late for them. A
    cancelled occurrence loses its jobs (the job re-checks everything anyway).
    """
    now = now or utcnow()
    event = occurrence.event
    written: list[str] = []
    for offset in event.reminder_offsets_minutes:
        job_id = reminder_job_id(occurrence.id, offset)
        if occurrence.cancelled or event.cancelled:
            with contextlib.suppress(JobLookupError):
                scheduler.remove_job(job_id)
            continue
        run_at = occurrence.starts_at - timedelta(minutes=offset)
        if run_at <= now:
            continue
        scheduler.add_job(REMIND_FUNC, trigger=DateTrigger(run_date=run_at, timezone=timezone.utc),
                          args=(occurrence.id, offset), id=job_id, name=job_id, replace_existing=True,
                          misfire_grace_time=offset * 60, coalesce=True, max_instances=1)
        written.append(job_id)
    return written


class LeaderLock:
    """A PostgreSQL session advisory lock on its own connection; always granted on SQLite."""

    def __init__(self, url: str, key: int = LOCK_KEY) -> None:
        self.key = key
        self.postgres = make_url(url).get_backend_name() == "postgresql"
        # Client-side keepalives and a TCP user timeout: a partitioned leader notices within ~15 s.
        self._engine: Engine | None = make_engine(url, poolclass=NullPool, connect_args=dict(
            keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3,
            tcp_user_timeout=15000, application_name=leader.application_name())) if self.postgres else None
        self._conn: Connection | None = None
        self.held = False
        self.backend_pid: int | None = None

    def acquire(self) -> bool:
        if not self.postgres:
            self.held = True
            return True
        assert self._engine is not None
        try:
            if self._conn is None:
                conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                # Notice a vanished peer within ~30 s, and never time this session out
                # (idle_session_timeout is PostgreSQL 14+; older servers refuse it).
                for setting in ("tcp_keepalives_idle = 10", "tcp_keepalives_interval = 5",
                                "tcp_keepalives_count = 3", "idle_session_timeout = 0"):
                    try:
                        conn.exec_driver_sql(f"SET {setting}")
                    except Exception as exc:  # noqa: BLE001
                        log.debug("scheduler lock: SET %s refused: %s", setting, exc)
                self.backend_pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
                self._conn = conn
            self.held = bool(self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                                {"k": self.key}).scalar())
        except Exception as exc:  # noqa: BLE001 - any failure means: not the leader now
            log.warning("scheduler lock: %s", exc)
            self.drop()
        return self.held

    def alive(self) -> bool:
        """Still held? False (and the connection dropped) when the connection is gone."""
        if not self.postgres:
            return self.held
        if self._conn is None or not self.held:
            return False
        try:
            self._conn.exec_driver_sql("SELECT 1")
            return True
        except Exception as exc:  # noqa: BLE001
            log.warning("scheduler lock connection lost: %s", exc)
            self.drop()
            return False

    def release(self) -> None:
        if self._conn is not None and self.held:
            with contextlib.suppress(Exception):  # closing the connection releases it anyway
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        self.drop()
        if self._engine is not None:
            self._engine.dispose()

    def drop(self) -> None:
        """Close the lock connection (which releases the lock)."""
        self.held = False
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


class DutyScheduler:
    """Leader election plus, while leading, APScheduler and the periodic sync. Thread-based:
    `start()` returns at once (safe to call from asyncio), `stop()` joins."""

    def __init__(self, url: str, *, tz: ZoneInfo, limits: deadline_steps.Limits | None = None, stats_rank_min: int = 5,
                 deadline_interval: float = DEADLINE_INTERVAL, sync_interval: float = SYNC_INTERVAL,
                 poll_interval: float = POLL_INTERVAL, lock_key: int = LOCK_KEY, threads: int = 4,
                 space_rules: SpaceRules | None = None, mobilise: mobilise_sweep.Timing | None = None) -> None:
        self.url = normalise_url(url)
        self.tz = tz  # the zone of the texts it queues (short shifts, deadlines)
        self.limits = limits or deadline_steps.Limits()
        self.space_rules, self.mobilise = space_rules or SpaceRules(), mobilise or mobilise_sweep.Timing()
        self.stats_rank_min = stats_rank_min
        self.deadline_interval = deadline_interval
        self.sync_interval, self.poll_interval, self.threads = sync_interval, poll_interval, threads
        self.engine = make_engine(self.url)
        self.factory = make_session_factory(self.engine)
        self._analysed_at: datetime | None = None  # SQLite's statistics last refreshed (housekeeping)
        self._jobs_engine = make_engine(self.url)
        self._lock = LeaderLock(self.url, lock_key)
        self._scheduler: BackgroundScheduler | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._leading = threading.Event()

    # -- public ---------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    @property
    def scheduler(self) -> BackgroundScheduler | None:
        return self._scheduler

    @property
    def lock_backend_pid(self) -> int | None:
        """PostgreSQL backend holding (or trying for) the lock; for operators and tests."""
        return self._lock.backend_pid

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("DutyScheduler already started")
        self._thread = threading.Thread(target=self._run, name="gridbot-duty-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stand down (waiting for running jobs), release the lock, close connections."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.engine.dispose()
        self._jobs_engine.dispose()

    def wait_until_leader(self, timeout: float) -> bool:
        return self._leading.wait(timeout)

    def sync_now(self) -> None:
        """Ask for a sync soon (e.g. right after committing a new event); a no-op unless leading."""
        self._wake.set()

    def sweep(self, now: datetime | None = None) -> int:
        """Queue every reminder that is due and was not queued (its job lost or failed); how
        many reminders were queued. Each in its own transaction: a failure is logged and the
        next sweep tries it again."""
        now = now or utcnow()
        with session_scope(self.factory) as session:
            missing = reminders.unqueued_reminders(session, now)
        swept = 0
        for reminder in missing:
            try:
                queued = remind(reminder.occurrence_id, reminder.offset_minutes, factory=self.factory)
            except Exception:  # noqa: BLE001 - the others still go; this one is tried next sweep
                log.exception("sweep: reminder %s:%s could not be queued",
                              reminder.occurrence_id, reminder.offset_minutes)
                continue
            if queued:
                swept += 1
                log.warning("sweep: reminder %s:%s (due %s) had no outbox row: queued %d message(s)",
                            reminder.occurrence_id, reminder.offset_minutes,
                            reminder.due_at.isoformat(timespec="seconds"), queued)
        return swept

    def deadlines(self, now: datetime | None = None, *, digests: bool = True) -> dict[str, int]:
        """Plan the deadline steps of tickets filed or reopened since, do every step that is due,
        then send the branch groups' digests (core.tickets.deadlines); counts by outcome.

        Steps go DEADLINE_CHUNK to a transaction; a chunk that fails is done again one step per
        transaction, so one bad step holds up nothing but itself (it is tried next round)."""
        now = now or utcnow()
        counts: dict[str, int] = {"planned": 0}
        while True:
            with session_scope(self.factory) as session:
                ids = deadline_steps.pending(session)
            for ticket_id in ids:
                with session_scope(self.factory) as session:
                    counts["planned"] += deadline_steps.plan_one(session, ticket_id, limits=self.limits)
            if len(ids) < 500:
                break
        sweep = deadline_steps.Pass(now, self.tz, self.limits)
        after: tuple[datetime, int] | None = None
        while True:
            with session_scope(self.factory) as session:
                page = deadline_steps.due(session, now, after=after)
            for start in range(0, len(page), DEADLINE_CHUNK):
                chunk = [step_id for step_id, _ in page[start:start + DEADLINE_CHUNK]]
                for outcome in self._run_steps(chunk, sweep):
                    counts[outcome] = counts.get(outcome, 0) + 1
            if len(page) < 500:
                break
            after = (page[-1][1], page[-1][0])
        if not digests:
            return counts
        with session_scope(self.factory) as session:
            chats = deadline_steps.digest_chats(session)
        for chat_id in chats:
            try:
                with session_scope(self.factory) as session:
                    if deadline_steps.digest(session, chat_id, sweep):
                        counts["digests"] = counts.get("digests", 0) + 1
            except Exception:  # noqa: BLE001 - the other groups still hear theirs
                log.exception("deadline digest to a branch group failed")
        return counts

    def _run_steps(self, chunk: list[int], sweep: deadline_steps.Pass) -> list[str]:
        try:
            with session_scope(self.factory) as session:
                return deadline_steps.run(session, chunk, sweep)
        except Exception:  # noqa: BLE001 - find the one that fails
            log.warning("a chunk of %d deadline steps failed; doing them one by one", len(chunk))
        outcomes = []
        for step_id in chunk:
            sweep.forget()
            try:
                with session_scope(self.factory) as session:
                    outcomes += deadline_steps.run(session, [step_id], sweep)
            except Exception:  # noqa: BLE001 - the others still go; this one is tried next round
                log.exception("deadline step %s failed", step_id)
                outcomes.append("failed")
        return outcomes

    def sync(self, now: datetime | None = None) -> int:
        """One round of housekeeping (the leader calls it); how many reminder jobs were written."""
        scheduler = self._scheduler
        if scheduler is None:
            raise RuntimeError("not leading: no scheduler to write jobs into")
        now = now or utcnow()
        with session_scope(self.factory) as session:
            recurrence.materialise_all(session, now)
        with session_scope(self.factory) as session:
            dirty = list(session.scalars(
                select(EventOccurrence).where(EventOccurrence.reminders_dirty)
                .options(selectinload(EventOccurrence.event)).order_by(EventOccurrence.id)))
        # No transaction of ours is open while the job store writes (SQLite has one writer).
        written = sum(len(schedule_reminders(scheduler, occ, now)) for occ in dirty)
        with session_scope(self.factory) as session:
            for occ in dirty:
                # Clear the mark only if nothing that shapes the jobs changed meanwhile;
                # otherwise the row stays dirty and the next round writes it again.
                event = occ.event
                session.execute(
                    update(EventOccurrence)
                    .where(EventOccurrence.id == occ.id, EventOccurrence.starts_at == occ.starts_at,
                           EventOccurrence.cancelled == occ.cancelled,
                           EventOccurrence.event_id.in_(select(Event.id).where(
                               Event.id == event.id, Event.revision == event.revision,
                               Event.cancelled == event.cancelled)))
                    .values(reminders_dirty=False))
        with session_scope(self.factory) as session:
            shifts.notify_short_shifts(session, now, tz=self.tz)
        for leader_round in (self.housekeeping, self.monthly_report, self.consultations, self.spaces):
            leader_round(now)
        mobilise_sweep.leader_round(self.factory, now, self.tz, self.mobilise)  # 战时: rosters, escalation
        catchup.leader_round(self.factory, now)  # 补学: materials of sessions whose check-in closed
        return written

    def spaces(self, now: datetime | None = None) -> dict[str, int]:
        """共享空间: meetings' spaces, reminders 24 h and 1 h before, done and expired bookings."""
        return space_reminders.leader_round(self.factory, now or utcnow(), self.tz, self.space_rules)

    def consultations(self, now: datetime | None = None) -> int:
        """议事: close consultations past their deadline (results to the participants) and tell
        the admins of proposals left unanswered past their limit (core.consult); how many closed."""
        now = now or utcnow()
        with session_scope(self.factory) as session:
            closed = consult_service.close_due(session, now)
            proposals.overdue(session, now)
        return closed

    def monthly_report(self, now: datetime | None = None) -> int:
        """Last month's rates to every secretary and admin, once, in the first round of a month."""
        now = now or utcnow()
        with session_scope(self.factory) as session:
            if rate_reports.monthly_sent(session, now, self.tz):
                return 0
            return rate_reports.send_monthly(session, now, self.tz, min_tickets=self.stats_rank_min)

    def housekeeping(self, now: datetime | None = None) -> int:
        """Close resolved tickets nobody rated within three days (BRIEF's ticket loop), forget
        buttons older than core.messaging.buttons.BUTTON_TTL, and once a day refresh SQLite's planner
        statistics (core.db.refresh_statistics); how many tickets were closed.
        On the leader only, so several bot processes do it once."""
        now = now or utcnow()
        with session_scope(self.factory) as session:
            purged = buttons.purge(session, now=now)
            closed = ticket_service.close_unrated(session, now=now)
        if self._analysed_at is None or now - self._analysed_at >= STATISTICS_EVERY:
            self._analysed_at = now
            refresh_statistics(self.engine)
        if purged or closed:
            log.info("housekeeping: %d button(s) forgotten, %d unrated ticket(s) closed", purged, closed)
        return closed

    # -- the election loop -------------------------------------------------------------

    def _run(self) -> None:
        next_sync = next_deadlines = next_digests = 0.0
        try:
            while not self._stopping.is_set():
                try:
                    if not self.is_leader:
                        if self._lock.acquire():
                            self._lead()
                            next_sync = 0.0
                    elif not self._lock.alive():
                        log.warning("scheduler lock lost; standing down")
                        self._stand_down(wait=False)
                except Exception:  # noqa: BLE001 - e.g. the database is unreachable: try again later
                    log.exception("duty scheduler could not take the lead")
                    self._stand_down(wait=False)
                    self._lock.drop()
                woken = self._wake.is_set()
                self._wake.clear()
                if self.is_leader and (woken or time.monotonic() >= next_sync) and not self._stopping.is_set():
                    try:
                        self.sync()
                    except Exception:  # noqa: BLE001 - try again next round
                        log.exception("duty sync failed")
                    try:
                        self.sweep()
                    except Exception:  # noqa: BLE001 - e.g. the database: try again next round
                        log.exception("reminder sweep failed")
                    next_sync = time.monotonic() + self.sync_interval
                if self.is_leader and time.monotonic() >= next_deadlines and not self._stopping.is_set():
                    digests = time.monotonic() >= next_digests
                    try:
                        self.deadlines(digests=digests)
                    except Exception:  # noqa: BLE001 - e.g. the database: try again next round
                        log.exception("deadline sweep failed")
                    next_deadlines = time.monotonic() + self.deadline_interval
                    if digests:
                        next_digests = time.monotonic() + DIGEST_INTERVAL
                wait = self.poll_interval
                if self.is_leader:
                    wait = max(0.0, min(wait, next_sync - time.monotonic(), next_deadlines - time.monotonic()))
                self._wake.wait(wait)
        finally:
            self._stand_down(wait=True)
            self._lock.release()

    def _lead(self) -> None:
        global _active
        scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self._jobs_engine, tablename=JOB_TABLE)},
            executors={"default": ThreadPoolExecutor(self.threads)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=timezone.utc)
        _active = self
        scheduler.start()
        self._scheduler = scheduler
        self._leading.set()
        log.info("duty scheduler leading (%s)", "advisory lock" if self._lock.postgres else "sqlite")

    def _stand_down(self, wait: bool) -> None:
        global _active
        self._leading.clear()
        if _active is self:
            _active = None
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            try:
                scheduler.shutdown(wait=wait)
            except Exception:  # noqa: BLE001
                log.exception("scheduler shutdown failed")


def stored_jobs(session: Session) -> list[dict[str, Any]]:
    """The stored jobs (id, next run time) for operators and tests."""
    rows = session.execute(select(scheduler_jobs.c.id, scheduler_jobs.c.next_run_time)
                           .order_by(scheduler_jobs.c.next_run_time)).all()
    return [{"id": r.id, "next_run_time": datetime.fromtimestamp(r.next_run_time, timezone.utc)
             if r.next_run_time is not None else None} for r in rows]
