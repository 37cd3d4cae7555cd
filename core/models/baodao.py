"""双报到 and party-organisation navigation: the registry's organisations, service centres and
work units (with addresses and points), and a member's registration with their home community."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, String, Text
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, TimestampMixin, UTCDateTime, utcnow


class PartyOrganisation(TimestampMixin, Base):
    """A party organisation the registry lists: a grid branch's office, a community 党委, a
    unit's branch. Navigation (附近的党组织) shows it; /baodao offers it first."""

    __tablename__ = "party_organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32), default="branch")  # branch | committee | unit
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id"), default=None)
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id"), default=None)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("work_units.id"), default=None)
    address: Mapped[str | None] = mapped_column(Text, default=None)
    hours: Mapped[str | None] = mapped_column(String(200), default=None)
    phone: Mapped[str | None] = mapped_column(String(64), default=None)
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    lon: Mapped[float | None] = mapped_column(Float, default=None)


class ServiceCentre(TimestampMixin, Base):
    """党群服务中心 (or a 服务站): where residents and members go in person."""

    __tablename__ = "service_centres"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id"), default=None)
    address: Mapped[str | None] = mapped_column(Text, default=None)
    hours: Mapped[str | None] = mapped_column(String(200), default=None)
    phone: Mapped[str | None] = mapped_column(String(64), default=None)
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    lon: Mapped[float | None] = mapped_column(Float, default=None)


class WorkUnit(TimestampMixin, Base):
    """A unit (单位) near the communities: a company, a school, an office, paired by 双报到."""

    __tablename__ = "work_units"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id"), default=None)
    address: Mapped[str | None] = mapped_column(Text, default=None)
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    lon: Mapped[float | None] = mapped_column(Float, default=None)


class RegistrationStatus(str, enum.Enum):
    pending = "pending"
    approved = "approved"
    declined = "declined"


class BaodaoRegistration(Base):
    """One /baodao: a party member whose organisation is elsewhere registers where they live.
    Approved, it grants the person Role.dual_member in the home building's grid."""

    __tablename__ = "baodao_registrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"), index=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id"))
    organisation: Mapped[str] = mapped_column(String(200))  # as given (free text or a registry name)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("party_organisations.id"), default=None)
    work_unit: Mapped[str] = mapped_column(String(200))
    work_unit_id: Mapped[int | None] = mapped_column(ForeignKey("work_units.id"), default=None)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[RegistrationStatus] = mapped_column(
        SAEnum(RegistrationStatus, native_enum=False, length=16), default=RegistrationStatus.pending, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
