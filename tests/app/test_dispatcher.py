"""The outbox dispatcher against python-telegram-bot's real Bot and a fake Telegram."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from telegram import Bot

from bot.dispatcher import OutboxDispatcher
from bot.textsplit import split_message
from core import outbox
from core.db import session_scope
from core.models import OutboxMessage, SendState, utcnow
from tests.app.telegram_fake import FakeTelegram


def _queue(factory: sessionmaker[Session], key: str, chat_id: int, **payload: object) -> None:
    with session_scope(factory) as s:
        outbox.enqueue(s, dedupe_key=key, kind="notice", chat_id=chat_id, payload=dict(payload))


def _make_due(factory: sessionmaker[Session]) -> None:
    """Let time pass: every pending message is due now."""
    with session_scope(factory) as s:
        s.execute(update(OutboxMessage).where(OutboxMessage.send_state == SendState.pending)
                  .values(next_attempt_at=utcnow() - timedelta(seconds=1)))


def _states(factory: sessionmaker[Session]) -> dict[str, tuple[SendState, int]]:
    with session_scope(factory) as s:
        return {m.dedupe_key: (m.send_state, m.attempts) for m in s.scalars(select(OutboxMessage))}


async def _dispatcher(factory: sessionmaker[Session], fake: FakeTelegram) -> OutboxDispatcher:
    bot = Bot("123:ABC", request=fake)
    await bot.initialize()
    return OutboxDispatcher(bot, factory)


def test_sends_queued_messages_with_buttons_once(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = FakeTelegram()
    _queue(factory, "a", 501, text="工单 2026-000001 已受理", buttons=[[{"text": "领单", "callback_data": "claim:1"}]])
    _queue(factory, "b", 502, text="您好")

    async def scenario() -> None:
        d = await _dispatcher(factory, fake)
        stats = await d.run_once()
        assert (stats.sent, stats.retried, stats.failed) == (2, 0, 0)
        again = await d.run_once()
        assert again.outcomes == {}

    asyncio.run(scenario())
    assert [m["text"] for m in fake.sent_messages(501)] == ["工单 2026-000001 已受理"]
    assert fake.last_keyboard(501) == [{"text": "领单", "callback_data": "claim:1"}]
    assert _states(factory) == {"a": (SendState.sent, 1), "b": (SendState.sent, 1)}


@pytest.mark.parametrize(
    ("status", "expected_state", "delivered_after_retry"),
    [(429, SendState.sent, True), (500, SendState.sent, True), (403, SendState.failed, False)],
)
def test_telegram_errors(engine, status: int, expected_state: SendState, delivered_after_retry: bool) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(engine, expire_on_commit=False)
    fake = FakeTelegram()
    _queue(factory, "card", -100200, text="紧急工单")
    _queue(factory, "other", 601, text="另一条")
    fake.fail_next("sendMessage", chat_id=-100200, status=status, retry_after=2 if status == 429 else None)

    async def scenario() -> None:
        d = await _dispatcher(factory, fake)
        first = await d.run_once()
        assert first.sent == 1  # the other chat is not held up
        assert await d.run_once() == type(first)()  # not due yet / never again
        _make_due(factory)
        await d.run_once()

    asyncio.run(scenario())
    state, attempts = _states(factory)["card"]
    assert state is expected_state
    delivered = [m for m in fake.sent_messages(-100200) if m["text"] == "紧急工单"]
    assert len(delivered) == (1 if delivered_after_retry else 0)  # never twice
    assert attempts == (2 if delivered_after_retry else 1)
    with session_scope(factory) as s:
        row = s.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == "card"))
        assert row is not None
        if status == 403:
            assert row.last_error is not None and "blocked" in row.last_error
        else:
            assert row.last_error is None and row.telegram_message_id is not None


def test_long_text_is_split_and_buttons_go_on_the_last_piece(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = FakeTelegram()
    long_text = "\n".join(f"第{i}行：" + "楼道堆物严重" * 20 for i in range(80))
    assert len(long_text) > 4096
    _queue(factory, "long", 700, text=long_text, buttons=[[{"text": "已读", "callback_data": "read:1"}]])

    async def scenario() -> None:
        d = await _dispatcher(factory, fake)
        assert (await d.run_once()).sent == 1

    asyncio.run(scenario())
    sent = fake.sent_messages(700)
    assert len(sent) == len(split_message(long_text)) >= 2
    assert all(len(m["text"]) <= 4096 for m in sent)
    assert "".join(m["text"] for m in sent).replace("\n", "") == long_text.replace("\n", "")
    assert [bool(m.get("reply_markup")) for m in sent] == [False] * (len(sent) - 1) + [True]


@pytest.mark.parametrize("length", [0, 1, 4096, 4097, 10000])
def test_split_message_bounds(length: int) -> None:
    text = "电" * length
    pieces = split_message(text)
    assert all(len(p) <= 4096 for p in pieces)
    assert "".join(pieces) == text
    assert split_message("一句话。" * 1500)[0].endswith("。")


def test_run_forever_delivers_what_arrives_while_running_and_stops(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = FakeTelegram()

    async def scenario() -> None:
        d = await _dispatcher(factory, fake)
        stop = asyncio.Event()
        task = asyncio.create_task(d.run_forever(stop, idle_seconds=0.05))
        await asyncio.sleep(0.1)
        _queue(factory, "late", 900, text="运行中加入的通知")
        for _ in range(100):
            if fake.sent_messages(900):
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, timeout=5)

    asyncio.run(scenario())
    assert [m["text"] for m in fake.sent_messages(900)] == ["运行中加入的通知"]
    assert _states(factory)["late"] == (SendState.sent, 1)


@pytest.mark.parametrize("status", [429, 500, 403])
def test_branch_card_under_telegram_errors(demo_factory: sessionmaker[Session], status: int) -> None:
    """The real ticket card (photo, buttons) to the branch group: retried, counted, never sent twice,
    and the ticket's own status is not touched by its send state."""
    from zoneinfo import ZoneInfo

    from core import workflow
    from core.models import Building, Ticket, TicketStatus
    from core.tickets import NewTicket

    branch_chat = -1001000000001
    with session_scope(demo_factory) as s:
        building = s.scalars(select(Building).where(Building.code == "B-HPL-01-04")).one()
        ticket_id = workflow.submit_report(s, NewTicket(
            category_code="sanitation", description="4号楼垃圾三天没清", grid_id=building.grid_id,
            community_id=building.grid.community_id, building_id=building.id, photo_file_ids=["photo-1"],
        ), tz=ZoneInfo("Asia/Shanghai")).id
    fake = FakeTelegram()
    fake.fail_next("sendPhoto", chat_id=branch_chat, status=status, retry_after=1 if status == 429 else None)

    async def scenario() -> None:
        d = await _dispatcher(demo_factory, fake)
        await d.run_once()
        await d.run_once()  # not due yet: nothing is sent again
        _make_due(demo_factory)
        await d.run_once()
        _make_due(demo_factory)
        await d.run_once()

    asyncio.run(scenario())
    cards = [m for m in fake.sent_messages(branch_chat) if m["method"] == "sendPhoto"]
    tries = [c for c in fake.calls_to("sendPhoto", branch_chat)]
    with session_scope(demo_factory) as s:
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == branch_chat)).one()
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None and ticket.status is TicketStatus.accepted
        if status == 403:
            assert cards == [] and len(tries) == 1
            assert row.send_state is SendState.failed and row.attempts == 1 and row.last_error
        else:
            assert len(cards) == 1 and len(tries) == 2  # one failure, one delivery, never twice
            assert row.send_state is SendState.sent and row.attempts == 2
            assert cards[0]["photo"] == "photo-1" and "4号楼垃圾三天没清" in cards[0]["caption"]
