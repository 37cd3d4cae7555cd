"""People, the roles they hold, and the party branches they belong to."""

from __future__ import annotations

import enum

from sqlalchemy import JSON, BigInteger, ForeignKey, String, UniqueConstraint, false
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.models.base import Base, TimestampMixin


class Role(str, enum.Enum):
    resident = "resident"
    volunteer = "volunteer"
    member = "member"
    secretary = "secretary"
    grid_worker = "grid_worker"
    community_admin = "community_admin"
    street_admin = "street_admin"  # every community of a street (街道)
    # 在职党员 (双报到): a member whose own branch is at work, approved by /baodao in the grid
    # they live in; not the branch's `member` (not in 三会一课 attendance), kept by re-imports.
    dual_member = "dual_member"
    # 战时 指挥长: a grant on top of community_admin (for a community) or street_admin (for a
    # street); it counts only where the person also holds that admin role (core.access.permissions).
    commander = "commander"
    operator = "operator"


class Person(TimestampMixin, Base):
    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Registry code for people loaded by `gridbot import`; None for people who
    # only ever came through chat.
    code: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    telegram_id: Mapped[int | None] = mapped_column(BigInteger, unique=True, default=None)
    display_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32), default=None)
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id"), default=None)
    contact_consent: Mapped[bool] = mapped_column(default=False)
    # /notify off: no non-essential broadcasts (emergencies and essential notices still come)
    notify_off: Mapped[bool] = mapped_column(default=False, server_default=false())

    grants: Mapped[list[RoleGrant]] = relationship(
        back_populates="person", cascade="all, delete-orphan"
    )

    def has_role(self, role: Role) -> bool:
        return any(g.role == role for g in self.grants)


class RoleGrant(Base):
    """One role of one person, scoped to a community, grid or branch where it applies."""

    __tablename__ = "role_grants"
    __table_args__ = (
        UniqueConstraint("person_id", "role", "community_id", "grid_id", "branch_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(SAEnum(Role, native_enum=False, length=32))
    street_id: Mapped[int | None] = mapped_column(ForeignKey("streets.id"), default=None)
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id"), default=None)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"), default=None)
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id"), default=None)

    person: Mapped[Person] = relationship(back_populates="grants")


class Branch(TimestampMixin, Base):
    """A grid's party branch (网格党支部): one per grid."""

    __tablename__ = "branches"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"), unique=True)
    secretary_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), default=None)
    telegram_chat_id: Mapped[int | None] = mapped_column(BigInteger, unique=True, default=None)

    members: Mapped[list[BranchMember]] = relationship(
        back_populates="branch", cascade="all, delete-orphan"
    )
    groups: Mapped[list[PartyGroup]] = relationship(
        back_populates="branch", cascade="all, delete-orphan"
    )


JOINED_REGISTRY, JOINED_INVITE, JOINED_GRANT = "registry", "invite", "grant"


class BranchMember(Base):
    __tablename__ = "branch_members"
    __table_args__ = (UniqueConstraint("branch_id", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    party_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("party_groups.id", ondelete="SET NULL"), default=None
    )
    # How they became a member: JOINED_REGISTRY (gridbot import lists them), JOINED_INVITE
    # (/join with the secretary's code) or JOINED_GRANT (gridbot grant). A re-import replaces
    # the registry's and the grants' members with its list and keeps the invited ones.
    joined_by: Mapped[str] = mapped_column(String(16), default="registry", server_default="registry")

    branch: Mapped[Branch] = relationship(back_populates="members")
    person: Mapped[Person] = relationship()


class PartyGroup(Base):
    """党小组: a sub-unit of a branch that may own a few buildings."""

    __tablename__ = "party_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    leader_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), default=None)
    building_codes: Mapped[list[str]] = mapped_column(JSON, default=list)

    branch: Mapped[Branch] = relationship(back_populates="groups")
