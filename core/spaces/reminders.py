"""The leader's round for 共享空间 (core.scheduler): reminders 24 h and 1 h before, bookings that
took place marked done, pending ones nobody decided before their start refused.

Each reminder goes once: the booking keeps the smallest offset queued (`reminded`) and the
outbox row's dedupe key names the booking, the offset and the start, so two leaders for a
moment, or a round run twice, queue it once. A reminder is sent only if the booking existed
when it fell due (a booking made 3 hours ahead gets the 1 h one only), and the 24 h one not
at all once the 1 h one is due (a leader that was down for a day sends the nearer one).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.db import session_scope
from core.messages import t
from core.models import Booking, BookingSource, BookingStatus
from core.spaces import duty, notices
from core.spaces.rules import REMINDERS, Rules

BS = BookingStatus


def due_reminders(session: Session, now: datetime) -> list[tuple[Booking, int]]:
    """(booking, offset) for every reminder due now and not queued yet."""
    horizon = now + timedelta(minutes=max(REMINDERS))
    rows = session.scalars(select(Booking).where(
        Booking.status == BS.confirmed, Booking.source != BookingSource.duty,
        Booking.starts_at > now, Booking.starts_at <= horizon,
        or_(Booking.reminded.is_(None), Booking.reminded > min(REMINDERS))).order_by(Booking.starts_at))
    due = []
    for row in rows:
        offsets = [o for o in sorted(REMINDERS) if row.starts_at - timedelta(minutes=o) <= now
                   and row.created_at <= row.starts_at - timedelta(minutes=o)
                   and (row.reminded is None or o < row.reminded)]
        if offsets:
            due.append((row, offsets[0]))  # the nearest one only
    return due


def run(session: Session, now: datetime, tz: ZoneInfo, rules: Rules) -> dict[str, int]:
    """One round (in the caller's transaction); counts of what it did."""
    counts = {"reminded": 0, "done": 0, "expired": 0}
    for row, offset in due_reminders(session, now):
        notices.remind(session, row, offset, tz, rules.cancel_hours)
        row.reminded = offset
        counts["reminded"] += 1
    done = session.execute(update(Booking).where(Booking.status == BS.confirmed, Booking.ends_at <= now)
                           .values(status=BS.done).execution_options(synchronize_session=False))
    counts["done"] = int(getattr(done, "rowcount", 0) or 0)
    for row in session.scalars(select(Booking).where(Booking.status == BS.pending, Booking.starts_at <= now)):
        row.status, row.reason, row.decided_at = BS.refused, t("spaces.expired"), now
        notices.tell_decision(session, row, tz)
        counts["expired"] += 1
    session.flush()
    return counts


def leader_round(factory: sessionmaker[Session], now: datetime, tz: ZoneInfo, rules: Rules) -> dict[str, int]:
    """What the scheduler's leader runs each sync (core.scheduler): the spaces of meetings
    materialised since (core.spaces.duty), then `run`; each in its own transaction."""
    with session_scope(factory) as session:
        duty.sync_all(session, now, tz)
    with session_scope(factory) as session:
        return run(session, now, tz, rules)
