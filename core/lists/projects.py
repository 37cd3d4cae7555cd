"""Matching a resource with a need into a project, its status, its completion and its rating.

Suggestions rank the resources of the need's community that are still available: the kind that
usually serves the need's category first, then the place (the same grid's organisation or a
place named in the title), then text similarity (rapidfuzz) between the need and the resource.
A need that is already met (a project took it) is refused with the reason.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from rapidfuzz import fuzz
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.access.permissions import NotAllowed, allowed, require, scope_of_community, scope_of_grid
from core.messages import t
from core.models import (
    Building,
    Need,
    NeedStatus,
    Person,
    Project,
    ProjectRating,
    ProjectStatus,
    Resource,
    utcnow,
)

PS = ProjectStatus
DUE_DAYS = 30
SUGGESTED = 3
# which kinds of resource usually serve a category of need
SERVES = {"老人助餐": ("志愿者", "资金", "场地"), "楼道照明": ("物资", "资金", "专业服务"),
          "课后托管": ("场地", "志愿者", "专业服务"), "无障碍坡道": ("资金", "专业服务", "物资"),
          "环境美化": ("志愿者", "物资"), "其他": ()}
NEXT = {PS.planned: PS.under_way, PS.under_way: PS.done, PS.done: PS.evaluated}


def score(need: Need, resource: Resource) -> float:
    """Category fit (0–50), place (0–20), text similarity (0–30)."""
    kinds = SERVES.get(need.category, ())
    fit = 50 - 10 * kinds.index(resource.kind) if resource.kind in kinds else 0
    place = 20 if need.place and (need.place in resource.title or resource.title in need.place) else 0
    words = f"{need.category} {need.place} {need.beneficiaries} {need.text}"
    return fit + place + 0.3 * fuzz.partial_ratio(words, f"{resource.kind} {resource.title}")


def suggest(session: Session, need: Need, today: date) -> list[Resource]:
    rows = session.scalars(select(Resource).where(Resource.community_id == need.community_id,
                                                  Resource.available_to >= today))
    return sorted(rows, key=lambda r: (-score(need, r), r.id))[:SUGGESTED]


def open_needs(session: Session, person: Person | None) -> list[Need]:
    """Listed needs the admin may match."""
    rows = session.scalars(select(Need).where(Need.status == NeedStatus.listed).order_by(Need.id))
    return [n for n in rows if allowed(session, person, "lists.match", scope_of_community(n.community_id))]


def match(session: Session, actor: Person | None, need_id: int, resource_id: int, *,
          due: date | None = None, now: datetime | None = None) -> Project:
    need = session.get(Need, need_id, with_for_update=True)
    resource = session.get(Resource, resource_id)
    if need is None or resource is None:
        raise NotAllowed(t("button_invalid"))
    actor = require(session, actor, "lists.match", scope_of_community(need.community_id))
    if need.status is NeedStatus.met:
        raise NotAllowed(t("lists.deny.met"))
    if need.status is not NeedStatus.listed:
        raise NotAllowed(t("lists.deny.not_listed"))
    if resource.community_id != need.community_id:
        raise NotAllowed(t("lists.deny.elsewhere"))
    now = now or utcnow()
    row = Project(community_id=need.community_id, need_id=need.id, resource_id=resource.id, owner_id=actor.id,
                  due=due or (now.date() + timedelta(days=DUE_DAYS)), created_at=now, photos=[])
    need.status = NeedStatus.met
    session.add(row)
    session.flush()
    audit.record(session, actor, "lists.match", f"project:{row.id}", {"need": need.id, "resource": resource.id}, at=now)
    return row


def check_owner(session: Session, actor: Person | None, row: Project | None) -> Person:
    if row is None:
        raise NotAllowed(t("button_invalid"))
    if actor is not None and actor.id == row.owner_id:
        return actor
    return require(session, actor, "lists.match", scope_of_community(row.community_id))


def advance(session: Session, actor: Person | None, project_id: int, *, note: str = "",
            photos: list[str] | None = None, now: datetime | None = None) -> Project:
    """One step on: planned → under_way → done (a completion note is required) → evaluated."""
    row = session.get(Project, project_id, with_for_update=True)
    actor = check_owner(session, actor, row)
    assert row is not None
    if row.status not in NEXT:
        raise NotAllowed(t("lists.deny.evaluated"))
    target = NEXT[row.status]
    note = " ".join(note.split())
    if target is PS.done:
        if not note:
            raise NotAllowed(t("lists.deny.no_note"))
        row.note, row.photos, row.done_at = note, list(photos or []), now or utcnow()
    before, row.status = row.status, target
    session.flush()
    audit.record(session, actor, "lists.advance", f"project:{row.id}",
                 {"from": before.value, "to": target.value, "photos": len(row.photos)}, at=now)
    return row


def beneficiaries(session: Session, row: Project) -> list[Person]:
    """Residents bound in the need's grid, with a chat: who may rate the project."""
    need = session.get(Need, row.need_id)
    assert need is not None
    return list(session.scalars(select(Person).join(Building, Building.id == Person.building_id).where(
        Building.grid_id == need.grid_id, Person.telegram_id.is_not(None)).order_by(Person.id)))


def rate(session: Session, person: Person | None, project_id: int, stars: int,
         now: datetime | None = None) -> ProjectRating:
    row = session.get(Project, project_id)
    if row is None or not 1 <= stars <= 5:
        raise NotAllowed(t("button_invalid"))
    need = session.get(Need, row.need_id)
    assert need is not None
    person = require(session, person, "lists.rate", scope_of_grid(session, need.grid_id))
    if row.status not in (PS.done, PS.evaluated):
        raise NotAllowed(t("lists.deny.not_done"))
    if session.scalar(select(ProjectRating.id).where(ProjectRating.project_id == row.id,
                                                     ProjectRating.person_id == person.id)) is not None:
        raise NotAllowed(t("lists.deny.rated"))
    rating = ProjectRating(project_id=row.id, person_id=person.id, stars=stars, created_at=now or utcnow())
    session.add(rating)
    session.flush()
    audit.record(session, person, "lists.rate", f"project:{row.id}", {"stars": stars}, at=now)
    return rating


def describe(session: Session, row: Project) -> str:
    need, resource = session.get(Need, row.need_id), session.get(Resource, row.resource_id)
    assert need is not None and resource is not None
    owner = session.get(Person, row.owner_id) if row.owner_id else None
    return t("lists.project", id=row.id, category=need.category, place=need.place, organisation=resource.organisation,
             title=resource.title, owner=owner.display_name if owner else "", due=row.due.isoformat(),
             status=t(f"lists.project_status.{row.status.value}"))
