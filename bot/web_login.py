"""/web (private chat only): a one-time link to the command centre, sent without a link preview
(a preview fetch must not be what uses the link; the page behind it also wants a press)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from core.centre import links
from core.config import Settings
from core.db import session_scope
from core.messaging import outbox
from core.people import residents


def link_message(factory: sessionmaker[Session], settings: Settings, user_id: int, chat_id: int,
                 message_id: int) -> None:
    """Queue the link (or the refusal) for the sender of /web."""
    with session_scope(factory) as s:
        found = links.answer(s, residents.person_by_telegram(s, user_id), base_url=settings.web_base_url,
                             minutes=settings.web_login_minutes)
        # the token is kept only until the message has gone out
        outbox.enqueue(s, dedupe_key=f"web:{chat_id}:{message_id}", kind="reply", chat_id=chat_id,
                       payload={"text": found.text, "no_preview": True},
                       payload_after={"text": found.kept, "no_preview": True} if found.kept else None)
