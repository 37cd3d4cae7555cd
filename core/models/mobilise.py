"""战时 mobilisation: an incident a commander declares over an area, the people it calls and
their answers, the tasks posted to its grids, check-ins on site, and every step as an event."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, UTCDateTime, utcnow


class IncidentKind(str, enum.Enum):
    flood = "flood"  # 防汛
    fire = "fire"  # 火灾
    epidemic = "epidemic"  # 疫情
    snow = "snow"  # 除雪
    power_cut = "power_cut"  # 停电
    other = "other"


class AreaLevel(str, enum.Enum):
    grids = "grids"  # some grids of one community
    community = "community"  # every grid of a community
    street = "street"  # every grid of a street


class Answer(str, enum.Enum):
    coming = "coming"  # 到
    late = "late"  # 稍后到 (with an ETA)
    cannot = "cannot"  # 不能到


class TaskKind(str, enum.Enum):
    checkpoint = "checkpoint"  # 卡口执勤
    door_to_door = "door_to_door"  # 入户排查
    move_elderly = "move_elderly"  # 转移老人
    sandbags = "sandbags"  # 沙袋
    other = "other"


class TaskState(str, enum.Enum):
    open = "open"
    taken = "taken"
    done = "done"


def _enum(cls: type[enum.Enum]) -> SAEnum:
    return SAEnum(cls, native_enum=False, length=16)


class Incident(Base):
    """One declared incident. Its area is kept as the grids it covers (IncidentGrid), worked out
    when it is declared; `area` and `community_id` say how it was named (some grids, a community,
    the street)."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[IncidentKind] = mapped_column(_enum(IncidentKind))
    area: Mapped[AreaLevel] = mapped_column(_enum(AreaLevel))
    street_id: Mapped[int] = mapped_column(ForeignKey("streets.id"), index=True)
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id"), default=None)  # None: the street
    order_text: Mapped[str] = mapped_column(Text)
    declared_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), default=None)
    declared_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), default=None)


class IncidentGrid(Base):
    """A grid of an incident's area (its 作战单元), with what was done for it once: the roster sent
    to its leaders, the escalations to the community and to the street."""

    __tablename__ = "incident_grids"
    __table_args__ = (UniqueConstraint("incident_id", "grid_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"), index=True)
    roster_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    escalated_community_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    escalated_street_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class IncidentCall(Base):
    """One person called: which grid's unit they count in, why they were called, their answer."""

    __tablename__ = "incident_calls"
    __table_args__ = (UniqueConstraint("incident_id", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"), index=True)
    source: Mapped[str] = mapped_column(String(16))  # member | leader | dual_member | volunteer
    called_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    answer: Mapped[Answer | None] = mapped_column(_enum(Answer), default=None)
    eta_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)  # 稍后到: when
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class IncidentTask(Base):
    """A task the commander posted to one grid; one member of that grid takes it and marks it done."""

    __tablename__ = "incident_tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"))
    kind: Mapped[TaskKind] = mapped_column(_enum(TaskKind))
    text: Mapped[str] = mapped_column(Text)
    state: Mapped[TaskState] = mapped_column(_enum(TaskState), default=TaskState.open)
    posted_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), default=None)
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    taken_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), default=None)
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class IncidentCheckIn(Base):
    """On site: from a shared location inside the grid (WGS-84, as Telegram sends it) until 离开
    or the incident's close."""

    __tablename__ = "incident_checkins"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("incident_tasks.id", ondelete="SET NULL"), default=None)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    checked_in_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    checked_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class IncidentEvent(Base):
    """Every step of an incident: declared, called, answered, roster, task_posted, task_taken,
    task_done, checked_in, checked_out, escalated, closed (who, when, which grid, counts)."""

    __tablename__ = "incident_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), default=None)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"), default=None)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("incident_tasks.id", ondelete="SET NULL"), default=None)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
