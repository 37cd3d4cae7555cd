"""Listing resources and needs.

A resource is offered by a unit's party organisation: through its 双报到 liaison (a 在职党员
whose approved /baodao names the organisation) or by a community admin for an organisation of the
registry. The same organisation offering the same kind and title again for days that overlap an
earlier offer is refused. A need listed by the grid (secretary, grid worker, community admin) is
listed at once; one a resident proposes waits for the grid's review. Every change is audited.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.access.permissions import NotAllowed, allowed, require, scope_of_community, scope_of_grid
from core.messages import t
from core.models import (
    BaodaoRegistration,
    Building,
    Consultation,
    Grid,
    Need,
    NeedStatus,
    PartyOrganisation,
    Person,
    RegistrationStatus,
    Resource,
    utcnow,
)

KINDS = ("场地", "志愿者", "资金", "专业服务", "物资")
CATEGORIES = ("老人助餐", "楼道照明", "课后托管", "无障碍坡道", "环境美化", "其他")
BENEFICIARIES = ("老年人", "儿童", "残障人士", "全体居民")
# availability buttons -> (first day offset, length in days); "长期" is a year
PERIODS = {"本周": (0, 7), "本月": (0, 30), "三个月": (0, 90), "长期": (0, 365)}
TEXT_LIMIT = 100


def clean(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise NotAllowed(t("lists.deny.empty"))
    if len(text) > TEXT_LIMIT:
        raise NotAllowed(t("lists.deny.too_long", limit=TEXT_LIMIT))
    return text


def parse_offer(text: str) -> tuple[str, int]:
    """'会议室 2' -> ('会议室', 2); a title alone is a quantity of 1."""
    words = clean(text).rsplit(" ", 1)
    if len(words) == 2 and words[1].isdigit() and int(words[1]) > 0:
        return words[0], int(words[1])
    return " ".join(words), 1


def period(name: str, today: date) -> tuple[date, date]:
    if name not in PERIODS:
        raise NotAllowed(t("button_invalid"))
    offset, days = PERIODS[name]
    start = today + timedelta(days=offset)
    return start, start + timedelta(days=days - 1)


def liaison_of(session: Session, person: Person | None) -> BaodaoRegistration | None:
    """The person's approved /baodao: they speak for its organisation."""
    if person is None:
        return None
    return session.scalar(select(BaodaoRegistration).where(
        BaodaoRegistration.person_id == person.id, BaodaoRegistration.status == RegistrationStatus.approved))


def offer(session: Session, person: Person | None, *, kind: str, title: str, quantity: int,
          available_from: date, available_to: date, organisation_id: int | None = None,
          community_id: int | None = None, now: datetime | None = None) -> Resource:
    """List a resource. A liaison offers for their /baodao organisation in its community; an admin
    names a registry organisation (`organisation_id`) in `community_id`."""
    if kind not in KINDS:
        raise NotAllowed(t("lists.deny.kind", kind=kind))
    if quantity <= 0 or available_to < available_from:
        raise NotAllowed(t("lists.deny.quantity"))
    title = clean(title)
    registration = liaison_of(session, person)
    if organisation_id is None and registration is not None:
        actor = require(session, person, "lists.offer", scope_of_grid(session, registration.grid_id))
        name, org_id, community = registration.organisation, registration.organisation_id, registration.community_id
    else:
        if community_id is None:
            raise NotAllowed(t("lists.deny.offer"))
        actor = require(session, person, "lists.offer", scope_of_community(community_id))
        org = session.get(PartyOrganisation, organisation_id) if organisation_id is not None else None
        if org is None:
            raise NotAllowed(t("lists.deny.offer"))
        name, org_id, community = org.name, org.id, community_id
    twice = session.scalar(select(Resource).where(
        Resource.organisation == name, Resource.kind == kind, Resource.title == title,
        Resource.available_from <= available_to, Resource.available_to >= available_from))
    if twice is not None:
        raise NotAllowed(t("lists.deny.twice", title=title, start=twice.available_from.isoformat(),
                           end=twice.available_to.isoformat()))
    row = Resource(community_id=community, organisation_id=org_id, organisation=name, kind=kind, title=title,
                   quantity=quantity, available_from=available_from, available_to=available_to,
                   offered_by_id=actor.id, created_at=now or utcnow())
    session.add(row)
    session.flush()
    audit.record(session, actor, "lists.offer", f"resource:{row.id}", {"kind": kind, "organisation": name}, at=now)
    return row


