"""Replay what residents said through Rasa, exactly once per message.

`answer_pending` takes the inbox's pending messages in arrival order, asks
Rasa, and in ONE transaction queues Rasa's replies in the outbox and marks the
message done — so a reply is never lost and never queued twice. When Rasa is
unreachable the pass stops; the messages stay pending for the next pass.
With `claim=True` the same transaction also claims the replies for sending
(`PassResult.claimed`), so the caller sends them at once; should it die first,
the outbox dispatcher sends them when their lease runs out.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from bot.rasa_client import RasaClient, RasaRefused, RasaUnavailable, to_payload
from core.db import read_scope, session_scope
from core.messages import t
from core.messaging import fragments, inbox, outbox
from core.models import utcnow
from core.protocol import ACTION_FAILED, FRAGMENT, INBOX_ID, JOINED, REPLAY

log = logging.getLogger("gridbot.conversation")


@dataclass
class PassResult:
    answered: int = 0
    waiting: int = 0
    rasa_down: bool = False
    failed: int = 0  # answers in which an action failed: the message waits for a retry
    claimed: list[outbox.Claimed] = field(default_factory=list)
    received: list[datetime] = field(default_factory=list)  # when each answered message was kept
    failed_actions: list[str] = field(default_factory=list)  # the action that failed, per failure
    refused: bool = False  # Rasa refused the secret (RasaRefused), not merely down


def _pending(factory: sessionmaker[Session],
             sender_id: int | None) -> list[tuple[int, int, int, str, dict, datetime | None, datetime, bool]]:
    with read_scope(factory) as session:
        return [(m.id, m.sender_id, m.chat_id, m.text, dict(m.meta), m.retry_at, m.received_at,
                 m.rasa_sent_at is not None)
                for m in inbox.pending(session, sender_id=sender_id)]


def _note_sent(factory: sessionmaker[Session], inbox_id: int) -> None:
    with session_scope(factory) as session:
        inbox.note_sent_to_rasa(session, inbox_id)


def _record_failure(factory: sessionmaker[Session], inbox_id: int, chat_id: int, payloads: list[dict],
                    claim: bool) -> list[outbox.Claimed]:
    """What Rasa said before the failure goes out (the numbers to call above all), once: a retry
    that says it again finds the same keys. The message stays pending and is tried again later;
    the resident hears that it will be handled, or, after the last try, that it was not."""
    keys = [f"reply:{inbox_id}:{index}" for index in range(len(payloads))]
    with session_scope(factory) as session:
        for key, payload in zip(keys, payloads, strict=True):
            outbox.enqueue(session, dedupe_key=key, kind="reply", chat_id=chat_id, payload=payload)
        again = inbox.retry_later(session, inbox_id)
        if again:
            keys.append(f"failed:{inbox_id}")
            outbox.enqueue(session, dedupe_key=keys[-1], kind="reply", chat_id=chat_id,
                           payload={"text": t("answer_failed")})
        else:
            keys.append(f"failed-final:{inbox_id}")
            outbox.enqueue(session, dedupe_key=keys[-1], kind="reply", chat_id=chat_id,
                           payload={"text": t("answer_failed_final")})
            log.error("inbox message %s: every answer failed; given up (state failed)", inbox_id)
        return outbox.claim_keys(session, keys) if claim else []


def _record(factory: sessionmaker[Session], inbox_id: int, chat_id: int, payloads: list[dict],
            claim: bool, fragment: bool = False) -> list[outbox.Claimed]:
    keys = [f"reply:{inbox_id}:{index}" for index in range(len(payloads))]
    with session_scope(factory) as session:
        for key, payload in zip(keys, payloads, strict=True):
            outbox.enqueue(session, dedupe_key=key, kind="reply", chat_id=chat_id, payload=payload)
        inbox.mark_done(session, inbox_id)
        if fragment:  # joined to this person's next message (core/messaging/fragments.py)
            fragments.mark(session, inbox_id)
        return outbox.claim_keys(session, keys) if claim else []


def _with_fragments(factory: sessionmaker[Session], sender_id: int, inbox_id: int, text: str,
                    meta: dict, received_at: datetime) -> tuple[str, dict]:
    """Typed words go to Rasa joined to the fragments the same person sent just before
    (core/messaging/fragments.py); a button's payload never is."""
    if text.startswith("/"):
        return text, meta
    with read_scope(factory) as session:
        pieces = fragments.before(session, sender_id, inbox_id, received_at)
    if not pieces:
        return text, meta
    joined = fragments.join([p for _, p in pieces] + [text])
    return joined, {**meta, "original_text": joined, JOINED: [i for i, _ in pieces]}


async def answer_pending(factory: sessionmaker[Session], rasa: RasaClient,
                         sender_id: int | None = None, *, claim: bool = False) -> PassResult:
    """Answer the pending messages (of one sender, or of everyone) in arrival order."""
    result = PassResult()
    rows = await asyncio.to_thread(_pending, factory, sender_id)
    now, blocked = utcnow(), set()
    for inbox_id, sender_id, chat_id, text, meta, retry_at, received_at, sent_before in rows:
        if sender_id in blocked or (retry_at is not None and retry_at > now):
            blocked.add(sender_id)  # this sender's later messages wait behind it, in order
            result.waiting += 1
            continue
        # Rasa may have answered this message before only if this process sent it already (and
        # did not record the answer) or an earlier process did: only then does Rasa look it up.
        # Another bot process on the same database (a replica that died after sending it) shows
        # in the row: each message's first sending is committed before it goes.
        again = inbox_id in rasa.sent_inbox or received_at < rasa.started or sent_before
        if not again:
            await asyncio.to_thread(_note_sent, factory, inbox_id)
        rasa.sent_inbox.add(inbox_id)
        text, meta = await asyncio.to_thread(_with_fragments, factory, sender_id, inbox_id, text, meta, received_at)
        try:
            replies = await rasa.send(sender_id, text,
                                      metadata={**meta, INBOX_ID: inbox_id, **({REPLAY: True} if again else {})})
        except RasaUnavailable as exc:
            log.log(logging.ERROR if isinstance(exc, RasaRefused) else logging.WARNING,
                    "Rasa unavailable (%s); %d message(s) wait", exc, len(rows) - result.answered)
            result.rasa_down = True
            result.refused = isinstance(exc, RasaRefused)
            result.waiting = len(rows) - result.answered
            return result
        payloads = [to_payload(r) for r in replies if r.text or r.buttons]
        if any(r.custom and ACTION_FAILED in r.custom for r in replies):
            failed = next(str(r.custom[ACTION_FAILED]) for r in replies if r.custom and ACTION_FAILED in r.custom)
            log.warning("inbox message %s: action %s failed; the message waits for a retry", inbox_id, failed)
            result.claimed += await asyncio.to_thread(_record_failure, factory, inbox_id, chat_id, payloads, claim)
            result.failed += 1
            result.failed_actions.append(failed)
            blocked.add(sender_id)
            continue
        fragment = any(isinstance(r.custom, dict) and r.custom.get(FRAGMENT) for r in replies)
        result.claimed += await asyncio.to_thread(_record, factory, inbox_id, chat_id, payloads, claim, fragment)
        rasa.sent_inbox.discard(inbox_id)  # done: never sent again
        result.answered += 1
        result.received.append(received_at)
    return result
