"""Categories, tickets and their append-only event history."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.models.base import Base, TimestampMixin, UTCDateTime, utcnow


class CategoryKind(str, enum.Enum):
    """Kinds that share default time limits (BRIEF "Default time limits")."""

    emergency = "emergency"
    urgent = "urgent"  # heating, utilities, elevator
    general = "general"
    dispute = "dispute"


class Category(TimestampMixin, Base):
    __tablename__ = "categories"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[CategoryKind] = mapped_column(SAEnum(CategoryKind, native_enum=False, length=16))
    description: Mapped[str] = mapped_column(Text, default="")
    respond_minutes: Mapped[int] = mapped_column(Integer)
    resolve_minutes: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(default=True)


class TicketStatus(str, enum.Enum):
    new = "new"
    accepted = "accepted"
    claimed = "claimed"
    resolved = "resolved"
    closed = "closed"
    escalated = "escalated"
    rejected = "rejected"
    duplicate = "duplicate"
    reopened = "reopened"
    withdrawn = "withdrawn"  # 撤回 by its reporter before anyone claimed it (core.tickets.changes)
    # 退回 by a branch: not its matter; in the community's triage queue until an admin transfers,
    # returns, takes, merges or rejects it (core.tickets.transfer)
    triage = "triage"


class TicketCounter(Base):
    """Last ticket sequence number issued in a year; bumped atomically."""

    __tablename__ = "ticket_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Ticket(TimestampMixin, Base):
    __tablename__ = "tickets"
    __table_args__ = (UniqueConstraint("year", "seq"), Index("ix_tickets_created_at", "created_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(16), unique=True)
    # Who asked to file it, and in which message ("<sender>:<inbox id>"): a submission retried
    # after a crash finds the ticket it already filed (core.tickets.service.submit_report).
    submission_key: Mapped[str | None] = mapped_column(String(64), unique=True, index=True, default=None)
    year: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    category_code: Mapped[str] = mapped_column(ForeignKey("categories.code"), index=True)
    urgent: Mapped[bool] = mapped_column(default=False)
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id"), index=True)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"), index=True)
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id"), default=None)
    landmark_id: Mapped[int | None] = mapped_column(ForeignKey("landmarks.id"), default=None)
    location_text: Mapped[str | None] = mapped_column(Text, default=None)
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    lon: Mapped[float | None] = mapped_column(Float, default=None)
    description: Mapped[str] = mapped_column(Text)
    photo_file_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    anonymous: Mapped[bool] = mapped_column(default=False)
    status: Mapped[TicketStatus] = mapped_column(
        SAEnum(TicketStatus, native_enum=False, length=16), default=TicketStatus.new, index=True
    )
    claimed_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), default=None)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), default=None)
    respond_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    resolve_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # The limits as filed; a reopening renews the two above, not these (the rates count the first).
    first_respond_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None, index=True)
    first_resolve_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None, index=True)
    # The handler's photo of the finished work, sent to the resident with the result.
    resolution_photo_id: Mapped[str | None] = mapped_column(String(255), default=None)
    # The return visit (回访) of the latest resolution, two answers (core.tickets.visit): `solved`
    # 已解决/未解决, and `rating` 3 满意, 2 基本满意, 1 不满意 with when it was given. Both are cleared
    # when the ticket is resolved again; every answer is also a TicketEvent of kind "visit".
    solved: Mapped[bool | None] = mapped_column(default=None)
    rating: Mapped[int | None] = mapped_column(Integer, default=None)
    rated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # Set when a response or resolve deadline passed (core.tickets.deadlines): a flag, not a status.
    overdue_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # Which plan of deadline steps is current: 0 when filed, one more at each reopening; the
    # scheduler plans a round's steps (core.tickets.deadlines) while `deadlines_pending` is set.
    deadline_round: Mapped[int] = mapped_column(Integer, default=0)
    deadlines_pending: Mapped[bool] = mapped_column(default=True, index=True)

    category: Mapped[Category] = relationship()
    events: Mapped[list[TicketEvent]] = relationship(
        back_populates="ticket", order_by="TicketEvent.id", cascade="all"
    )


class TicketEvent(Base):
    """One change of a ticket: who, when, from → to, note. Never updated or deleted."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), default=None)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    from_status: Mapped[TicketStatus | None] = mapped_column(
        SAEnum(TicketStatus, native_enum=False, length=16), default=None
    )
    to_status: Mapped[TicketStatus] = mapped_column(SAEnum(TicketStatus, native_enum=False, length=16))
    note: Mapped[str | None] = mapped_column(Text, default=None)
    # "status" for a move from → to; a change that leaves the status as it was (from = to) names
    # itself: "supplement" (补充: text or photo), "category" (corrected by the reporter), see
    # core.tickets.changes; "overdue", "urge" (core.tickets.deadlines); "transfer" (改派 to another
    # grid: detail {"from": grid id, "to": grid id}, the status becomes accepted) and "merge" (a
    # duplicate joined this ticket: detail {"duplicate": ticket id}), see core.tickets.transfer;
    # "visit": an answer of the return visit (core.tickets.visit).
    kind: Mapped[str] = mapped_column(String(16), default="status", server_default="status")
    # codes and file ids of a change that is not a move: {"photo": file_id}, {"from": code, "to": code},
    # {"solved": true, "resolution": <event id>} or {"score": 2, "resolution": <event id>}
    detail: Mapped[dict | None] = mapped_column(JSON, default=None)

    ticket: Mapped[Ticket] = relationship(back_populates="events")


class TicketFollower(Base):
    """A resident who said "我也遇到了" and gets the ticket's updates."""

    __tablename__ = "ticket_followers"
    __table_args__ = (UniqueConstraint("ticket_id", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DeadlineStep(str, enum.Enum):
    """What happens at a point of a ticket's time limits (core.tickets.deadlines)."""

    respond_first = "respond_first"  # unclaimed at the first fraction: branch group (digest) and grid workers
    respond_second = "respond_second"  # unclaimed at the second fraction: the same
    respond_overdue = "respond_overdue"  # unclaimed at the response limit: overdue, escalated to the admins
    resolve_first = "resolve_first"  # unresolved at the first fraction: the claimer
    resolve_second = "resolve_second"  # unresolved at the second fraction: the claimer and the secretary
    resolve_overdue = "resolve_overdue"  # unresolved at the resolve limit: overdue, escalated to the admins
    emergency_recall = "emergency_recall"  # an emergency nobody claimed soon after filing: the admins again


class TicketDeadline(Base):
    """One step of a ticket's time limits, due at `due_at`, done once (`done_at`)."""

    __tablename__ = "ticket_deadlines"
    __table_args__ = (UniqueConstraint("ticket_id", "step", "round"),
                      Index("ix_ticket_deadlines_open", "done_at", "due_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    step: Mapped[DeadlineStep] = mapped_column(SAEnum(DeadlineStep, native_enum=False, length=24))
    round: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # sent (someone was told), skipped (no longer applies: claimed, resolved, a newer round)
    outcome: Mapped[str | None] = mapped_column(String(16), default=None)
    # A reminder still to be listed in its branch group's next digest.
    digest_pending: Mapped[bool] = mapped_column(default=False, index=True)
