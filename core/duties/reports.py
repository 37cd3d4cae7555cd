"""Attendance reports: one occurrence's roll, and a branch's month. 出席 (checked in) and 补学
(core.study.catchup: studied the materials afterwards) are counted apart."""

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
from core.study.catchup import caught_up, ended


@dataclass(frozen=True)
class EventReport:
    occurrence: EventOccurrence
    coming: list[Person]  # answered 参加 or checked in
    leave: list[tuple[Person, str]]  # with the reason
    no_answer: list[Person]
    checked_in: list[Person]
    caught_up: list[Person] = field(default_factory=list)  # 补学: did not check in, studied afterwards
    missing: list[Person] = field(default_factory=list)  # neither checked in nor caught up
    ended: bool = False  # attendance is recorded (the check-in window has closed)

    @property
    def expected(self) -> int:
        return len(self.coming) + len(self.leave) + len(self.no_answer)


def _report(session: Session, occ: EventOccurrence, now: datetime | None = None) -> EventReport:
    rows = {a.person_id: a for a in session.scalars(select(Attendance).where(Attendance.occurrence_id == occ.id))}
    people = {p.id: p for p in attendees(session, occ)}
    for person_id in rows.keys() - people.keys():  # answered, then left the audience
        extra = session.get(Person, person_id)
        if extra is not None:
            people[person_id] = extra
    ordered = [people[i] for i in sorted(people)]
    status = {i: rows[i].status for i in rows}
    studied = caught_up(session, [occ.id]).get(occ.id, set())
    return EventReport(
        occ,
        coming=[p for p in ordered if status.get(p.id) in (A.attending, A.checked_in)],
        leave=[(p, rows[p.id].reason or "") for p in ordered if status.get(p.id) is A.leave],
        no_answer=[p for p in ordered if p.id not in status],
        checked_in=[p for p in ordered if status.get(p.id) is A.checked_in],
        caught_up=[p for p in ordered if status.get(p.id) is not A.checked_in and p.id in studied],
        missing=[p for p in ordered if status.get(p.id) is not A.checked_in and p.id not in studied],
        ended=ended(occ, now_or_utc(now)))


REPORT_LOOKBACK = timedelta(hours=6)  # /report shows a meeting that started this recently


def occurrence_to_report(session: Session, branch_id: int, now: datetime) -> EventOccurrence | None:
    """The branch's next meeting (or one that started within REPORT_LOOKBACK), else its last."""
    base = (select(EventOccurrence).join(Event, Event.id == EventOccurrence.event_id)
            .where(Event.branch_id == branch_id, EventOccurrence.cancelled == false()))
    nxt = session.scalars(base.where(EventOccurrence.starts_at >= now - REPORT_LOOKBACK)
                          .order_by(EventOccurrence.starts_at).limit(1)).first()
    return nxt or session.scalars(base.order_by(EventOccurrence.starts_at.desc()).limit(1)).first()


def event_report(session: Session, occurrence_id: int, actor: Person | None, *,
                 now: datetime | None = None) -> EventReport:
    """Who comes, who asked for leave (and why), who did not answer, who checked in; once it is
    over, who caught up (补学) and who has neither."""
    occ = occurrence_by_id(session, occurrence_id)
    require_manager(session, actor, branch_by_id(session, occ.event.branch_id), "event.report")
    return _report(session, occ, now)


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
    if report.ended:
        lines += [t("study.report_caught_up", names=names_of(report.caught_up)),
                  t("study.report_missing", names=names_of(report.missing))]
    return "\n".join(lines)


@dataclass
class Tally:
    expected: int = 0
    attended: int = 0  # checked in
    leave: int = 0
    absent: int = 0  # neither checked in nor on leave
    caught_up: int = 0  # of those on leave or absent: 补学 since

    @property
    def neither(self) -> int:
        """Neither 出席 nor 补学."""
        return self.leave + self.absent - self.caught_up


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
    branch = branch_by_id(session, branch_id)
    require_manager(session, actor, branch, "event.report")
    return summarise(session, branch, year, month, now=now, tz=tz)


def summarise(session: Session, branch: Branch, year: int, month: int, *, now: datetime | None = None,
              tz: ZoneInfo) -> MonthlySummary:
    """`monthly_summary` without the permission check: for callers that checked their own (the
    command centre's view, core.study.figures)."""
    now = now_or_utc(now)
    start = datetime(year, month, 1, tzinfo=tz)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    summary = MonthlySummary(branch, year, month)
    by_person: dict[int, tuple[Person, Tally]] = {}
    occs = session.scalars(select(EventOccurrence).join(Event, Event.id == EventOccurrence.event_id).where(
        Event.branch_id == branch.id, EventOccurrence.cancelled == false(),
        EventOccurrence.starts_at >= start, EventOccurrence.starts_at < end, EventOccurrence.starts_at <= now)
        .order_by(EventOccurrence.starts_at, EventOccurrence.id))
    for occ in occs:
        report, tally = _report(session, occ, now), Tally()
        came = {p.id for p in report.checked_in}
        on_leave = {p.id for p, _ in report.leave}
        studied = {p.id for p in report.caught_up}
        for person in [*report.coming, *(p for p, _ in report.leave), *report.no_answer]:
            mine = by_person.setdefault(person.id, (person, Tally()))[1]
            for tl in (tally, mine, summary.total):
                tl.expected += 1
                if person.id in came:
                    tl.attended += 1
                    continue
                if person.id in on_leave:
                    tl.leave += 1
                else:
                    tl.absent += 1
                if person.id in studied:
                    tl.caught_up += 1
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
               rate=f"{summary.rate:.0%}" if summary.rate is not None else t("duty.none")),
             t("study.summary_split", attended=total.attended, caught_up=total.caught_up, neither=total.neither)]
    for occ, tl in summary.occurrences:
        lines.append(t("duty.summary_event", when=fmt_at(occ.starts_at, tz), title=occ.event.title,
                       attended=tl.attended, expected=tl.expected, leave=tl.leave, absent=tl.absent)
                     + t("study.summary_caught_up", caught_up=tl.caught_up))
    lines.append(t("duty.summary_people"))
    for person, tl in summary.people:
        lines.append(t("duty.summary_person", name=person.display_name, attended=tl.attended,
                       expected=tl.expected, leave=tl.leave, absent=tl.absent)
                     + t("study.summary_caught_up", caught_up=tl.caught_up))
    return "\n".join(lines)
