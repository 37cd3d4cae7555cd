"""Telling a secretary that an invite code of theirs was used, and by whom.

Called in the transaction of a successful /join (core.registry.invites.redeem), so the notice is queued
once with the membership it announces (its dedupe key names the invite)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.messages import t
from core.messaging.outbox import enqueue
from core.models import Branch, InviteCode, Person
from core.registry.invites import normalise


def tell_inviter(session: Session, code: str, member: Person, branch: Branch) -> bool:
    """Queue the notice to whoever made `code`; False when there is no one to tell."""
    invite = session.scalar(select(InviteCode).where(InviteCode.code == normalise(code)))
    inviter = session.get(Person, invite.created_by_id) if invite is not None and invite.created_by_id else None
    if invite is None or inviter is None or inviter.telegram_id is None:
        return False
    enqueue(session, dedupe_key=f"invite-used:{invite.id}", kind="notice", chat_id=inviter.telegram_id,
            payload={"text": t("invite.redeemed", code=invite.code, name=member.display_name, branch=branch.name)})
    return True
