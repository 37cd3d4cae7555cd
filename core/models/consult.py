"""议事: consultations with their votes and comments, residents' proposals, and the
confirmations that make a bound resident count (core/consult/)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, UTCDateTime, utcnow


class ResidentCheck(Base):
    """A grid worker's or secretary's confirmation that a person lives in a building. It counts
    only while the person is still bound there: binding elsewhere needs a new confirmation."""

    __tablename__ = "resident_checks"
    __table_args__ = (UniqueConstraint("person_id", "building_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id", ondelete="CASCADE"))
    checked_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), default=None)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Consultation(Base):
    """One question put to the verified residents of a grid, a building or a party group's buildings."""

    __tablename__ = "consultations"

    id: Mapped[int] = mapped_column(primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"), index=True)
    # None: the whole grid; else the buildings in scope (one building, or a party group's)
    building_ids: Mapped[list[int] | None] = mapped_column(JSON, default=None)
    scope_label: Mapped[str] = mapped_column(String(200))
    question: Mapped[str] = mapped_column(Text)
    options: Mapped[list[str]] = mapped_column(JSON, default=list)  # []: free comments only
    live: Mapped[bool] = mapped_column(default=False)  # results shown before the deadline
    deadline: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    opened_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), default=None)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # set once by the sweep after the deadline, with the figures of that moment
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    eligible: Mapped[int | None] = mapped_column(default=None)
    participants: Mapped[int | None] = mapped_column(default=None)
    minutes: Mapped[str | None] = mapped_column(Text, default=None)  # 决议
    minutes_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), default=None)
    minutes_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"), default=None)


class ConsultationVote(Base):
    """One verified resident's choice; changed in place until the deadline. Who voted is kept for
    audit; results and minutes show counts only."""

    __tablename__ = "consultation_votes"
    __table_args__ = (UniqueConstraint("consultation_id", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    consultation_id: Mapped[int] = mapped_column(ForeignKey("consultations.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    choice: Mapped[int] = mapped_column()
    voted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    changes: Mapped[int] = mapped_column(default=0)


class ConsultationComment(Base):
    """A resident's comment. Moderation hides it (with who and why); the text is never deleted."""

    __tablename__ = "consultation_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    consultation_id: Mapped[int] = mapped_column(ForeignKey("consultations.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    hidden_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    hidden_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), default=None)


class Proposal(Base):
    """居民提议: a topic a resident raises in their grid; with enough supporters it goes on the
    secretary's agenda with a time limit to answer."""

    __tablename__ = "proposals"

    id: Mapped[int] = mapped_column(primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"), index=True)
    proposer_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    topic: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    agenda_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    answer_due: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None, index=True)
    answer: Mapped[str | None] = mapped_column(Text, default=None)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), default=None)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    overdue_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)  # the admins were told


class ProposalSupport(Base):
    __tablename__ = "proposal_supports"
    __table_args__ = (UniqueConstraint("proposal_id", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
