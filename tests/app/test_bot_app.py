"""The real Application: free text → inbox → Rasa → outbox → Telegram (fake), and odd input."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.app import RASA_TEXT_LIMIT, build_application
from core.config import Settings
from core.messages import t
from core.models import InboxMessage, InboxState
from tests.app.stack import Stack, free_port
from tests.app.telegram_fake import FakeTelegram
from tests.app.telegram_updates import UpdateBuilder

USER = 424242


def run_app(factory: sessionmaker[Session], rasa_url: str,
            script: Callable[..., Awaitable[None]]) -> FakeTelegram:
    fake = FakeTelegram()
    settings = Settings(_env_file=None, telegram_bot_token="123:ABC", rasa_url=rasa_url)  # type: ignore[call-arg]

    async def scenario() -> None:
        app = build_application(settings, factory, request=fake, background=False)
        await app.initialize()
        assert app.post_init is not None
        await app.post_init(app)
        updates = UpdateBuilder(app.bot, fake)
        try:
            await script(app, updates)
        finally:
            assert app.post_shutdown is not None
            await app.post_shutdown(app)
            await app.shutdown()

    asyncio.run(scenario())
    return fake


def texts_to(fake: FakeTelegram, chat_id: int) -> list[str]:
    return [m.get("text") or m.get("caption") or "" for m in fake.sent_messages(chat_id)]


def test_greeting_is_answered_through_rasa(sqlite_engine, rasa_stack: Stack) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)

    async def script(app, updates) -> None:  # type: ignore[no-untyped-def]
        await app.process_update(updates.text(USER, "你好"))

    fake = run_app(factory, rasa_stack.rasa_url, script)
    assert any("网格小助手" in text for text in texts_to(fake, USER))


def test_rasa_down_then_back_loses_nothing(sqlite_engine, rasa_stack: Stack) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    dead = f"http://127.0.0.1:{free_port()}"

    async def while_down(app, updates) -> None:  # type: ignore[no-untyped-def]
        await app.process_update(updates.text(USER, "7号楼消防通道被车堵死了"))
        await app.process_update(updates.text(USER, "快来人啊楼道里着火了"))

    fake = run_app(factory, dead, while_down)
    assert texts_to(fake, USER).count(t("rasa_down")) == 2
    with factory() as s:
        assert [m.state for m in s.scalars(select(InboxMessage).order_by(InboxMessage.id))] == [InboxState.pending] * 2

    async def when_back(app, updates) -> None:  # type: ignore[no-untyped-def]
        await app.bot_data["services"].answer_all()

    fake = run_app(factory, rasa_stack.rasa_url, when_back)
    answers = texts_to(fake, USER)
    assert any("119" in text for text in answers), answers  # the emergency got its numbers
    with factory() as s:
        assert all(m.state is InboxState.done for m in s.scalars(select(InboxMessage)))


def test_odd_input_is_answered_and_nothing_crashes(sqlite_engine, rasa_stack: Stack) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)

    async def script(app, updates) -> None:  # type: ignore[no-untyped-def]
        await app.process_update(updates.text(USER, "楼道里堆满了杂物" * 625))  # 5,000 characters
        await app.process_update(updates.text(USER, "😡😡😡"))
        await app.process_update(updates.sticker(USER))
        original = updates.text(USER, "3号楼电梯坏了")
        await app.process_update(original)
        await app.process_update(updates.edited(original, "3号楼电梯又坏了"))

    fake = run_app(factory, rasa_stack.rasa_url, script)
    answers = texts_to(fake, USER)
    assert t("too_long", limit=RASA_TEXT_LIMIT) in answers
    assert t("sticker") in answers and t("edited") in answers
    assert all(0 < len(text) <= 4096 for text in answers)
    assert t("error") not in answers
    with factory() as s:
        rows = s.scalars(select(InboxMessage).order_by(InboxMessage.id)).all()
        assert len(rows) == 3 and all(m.state is InboxState.done for m in rows)
        assert len(rows[0].text) == RASA_TEXT_LIMIT
        assert len(rows[0].meta["original_text"]) == 5000  # the whole report is kept
