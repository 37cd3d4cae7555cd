"""Which session or shift a member's words name, and the parts of /duties that change answers.

"我周三那个值班去不了了，帮我取消报名" names a day (jionlp's time extraction, as in
core.schedule_words) and a kind (值班 → a volunteer shift); "12月12日的读书会我参加" a day and
a title. `named` narrows the member's coming duties by each of these that the words contain:
one left is the answer; two or more, or none, and the caller asks which, with buttons.

/duties lists, besides the member's own duties: open shifts with free places they may sign up
for (also when they missed the invitation), and 我的领单, the tickets they claimed with their
deadlines. An answer given can be changed until the session starts (参加 ⇄ 请假) and a shift
sign-up cancelled until its cutoff: the buttons say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import false, func, select
from sqlalchemy.orm import Session

from core.duties import common, overview, shifts
from core.messages import t
from core.models import (
    EventKind,
    EventOccurrence,
    Person,
    Shift,
    ShiftSignup,
    SignupStatus,
    Ticket,
    TicketStatus,
    utcnow,
)
from core.presentation import callbacks
from core.schedule_words import _jio, _normal

# Words that name a kind of duty. A shift is 值班 / 执勤 / a volunteer service; the others are
# the event kinds of core.models.EventKind.
SHIFT_WORDS = ("值班", "执勤", "志愿", "站岗", "巡逻", "劝导", "整治", "卡口", "取消报名")
KIND_WORDS: dict[str, tuple[EventKind, ...]] = {
    "党小组会": (EventKind.group_meeting,), "小组会": (EventKind.group_meeting,),
    "支委会": (EventKind.committee,),
    "党员大会": (EventKind.general_meeting,), "支部大会": (EventKind.general_meeting,),
    "党课": (EventKind.lecture,),
    "主题党日": (EventKind.theme_day,), "党日": (EventKind.theme_day,),
    "学习": (EventKind.study,), "读书会": (EventKind.study,),
}
THIS_ONE = ("这次", "这回", "本次")  # words that mean the soonest one
CHOICES = 6  # at most this many "which one?" buttons


@dataclass(frozen=True)
class Named:
    """What the words named: the duties left (`found`), and whether they named anything."""

    found: list[overview.Duty]
    named_something: bool


def named_days(text: str, now: datetime, tz: ZoneInfo) -> list[date]:
    """The days the words name ("周三", "明天", "12月12日"), as local dates from `now` on."""
    _jio()
    import jionlp  # noqa: PLC0415 - imported by _jio already

    local_now = now.astimezone(tz).replace(tzinfo=None, microsecond=0)
    try:
        found = jionlp.ner.extract_time(_normal(text), time_base=local_now, with_parsing=True)
    except Exception:  # not a time jionlp can read: no day named
        return []
    days: list[date] = []
    for item in found:
        detail = item.get("detail") or {}
        if detail.get("type") not in ("time_point", "time_span"):
            continue
        try:
            start = datetime.strptime(detail["time"][0], "%Y-%m-%d %H:%M:%S")
            end = datetime.strptime(detail["time"][1], "%Y-%m-%d %H:%M:%S")
        except (KeyError, TypeError, ValueError):
            continue
        if start.date() < local_now.date() and any(w in item.get("text", "") for w in ("周", "星期")):
            start, end = start + timedelta(days=7), end + timedelta(days=7)  # this week's Wednesday has passed
        day = start.date()
        while day <= end.date() and len(days) < 14:
            days.append(day)
            day += timedelta(days=1)
    return days


def _kinds(session: Session, candidates: list[overview.Duty]) -> dict[int, EventKind]:
    ids = [d.ref_id for d in candidates if d.kind == "event"]
    if not ids:
        return {}
    return {occ.id: occ.event.kind for occ in session.scalars(select(EventOccurrence)
                                                              .where(EventOccurrence.id.in_(ids)))}


def _title_named(title: str, text: str) -> bool:
    """The title, or three characters of it in a row, are in the words ("读书会" of "党员读书会")."""
    return title in text or any(title[i:i + 3] in text for i in range(max(0, len(title) - 2)))


def named(session: Session, person: Person, text: str, *, tz: ZoneInfo, now: datetime | None = None) -> Named:
    """The member's coming duties (not started) that `text` names by day, kind and title."""
    now = now or utcnow()
    words = _normal(text)
    found = [d for d in overview.my_duties(session, person, tz=tz, now=now, days=62) if d.starts_at > now]
    kinds = _kinds(session, found)
    said = False
    days = set(named_days(words, now, tz))
    if days:
        said = True
        found = [d for d in found if d.starts_at.astimezone(tz).date() in days]
    wanted = {k for word, ks in KIND_WORDS.items() if word in words for k in ks}
    if any(w in words for w in SHIFT_WORDS):
        said = True
        found = [d for d in found if d.kind == "shift" or _title_named(d.title, words)]
    elif wanted:
        said = True
        found = [d for d in found if d.kind == "event" and (kinds.get(d.ref_id) in wanted
                                                             or _title_named(d.title, words))]
    titled = [d for d in found if _title_named(d.title, words)]
    if titled:
        said, found = True, titled
    if said and len(found) > 1 and any(w in words for w in THIS_ONE):
        found = found[:1]  # "这次党课": the soonest of those named
    return Named(found, said)


