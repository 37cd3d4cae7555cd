"""Attendance reports: one occurrence's roll, and a branch's month."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import false, select
from sqlalchemy.orm import Session

from core.duties.common import (
    A,
    branch_by_id,
    fmt_at,
    names_of,
    now_or_utc,
    require_manager,
    zone_named,
)
from core.duties.events import attendees, occurrence_by_id
from core.messages import t
from core.models import (
    Attendance,
    Branch,
    Event,
    EventOccurrence,
    Person,
)


@dataclass(frozen=True)
class EventReport:
    occurrence: EventOccurrence
    coming: list[Person]  # answered 参加 or checked in
    leave: list[tuple[Person, str]]  # with the reason
    no_answer: list[Person]
    checked_in: list[Person]

    @property
    def expected(self) -> int:
        return len(self.coming) + len(self.leave) + len(self.no_answer)


def _report(session: Session, occ: EventOccurrence) -> EventReport:
    rows = {a.person_id: a for a in session.scalars(select(Attendance).where(Attendance.occurrence_id == occ.id))}
    people = {p.id: p for p in attendees(session, occ)}
    for person_id in rows.keys() - people.keys():  # answered, then left the audience
        extra = session.get(Person, person_id)
        if extra is not None:
            people[person_id] = extra
    ordered = [people[i] for i in sorted(people)]
    status = {i: rows[i].status for i in rows}
    return EventReport(
        occ,
        coming=[p for p in ordered if status.get(p.id) in (A.attending, A.checked_in)],
        leave=[(p, rows[p.id].reason or "") for p in ordered if status.get(p.id) is A.leave],
        no_answer=[p for p in ordered if p.id not in status],
        checked_in=[p for p in ordered if status.get(p.id) is A.checked_in])


REPORT_LOOKBACK = timedelta(hours=6)  # /report shows a meeting that started this recently


def occurrence_to_report(session: Session, branch_id: int, now: datetime) -> EventOccurrence | None:
    """The branch's next meeting (or one that started within REPORT_LOOKBACK), else its last."""
    base = (select(EventOccurrence).join(Event, Event.id == EventOccurrence.event_id)
            .where(Event.branch_id == branch_id, EventOccurrence.cancelled == false()))
    nxt = session.scalars(base.where(EventOccurrence.starts_at >= now - REPORT_LOOKBACK)
                          .order_by(EventOccurrence.starts_at).limit(1)).first()
    return nxt or session.scalars(base.order_by(EventOccurrence.starts_at.desc()).limit(1)).first()


def event_report(session: Session, occurrence_id: int, actor: Person | None) -> EventReport:
    """Who comes, who asked for leave (and why), who did not answer, who checked in."""
    occ = occurrence_by_id(session, occurrence_id)
    require_manager(session, actor, branch_by_id(session, occ.event.branch_id), "event.report")
    return _report(session, occ)


def event_report_text(report: EventReport) -> str:
    occ, event = report.occurrence, report.occurrence.event
    lines = [t("duty.report_header", title=event.title, when=fmt_at(occ.starts_at, zone_named(event.tz)),
               expected=report.expected, coming=len(report.coming), checked_in=len(report.checked_in),
               leave=len(report.leave), no_answer=len(report.no_answer)),
             t("duty.report_coming", names=names_of(report.coming)),
             t("duty.report_checked_in", names=names_of(report.checked_in)),
             t("duty.report_leave", names="、".join(t("duty.report_leave_item", name=p.display_name, reason=r)
                                                   for p, r in report.leave) or t("duty.none")),
             t("duty.report_no_answer", names=names_of(report.no_answer))]
    return "\n".join(lines)


@dataclass
class Tally:
    expected: int = 0
    attended: int = 0  # checked in
    leave: int = 0
    absent: int = 0  # neither checked in nor on leave


@dataclass
class MonthlySummary:
    branch: Branch
    year: int
    month: int
    occurrences: list[tuple[EventOccurrence, Tally]] = field(default_factory=list)
    people: list[tuple[Person, Tally]] = field(default_factory=list)
    total: Tally = field(default_factory=Tally)

    @property
    def rate(self) -> float | None:
        return self.total.attended / self.total.expected if self.total.expected else None


def monthly_summary(session: Session, branch_id: int, year: int, month: int, actor: Person | None, *,
                    now: datetime | None = None, tz: ZoneInfo) -> MonthlySummary:
    """Attendance of the branch's occurrences that started in the (local) month, up to now."""
    now = now_or_utc(now)
    branch = branch_by_id(session, branch_id)
    require_manager(session, actor, branch, "event.report")
    start = datetime(year, month, 1, tzinfo=tz)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    summary = MonthlySummary(branch, year, month)
    by_person: dict[int, tuple[Person, Tally]] = {}
    occs = session.scalars(select(EventOccurrence).join(Event, Event.id == EventOccurrence.event_id).where(
        Event.branch_id == branch.id, EventOccurrence.cancelled == false(),
        EventOccurrence.starts_at >= start, EventOccurrence.starts_at < end, EventOccurrence.starts_at <= now)
        .order_by(EventOccurrence.starts_at, EventOccurrence.id))
    for occ in occs:
        report, tally = _report(session, occ), Tally()
        came = {p.id for p in report.checked_in}
        on_leave = {p.id for p, _ in report.leave}
        for person in [*report.coming, *(p for p, _ in report.leave), *report.no_answer]:
            mine = by_person.setdefault(person.id, (person, Tally()))[1]
            for tl in (tally, mine, summary.total):
                tl.expected += 1
                if person.id in came:
                    tl.attended += 1
                elif person.id in on_leave:
                    tl.leave += 1
                else:
                    tl.absent += 1
        summary.occurrences.append((occ, tally))
    summary.people = [by_person[i] for i in sorted(by_person)]
    return summary


def monthly_summary_text(summary: MonthlySummary, tz: ZoneInfo) -> str:
    head: dict[str, Any] = dict(branch=summary.branch.name, year=summary.year, month=summary.month)
    if not summary.occurrences:
        return t("duty.summary_none", **head)
    total = summary.total
    lines = [t("duty.summary_header", **head, events=len(summary.occurrences), expected=total.expected,
               attended=total.attended, leave=total.leave, absent=total.absent,
               rate=f"{summary.rate:.0%}" if summary.rate is not None else t("duty.none"))]
    for occ, tl in summary.occurrences:
        lines.append(t("duty.summary_event", when=fmt_at(occ.starts_at, tz), title=occ.event.title,
                       attended=tl.attended, expected=tl.expected, leave=tl.leave, absent=tl.absent))
    lines.append(t("duty.summary_people"))
    for person, tl in summary.people:
        lines.append(t("duty.summary_person", name=person.display_name, attended=tl.attended,
                       expected=tl.expected, leave=tl.leave, absent=tl.absent))
    return "\n".join(lines)
