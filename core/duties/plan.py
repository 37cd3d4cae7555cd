"""Scheduling sessions and shifts from a plan: a /schedule draft (bot/schedule_chat.py) or a
year's plan in a YAML or CSV file (`gridbot schedule FILE`).

One item of a plan names its kind — a 三会一课 kind, 主题党日, 学习, or a volunteer shift
(执勤) — its title, place and time in words ("每月第一个周五晚上7点", "12月6日 7:00",
core.schedule_words), and optionally: how it repeats ("每季度一次"), the check-in window
(minutes before and after the start), whether it is mandatory; a shift its places, its end
(or a span in the time: "周六上午9点到11点") and its cancel cutoff in hours. `resolve` turns
the words into times and fails with a Chinese reason; `create` schedules it through
core.duties (which tells the members; the scheduler picks up the reminders of the new
occurrences at its next sync).

Plan files:

    # YAML: a list of items (or {"items": [...]})
    - kind: 党小组会
      title: 第一党小组学习
      place: 社区党群服务中心
      when: 每月第一个周五晚上7点
      checkin: [30, 60]
    - kind: 执勤
      title: 卡口执勤
      place: 东门
      when: 12月12日上午9点到11点
      places: 4
      cutoff_hours: 24
    - kind: 学习
      title: 读书会
      place: 党群服务中心会议室
      space: SP-HPL-MR          # optional: the 共享空间 it books (else the one the place names)
      when: 12月12日晚上7点

    # CSV: a header row with the same names (checkin as "30/60")
    kind,title,place,when,repeat,places,cutoff_hours,mandatory,checkin,branch,space

A file's items are checked all first; an error names FILE:LINE and nothing is scheduled.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import false, select
from sqlalchemy.orm import Session

from core.access.permissions import NotAllowed
from core.duties import common, events, recurrence, shifts
from core.messages import t
from core.models import Branch, Event, EventKind, Person, Shift
from core.schedule_words import Reading, parse_repeat, parse_schedule, rule_text
from core.spaces import duty as space_duty

SHIFT = "shift"
# The kinds a person may name, in the order /schedule offers them.
KIND_NAMES: dict[str, str] = {
    EventKind.general_meeting.value: "支部党员大会",
    EventKind.committee.value: "支委会",
    EventKind.group_meeting.value: "党小组会",
    EventKind.lecture.value: "党课",
    EventKind.theme_day.value: "主题党日",
    EventKind.study.value: "学习",
    SHIFT: "志愿执勤",
}
_KIND_ALIASES = {**{name: code for code, name in KIND_NAMES.items()}, **{code: code for code in KIND_NAMES},
                 "党员大会": EventKind.general_meeting.value, "支部大会": EventKind.general_meeting.value,
                 "读书会": EventKind.study.value, "执勤": SHIFT, "值班": SHIFT, "志愿服务": SHIFT,
                 "志愿": SHIFT}
DEFAULT_SHIFT_HOURS = 2
DEFAULT_CUTOFF_HOURS = 24
DEFAULT_CHECKIN = (30, 60)


class PlanError(ValueError):
    """Why an item cannot be scheduled (Chinese, for the person)."""


def kind_code(name: str) -> str:
    code = _KIND_ALIASES.get(str(name).strip())
    if code is None:
        raise PlanError(t("schedule.deny.kind", kind=name))
    return code


@dataclass
class Resolved:
    """An item with its times read: ready for `create` and `preview`."""

    kind: str
    title: str
    place: str
    starts_at: datetime
    ends_at: datetime | None = None  # shifts
    rule: str | None = None
    sure: bool = True
    checkin: tuple[int, int] = DEFAULT_CHECKIN
    mandatory: bool | None = None
    capacity: int | None = None
    cutoff_minutes: int = DEFAULT_CUTOFF_HOURS * 60
    branch: str | None = None
    space: str | None = None  # a 共享空间's code (core.spaces.duty)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_shift(self) -> bool:
        return self.kind == SHIFT


def _int(value: Any, what: str, low: int = 0) -> int:
    try:
        number = int(float(str(value).strip()))
    except (TypeError, ValueError) as exc:
        raise PlanError(t("schedule.deny.number", what=what, value=value)) from exc
    if number < low:
        raise PlanError(t("schedule.deny.number", what=what, value=value))
    return number


def _bool(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "y", "是", "必须", "必须参加")


def _checkin(value: Any) -> tuple[int, int]:
    if value is None or value == "":
        return DEFAULT_CHECKIN
    parts = value if isinstance(value, list) else str(value).replace("，", ",").replace("/", ",").split(",")
    if len(parts) != 2:
        raise PlanError(t("schedule.deny.checkin", value=value))
    return _int(parts[0], t("schedule.field.checkin")), _int(parts[1], t("schedule.field.checkin"))


def resolve(item: dict[str, Any], now: datetime, tz: ZoneInfo) -> Resolved:
    """An item of a plan (names as in the module doc) read into times; PlanError says why not."""
    kind = kind_code(item.get("kind", ""))
    title = str(item.get("title") or KIND_NAMES[kind]).strip()
    place = str(item.get("place") or "").strip()
    if not place:
        raise PlanError(t("schedule.deny.place"))
    words = str(item.get("when") or "").strip()
    reading = parse_schedule(words, now, tz) if words else None
    if reading is None:
        raise PlanError(t("schedule.deny.when", when=words))
    rule = reading.rule
    repeat = str(item.get("repeat") or "").strip()
    if repeat and repeat not in ("不重复", "无", "一次"):
        rule = parse_repeat(repeat, reading.at, tz)
        if rule is None:
            raise PlanError(t("schedule.deny.repeat", repeat=repeat))
    out = Resolved(kind, title, place, reading.at, reading.end, rule, reading.sure,
                   checkin=_checkin(item.get("checkin")), mandatory=_bool(item.get("mandatory")),
                   branch=str(item["branch"]).strip() if item.get("branch") else None,
                   space=str(item["space"]).strip() if item.get("space") else None)
    if kind == SHIFT:
        if rule is not None:
            raise PlanError(t("schedule.deny.shift_repeat"))
        out.capacity = _int(item.get("places") or 0, t("schedule.field.places"), 1)
        if item.get("end"):
            end = parse_schedule(f"{reading.at.astimezone(tz):%Y-%m-%d} {item['end']}", now, tz)
            if end is None or end.at <= reading.at:
                raise PlanError(t("schedule.deny.when", when=item["end"]))
            out.ends_at = end.at
        out.ends_at = out.ends_at or reading.at + timedelta(hours=DEFAULT_SHIFT_HOURS)
        hours = item.get("cutoff_hours")
        out.cutoff_minutes = round(float(hours) * 60) if hours not in (None, "") else DEFAULT_CUTOFF_HOURS * 60
    return out


def when_text(r: Resolved, tz: ZoneInfo) -> str:
    return Reading(r.starts_at, r.ends_at if r.is_shift else None, r.rule, r.sure).says(tz)


def preview(r: Resolved, tz: ZoneInfo) -> str:
    """What will be scheduled, in words, for the confirmation."""
    head: dict[str, Any] = dict(kind=KIND_NAMES[r.kind], title=r.title, place=r.place, when=when_text(r, tz))
    if r.is_shift:
        return t("schedule.preview_shift", **head, places=r.capacity,
                 cutoff=common.span(r.cutoff_minutes))
    mandatory = r.kind != EventKind.study.value if r.mandatory is None else r.mandatory
    return t("schedule.preview_event", **head, before=r.checkin[0], after=r.checkin[1],
             mandatory=t("schedule.mandatory_yes" if mandatory else "schedule.mandatory_no"))


def create(session: Session, actor: Person, branch_id: int, r: Resolved, *, tz: ZoneInfo,
           now: datetime | None = None) -> Event | Shift:
    """Schedule it (core.duties checks the actor and tells the members; a space it is held in is
    booked, core.spaces.duty)."""
    space_id = space_duty.space_by_code(session, r.space).id if r.space else None
    if r.is_shift:
        assert r.ends_at is not None and r.capacity is not None
        return shifts.publish_shift(session, actor, title=r.title, place=r.place, starts_at=r.starts_at,
                                    ends_at=r.ends_at, capacity=r.capacity, branch_id=branch_id,
                                    cancel_cutoff_minutes=r.cutoff_minutes, now=now, tz=tz, space_id=space_id)
    return events.create_event(session, actor, branch_id=branch_id, kind=EventKind(r.kind), title=r.title,
                               place=r.place, starts_at=r.starts_at, rrule=r.rule,
                               tz=tz.key, mandatory=r.mandatory,
                               checkin_before=r.checkin[0], checkin_after=r.checkin[1], now=now,
                               space_id=space_id)



@dataclass(frozen=True)
class Scheduled:
    """Something of a branch still to come, for /schedule's 管理已安排: a series or a shift."""

    kind: str  # "event" or "shift"
    id: int
    title: str
    next_at: datetime


