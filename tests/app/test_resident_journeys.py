"""Residents' journeys that used to lose something, end to end: the real Application (fake
Telegram transport), the real Rasa server and action server, one database.

- a summary nobody confirmed is kept and shown again; a stale button says what became of it;
- fragments typed one after another become one report;
- several problems in one message become separate reports, filed with one press;
- the return visit answered in words, offered again from /my, and 未解决 asking what is still wrong;
- an emergency cannot be "cancelled": the resident can say it is over or was a false alarm,
  which is an event on the ticket that the handlers see.

Every test shares the stack's database, so each uses its own residents.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.messages import t
from core.models import Building, OutboxMessage, Ticket, TicketStatus
from tests.app.journey import journey
from tests.app.stack import Stack
from tests.app.test_journey import BRANCH_CHAT, MEMBER, SECRETARY, bind, factory, tickets_of  # noqa: F401


def _lead(key: str) -> str:
    return t(key).split("。")[0]


def test_an_unconfirmed_report_is_kept_and_stale_buttons_say_so(factory: sessionmaker[Session],  # noqa: F811
                                                                  rasa_stack: Stack) -> None:
    resident = 751000001

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            await bind(j, resident, "和平里社区", "和平里11号楼")
            summary = await j.say(resident, "11号楼门口的垃圾桶满了好几天没人收，臭得很")
            assert any("环境卫生" in x for x in summary), summary
            # 谢谢 is not the end of it: the report waits, and says so, with its buttons again
            thanks = await j.say(resident, "谢谢")
            assert any(_lead("report.pending") in x and "环境卫生" in x for x in thanks), thanks
            assert not any("不客气" in x for x in thanks), thanks
            mine = await j.say(resident, "/my")
            assert any(_lead("report.pending") in x for x in mine), mine
            assert t("status.none") not in mine, mine  # not "您还没有反映过问题" while one waits
            # typed 取消, then an old 确认提交: it says plainly that it expired and what to do
            cancelled = await j.say(resident, "取消")
            assert any(t("report.cancelled") in x for x in cancelled), cancelled
            stale = await j.press(resident, resident, t("report.button_confirm"))
            assert stale == [t("report.stale_cancelled")], stale

            # filed from the reminder's button; then the first summary's 确认 says it was filed
            await j.say(resident, "11号楼楼道的声控灯坏了，晚上黑漆漆的")
            again = await j.say(resident, "好嘞谢谢")
            assert any(_lead("report.pending") in x for x in again), again
            filed = await j.press(resident, resident, t("report.button_confirm"))
            assert any("工单号" in x for x in filed), filed
            stale = await j.press(resident, resident, t("report.button_confirm"))
            [ticket] = tickets_of(factory, resident)
            assert stale == [t("report.stale_filed", numbers=ticket.number)], stale

    asyncio.run(scenario())
    [ticket] = tickets_of(factory, resident)
    assert ticket.category_code == "property"


def test_a_new_problem_while_a_summary_waits_keeps_both(factory: sessionmaker[Session],  # noqa: F811
                                                        rasa_stack: Stack) -> None:
    resident = 751000007

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            await bind(j, resident, "和平里社区", "和平里13号楼")
            first = await j.say(resident, "13号楼门口的井盖松了，一踩就晃")
            assert any("公共设施" in x for x in first), first
            both = await j.say(resident, "还有13号楼楼下天天有人占道卖菜")
            assert any("还没提交" in x and "公共设施" in x for x in both), both
            assert any("公共设施" in x and "占道经营" in x for x in both), both
            filed = await j.press(resident, resident, t("report.button_confirm_all", n=2))
            assert any(t("report.filed_several", n=2, items="").split("\n")[0] in x for x in filed), filed

    asyncio.run(scenario())
    assert sorted(x.category_code for x in tickets_of(factory, resident)) == ["facilities", "vendor"]


def test_fragments_one_after_another_become_one_report(factory: sessionmaker[Session],  # noqa: F811
                                                       rasa_stack: Stack) -> None:
    resident = 751000002  # lives in 12号楼; the fragments are about 3号楼
    said: list[tuple[str, list[str]]] = []

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            await bind(j, resident, "和平里社区", "和平里12号楼")
            for words in ("我们三号楼", "楼道的灯", "不亮了", "一个礼拜了"):
                said.append((words, await j.say(resident, words)))
            assert not any(t("default") in x for _, got in said for x in got), said
            summary = said[-1][1]
            assert any("和平里小区3号楼" in x and "物业服务" in x and "楼道的灯" in x and "不亮了" in x
                       and "一个礼拜了" in x for x in summary), said
            said.append(("（按下「确认提交」）", await j.press(resident, resident, t("report.button_confirm"))))

    asyncio.run(scenario())
    print("\n".join(f"你> {w}\n" + "\n".join(f"  {x}" for x in got) for w, got in said))  # the README's transcript
    [ticket] = tickets_of(factory, resident)
    with factory() as s:
        building = s.get(Building, ticket.building_id)
        assert building is not None and building.address == "和平里小区3号楼"
    assert ticket.category_code == "property"
    assert all(part in ticket.description for part in ("楼道的灯", "不亮了", "一个礼拜了")), ticket.description


def test_several_problems_in_one_message_are_separate_reports_filed_with_one_press(
        factory: sessionmaker[Session], rasa_stack: Stack) -> None:  # noqa: F811
    resident = 751000003

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            await bind(j, resident, "和平里社区", "和平里14号楼")
            summary = await j.say(resident, "14号楼消防通道被私家车堵死了，电梯也坏了三天了，楼下垃圾也一直没人收")
            assert any(t("report.several", n=3, items="").split("\n")[0] in x for x in summary), summary
            # one of the three is not wanted: 去掉 it, then file the rest with one press
            dropped = await j.press(resident, resident, t("report.button_drop", n=3))
            assert any(t("report.button_drop", n=3) not in x and "2条" in x for x in dropped), dropped
            filed = await j.press(resident, resident, t("report.button_confirm_all", n=2))
            assert any(t("report.filed_several", n=2, items="").split("\n")[0] in x for x in filed), filed

    asyncio.run(scenario())
    tickets = tickets_of(factory, resident)
    assert sorted(x.category_code for x in tickets) == ["elevator", "fire_safety"]
    assert all(x.grid_id is not None and x.status is TicketStatus.accepted for x in tickets)
    assert any("电梯" in x.description and "消防" not in x.description for x in tickets)


async def _resolved(j, resident: int, words: str) -> str:  # type: ignore[no-untyped-def]
    """File `words` as a report, have it claimed and resolved; its number."""
    await j.say(resident, words)
    filed = await j.press(resident, resident, t("report.button_confirm"))
    assert any("工单号" in x for x in filed), filed
    await j.press(MEMBER, BRANCH_CHAT, "领单")
    await j.press(SECRETARY, BRANCH_CHAT, "办结")
    assert await j.say(SECRETARY, "已经修好了") == [t("ticket.resolve_done")]
    number = [x.number for x in tickets_of(j.factory, resident)][-1]
    return str(number)


def test_visit_in_words_from_my_and_what_is_still_wrong(factory: sessionmaker[Session],  # noqa: F811
                                                        rasa_stack: Stack) -> None:
    resident = 751000004

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            await bind(j, resident, "和平里社区", "和平里2号楼")
            await _resolved(j, resident, "2号楼单元门的门禁坏了，刷卡打不开")
            # "好了，谢谢" answers 问题解决了吗; the satisfaction is asked with its row of buttons only
            first_number = tickets_of(factory, resident)[0].number
            asked = await j.say(resident, "好了，谢谢")
            assert any(t("visit.ask_score", number=first_number) in x for x in asked), asked
            message, _ = j.find_button(resident, t("rating.2"))
            titles = [b["text"] for row in message["reply_markup"]["inline_keyboard"] for b in row]
            assert titles == [t("rating.3"), t("rating.2"), t("rating.1")]
            rated = await j.say(resident, "还行")
            assert t("rating.thanks") in rated, rated
            first = tickets_of(factory, resident)[0]
            assert first.status is TicketStatus.closed and (first.solved, first.rating) == (True, 2)

            # /my → 查看: the visit is offered while it is still open, a row at a time
            number = await _resolved(j, resident, "2号楼旁边的路灯不亮了，晚上看不见路")
            await j.say(resident, "/my")
            shown = await j.press(resident, resident, t("status.button_history", number=number))
            assert any(t("visit.ask_solved", number=number) in x for x in shown), shown
            await j.press(resident, resident, t("visit.solved_1"))
            await j.press(resident, resident, t("rating.3"))  # the row the edit left on that message
            second = tickets_of(factory, resident)[1]
            assert second.status is TicketStatus.closed and (second.solved, second.rating) == (True, 3)

            # "还是不行" reopens it and asks what is still wrong; the answer reaches the handler
            await _resolved(j, resident, "2号楼下水道堵了，污水往外冒")
            asked = await j.say(resident, "还是不行")
            third = tickets_of(factory, resident)[2]
            assert any(t("rating.ask_reason", number=third.number) in x for x in asked), asked
            assert any(t("visit.ask_score", number=third.number) in x for x in asked), asked
            told = await j.say(resident, "下水道还是堵着，只掏了一半")
            assert told == [t("rating.reason_sent")], told
            assert any("只掏了一半" in x for x in j.texts(BRANCH_CHAT)[-2:]), j.texts(BRANCH_CHAT)[-2:]

            # the 未解决 button of the 办结 notice asks the same question; 取消 leaves it unsaid
            await _resolved(j, resident, "2号楼楼顶有人私自搭了个彩钢棚子")
            pressed = await j.press(resident, resident, t("visit.solved_0"))
            fourth = tickets_of(factory, resident)[3]
            assert any(t("rating.ask_reason", number=fourth.number) in x for x in pressed), pressed
            assert await j.say(resident, "取消") == [t("rating.reason_skipped")]

    asyncio.run(scenario())
    third = tickets_of(factory, resident)[2]
    assert third.status is TicketStatus.reopened and (third.solved, third.rating) == (False, None)
    assert third.events[-1].note == t("rating.note_still_wrong", text="下水道还是堵着，只掏了一半")
    assert third.events[-1].to_status is TicketStatus.reopened
    fourth = tickets_of(factory, resident)[3]
    assert fourth.status is TicketStatus.reopened and fourth.events[-1].note == t("visit.note_unsolved")


def test_an_emergency_is_not_cancelled_but_marked_over_or_false_alarm(factory: sessionmaker[Session],  # noqa: F811
                                                                      rasa_stack: Stack) -> None:
    first, second = 751000005, 751000006

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            await bind(j, first, "和平里社区", "和平里9号楼")
            urgent = await j.say(first, "9号楼3单元有人家里着火了，冒黑烟")
            assert any("119" in x for x in urgent), urgent
            cancel = await j.say(first, "取消")
            [ticket] = tickets_of(factory, first)
            assert cancel == [t("emergency.cannot_cancel", number=ticket.number)], cancel
            marked = await j.press(first, first, t("emergency.button_false_alarm"))
            assert marked == [t("emergency.marked", number=ticket.number, note=t("emergency.note_false_alarm"))]
            assert any(t("emergency.note_false_alarm") in x for x in j.texts(BRANCH_CHAT)[-2:])

            await bind(j, second, "和平里社区", "和平里6号楼")
            await j.say(second, "6号楼电梯里困了人，出不来了")
            over = await j.say(second, "没事了，危险已经解除了")
            [ticket2] = tickets_of(factory, second)
            assert over == [t("emergency.marked", number=ticket2.number, note=t("emergency.note_over"))], over

    asyncio.run(scenario())
    [ticket] = tickets_of(factory, first)
    assert ticket.urgent and ticket.status is TicketStatus.accepted  # still there, never deleted
    assert ticket.events[-1].note == t("emergency.note_false_alarm")
    [ticket2] = tickets_of(factory, second)
    assert ticket2.events[-1].note == t("emergency.note_over")
    with factory() as s:
        admin_lines = s.scalars(select(OutboxMessage).where(OutboxMessage.dedupe_key.like(f"remark:{ticket.id}:%"))).all()
        assert len(admin_lines) >= 2  # the branch group and the community admin
    assert isinstance(ticket, Ticket)
