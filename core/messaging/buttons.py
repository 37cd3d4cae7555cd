"""Inline buttons whose data lives in the database, not in a process.

A button the bot sends carries only "b:<token>" (Telegram allows 64 bytes of callback data);
the data it stands for — any JSON: a ticket action "t:claim:12", a Rasa payload, a binding
step ["bind", "community", "C01"] — is a row of the `buttons` table under that token, written
in the transaction that queues the message (core.messaging.outbox.enqueue calls `tokenize`). A press
is resolved with `resolve` before the bot decides what it means, so every bot process reads
the same buttons, a restart loses none, and data the bot never issued (forged, tampered, or
purged after BUTTON_TTL) resolves to nothing and is refused.

The only raw callback data the bot still accepts is the 已读 button of broadcast notices
("bc:r:<id>", core.broadcasts.service): it names a broadcast, and a press is counted only from one of
its recipients.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.models import IssuedButton, utcnow

PREFIX = "b:"
TOKEN_BYTES = 12  # 16 characters of URL-safe base64; 96 random bits cannot be guessed
BUTTON_TTL = timedelta(days=180)  # ticket cards' buttons must keep working for weeks


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def callback(token: str) -> str:
    return PREFIX + token


def tokenize(payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The payload with each button's data replaced by "b:<token>", and {token: data} to store
    with `store` (only once the message is really queued)."""
    rows = payload.get("buttons")
    if not rows:
        return payload, {}
    issued: dict[str, Any] = {}
    out_rows = []
    for row in rows:
        out_row = []
        for button in row:
            if button.get("callback_data") is None:  # a URL button
                out_row.append(button)
                continue
            token = new_token()
            issued[token] = button["callback_data"]
            out_row.append({**button, "callback_data": callback(token)})
        out_rows.append(out_row)
    return {**payload, "buttons": out_rows}, issued


def store(session: Session, issued: dict[str, Any], now: datetime | None = None) -> None:
    """Write the buttons `tokenize` issued, in the caller's transaction."""
    now = now or utcnow()
    session.add_all(IssuedButton(token=token, data=data, created_at=now) for token, data in issued.items())
    if issued:
        session.flush()


def issue(session: Session, data: Any) -> str:
    """One button's callback data for `data`, stored in the caller's transaction."""
    token = new_token()
    store(session, {token: data})
    return callback(token)


def token_of(callback_data: object) -> str | None:
    """The token in "b:<token>", or None for anything else."""
    if isinstance(callback_data, str) and callback_data.startswith(PREFIX) and len(callback_data) > len(PREFIX):
        return callback_data[len(PREFIX):]
    return None


def resolve(session: Session, callback_data: object) -> tuple[bool, Any]:
    """(True, data) for a button the bot issued; (False, None) for anything else."""
    token = token_of(callback_data)
    if token is None:
        return False, None
    row = session.get(IssuedButton, token)
    if row is None:
        return False, None
    return True, row.data


def plain(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with each "b:<token>" replaced by the data it stands for (what was queued,
    as its author wrote it; for tests, the shell and operators)."""
    rows = payload.get("buttons")
    if not rows:
        return payload
    tokens = [t for row in rows for b in row if (t := token_of(b.get("callback_data"))) is not None]
    data = dict(session.execute(select(IssuedButton.token, IssuedButton.data)
                                .where(IssuedButton.token.in_(tokens))).tuples().all()) if tokens else {}
    return {**payload, "buttons": [[{**b, "callback_data": data.get(token_of(b.get("callback_data")) or "",
                                                                      b.get("callback_data"))}
                                     if "callback_data" in b else b for b in row] for row in rows]}


def purge(session: Session, now: datetime | None = None, ttl: timedelta = BUTTON_TTL) -> int:
    """Forget buttons issued more than `ttl` ago (a press on one is then refused). How many."""
    result = session.execute(delete(IssuedButton).where(IssuedButton.created_at < (now or utcnow()) - ttl)
                             .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)
