"""/stats: the month so far, as core.tickets.rate_reports words it for the person asking."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings
from core.db import session_scope
from core.messages import t
from core.messaging import outbox
from core.models import utcnow
from core.people import residents
from core.tickets import rate_reports


def stats_message(factory: sessionmaker[Session], settings: Settings, user_id: int, chat_id: int,
                  message_id: int) -> None:
    """Queue the figures (or why not) for the sender of /stats."""
    with session_scope(factory) as s:
        start, end = rate_reports.month_of(utcnow(), settings.tz)
        text = rate_reports.report_text(s, residents.person_by_telegram(s, user_id), start, end, settings.tz,
                                        min_tickets=settings.stats_rank_min)
        outbox.enqueue(s, dedupe_key=f"stats:{chat_id}:{message_id}", kind="reply", chat_id=chat_id,
                       payload={"text": text or t("stats.not_allowed")})
