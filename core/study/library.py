"""/xuexi: the library a person reads — the materials with a topic of the branches where they hold
`study.read` (a member their branch, a community admin every branch of theirs) and of those
branches' communities — by topic, newest first, or searched by words, a page at a time.

Search is plain substring matching (SQL LIKE, case-insensitive), every word of the query in the
title, the words, the topic, the file name or the link: the app has no Chinese word segmenter
(jieba lives in the Rasa environment only), and a library of a few hundred items needs none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, false, func, or_, select
from sqlalchemy.orm import Session

from core.access.permissions import NotAllowed, allowed, branches_for, scope_of_branch
from core.duties.events import attendees
from core.messages import t
from core.models import (
    Attendance,
    AttendanceStatus,
    Branch,
    EventOccurrence,
    Grid,
    Person,
    StudyMaterial,
)

PAGE = 6  # items on a page
WORDS_LIMIT = 5  # words of a query that count
SEARCHED = (StudyMaterial.title, StudyMaterial.body, StudyMaterial.topic, StudyMaterial.file_name, StudyMaterial.url)


@dataclass(frozen=True)
class Shelf:
    """What one person may read: their branches and those branches' communities."""

    branches: list[Branch]
    community_ids: list[int]

    @property
    def names(self) -> str:
        return "、".join(b.name for b in self.branches)

    def where(self) -> ColumnElement[bool]:
        if not self.branches:
            return false()
        return StudyMaterial.topic.is_not(None) & (
            StudyMaterial.branch_id.in_([b.id for b in self.branches])
            | (StudyMaterial.branch_id.is_(None) & StudyMaterial.community_id.in_(self.community_ids)))


@dataclass
class Page:
    items: list[StudyMaterial] = field(default_factory=list)
    number: int = 0  # from 0
    total: int = 0

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE))

    @property
    def has_previous(self) -> bool:
        return self.number > 0

    @property
    def has_next(self) -> bool:
        return self.number + 1 < self.pages


def shelf_of(session: Session, person: Person | None) -> Shelf:
    branches = branches_for(session, person, "study.read")
    grids = {g.id: g.community_id for g in session.scalars(select(Grid).where(Grid.id.in_([b.grid_id for b in branches])))}
    return Shelf(branches, sorted({grids[b.grid_id] for b in branches if b.grid_id in grids}))


def count(session: Session, shelf: Shelf) -> int:
    return session.scalar(select(func.count()).select_from(StudyMaterial).where(shelf.where())) or 0


def topics(session: Session, shelf: Shelf) -> list[tuple[str, int]]:
    """(topic, how many items), the topic with the newest item first."""
    rows = session.execute(select(StudyMaterial.topic, func.count(), func.max(StudyMaterial.created_at))
                           .where(shelf.where()).group_by(StudyMaterial.topic)
                           .order_by(func.max(StudyMaterial.created_at).desc(), StudyMaterial.topic)).all()
    return [(str(topic), int(n)) for topic, n, _ in rows]


def words_of(query: str) -> list[str]:
    return [w for w in query.split() if w][:WORDS_LIMIT]


def _like(word: str) -> str:
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def page_of(session: Session, shelf: Shelf, *, topic: str | None = None, query: str | None = None,
            number: int = 0) -> Page:
    """One page of the shelf: a topic's items, or those matching every word of `query`; newest first."""
    condition = shelf.where()
    if topic is not None:
        condition = condition & (StudyMaterial.topic == topic)
    for word in words_of(query or ""):
        condition = condition & or_(*(column.ilike(_like(word), escape="\\") for column in SEARCHED))
    total = session.scalar(select(func.count()).select_from(StudyMaterial).where(condition)) or 0
    number = max(0, min(number, max(0, -(-total // PAGE) - 1)))
    items = list(session.scalars(select(StudyMaterial).where(condition)
                                 .order_by(StudyMaterial.created_at.desc(), StudyMaterial.id.desc())
                                 .offset(number * PAGE).limit(PAGE)))
    return Page(items, number, total)


def _given_for_catch_up(session: Session, person: Person, material: StudyMaterial) -> bool:
    """The material belongs to a session `person` was expected at (it came to them for 补学)."""
    if material.occurrence_id is None:
        return False
    occ = session.get(EventOccurrence, material.occurrence_id)
    if occ is None:
        return False
    answered = session.scalar(select(Attendance.id).where(Attendance.occurrence_id == occ.id,
                                                          Attendance.person_id == person.id,
                                                          Attendance.status != AttendanceStatus.checked_in))
    return answered is not None or person.id in {p.id for p in attendees(session, occ)}


def material_for(session: Session, person: Person | None, material_id: int) -> StudyMaterial:
    """A material `person` may open: on their shelf, a session's they were sent it for, or one of a
    branch they run; NotAllowed otherwise."""
    material = session.get(StudyMaterial, material_id)
    if material is None or person is None:
        raise NotAllowed(t("study.deny.not_found"))
    if session.scalar(select(func.count()).select_from(StudyMaterial)
                      .where(StudyMaterial.id == material.id, shelf_of(session, person).where())):
        return material
    branch = session.get(Branch, material.branch_id) if material.branch_id is not None else None
    if branch is not None and allowed(session, person, "study.manage", scope_of_branch(session, branch)):
        return material
    if _given_for_catch_up(session, person, material):
        return material
    raise NotAllowed(t("study.deny.not_found"))


def line_values(material: StudyMaterial, n: int, tz: Any) -> dict[str, Any]:
    local = material.created_at.astimezone(tz)
    return {"n": n, "date": t("study.date", month=local.month, day=local.day), "title": material.title,
            "kind": t(f"study.kind.{material.kind.value}")}
