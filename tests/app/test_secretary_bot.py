"""Secretaries and community admins through the real Application (fake Telegram): /tickets, 指派,
上报社区 with its reason, an admin's card, 发回, the community's /report; broadcasts that cancel
at any step, a draft kept when another command comes in the middle, /broadcasts with cancel and
the report; the secretary told when an invite code is used."""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.broadcast_sender import BroadcastSender, sender_bot
from core.access.commands import commands_for
from core.broadcasts import service as broadcasts
from core.db import session_scope
from core.messages import t
from core.messaging import prompts
from core.models import (
    Broadcast,
    BroadcastState,
    Building,
    Person,
    Role,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from core.tickets import service as ticket_service
from core.tickets.lifecycle import NewTicket
from tests.app.journey import Journey, journey
from tests.app.telegram_fake import FakeTelegram

S = TicketStatus
TZ = ZoneInfo("Asia/Shanghai")
NO_RASA = "http://127.0.0.1:9"  # none of these flows reaches Rasa
BRANCH_CHAT, SECRETARY, MEMBER = -1001000000001, 700000001, 700000002
ADMIN = 700000069  # P-0069, community admin of 和平里社区 (C-HPL)
RESIDENT = 700000071  # P-0071, lives in B-HPL-01-09
NEWCOMER = 830_000_101


def who(s: Session, telegram_id: int) -> Person:
    return s.scalars(select(Person).where(Person.telegram_id == telegram_id)).one()


def new_ticket(factory: sessionmaker[Session], description: str = "楼下有车堵了消防通道") -> tuple[int, str]:
    with session_scope(factory) as s:
        b = s.scalars(select(Building).where(Building.code == "B-HPL-01-07")).one()
        ticket = ticket_service.submit_report(s, NewTicket(
            "parking", description, reporter_id=who(s, RESIDENT).id, community_id=b.grid.community_id,
            grid_id=b.grid_id, building_id=b.id), tz=TZ)
        return ticket.id, ticket.number


def events(factory: sessionmaker[Session], ticket_id: int) -> list[TicketEvent]:
    with factory() as s:
        return list(s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)))


