"""A resident's own phone number, shared with Telegram's 发送手机号 button (request_contact).

After 同意 to follow-up at /start the bot asks for it with a reply-keyboard button; Telegram
then sends the person's own contact. Only a contact whose user id is the sender's is taken
(anyone can forward someone else's card). Storing it is audited (`resident.phone`, without the
number); the number is never logged. It reaches handlers only as core.access.permissions allows: masked
on cards, whole through 联系人 (core.tickets.service.contact_details) and callback requests.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

from sqlalchemy.orm import Session

from core import audit
from core.messages import t
from core.messaging import prompts
from core.messaging.outbox import enqueue
from core.models import Person, utcnow
from core.people import residents

_KEEP = re.compile(r"[^\d+]")
MIN_DIGITS, MAX_DIGITS = 7, 15  # E.164 allows at most 15


def normalise(phone: str) -> str | None:
    """"+86 138-0013-8000" → "+8613800138000"; None when it is no phone number."""
    kept = "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in _KEEP.sub("", phone.strip()))
    digits = kept.lstrip("+")
    if not digits.isdigit() or not MIN_DIGITS <= len(digits) <= MAX_DIGITS or "+" in digits:
        return None
    return ("+" if kept.startswith("+") else "") + digits


_TYPED = re.compile(r"\+?[\d\s\-()]{7,24}")


def typed(text: str) -> str | None:
    """A number typed as the whole answer ("138 0013 8000"), normalised; None for anything else
    (a message that merely holds digits, such as "12号楼1单元1201室漏水了", is no phone)."""
    folded = unicodedata.normalize("NFKC", text.strip())
    return normalise(folded) if _TYPED.fullmatch(folded) else None


def store(session: Session, telegram_id: int, display_name: str, phone: str, *,
          now: datetime | None = None) -> Person | None:
    """Keep `phone` as the person's own; None when it is no phone number."""
    number = normalise(phone)
    if number is None:
        return None
    person = residents.reporter_for(session, telegram_id, display_name)
    assert person is not None
    changed = person.phone != number
    person.phone = number
    session.flush()
    audit.record(session, person, "resident.phone", f"person:{person.id}", {"changed": changed}, at=now)
    return person


def keyboard() -> dict[str, dict[str, str]]:
    """The payload keys of the share-contact question (bot/dispatcher.py `reply_keyboard`)."""
    return {"ask_contact": {"share": t("phone.button_share"), "skip": t("phone.button_skip")}}


def ask(session: Session, telegram_id: int, *, text: str | None = None, now: datetime | None = None) -> None:
    """Ask for the phone with the share-contact button, from outside a bot handler (an action):
    the question is a prompt (core.messaging.prompts.PHONE) and an outbox notice, in the caller's transaction."""
    now = now or utcnow()
    prompts.ask(session, telegram_id, prompts.PHONE, {}, now=now)
    enqueue(session, dedupe_key=f"ask-phone:{telegram_id}:{now.timestamp():.0f}", kind="notice", chat_id=telegram_id,
            payload={"text": text or t("phone.ask"), **keyboard()})
