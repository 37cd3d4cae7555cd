"""The answer to /web: a one-time login link for the command centre, or why not.

The link's token is a secret until it is used or expires: the outbox row that carries it keeps
`kept` instead once it has gone out (core.messaging.outbox's payload_after)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from core.access.permissions import NotAllowed
from core.centre import logins
from core.messages import t
from core.models import Person


def login_url(base_url: str, raw: str) -> str:
    return f"{base_url.rstrip('/')}/centre/login/{raw}"


@dataclass(frozen=True)
class Answer:
    text: str  # what is sent
    kept: str | None  # what the outbox keeps once it is sent; None: the text holds no secret


def answer(session: Session, person: Person | None, *, base_url: str, minutes: int,
           now: datetime | None = None) -> Answer:
    """The message /web answers with: the link (good once, for `minutes`) or the refusal."""
    try:
        raw = logins.issue(session, person, minutes=minutes, now=now)
    except NotAllowed as exc:
        return Answer(str(exc), None)
    return Answer(t("web.link", url=login_url(base_url, raw), minutes=minutes),
                  t("web.link_kept", minutes=minutes))


def link_text(session: Session, person: Person | None, *, base_url: str, minutes: int,
              now: datetime | None = None) -> str:
    return answer(session, person, base_url=base_url, minutes=minutes, now=now).text