def keyboard(j: Journey, chat_id: int) -> list[str]:
    message = j.fake.last_message(chat_id) or {}
    return [b["text"] for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


def test_tickets_assign_escalate_with_reason_and_the_admins_return(sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory
    ticket_id, number = new_ticket(factory)
    other_id, other = new_ticket(factory, "小区门口的共享单车堆成一片")

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            await j.drain()  # the cards reach the branch group
            # /tickets: the branch's open tickets by state, with their time limits, and 指派 buttons
            [listing] = await j.say(SECRETARY, "/tickets")
            assert "和平里第一网格党支部 未办结的工单" in listing and "【已受理】" in listing, listing
            assert number in listing and other in listing and "办结 " in listing and "响应 " in listing
            assert f"指派 {number}" in keyboard(j, SECRETARY)
            # a member sees no list
            assert await j.say(MEMBER, "/tickets") == [t("tickets.not_allowed")]

            # 指派: the members as buttons, then the member picked is told privately; one event
            picked = await j.press(SECRETARY, SECRETARY, f"指派 {number}")
            assert any("指派给谁" in x for x in picked), picked
            assert "梁同志 梁海涛" in keyboard(j, SECRETARY)
            done = await j.press(SECRETARY, SECRETARY, "梁同志 梁海涛")
            assert any("已指派给梁同志" in x for x in done), done
            [card] = [x for x in j.texts(MEMBER) if number in x]
            assert "董同志把工单" in card and "指派给您" in card
            assert keyboard(j, MEMBER) == [t("card.button_resolve")]
            assert any(f"{number} 已由 董同志 指派给 梁同志" in x for x in j.texts(BRANCH_CHAT))
            last = events(factory, ticket_id)[-1]
            with factory() as s:
                ticket = s.get(Ticket, ticket_id)
                assert ticket is not None and ticket.status is S.claimed and ticket.claimed_by_id == who(s, MEMBER).id
                assert last.actor_id == who(s, SECRETARY).id and last.note == "指派给梁同志"
            # the assignee may resolve it as its claimer (the note is asked in private)
            asked = await j.press(MEMBER, MEMBER, t("card.button_resolve"))
            assert any("办结说明" in x for x in asked), asked
            assert (await j.say(MEMBER, "不办了")) == [t("ticket.note_cancelled")]

            # 上报社区 asks for the reason like 办结 and 退回; the admin receives it
            got = await j.press(SECRETARY, BRANCH_CHAT, "上报社区")
            assert any("上报社区的原因" in x for x in got), got
            prompt = j.prompt(SECRETARY)
            assert prompt is not None and prompt.value["action"] == "escalate"
            with factory() as s:
                assert s.get(Ticket, other_id).status is S.accepted  # type: ignore[union-attr]
            assert await j.say(SECRETARY, "占道的是外单位车辆，需要社区协调交警") == [t("ticket.escalate_done")]
            admin_cards = [x for x in j.texts(ADMIN) if "【吹哨】" in x]
            assert admin_cards and "占道的是外单位车辆，需要社区协调交警" in admin_cards[-1]
            # the admin's copy of the card has no 上报社区, and offers 发回
            assert "上报社区" not in keyboard(j, ADMIN) and t("card.button_return") in keyboard(j, ADMIN)

            # the admin's /tickets: escalated tickets with the reasons, 发回 buttons
            shown = await j.say(ADMIN, "/tickets")
            [community] = shown  # the community's list, not every branch's
            assert "未办结的工单" not in community
            assert other in community and "需要社区协调交警" in community and "董同志上报" in community
            assert f"发回 {other}" in keyboard(j, ADMIN)
            # 发回 asks for the note; the branch group gets the card back with it
            asked = await j.press(ADMIN, ADMIN, f"发回 {other}")
            assert any("发回网格的说明" in x for x in asked), asked
            assert await j.say(ADMIN, "交警已处理外单位车辆，请网格跟进居民回访") == [t("ticket.return_done")]
            back = [x for x in j.texts(BRANCH_CHAT) if "【社区发回】" in x]
            assert back and other in back[-1] and "请网格跟进居民回访" in back[-1]
            assert any("已由社区交回网格处理" in x for x in j.texts(RESIDENT))
            # a secretary may not hand anything back
            refused = await j.press(SECRETARY, ADMIN, f"发回 {other}")
            assert any("只有本社区的管理员" in x for x in refused), refused

    asyncio.run(scenario())
    escalated, returned = events(factory, other_id)[-2:]
    assert escalated.to_status is S.escalated and escalated.note == "占道的是外单位车辆，需要社区协调交警"
    assert (returned.from_status, returned.to_status) == (S.escalated, S.accepted)
    assert returned.note == "交警已处理外单位车辆，请网格跟进居民回访"


def test_the_admins_report_covers_the_communitys_branches(sqlite_demo_factory: sessionmaker[Session]) -> None:
    async def scenario() -> None:
        async with journey(sqlite_demo_factory, NO_RASA) as j:
            shown = await j.say(ADMIN, "/report")
            overview = next(x for x in shown if "各支部出勤" in x)
            assert "和平里第一网格党支部" in overview and "和平里第二网格党支部" in overview and "合计" in overview
            assert "青年湖" not in overview  # another community's branches are not the admin's
            assert not any("各支部出勤" in x for x in await j.say(SECRETARY, "/report"))

    asyncio.run(scenario())


def test_commands_menu_has_tickets_and_broadcasts_for_those_who_may() -> None:
    for role in (Role.secretary, Role.grid_worker, Role.community_admin):
        names = {c.name for c in commands_for(frozenset({role}))}
        assert {"tickets", "broadcasts"} <= names
    for role in (Role.resident, Role.member, Role.volunteer):
        assert not {"tickets", "broadcasts"} & {c.name for c in commands_for(frozenset({role}))}


async def _to_buttons(j: Journey, text: str) -> None:
    assert "请发送通知内容" in (await j.say(SECRETARY, "/broadcast"))[-1]
    assert (await j.say(SECRETARY, text))[-1] == "请选择通知对象："


def test_broadcast_cancel_words_at_any_step_and_a_draft_kept_across_a_command(
        sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            # 算了 while the audience buttons are open: dropped, nothing goes to Rasa
            await _to_buttons(j, "明天上午停电检修")
            assert await j.say(SECRETARY, "算了") == [t("broadcast.cancelled")]
            assert j.prompt(SECRETARY) is None
            # 不发了 at the preview (a Broadcast draft exists): dropped, the draft cancelled
            await _to_buttons(j, "明天上午停电检修")
            await j.press(SECRETARY, SECRETARY, next(b for b in keyboard(j, SECRETARY) if "党员" in b))
            await j.press(SECRETARY, SECRETARY, "普通通知")
            await j.press(SECRETARY, SECRETARY, "不需要")
            assert await j.say(SECRETARY, "不发了") == [t("broadcast.cancelled")]
            with factory() as s:
                assert [b.state for b in s.scalars(select(Broadcast))] == [BroadcastState.cancelled]

            # another command in the middle: it runs, and the bot asks whether to keep the draft
            await _to_buttons(j, "周六上午清理楼道杂物，请党员带头")
            await j.press(SECRETARY, SECRETARY, next(b for b in keyboard(j, SECRETARY) if "党员" in b))
            shown = await j.say(SECRETARY, "/tickets")
            assert any("通知草稿（周六上午清理楼道杂物，请党员带头）" in x for x in shown), shown
            assert any("未办结的工单" in x for x in shown), shown  # the command itself ran
            assert j.prompt(SECRETARY) is None  # what comes next is not taken as the draft's
            resumed = await j.press(SECRETARY, SECRETARY, t("broadcast.button_resume"))
            assert resumed[-1] == t("broadcast.ask_essential"), resumed
            asked = j.prompt(SECRETARY)
            assert asked is not None and asked.value["step"] == "essential"
            await j.press(SECRETARY, SECRETARY, "普通通知")
            await j.press(SECRETARY, SECRETARY, "不需要")
            await j.press(SECRETARY, SECRETARY, "定时发送")
            # the time question: a command again, the draft kept, resumed, then the time
            shown = await j.say(SECRETARY, "/duties")
            assert any("保留吗" in x for x in shown), shown
            assert (await j.press(SECRETARY, SECRETARY, t("broadcast.button_resume")))[-1] == t("broadcast.ask_time")
            scheduled = await j.say(SECRETARY, "2099-01-05 09:00")
            assert any("已定时，将于 2099-01-05 09:00 发给 7 人" in x for x in scheduled), scheduled

            # /broadcasts: the scheduled notice with 取消 #n; pressing it cancels it
            [listing] = await j.say(SECRETARY, "/broadcasts")
            with factory() as s:
                queued = s.scalars(select(Broadcast).where(Broadcast.state == BroadcastState.queued)).one()
            assert "【定时待发】" in listing and f"#{queued.id} 01-05 09:00" in listing and "7人" in listing
            await j.press(SECRETARY, SECRETARY, f"取消 #{queued.id}")
            with factory() as s:
                assert s.get(Broadcast, queued.id).state is BroadcastState.cancelled  # type: ignore[union-attr]
            # a kept draft nobody resumed can be dropped
            await _to_buttons(j, "草稿：下周一开会")
            await j.say(SECRETARY, "/help")
            await j.press(SECRETARY, SECRETARY, t("broadcast.button_drop"))
            assert j.prompt(SECRETARY) is None

    asyncio.run(scenario())


def test_broadcasts_lists_the_delivery_report_with_the_read_count(sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory
    fake = FakeTelegram()

    async def scenario() -> None:
        async with journey(factory, NO_RASA, fake) as j:
            await _to_buttons(j, "本周六上午停水，请提前储水。")
            await j.press(SECRETARY, SECRETARY, next(b for b in keyboard(j, SECRETARY) if "党员" in b))
            await j.press(SECRETARY, SECRETARY, "普通通知")
            await j.press(SECRETARY, SECRETARY, "需要已读回执")
            await j.press(SECRETARY, SECRETARY, "立即发送")
            bot = sender_bot("123:ABC", fake)
            await bot.initialize()
            assert await BroadcastSender(bot, factory, progress_every=0.0, on_finished=j.drain).run_once() == 1
            assert (await j.press(MEMBER, MEMBER, "已读"))[-1] == t("broadcast.read_thanks")
            [listing] = await j.say(SECRETARY, "/broadcasts")
            assert "【最近发出】" in listing and "本周六上午停水" in listing, listing
            assert "已送达 7 人" in listing and "已读 1/7" in listing, listing
            assert t("broadcast.list_none_scheduled") in listing
            # a notice that went out cannot be cancelled
            with factory() as s:
                done = s.scalars(select(Broadcast)).one()
                assert done.state is BroadcastState.done
            got = await j.step(j.updates.callback_query(SECRETARY, j.issue(["bcc", "unschedule", done.id]),
                                                        j.fake.last_message(SECRETARY)), SECRETARY)
            assert t("broadcast.deny.started") in got, got

    asyncio.run(scenario())
    with session_scope(factory) as s:
        assert broadcasts.counts(s, s.scalars(select(Broadcast)).one().id)["read"] == 1


def test_the_secretary_is_told_when_an_invite_code_is_used_and_by_whom(
        sqlite_demo_factory: sessionmaker[Session]) -> None:
    async def scenario() -> None:
        async with journey(sqlite_demo_factory, NO_RASA) as j:
            [created] = await j.say(SECRETARY, "/invite")
            code = created.split("邀请码：")[1].split()[0]
            joined = await j.step(j.updates.text(NEWCOMER, f"/join {code}", first_name="王新"), NEWCOMER)
            assert joined == [t("invite.joined", branch="和平里第一网格党支部")]
            told = j.texts(SECRETARY)[-1]
            assert told == t("invite.redeemed", code=code, name="王新", branch="和平里第一网格党支部")
            # a refused /join tells nobody
            before = len(j.texts(SECRETARY))
            await j.step(j.updates.text(NEWCOMER + 1, f"/join {code}", first_name="李四"), NEWCOMER + 1)
            assert len(j.texts(SECRETARY)) == before

    asyncio.run(scenario())
    with sqlite_demo_factory() as s:
        assert prompts.current(s, NEWCOMER) is None

