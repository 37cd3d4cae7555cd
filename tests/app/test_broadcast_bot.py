"""/broadcast, /notify and the 已读 button through the real Application (fake Telegram)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.broadcast_sender import BroadcastSender, sender_bot
from core.config import get_settings
from core.db import session_scope
from core.models import Broadcast, BroadcastState, Building, Grid, Person, utcnow
from tests.app.journey import Journey, journey
from tests.app.telegram_fake import FakeTelegram

SECRETARY, OUTSIDER = 700000001, 700000009
RESIDENT = 830_000_001
NO_RASA = "http://127.0.0.1:9"  # never reached: these flows do not go through Rasa


def _add_resident(factory: sessionmaker[Session], telegram_id: int) -> None:
    with session_scope(factory) as s:
        grid = s.scalars(select(Grid).where(Grid.code == "G-HPL-01")).one()
        building = s.scalars(select(Building).where(Building.grid_id == grid.id)).first()
        assert building is not None
        s.add(Person(telegram_id=telegram_id, display_name="居民甲", building_id=building.id))


async def _compose(j: Journey, text: str, *, read: bool) -> list[str]:
    assert "请发送通知内容" in (await j.say(SECRETARY, "/broadcast"))[-1]
    shown = await j.say(SECRETARY, text)
    assert shown[-1] == "请选择通知对象："
    labels = [b["text"] for b in j.fake.last_keyboard(SECRETARY)]
    assert any("党员（7 人）" in label for label in labels)
    assert not any("全社区" in label for label in labels)  # a secretary is not a community admin
    residents = next(label for label in labels if "居民" in label)
    await j.press(SECRETARY, SECRETARY, residents)
    await j.press(SECRETARY, SECRETARY, "普通通知")
    return await j.press(SECRETARY, SECRETARY, "需要已读回执" if read else "不需要")


def test_broadcast_now_read_button_and_report(sqlite_demo_factory) -> None:  # type: ignore[no-untyped-def]
    factory = sqlite_demo_factory
    _add_resident(factory, RESIDENT)
    fake = FakeTelegram()

    async def scenario() -> None:
        async with journey(factory, NO_RASA, fake) as j:
            preview = await _compose(j, "本周六上午停水，请提前储水。", read=True)
            assert "收件人：" in preview[-1] and "已读回执：是" in preview[-1]
            sent = await j.press(SECRETARY, SECRETARY, "立即发送")
            assert any(text.startswith("开始发送，共") for text in sent)
            bot = sender_bot("123:ABC", fake)
            await bot.initialize()
            sender = BroadcastSender(bot, factory, progress_every=0.0, on_finished=j.drain)
            assert await sender.run_once() == 1
            [notice] = fake.sent_messages(RESIDENT)
            assert "本周六上午停水" in notice["text"]
            assert (await j.press(RESIDENT, RESIDENT, "已读"))[-1] == "已记录，谢谢！"
            assert (await j.press(RESIDENT, RESIDENT, "已读"))[-1] == "您已经确认过了。"
            message, data = j.find_button(RESIDENT, "已读")
            stranger = j.updates.callback_query(OUTSIDER, data, message)
            await j.app.process_update(stranger)
            assert fake.calls_to("answerCallbackQuery")[-1].params["text"] == "这条通知不是发给您的。"

    asyncio.run(scenario())
    texts = [m["text"] for m in fake.sent_messages(SECRETARY)]
    report = texts[-1]
    assert "通知发送完毕" in report and "已屏蔽机器人 0 人" in report and "已读 0/" in report
    progress = next(m for m in fake.sent_messages(SECRETARY) if m["text"].startswith("已发送"))
    assert fake.message(SECRETARY, progress["message_id"])["text"].startswith("已发送 ")
    with session_scope(factory) as s:
        from core.broadcasts import service as broadcasts
        b = s.scalars(select(Broadcast)).one()
        assert b.state is BroadcastState.done and broadcasts.counts(s, b.id)["read"] == 1


def test_broadcast_later_and_cancel_and_refusal(sqlite_demo_factory) -> None:  # type: ignore[no-untyped-def]
    factory = sqlite_demo_factory
    fake = FakeTelegram()

    async def scenario() -> None:
        async with journey(factory, NO_RASA, fake) as j:
            assert (await j.say(OUTSIDER, "/broadcast"))[-1] == "您目前没有可以发通知的对象。"
            await _compose(j, "下周一开会", read=False)
            asked = await j.press(SECRETARY, SECRETARY, "定时发送")
            assert "请输入发送时间" in asked[-1]
            assert "没看懂" in (await j.say(SECRETARY, "某一天"))[-1]
            done = await j.say(SECRETARY, "明天上午9点")
            assert done[-1].startswith("已定时，将于") and "09:00" in done[-1]
            await _compose(j, "周一的通知", read=False)
            await j.press(SECRETARY, SECRETARY, "定时发送")
            unsure = await j.say(SECRETARY, "下周一上午")  # no hour given: the bot says what it read
            assert unsure[-1].startswith("我理解为：") and "09:00" in unsure[-1] and "对吗" in unsure[-1]
            done = await j.press(SECRETARY, SECRETARY, "对，就这个时间")
            assert done[-1].startswith("已定时，将于") and "09:00" in done[-1]
            await _compose(j, "这条不发了", read=False)
            assert (await j.press(SECRETARY, SECRETARY, "取消"))[-1] == "已取消，这条通知不会发出。"

    asyncio.run(scenario())
    with session_scope(factory) as s:
        rows = {b.text: b for b in s.scalars(select(Broadcast))}
        later = rows["下周一开会"]
        assert later.state is BroadcastState.queued and later.scheduled_at > utcnow() + timedelta(hours=1)
        local = later.scheduled_at.astimezone(get_settings().tz)
        assert (local.hour, local.minute) == (9, 0)
        assert rows["这条不发了"].state is BroadcastState.cancelled
        monday = rows["周一的通知"].scheduled_at.astimezone(get_settings().tz)
        assert rows["周一的通知"].state is BroadcastState.queued and (monday.weekday(), monday.hour) == (0, 9)


def test_notify_off_and_on(sqlite_demo_factory) -> None:  # type: ignore[no-untyped-def]
    factory = sqlite_demo_factory
    _add_resident(factory, RESIDENT)

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            assert "已关闭普通通知" in (await j.say(RESIDENT, "/notify off"))[-1]
            with session_scope(factory) as s:
                assert s.scalars(select(Person).where(Person.telegram_id == RESIDENT)).one().notify_off
            assert "普通通知已关闭" in (await j.say(RESIDENT, "/notify"))[-1]
            assert (await j.say(RESIDENT, "/notify on"))[-1] == "已打开通知。"
            with session_scope(factory) as s:
                assert not s.scalars(select(Person).where(Person.telegram_id == RESIDENT)).one().notify_off

    asyncio.run(scenario())
