"""One pipeline: a handler's message is an outbox row, queued in the transaction of the change
and sent at once; the dispatcher keeps to the rate budget."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from telegram import Bot

from bot.dispatcher import OutboxDispatcher
from bot.ratelimit import RateLimiter
from core.db import session_scope
from core.messages import t
from core.messaging import buttons, outbox
from core.models import OutboxMessage, SendState, utcnow
from tests.app.journey import journey
from tests.app.telegram_fake import FakeTelegram

NO_RASA = "http://127.0.0.1:9"
SECRETARY = 700000001
NEWCOMER = 740_000_001


def rows(factory: sessionmaker[Session], chat_id: int) -> list[OutboxMessage]:
    with factory() as s:
        return list(s.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == chat_id)
                              .order_by(OutboxMessage.id)))


def test_a_handler_reply_is_an_outbox_row_sent_at_once(sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            shown = await j.step(j.updates.text(SECRETARY, "/notify off"), SECRETARY)
            assert shown == [t("notify.off")]
            [row] = rows(factory, SECRETARY)  # sent by the handler itself: no dispatcher pass ran
            assert (row.kind, row.priority, row.send_state, row.payload) == (
                "reply", outbox.PRIORITY_URGENT, SendState.sent, {"text": t("notify.off")})
            assert row.telegram_message_id == j.fake.sent_messages(SECRETARY)[-1]["message_id"]

            await j.say(NEWCOMER, "/start")
            [welcome] = rows(factory, NEWCOMER)
            assert welcome.payload["text"] == t("bind.welcome") and welcome.send_state is SendState.sent
            with factory() as s:
                data = [buttons.resolve(s, b["callback_data"]) for row in welcome.payload["buttons"] for b in row]
            assert data and all(issued and d[:2] == ["bind", "community"] for issued, d in data), data

            pressed = await j.press(NEWCOMER, NEWCOMER, "和平里社区")  # an edit is a row too
            assert pressed == [t("bind.pick_building")]
            edit = rows(factory, NEWCOMER)[-1]
            assert edit.payload["edit"] == welcome.telegram_message_id and edit.send_state is SendState.sent

    asyncio.run(scenario())


def test_a_group_over_its_minute_waits_in_the_outbox_and_the_pass_goes_on(
        sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake, group, private = FakeTelegram(), -1001000000077, 5005
    with session_scope(factory) as s:
        for i in range(3):
            outbox.enqueue(s, dedupe_key=f"card:{i}", kind="card", chat_id=group, payload={"text": f"工单{i}"})
        outbox.enqueue(s, dedupe_key="reply", kind="reply", chat_id=private, payload={"text": "收到"})

    async def scenario() -> None:
        bot = Bot("123:ABC", request=fake)
        await bot.initialize()
        limiter = RateLimiter(group_rate=2, group_period=30.0, chat_burst=3)
        stats = await OutboxDispatcher(bot, factory, limiter=limiter).run_once()
        assert (stats.sent, stats.retried) == (3, 1)

    asyncio.run(scenario())
    assert [m["text"] for m in fake.sent_messages(private)] == ["收到"]  # the reply went first
    assert [m["text"] for m in fake.sent_messages(group)] == ["工单0", "工单1"]
    with factory() as s:
        waiting = s.scalars(select(OutboxMessage).where(OutboxMessage.dedupe_key == "card:2")).one()
        assert waiting.send_state is SendState.pending and waiting.attempts == 0  # not a failed attempt
        assert waiting.next_attempt_at > utcnow() + timedelta(seconds=25)
