"""One-time invite codes: the only way a person joins a branch through chat.

A branch's secretary asks for a code (/invite; `invite.create` in core.access.permissions) and
hands it over in person or privately; the new member sends /join CODE. A code is good
for one person, once, for `TTL` (72 h). Redeeming is race-safe: the code is taken with
one `UPDATE ... WHERE used_at IS NULL` and only the caller whose update changed the row
joins, so two people with one code make exactly one member. Nothing here can make
anyone a secretary or admin: those come from `gridbot import` and `gridbot grant`.

Every function works in the caller's transaction and never commits; refusals raise
NotAllowed with a Chinese reason fit to show the person. A refused /join is audited and
counts towards a lockout (core.access.limits.joins): 5 wrong codes in an hour by default.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from core import audit
from core.access import limits
from core.access.permissions import NotAllowed, branches_for, require, scope_of_branch
from core.config import Settings
from core.messages import t
from core.models import (
    JOINED_INVITE,
    Branch,
    BranchMember,
    InviteCode,
    Person,
    Role,
    RoleGrant,
    utcnow,
)

# no 0/O, 1/I/L: a code read out or copied by hand cannot be mistaken
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
LENGTH = 8  # 31**8 ≈ 8.5e11 codes
TTL = timedelta(hours=72)
_NOT_CODE = re.compile(r"[\s\-_]")


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalise(code: str) -> str:
    """What the person typed, as stored: upper case, without spaces or dashes."""
    return _NOT_CODE.sub("", code).upper()


def inviting_branches(session: Session, person: Person | None) -> list[Branch]:
    """The branches `person` may invite to (invite.create at each branch's scope)."""
    return branches_for(session, person, "invite.create")


def create_invite(session: Session, actor: Person | None, branch_id: int, *, now: datetime | None = None,
                  ttl: timedelta = TTL) -> InviteCode:
    """A fresh code for the branch; only who holds invite.create there (its secretary)."""
    now = now or utcnow()
    branch = session.get(Branch, branch_id)
    if branch is None:
        raise NotAllowed(t("invite.branch_not_found"))
    actor = require(session, actor, "invite.create", scope_of_branch(session, branch))
    code = new_code()
    while session.scalar(select(InviteCode.id).where(InviteCode.code == code)) is not None:
        code = new_code()  # a collision is ~1 in 1e11; the unique constraint is the backstop
    invite = InviteCode(code=code, branch_id=branch.id, created_by_id=actor.id, created_at=now,
                        expires_at=now + ttl)
    session.add(invite)
    session.flush()
    audit.record(session, actor, "invite.create", f"branch:{branch.id}",
                 {"branch": branch.code, "invite": invite.id})
    return invite


class CodeRefused(NotAllowed):
    """A /join refusal with its reason (unknown, expired, used, already_member, locked) for the audit."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason


def redeem(session: Session, telegram_id: int, display_name: str, code: str, *,
           settings: Settings, now: datetime | None = None) -> tuple[Branch, Person]:
    """Make the sender a member of the code's branch (creating the Person if new).

    Refused (CodeRefused, a NotAllowed) if the code is unknown, expired or used, or the sender
    already belongs to the branch (the code then stays unused), and without looking at the code
    while the sender is locked out: `join_failures_per_hour` wrong codes within an hour
    (core.access.limits.joins; the lockout ends by itself). Every refusal is audited
    (invite.join_refused: the reason, never the code typed) in the caller's transaction,
    and nothing else of the attempt is kept: the caller commits after a refusal too.
    """
    now = now or utcnow()
    verdict = limits.joins(session, telegram_id, now=now, settings=settings)
    try:
        if not verdict.allowed:
            tz = settings.tz
            raise CodeRefused("locked", t("invite.locked", at=verdict.retry_local(tz)))
        with session.begin_nested():  # a refusal takes back what the attempt wrote
            return _redeem(session, telegram_id, display_name, code, now)
    except CodeRefused as exc:
        person = session.scalar(select(Person).where(Person.telegram_id == telegram_id))
        audit.record(session, person, limits.JOIN_REFUSED, limits.join_subject(telegram_id),
                     {"reason": exc.reason}, at=now)
        raise


def _redeem(session: Session, telegram_id: int, display_name: str, code: str,
            now: datetime) -> tuple[Branch, Person]:
    invite = session.scalar(select(InviteCode).where(InviteCode.code == normalise(code)))
    if invite is None:
        raise CodeRefused("unknown", t("invite.unknown"))
    if invite.used_at is not None:
        raise CodeRefused("used", t("invite.used"))
    if invite.expires_at <= now:
        raise CodeRefused("expired", t("invite.expired"))
    branch = session.get(Branch, invite.branch_id)
    assert branch is not None  # invite_codes.branch_id cascades on delete
    person = session.scalar(select(Person).where(Person.telegram_id == telegram_id))
    if person is not None and session.scalar(select(BranchMember.id).where(
            BranchMember.branch_id == branch.id, BranchMember.person_id == person.id)) is not None:
        raise CodeRefused("already_member", t("invite.already_member", branch=branch.name))
    if person is None:
        person = Person(telegram_id=telegram_id, display_name=display_name.strip() or t("actor.resident"))
        session.add(person)
        session.flush()
    taken: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(InviteCode)
        .where(InviteCode.id == invite.id, InviteCode.used_at.is_(None), InviteCode.expires_at > now)
        .values(used_at=now, used_by_id=person.id)
        .execution_options(synchronize_session=False))
    if taken.rowcount != 1:  # someone else redeemed it between our read and our update
        raise CodeRefused("used", t("invite.used"))
    session.add(BranchMember(branch_id=branch.id, person_id=person.id, joined_by=JOINED_INVITE))
    if not any(g.role is Role.member and g.branch_id == branch.id for g in person.grants):
        person.grants.append(RoleGrant(role=Role.member, branch_id=branch.id))
    session.flush()
    session.refresh(invite)
    audit.record(session, person, "invite.redeem", f"branch:{branch.id}",
                 {"branch": branch.code, "invite": invite.id}, at=now)
    return branch, person
