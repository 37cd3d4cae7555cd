"""Where things are: street → community → grid → building, plus landmarks."""

from __future__ import annotations

from sqlalchemy import JSON, Float, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.models.base import Base, TimestampMixin


class Street(TimestampMixin, Base):
    __tablename__ = "streets"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))

    communities: Mapped[list[Community]] = relationship(back_populates="street")


class Community(TimestampMixin, Base):
    __tablename__ = "communities"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    street_id: Mapped[int] = mapped_column(ForeignKey("streets.id"), index=True)
    # How residents reach the community office and its 党群服务中心 (public, from the registry).
    phone: Mapped[str | None] = mapped_column(String(64), default=None)
    address: Mapped[str | None] = mapped_column(Text, default=None)
    hours: Mapped[str | None] = mapped_column(String(200), default=None)
    center_name: Mapped[str | None] = mapped_column(String(200), default=None)
    center_phone: Mapped[str | None] = mapped_column(String(64), default=None)
    center_address: Mapped[str | None] = mapped_column(Text, default=None)
    center_hours: Mapped[str | None] = mapped_column(String(200), default=None)

    street: Mapped[Street] = relationship(back_populates="communities")
    grids: Mapped[list[Grid]] = relationship(back_populates="community")


class Grid(TimestampMixin, Base):
    __tablename__ = "grids"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    # GeoJSON geometry (Polygon or MultiPolygon, lon/lat), optional.
    polygon: Mapped[dict | None] = mapped_column(JSON, default=None)

    community: Mapped[Community] = relationship(back_populates="grids")
    buildings: Mapped[list[Building]] = relationship(back_populates="grid")


class Building(TimestampMixin, Base):
    __tablename__ = "buildings"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"), index=True)
    address: Mapped[str] = mapped_column(Text)
    # The residential estate (小区) the building stands in, e.g. 和平里小区.
    estate: Mapped[str | None] = mapped_column(String(200), default=None)
    number: Mapped[str | None] = mapped_column(String(32), default=None)
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    lon: Mapped[float | None] = mapped_column(Float, default=None)

    grid: Mapped[Grid] = relationship(back_populates="buildings")


class Landmark(TimestampMixin, Base):
    """A named place residents use instead of a building: a gate, a garden, a market."""

    __tablename__ = "landmarks"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    lon: Mapped[float | None] = mapped_column(Float, default=None)

    grid: Mapped[Grid] = relationship()
