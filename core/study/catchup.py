"""补学: members who missed a session get its materials afterwards and mark it studied.

Once a session's attendance is recorded — its check-in window has closed — everyone expected who
did not check in (absent, or on leave) and has not caught up yet gets each of its materials and
then one message with the 已学（补学） button, through the outbox with one dedupe key per
material and person and one per session and person: a material attached later goes out on its
own, nothing twice. A material is marked delivered when it went, so the leader's sweep
(core.scheduler calls `leader_round` each sync) looks only at new ones; a material attached after the window
closed goes at once (bot/study_chat.py calls `deliver`).

A 补学 needs a 学习心得 of at least `min_chars` characters (STUDY_NOTE_MIN_CHARS, spaces not
counted; the bot says how many when it asks) or a voice note;
one per session and person — a second is refused politely. The report (core.duties.reports) and
the command centre count 出席 (checked in) and 补学 apart; `overdue` lists, for the secretary,
who has neither OVERDUE_AFTER after a session.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import false, select
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.access.permissions import NotAllowed
from core.db import session_scope
from core.duties.attendance import attendance_of, checkin_window
from core.duties.common import A, fmt_at, insert_ignore, now_or_utc, require_person, zone_named
from core.duties.events import attendees, occurrence_by_id
from core.messages import t
from core.messaging.outbox import enqueue_many
from core.models import (
    Attendance,
    Event,
    EventOccurrence,
    Person,
    StudyCatchUp,
    StudyMaterial,
)
from core.study import buttons
from core.study.materials import payload, session_label

OVERDUE_AFTER = timedelta(days=30)  # a session this old with neither 出席 nor 补学: the secretary is told
OVERDUE_LOOKBACK = timedelta(days=120)  # …and the list looks back this far


class NoteTooShort(NotAllowed):
    """The 学习心得 is shorter than asked; str() says how many characters are still needed."""


def note_length(text: str) -> int:
    """How long a 学习心得 is: its characters, spaces and line breaks not counted."""
    return len("".join(text.split()))


def ended(occ: EventOccurrence, now: datetime) -> bool:
    """Attendance is recorded: the check-in window has closed."""
    return checkin_window(occ)[1] <= now


def caught_up(session: Session, occurrence_ids: Iterable[int]) -> dict[int, set[int]]:
    """occurrence id → the people who caught up on it."""
    found: dict[int, set[int]] = defaultdict(set)
    ids = sorted(set(occurrence_ids))
    if ids:
        for occ_id, person_id in session.execute(select(StudyCatchUp.occurrence_id, StudyCatchUp.person_id)
                                                 .where(StudyCatchUp.occurrence_id.in_(ids))):
            found[occ_id].add(person_id)
    return found


def missing(session: Session, occ: EventOccurrence) -> list[Person]:
    """Expected at the session, did not check in, has not caught up (by person id)."""
    checked = set(session.scalars(select(Attendance.person_id).where(Attendance.occurrence_id == occ.id,
                                                                     Attendance.status == A.checked_in)))
    done = caught_up(session, [occ.id]).get(occ.id, set())
    return [p for p in attendees(session, occ) if p.id not in checked and p.id not in done]


def _messages(occ: EventOccurrence, materials: list[StudyMaterial], people: list[Person]) -> list[dict[str, Any]]:
    intro = {"text": t("study.catchup_intro", **session_label(occ)),
             "buttons": [[buttons.button(t("study.button_done"), buttons.DONE, occ.id)]]}
    messages = []
    for person in people:
        if person.telegram_id is None:
            continue
        messages += [{"dedupe_key": f"study-material:{m.id}:{person.id}", "chat_id": person.telegram_id,
                      "payload": payload(m)} for m in materials]
        messages.append({"dedupe_key": f"study-catchup:{occ.id}:{person.id}", "chat_id": person.telegram_id,
                         "payload": intro})
    return messages


def deliver(session: Session, occ: EventOccurrence, now: datetime | None = None) -> int:
    """Queue the session's undelivered materials to whoever missed it and has not caught up, once
    its attendance is recorded; to how many people."""
    now = now_or_utc(now)
    if not ended(occ, now):
        return 0
    materials = list(session.scalars(select(StudyMaterial).where(StudyMaterial.occurrence_id == occ.id,
                                                                 StudyMaterial.delivered_at.is_(None))
                                     .order_by(StudyMaterial.id)))
    if not materials:
        return 0
    reached = 0
    if not occ.cancelled:  # (a series called off later keeps the sessions it held)
        people = [p for p in missing(session, occ) if p.telegram_id is not None]
        if enqueue_many(session, _messages(occ, materials, people)):
            reached = len(people)
    for material in materials:
        material.delivered_at = now
    session.flush()
    return reached


def deliver_due(session: Session, now: datetime | None = None) -> int:
    """`deliver` for every session with a material not yet delivered (the leader's sweep); to how
    many people in all."""
    now = now_or_utc(now)
    ids = session.scalars(select(StudyMaterial.occurrence_id).where(StudyMaterial.delivered_at.is_(None),
                                                                    StudyMaterial.occurrence_id.is_not(None))
                          .distinct())
    queued = 0
    for occ_id in sorted(i for i in ids if i is not None):
        occ = session.get(EventOccurrence, occ_id)
        if occ is not None:
            queued += deliver(session, occ, now)
    return queued


def leader_round(factory: sessionmaker[Session], now: datetime | None = None) -> int:
    """What the scheduler's leader runs each sync (core.scheduler): `deliver_due` in a transaction."""
    with session_scope(factory) as session:
        return deliver_due(session, now)


def check(session: Session, occurrence_id: int, person: Person | None, now: datetime | None = None) -> EventOccurrence:
    """What a 补学 needs before its 心得: the session took place, `person` was expected and did not
    check in, and has not caught up yet; NotAllowed with the reason otherwise."""
    now = now_or_utc(now)
    person = require_person(person)
    occ = occurrence_by_id(session, occurrence_id)
    if occ.cancelled:
        raise NotAllowed(t("study.deny.cancelled"))
    if now < occ.starts_at:
        raise NotAllowed(t("study.deny.not_yet"))
    answer = attendance_of(session, occ, person)
    if answer is not None and answer.status is A.checked_in:
        raise NotAllowed(t("study.deny.attended"))
    if answer is None and person.id not in {p.id for p in attendees(session, occ)}:
        raise NotAllowed(t("study.deny.not_expected"))
    done = session.scalar(select(StudyCatchUp).where(StudyCatchUp.occurrence_id == occ.id,
                                                     StudyCatchUp.person_id == person.id))
    if done is not None:
        raise NotAllowed(t("study.deny.twice", at=fmt_at(done.at, zone_named(occ.event.tz))))
    return occ


def record(session: Session, occurrence_id: int, person: Person | None, *, note: str | None = None,
           voice_file_id: str | None = None, min_chars: int, now: datetime | None = None) -> StudyCatchUp:
    """补学 with a 学习心得 (at least `min_chars` characters) or a voice note; once per session."""
    now = now_or_utc(now)
    occ = check(session, occurrence_id, person, now)
    assert person is not None
    text = (note or "").strip()
    if voice_file_id is None:
        have = note_length(text)
        if have < min_chars:
            raise NoteTooShort(t("study.deny.too_short", min=min_chars, have=have, more=min_chars - have))
    insert_ignore(session, StudyCatchUp, [dict(occurrence_id=occ.id, person_id=person.id, note=text or None,
                                               voice_file_id=voice_file_id, at=now)], ["occurrence_id", "person_id"])
    row = session.scalars(select(StudyCatchUp).where(StudyCatchUp.occurrence_id == occ.id,
                                                     StudyCatchUp.person_id == person.id)).one()
    audit.record(session, person, "study.catch_up", f"occurrence:{occ.id}",
                 {"voice": voice_file_id is not None, "characters": note_length(text)}, at=now)
    return row


def overdue(session: Session, branch_id: int, now: datetime | None = None) -> list[tuple[Person, EventOccurrence]]:
    """The branch's members with neither 出席 nor 补学 for a session that began more than
    OVERDUE_AFTER (and less than OVERDUE_LOOKBACK) ago, by session then person."""
    now = now_or_utc(now)
    occs = session.scalars(select(EventOccurrence).join(Event, Event.id == EventOccurrence.event_id).where(
        Event.branch_id == branch_id, EventOccurrence.cancelled == false(),
        EventOccurrence.starts_at <= now - OVERDUE_AFTER, EventOccurrence.starts_at > now - OVERDUE_LOOKBACK)
        .order_by(EventOccurrence.starts_at, EventOccurrence.id))
    return [(person, occ) for occ in occs for person in missing(session, occ)]


def overdue_text(session: Session, branch_name: str, branch_id: int, now: datetime | None = None) -> str:
    """/report's list for the secretary: who has neither 出席 nor 补学 30 days after a session."""
    rows = overdue(session, branch_id, now)
    if not rows:
        return t("study.overdue_none", branch=branch_name)
    lines = [t("study.overdue_header", branch=branch_name, count=len(rows))]
    lines += [t("study.overdue_line", name=person.display_name, **session_label(occ)) for person, occ in rows]
    return "\n".join(lines)
