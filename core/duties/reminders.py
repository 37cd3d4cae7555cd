"""Reminders before an occurrence: their messages, dedupe keys, and the sweep for reminders due and not yet queued."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import false, select
from sqlalchemy.orm import Session

from core.duties.common import EARLY_TOLERANCE, A, now_or_utc, span, stamp
from core.duties.events import answer_buttons, attendees, event_text
from core.messages import t
from core.messaging.outbox import enqueue_many
from core.models import (
    Attendance,
    Event,
    EventOccurrence,
    OutboxMessage,
    ReminderMute,
)
from core.presentation import callbacks


def reminder_key(occ: EventOccurrence, person_id: int, offset_minutes: int) -> str:
    """The outbox dedupe key of one reminder: occurrence, its start, person and offset."""
    return f"remind:{occ.id}:{stamp(occ.starts_at)}:{person_id}:{offset_minutes}"


def reminder_messages(session: Session, occ: EventOccurrence | None, offset_minutes: int, now: datetime,
                       late_after: timedelta) -> list[dict[str, Any]]:
    """The outbox rows of one occurrence's `offset_minutes` reminder (see `send_reminders`)."""
    if occ is None or occ.cancelled or occ.event.cancelled or now >= occ.starts_at:
        return []
    event = occ.event
    if offset_minutes not in event.reminder_offsets_minutes:
        return []
    due = occ.starts_at - timedelta(minutes=offset_minutes)
    if now < due - EARLY_TOLERANCE:
        return []
    muted = set() if event.mandatory else set(session.scalars(
        select(ReminderMute.person_id).where(ReminderMute.event_id == event.id)))
    answers = {a.person_id: a.status for a in session.scalars(
        select(Attendance).where(Attendance.occurrence_id == occ.id))}
    values = event_text(event, occ.starts_at)
    values["lead"] = span(max(1, round((occ.starts_at - now).total_seconds() / 60)))
    text = t("duty.remind", **values)
    if now - due > late_after:
        text = f"{text}\n{t('duty.remind_late')}"
    messages = []
    for person in attendees(session, occ):
        status = answers.get(person.id)
        if person.id in muted or status is A.leave or person.telegram_id is None:
            continue
        buttons = answer_buttons(occ) if status is None else []
        if not event.mandatory:
            buttons.append([{"text": t("duty.button_mute"), "callback_data": callbacks.event_answer("m", event.id)}])
        payload: dict[str, Any] = {"text": text}
        if buttons:
            payload["buttons"] = buttons
        messages.append({"dedupe_key": reminder_key(occ, person.id, offset_minutes),
                         "chat_id": person.telegram_id, "payload": payload})
    return messages


def send_reminders(session: Session, occurrence_id: int, offset_minutes: int, *,
                   now: datetime | None = None, late_after: timedelta = timedelta(minutes=2)) -> int:
    """Queue the `offset_minutes` reminder of one occurrence to each attendee; how many were queued.

    Nothing for a cancelled or started occurrence, an offset no longer configured, or a
    stale job firing well before its (moved) time. A reminder later than `late_after` is
    marked 迟到的提醒. The dedupe key names occurrence, start, person and offset, so a
    job that runs twice queues each reminder once.
    """
    messages = reminder_messages(session, session.get(EventOccurrence, occurrence_id), offset_minutes,
                                  now_or_utc(now), late_after)
    # One multi-row INSERT per 500: a branch-wide reminder to 1,000 members takes tens of ms, not seconds.
    return enqueue_many(session, messages)


@dataclass(frozen=True)
class DueReminder:
    """One (occurrence, offset) reminder whose time has come."""

    occurrence_id: int
    offset_minutes: int
    due_at: datetime


def unqueued_reminders(session: Session, now: datetime | None = None) -> list[DueReminder]:
    """Reminders that are due, not yet useless (the occurrence has not started) and have no
    outbox row although they have someone to go to; oldest first.

    A reminder's job normally queues it at its time. This finds the ones a job did not: the
    job was lost (a kill while it ran: APScheduler removes a one-off job before running it)
    or it raised. A reminder whose time had already passed when its event was created or last
    changed is not due: the scheduler never writes a job for it either (`schedule_reminders`).
    """
    now = now_or_utc(now)
    live = list(session.scalars(select(Event).where(Event.cancelled == false())))
    longest = max((max(e.reminder_offsets_minutes, default=0) for e in live), default=0)
    if not longest:
        return []
    occurrences = session.scalars(
        select(EventOccurrence).join(Event, Event.id == EventOccurrence.event_id)
        .where(Event.cancelled == false(), EventOccurrence.cancelled == false(),
               EventOccurrence.starts_at > now,
               EventOccurrence.starts_at <= now + timedelta(minutes=longest))
        .order_by(EventOccurrence.starts_at, EventOccurrence.id))
    due: list[tuple[DueReminder, EventOccurrence]] = []
    for occ in occurrences:
        for offset in occ.event.reminder_offsets_minutes:
            at = occ.starts_at - timedelta(minutes=offset)
            if occ.event.updated_at < at <= now:
                due.append((DueReminder(occ.id, offset, at), occ))
    missing = []
    for reminder, occ in due:
        keys = [m["dedupe_key"] for m in
                reminder_messages(session, occ, reminder.offset_minutes, now, timedelta.max)]
        # Exact keys: the unique index answers. Any one of them queued means the job ran (it
        # queues them all in one transaction; someone who joined since is not reminded).
        if keys and session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key.in_(keys))
                                   .limit(1)) is None:
            missing.append(reminder)
    return sorted(missing, key=lambda r: (r.due_at, r.occurrence_id, r.offset_minutes))