def home_grid(session: Session, person: Person | None) -> Grid:
    building = session.get(Building, person.building_id) if person and person.building_id else None
    grid = session.get(Grid, building.grid_id) if building is not None else None
    if grid is None:
        raise NotAllowed(t("lists.deny.no_home"))
    return grid


def post_need(session: Session, person: Person | None, grid_id: int, *, category: str, place: str,
              beneficiaries: str, text: str = "", now: datetime | None = None) -> Need:
    """The grid lists a need at once; a resident's waits for review (status pending)."""
    if category not in CATEGORIES:
        raise NotAllowed(t("lists.deny.category", category=category))
    scope = scope_of_grid(session, grid_id)
    if allowed(session, person, "lists.need", scope):
        status = NeedStatus.listed
    else:
        require(session, person, "lists.propose", scope)
        status = NeedStatus.pending
    assert person is not None
    grid = session.get(Grid, grid_id)
    assert grid is not None
    row = Need(community_id=grid.community_id, grid_id=grid_id, category=category, place=clean(place),
               beneficiaries=clean(beneficiaries), text=" ".join(text.split()), status=status,
               posted_by_id=person.id, created_at=now or utcnow())
    session.add(row)
    session.flush()
    audit.record(session, person, "lists.need", f"need:{row.id}", {"status": status.value, "grid": grid.code}, at=now)
    return row


def need_from_minutes(session: Session, actor: Person | None, consultation_id: int,
                      now: datetime | None = None) -> Need:
    """议事 → 转为需求: the published minutes of a consultation become a listed need of its grid
    (once), which the community admin may then match into a project."""
    consultation = session.get(Consultation, consultation_id)
    if consultation is None:
        raise NotAllowed(t("button_invalid"))
    actor = require(session, actor, "consult.minutes", scope_of_grid(session, consultation.grid_id))
    if consultation.minutes is None:
        raise NotAllowed(t("consult.minutes_needed"))
    if session.scalar(select(Need.id).where(Need.consultation_id == consultation.id)) is not None:
        raise NotAllowed(t("lists.deny.minutes_twice"))
    grid = session.get(Grid, consultation.grid_id)
    assert grid is not None
    row = Need(community_id=grid.community_id, grid_id=grid.id, category="其他",
               place=consultation.scope_label[:200], beneficiaries="全体居民",
               text=f"{consultation.question} {consultation.minutes}", status=NeedStatus.listed,
               posted_by_id=actor.id, consultation_id=consultation.id, created_at=now or utcnow())
    session.add(row)
    session.flush()
    audit.record(session, actor, "lists.need", f"need:{row.id}", {"consultation": consultation.id}, at=now)
    return row


def reviewers(session: Session, need: Need) -> list[Person]:
    """Who reviews a resident's need: those of the grid who may list one (with a chat)."""
    scope = scope_of_grid(session, need.grid_id)
    people = session.scalars(select(Person).where(Person.telegram_id.is_not(None)).order_by(Person.id))
    return [p for p in people if p.grants and allowed(session, p, "lists.review", scope)]


def review(session: Session, actor: Person | None, need_id: int, *, approve: bool, reason: str = "",
           now: datetime | None = None) -> Need:
    row = session.get(Need, need_id, with_for_update=True)
    if row is None:
        raise NotAllowed(t("button_invalid"))
    actor = require(session, actor, "lists.review", scope_of_grid(session, row.grid_id))
    if row.status is not NeedStatus.pending:
        raise NotAllowed(t("lists.deny.reviewed"))
    reason = " ".join(reason.split())
    if not approve and not reason:
        raise NotAllowed(t("lists.deny.no_reason"))
    row.status = NeedStatus.listed if approve else NeedStatus.declined
    row.reviewed_by_id, row.reason = actor.id, reason or None
    session.flush()
    audit.record(session, actor, "lists.approve" if approve else "lists.decline", f"need:{row.id}",
                 {"reason": reason} if reason else {}, at=now)
    return row


def describe_resource(row: Resource) -> str:
    return t("lists.resource", organisation=row.organisation, kind=row.kind, title=row.title, quantity=row.quantity,
             start=row.available_from.isoformat(), end=row.available_to.isoformat())


def describe_need(session: Session, row: Need) -> str:
    grid = session.get(Grid, row.grid_id)
    return t("lists.need", category=row.category, place=row.place, beneficiaries=row.beneficiaries,
             grid=grid.name if grid else "", status=t(f"lists.need_status.{row.status.value}"))
