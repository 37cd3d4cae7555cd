"""The question a person was last asked, whose answer is their next private message.

A ticket note after 办结 / 退回, a leave reason after 请假, an unfinished binding, a /broadcast
draft: each is one row per Telegram user (`prompts`), set or cleared in the transaction that
queues the question (or the answer), so it survives a restart and every bot process sees it.
One row per user: the newest question replaces an older one. A question left unanswered for
PROMPT_TTL is forgotten (the next message is taken as what it says).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from core.models import Prompt, utcnow

PROMPT_TTL = timedelta(days=1)

NOTE = "ticket_note"  # {"action": "resolve" | "reject", "ticket": id}
LEAVE = "duty_leave"  # {"occurrence": id}
BINDING = "binding"  # {"step": "community" | "building" | "consent"}
BROADCAST = "broadcast"  # {"step": ..., the draft}
SCHEDULE = "schedule"  # {"step": ..., the draft of a session or shift} (bot/schedule_chat.py)
REOPEN = "reopen_reason"  # {"ticket": id}: what is still wrong after 不满意 (core/tickets/ratings.py)
SUPPLEMENT = "ticket_supplement"  # {"ticket": id}: the reporter's 补充 (core.tickets.changes)
PHONE = "phone"  # {}: the share-contact keyboard is up (core.people.phones)
CONSULT = "consult"  # {"step": ..., the draft or the consultation/comment/proposal id} (bot/consult_chat.py)
BAODAO = "baodao"  # {"step": "organisation" | "unit" | "tags" | "reason", the draft} (bot/baodao.py)
NAV = "dangzuzhi"  # {}: 附近的党组织 asked for a place or a location (bot/baodao.py)
LISTS = "qingdan"  # {"step": ..., the draft} (bot/lists_chat.py)
SPACES = "yuyue"  # {"step": "day" | "purpose" | "people" | "reason", the draft} (bot/spaces_chat.py)
# {"step": "order" | "eta" | "location" | "task_grid" | "task_text", the draft or the incident}
# (bot/mobilise_chat.py, bot/mobilise_answers.py)
MOBILISE = "mobilise"
STUDY = "xuexi"  # {"step": "words" | "content" | "topic" | "note", the draft} (bot/study_chat.py)
KINDS = {CONSULT, NOTE, LEAVE, BINDING, BROADCAST, SCHEDULE, REOPEN, SUPPLEMENT, PHONE, BAODAO, NAV, LISTS, SPACES,
         MOBILISE, STUDY}

# Words that close any open question without an answer (one set for every kind of question).
CANCEL_WORDS = frozenset({"取消", "算了", "/cancel", "不办了", "不请了", "不请假了", "不发了"})


@dataclass(frozen=True)
class Asked:
    kind: str
    value: dict[str, Any]


def ask(session: Session, telegram_user_id: int, kind: str, value: dict[str, Any] | None = None,
        now: datetime | None = None) -> None:
    """Remember that `telegram_user_id` was asked `kind` (replacing any earlier question)."""
    if kind not in KINDS:
        raise ValueError(f"unknown prompt kind {kind!r}")
    row = session.get(Prompt, telegram_user_id, with_for_update=True)
    now = now or utcnow()
    if row is None:
        session.add(Prompt(telegram_user_id=telegram_user_id, kind=kind, value=dict(value or {}), updated_at=now))
    else:
        row.kind, row.value, row.updated_at = kind, dict(value or {}), now
    session.flush()


def current(session: Session, telegram_user_id: int, now: datetime | None = None) -> Asked | None:
    """The open question, or None (none, or older than PROMPT_TTL)."""
    row = session.get(Prompt, telegram_user_id, populate_existing=True)
    if row is None or row.updated_at < (now or utcnow()) - PROMPT_TTL:
        return None
    return Asked(row.kind, dict(row.value))


def clear(session: Session, telegram_user_id: int, kind: str | None = None) -> bool:
    """Forget the open question (only if it is of `kind`, when given); whether one was there."""
    row = session.get(Prompt, telegram_user_id)
    if row is None or (kind is not None and row.kind != kind):
        return False
    session.delete(row)
    session.flush()
    return True