def coming(session: Session, branch_id: int, now: datetime) -> list[Scheduled]:
    """The branch's live sessions (by their next time) and shifts not yet started."""
    out = []
    for event in session.scalars(select(Event).where(Event.branch_id == branch_id, Event.cancelled == false())
                                 .order_by(Event.starts_at, Event.id)):
        nxt = recurrence.next_time(event, now)
        if nxt is not None:
            out.append(Scheduled("event", event.id, event.title, nxt))
    for shift in session.scalars(select(Shift).where(Shift.branch_id == branch_id, Shift.cancelled == false(),
                                                     Shift.starts_at > now).order_by(Shift.starts_at, Shift.id)):
        out.append(Scheduled("shift", shift.id, shift.title, shift.starts_at))
    return out

# -- files --------------------------------------------------------------------------------------

def read_plan(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The items of a YAML or CSV plan, each with its line number; PlanError names FILE:LINE."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        return [(reader.line_num, {k.strip(): (v or "").strip() for k, v in row.items() if k})
                for row in reader]
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PlanError(f"{path}:{mark.line + 1 if mark else 1}: {exc}") from exc
    nodes: list[Any] = []
    if isinstance(data, dict) and "items" in data:
        assert root is not None
        data = data["items"]
        root = next(v for k, v in root.value if k.value == "items")
    if not isinstance(data, list):
        raise PlanError(f"{path}:1: {t('schedule.deny.file')}")
    nodes = list(root.value) if root is not None else []
    out = []
    for i, item in enumerate(data):
        line = nodes[i].start_mark.line + 1 if i < len(nodes) else 1
        if not isinstance(item, dict):
            raise PlanError(f"{path}:{line}: {t('schedule.deny.file')}")
        out.append((line, item))
    return out


