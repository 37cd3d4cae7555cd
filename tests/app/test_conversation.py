"""Residents' messages go inbox → Rasa → outbox exactly once, and wait out a Rasa outage."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.conversation import answer_pending
from bot.rasa_client import RasaClient, RasaUnavailable, Reply, parse_reply, to_payload
from core import inbox
from core.db import session_scope
from core.models import InboxMessage, InboxState, OutboxMessage
from tests.app.stack import Stack, free_port


def test_rasa_reply_becomes_an_outbox_payload() -> None:
    reply = parse_reply({"recipient_id": "1", "text": "请选择类别",
                         "buttons": [{"title": "消防安全", "payload": "/complaint_fire_safety"}]})
    assert reply == Reply("请选择类别", [("消防安全", "/complaint_fire_safety")])
    assert to_payload(reply) == {"text": "请选择类别",
                                 "buttons": [[{"text": "消防安全", "callback_data": "/complaint_fire_safety"}]]}


def test_unreachable_rasa_raises_rasa_unavailable() -> None:
    async def scenario() -> None:
        client = RasaClient(f"http://127.0.0.1:{free_port()}", timeout=2)
        with pytest.raises(RasaUnavailable):
            await client.send(1, "你好")
        await client.aclose()

    asyncio.run(scenario())


def test_messages_wait_while_rasa_is_down_then_are_answered_once(
    engine, rasa_stack: Stack  # type: ignore[no-untyped-def]
) -> None:
    factory: sessionmaker[Session] = sessionmaker(engine, expire_on_commit=False)
    with session_scope(factory) as s:
        for sender, text in [(801, "你好"), (802, "我的养老金怎么领"), (801, "7号楼消防通道被车堵死了")]:
            inbox.accept(s, sender_id=sender, chat_id=sender, text=text)

    async def scenario() -> None:
        down = RasaClient(f"http://127.0.0.1:{free_port()}", timeout=2)
        result = await answer_pending(factory, down)
        assert result.rasa_down and result.answered == 0 and result.waiting == 3
        await down.aclose()
        with session_scope(factory) as s:
            assert inbox.has_pending(s, 801) and inbox.has_pending(s, 802)
        up = RasaClient(rasa_stack.rasa_url)
        result = await answer_pending(factory, up)
        assert (result.answered, result.rasa_down) == (3, False)
        again = await answer_pending(factory, up)
        assert again.answered == 0
        await up.aclose()

    asyncio.run(scenario())
    with session_scope(factory) as s:
        assert all(m.state is InboxState.done for m in s.scalars(select(InboxMessage)))
        replies = s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        keys = [r.dedupe_key for r in replies]
        assert len(keys) == len(set(keys)) >= 3
        by_chat = {r.chat_id: [] for r in replies}
        for r in replies:
            by_chat[r.chat_id].append(r.payload["text"])
        assert any("12345" in t for t in by_chat[802])
        assert len(by_chat[801]) >= 2  # a greeting answer, then the report's answer, in order
