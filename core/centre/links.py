"""The answer to /web: a one-time login link for the command centre, or why not."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from core.access.permissions import NotAllowed
from core.centre import logins
from core.messages import t
from core.models import Person


def login_url(base_url: str, raw: str) -> str:
    return f"{base_url.rstrip('/')}/centre/login/{raw}"


def link_text(session: Session, person: Person | None, *, base_url: str, minutes: int,
              now: datetime | None = None) -> str:
    """The message /web answers with: the link (good once, for `minutes`) or the refusal."""
    try:
        raw = logins.issue(session, person, minutes=minutes, now=now)
    except NotAllowed as exc:
        return str(exc)
    return t("web.link", url=login_url(base_url, raw), minutes=minutes)
