"""党员学习资料库: study materials (attached to a session, put in the library by topic, or both)
and 补学 records — a member who missed a session studied its materials afterwards."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, UTCDateTime, utcnow


class MaterialKind(str, enum.Enum):
    text = "text"
    document = "document"  # a Telegram file_id, sent again as it is (never downloaded)
    photo = "photo"  # a Telegram file_id too
    link = "link"


class StudyMaterial(Base):
    """One material. `topic` set: it is in the library (of `branch_id`, or of every branch of
    `community_id` when the branch is None). `occurrence_id` set: it belongs to that session, and
    the session's absent and on-leave members get it once attendance is recorded
    (`delivered_at`)."""

    __tablename__ = "study_materials"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"), index=True)
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"), default=None,
                                                  index=True)
    occurrence_id: Mapped[int | None] = mapped_column(ForeignKey("event_occurrences.id", ondelete="SET NULL"),
                                                      default=None, index=True)
    kind: Mapped[MaterialKind] = mapped_column(SAEnum(MaterialKind, native_enum=False, length=16))
    topic: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")  # a text's words, a caption, a link's description
    url: Mapped[str | None] = mapped_column(String(1000), default=None)
    file_id: Mapped[str | None] = mapped_column(String(300), default=None)
    file_name: Mapped[str | None] = mapped_column(String(200), default=None)
    code: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)  # from the registry
    added_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class StudyCatchUp(Base):
    """补学: a member who did not attend a session studied its materials; a 学习心得 (at least
    STUDY_NOTE_MIN_CHARS characters) or a voice note. One per session and person."""

    __tablename__ = "study_catchups"
    __table_args__ = (UniqueConstraint("occurrence_id", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("event_occurrences.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    voice_file_id: Mapped[str | None] = mapped_column(String(300), default=None)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