def choice_buttons(candidates: list[overview.Duty], action: str, tz: ZoneInfo) -> list[list[dict[str, str]]]:
    """One button per candidate: "{when} {title}", pressing it does `action` ("attend" / "leave")."""
    rows = []
    for d in candidates[:CHOICES]:
        if d.kind == "event":
            data = callbacks.event_answer("y" if action == "attend" else "n", d.ref_id)
        else:
            data = callbacks.shift_action("s" if action == "attend" else "x", d.ref_id)
        rows.append([{"text": t("duty.words.choice", when=common.fmt_at(d.starts_at, tz), title=d.title),
                      "callback_data": data}])
    return rows


# -- /duties: open shifts and 我的领单 ------------------------------------------------------------

def open_shifts(session: Session, person: Person, *, now: datetime | None = None,
                days: int = 14) -> list[tuple[Shift, int]]:
    """Live shifts starting in the next `days` that `person` may sign up for, is not on, and that
    still have free places; with how many are free."""
    now = now or utcnow()
    counts = (select(ShiftSignup.shift_id, func.count().label("n")).where(ShiftSignup.status == SignupStatus.active)
              .group_by(ShiftSignup.shift_id).subquery())
    mine = select(ShiftSignup.shift_id).where(ShiftSignup.person_id == person.id,
                                              ShiftSignup.status == SignupStatus.active)
    rows = session.execute(
        select(Shift, func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.shift_id == Shift.id)
        .where(Shift.cancelled == false(), Shift.starts_at > now, Shift.starts_at < now + timedelta(days=days),
               func.coalesce(counts.c.n, 0) < Shift.capacity, Shift.id.not_in(mine))
        .order_by(Shift.starts_at, Shift.id)).all()
    out = []
    for shift, count in rows:
        if person.id in {p.id for p in shifts.eligible_for_shift(session, shift)}:
            out.append((shift, shift.capacity - int(count)))
    return out


def claimed_tickets(session: Session, person: Person) -> list[Ticket]:
    """我的领单: the tickets `person` claimed that are still theirs to finish, soonest deadline first."""
    return list(session.scalars(select(Ticket).where(Ticket.claimed_by_id == person.id,
                                                     Ticket.status == TicketStatus.claimed)
                                .order_by(Ticket.resolve_due_at.is_(None), Ticket.resolve_due_at, Ticket.id)))


def _cutoff(session: Session, shift_id: int) -> datetime | None:
    shift = session.get(Shift, shift_id)
    return shift.starts_at - timedelta(minutes=shift.cancel_cutoff_minutes) if shift is not None else None


def extend_payload(session: Session, person: Person, payload: dict[str, Any], *, tz: ZoneInfo,
                   now: datetime | None = None, days: int = 14) -> dict[str, Any]:
    """/duties as core.duties.overview.duties_payload makes it, plus: 改为请假 / 改为参加 on answered
    sessions, 取消报名 on shifts before their cutoff, open shifts with 报名, and 我的领单."""
    now = now or utcnow()
    lines = [payload["text"]]
    buttons: list[list[dict[str, str]]] = [list(row) for row in payload.get("buttons", [])]
    mine = overview.my_duties(session, person, tz=tz, now=now, days=days)
    for n, d in enumerate(mine, 1):
        if d.starts_at <= now:
            continue
        extra: list[dict[str, str]] = []
        if d.kind == "event" and d.status == "attending":
            extra.append({"text": t("duty.button_n", n=n, label=t("duty.button_change_leave")),
                          "callback_data": callbacks.event_answer("n", d.ref_id)})
        elif d.kind == "event" and d.status == "leave":
            extra.append({"text": t("duty.button_n", n=n, label=t("duty.button_change_attend")),
                          "callback_data": callbacks.event_answer("y", d.ref_id)})
        elif d.kind == "shift" and d.status in ("signed_up", "swap_requested"):
            cutoff = _cutoff(session, d.ref_id)
            if cutoff is not None and now < cutoff:
                extra.append({"text": t("duty.button_n", n=n, label=t("duty.button_cancel_signup")),
                              "callback_data": callbacks.shift_action("x", d.ref_id)})
        if not extra:
            continue
        # put it on the duty's own row when it has one (its number leads the labels)
        prefix = t("duty.button_n", n=n, label="")
        row = next((r for r in buttons if r and r[0]["text"].startswith(prefix)), None)
        if row is not None:
            row.extend(extra)
        else:
            buttons.append(extra)
    offers = open_shifts(session, person, now=now, days=days)
    if offers:
        lines.append(t("duty.open_header"))
        for i, (shift, free) in enumerate(offers, len(mine) + 1):  # numbered on from the member's own
            lines.append(t("duty.open_line", n=i, when=common.fmt_at(shift.starts_at, tz),
                           end=shift.ends_at.astimezone(tz).strftime("%H:%M"), title=shift.title,
                           place=shift.place, free=free))
            buttons.append([{"text": t("duty.button_open_signup", n=i, title=shift.title),
                             "callback_data": callbacks.shift_action("s", shift.id)}])
    claimed = claimed_tickets(session, person)
    if claimed:
        lines.append(t("duty.claimed_header"))
        for ticket in claimed:
            due = common.fmt_at(ticket.resolve_due_at, tz) if ticket.resolve_due_at else t("card.no_due")
            late = t("duty.claimed_late") if ticket.resolve_due_at and ticket.resolve_due_at < now else ""
            lines.append(t("duty.claimed_line", number=ticket.number, category=ticket.category.name,
                           description=ticket.description[:20], due=due, late=late))
    if len(lines) == 1 and not buttons:
        return payload
    text = "\n".join(lines)
    if not mine and (offers or claimed):  # "nothing" no longer true: say what there is
        text = "\n".join(lines[1:])
    out: dict[str, Any] = {"text": text}
    if buttons:
        out["buttons"] = buttons
    return out
