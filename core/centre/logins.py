"""Signing in without a password: /web in a private chat gives a one-time link, a press on
the page behind it gives a browser session.

- A link is good for one redemption, for `minutes` after it was made; only its SHA-256 is kept.
- Only a person the permission table gives `web.login` somewhere gets a link.
- A session is a random cookie (only its SHA-256 kept) with its own CSRF token, ended after
  `idle` unused or by signing out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.access.permissions import NotAllowed
from core.centre.scope import view_of
from core.messages import t
from core.models import Person, WebLoginToken, WebSession, utcnow


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue(session: Session, person: Person | None, *, minutes: int, now: datetime | None = None) -> str:
    """A new login token for `person` (the raw value, for the link); NotAllowed without web.login."""
    if person is None:
        raise NotAllowed(t("deny.unknown_person"))
    if view_of(session, person).empty:
        raise NotAllowed(t("web.link_refused"))
    now = now or utcnow()
    raw = secrets.token_urlsafe(32)
    session.add(WebLoginToken(token_hash=digest(raw), person_id=person.id, created_at=now,
                              expires_at=now + timedelta(minutes=minutes)))
    session.flush()
    return raw


@dataclass(frozen=True)
class Signed:
    """A session just opened: the cookie's raw value and the CSRF token its pages carry."""

    cookie: str
    csrf: str
    person_id: int


def redeem(session: Session, raw: str, *, now: datetime | None = None) -> Signed | None:
    """Use a login token once: a new session, or None (unknown, used, expired, or the person
    has lost every web role since the link was sent)."""
    now = now or utcnow()
    # One UPDATE decides who uses the token: two presses at once make one session.
    used = session.execute(update(WebLoginToken)
                           .where(WebLoginToken.token_hash == digest(raw), WebLoginToken.used_at.is_(None),
                                  WebLoginToken.expires_at > now)
                           .values(used_at=now).execution_options(synchronize_session=False))
    if getattr(used, "rowcount", 0) != 1:
        return None
    person_id = session.scalar(select(WebLoginToken.person_id).where(WebLoginToken.token_hash == digest(raw)))
    person = session.get(Person, person_id)
    if person is None or view_of(session, person).empty:
        return None
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(WebSession(token_hash=digest(cookie), person_id=person.id, csrf_token=csrf, created_at=now,
                           last_seen_at=now))
    session.flush()
    return Signed(cookie, csrf, person.id)


def current(session: Session, cookie: str | None, *, idle_minutes: int, now: datetime | None = None
            ) -> WebSession | None:
    """The live session a cookie names (its last use moved to now), or None."""
    if not cookie:
        return None
    now = now or utcnow()
    row = session.scalar(select(WebSession).where(WebSession.token_hash == digest(cookie)))
    if row is None or row.ended_at is not None:
        return None
    if row.last_seen_at < now - timedelta(minutes=idle_minutes):
        row.ended_at = now
        return None
    if now - row.last_seen_at > timedelta(seconds=30):  # not a write on every poll
        row.last_seen_at = now
    return row


def csrf_ok(row: WebSession, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(row.csrf_token, presented or "")


def end(session: Session, cookie: str | None, *, now: datetime | None = None) -> None:
    if cookie:
        row = session.scalar(select(WebSession).where(WebSession.token_hash == digest(cookie)))
        if row is not None and row.ended_at is None:
            row.ended_at = now or utcnow()