@dataclass(frozen=True)
class Planned:
    line: int
    resolved: Resolved


def check_plan(path: Path, now: datetime, tz: ZoneInfo) -> list[Planned]:
    """Every item of the file resolved; the first error raises PlanError("FILE:LINE: reason")."""
    planned = []
    for line, item in read_plan(path):
        try:
            planned.append(Planned(line, resolve(item, now, tz)))
        except PlanError as exc:
            raise PlanError(f"{path}:{line}: {exc}") from exc
    return planned


def describe_rule(rule: str | None, first: datetime, tz: ZoneInfo) -> str:
    return rule_text(rule, first, tz) if rule else t("schedule.once")


def schedule_file(session: Session, path: Path, *, branch_code: str | None, actor_code: str | None,
                  now: datetime, tz: ZoneInfo, dry_run: bool = False) -> list[str]:
    """`gridbot schedule`: check every item of the file, then schedule them all (in the caller's
    transaction) as `actor_code` (default: each branch's secretary); one line per item.
    PlanError("FILE:LINE: reason") for the first bad item, nothing scheduled."""
    planned = check_plan(path, now, tz)
    lines = []
    for item in planned:
        code = item.resolved.branch or branch_code
        branch = session.scalar(select(Branch).where(Branch.code == code)) if code else None
        if branch is None:
            raise PlanError(f"{path}:{item.line}: {t('schedule.deny.branch', branch=code or '')}")
        actor = (session.scalar(select(Person).where(Person.code == actor_code)) if actor_code
                 else session.get(Person, branch.secretary_id) if branch.secretary_id else None)
        if actor is None:
            raise PlanError(f"{path}:{item.line}: {t('schedule.deny.actor', person=actor_code or '')}")
        if not dry_run:
            try:
                create(session, actor, branch.id, item.resolved, now=now, tz=tz)
            except NotAllowed as exc:
                raise PlanError(f"{path}:{item.line}: {exc}") from exc
        lines.append(f"{path.name}:{item.line}: {branch.code} {KIND_NAMES[item.resolved.kind]} "
                     f"{item.resolved.title} · {when_text(item.resolved, tz)}")
    return lines
