"""三张清单: what units offer (resources), what grids and residents need (needs), and the projects
that pair one with the other."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import JSON, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, UTCDateTime, utcnow


class NeedStatus(enum.Enum):
    pending = "pending"  # a resident's, waiting for the grid's review
    listed = "listed"
    declined = "declined"
    met = "met"  # a project took it on


class ProjectStatus(enum.Enum):
    planned = "planned"
    under_way = "under_way"
    done = "done"
    evaluated = "evaluated"


def _enum(cls: type[enum.Enum]) -> SAEnum:
    return SAEnum(cls, native_enum=False, length=16)


class Resource(Base):
    """What a unit's party organisation offers: a kind (场地, 志愿者, 资金, 专业服务, 物资), how much,
    and the days it is available (both ends included)."""

    __tablename__ = "resources"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("party_organisations.id"), default=None)
    organisation: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    available_from: Mapped[date] = mapped_column(Date)
    available_to: Mapped[date] = mapped_column(Date)
    offered_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), default=None)
    code: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)  # from the registry
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Need(Base):
    """What a grid needs: a place, a category (老人助餐, 楼道照明, ...) and who benefits."""

    __tablename__ = "needs"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"), index=True)
    category: Mapped[str] = mapped_column(String(32))
    place: Mapped[str] = mapped_column(String(200))
    beneficiaries: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[NeedStatus] = mapped_column(_enum(NeedStatus), default=NeedStatus.listed, index=True)
    posted_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), default=None)
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    # a need made of a consultation's minutes (议事 → 转为需求), at most one per consultation
    consultation_id: Mapped[int | None] = mapped_column(ForeignKey("consultations.id", ondelete="SET NULL"),
                                                        unique=True, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Project(Base):
    """A resource matched with a need: an owner, a due date, planned → under_way → done → evaluated,
    and the completion note with photos (Telegram file ids)."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    need_id: Mapped[int] = mapped_column(ForeignKey("needs.id"), unique=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), default=None)
    due: Mapped[date] = mapped_column(Date)
    status: Mapped[ProjectStatus] = mapped_column(_enum(ProjectStatus), default=ProjectStatus.planned)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    photos: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class ProjectRating(Base):
    """A beneficiary's 1–5 stars for a finished project, one per person."""

    __tablename__ = "project_ratings"
    __table_args__ = (UniqueConstraint("project_id", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    stars: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
