"""After filing, end to end: the real Application (fake Telegram), the real Rasa server and action
server, one database. A reporter withdraws, corrects the category of and adds to her ticket; a
follow-up in words joins her own ticket; she shares her phone with the share-contact button; she
asks for a person to call her and for the community's phone.

These tests share the stack's database with the other journeys: they use 樱花园 (和平里第三网格,
branch BR-HPL-03) and residents of their own.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.db import make_engine
from core.messages import t
from core.models import CallbackRequest, CallbackState, Person, Ticket, TicketEvent, TicketStatus
from tests.app.journey import Journey, journey
from tests.app.stack import Stack

BRANCH_CHAT = -1001000000003  # 和平里第三网格党支部 (G-HPL-03: 樱花园 1-9号楼)
SECRETARY = 700000014  # P-0014, secretary of BR-HPL-03
MEMBER = 700000015  # P-0015, member of BR-HPL-03
GRID_WORKER = 700000063  # P-0063, grid worker of G-HPL-03
OTHER_WORKER = 700000061  # P-0061, grid worker of G-HPL-01


@pytest.fixture
def factory(stack_db_url: str) -> sessionmaker[Session]:
    return sessionmaker(make_engine(stack_db_url), expire_on_commit=False)


def tickets_of(factory: sessionmaker[Session], telegram_id: int) -> list[Ticket]:
    with factory() as s:
        person = s.scalars(select(Person).where(Person.telegram_id == telegram_id)).one()
        rows = list(s.scalars(select(Ticket).where(Ticket.reporter_id == person.id).order_by(Ticket.id)))
        for row in rows:
            _ = row.events, row.category
        return rows


def person(factory: sessionmaker[Session], telegram_id: int) -> Person:
    with factory() as s:
        return s.scalars(select(Person).where(Person.telegram_id == telegram_id)).one()


async def bind(j: Journey, user: int, building: str, consent: bool = True) -> list[str]:
    await j.say(user, "/start")
    await j.press(user, user, "和平里社区")
    await j.press(user, user, building)
    return await j.press(user, user, t("bind.button_agree" if consent else "bind.button_refuse"))


async def share_contact(j: Journey, user: int, phone: str, *, owner: int | None = None) -> list[str]:
    """The message Telegram sends when `user` presses 发送我的手机号 (owner: whose contact it is)."""
    sender = j.updates.user(user, "Alice")
    content = {"contact": {"phone_number": phone, "first_name": "Alice", "user_id": owner or user}}
    message = j.updates.message_json(sender, j.updates.private_chat(sender), content)
    return await j.step(j.updates.update(message=message), user)


async def press_starting(j: Journey, user: int, prefix: str) -> list[str]:
    """Press the newest button in `user`'s chat whose title starts with `prefix` (a ticket's
    button also names its category and the start of its description)."""
    for sent in reversed(j.fake.sent_messages(user)):
        message = j.fake.message(user, sent["message_id"]) or {}
        for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
            for button in row:
                if str(button.get("text", "")).startswith(prefix):
                    return await j.press(user, user, button["text"])
    raise AssertionError(f"no button starting with {prefix!r}: {j.texts(user)[-2:]}")


async def report(j: Journey, user: int, words: str) -> str:
    summary = await j.say(user, words)
    assert any(t("report.button_confirm") in x or "请核对" in x for x in summary), summary
    filed = await j.press(user, user, t("report.button_confirm"))
    [line] = [x for x in filed if "工单号" in x]
    return line.split("工单号 ")[1].split("，")[0]


def test_consent_asks_for_the_phone_with_the_share_contact_button_and_the_card_has_it(
        factory: sessionmaker[Session], rasa_stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    resident = 735000001
    phone = "+86 139-1234-5678"
    caplog.set_level(logging.INFO)

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            asked = await bind(j, resident, "樱花园1号楼")
            assert t("phone.ask") in asked, asked
            [question] = [m for m in j.fake.sent_messages(resident) if m.get("text") == t("phone.ask")]
            keyboard = question["reply_markup"]["keyboard"]
            assert keyboard[0][0] == {"text": t("phone.button_share"), "request_contact": True}
            assert keyboard[1][0]["text"] == t("phone.button_skip")

            # someone else's card is not taken as hers
            assert await share_contact(j, resident, "13900000000", owner=999) == [t("phone.not_own")]
            assert person(factory, resident).phone is None

            saved = await share_contact(j, resident, phone)
            assert saved == [t("phone.saved", masked="****5678")]
            [reply] = [m for m in j.fake.sent_messages(resident) if m.get("text") == saved[0]]
            assert reply["reply_markup"] == {"remove_keyboard": True}
            assert person(factory, resident).phone == "+8613912345678"
            assert j.prompt(resident) is None

            await report(j, resident, "樱花园1号楼楼道里堆满了纸箱和旧家具，过不去人")
            [card] = [m for m in j.fake.sent_messages(BRANCH_CHAT) if "樱花园小区1号楼" in str(m.get("text"))]
            assert "****5678" in card["text"] and "13912345678" not in card["text"]
            # 联系人: the whole number, to the secretary only, audited
            shown = await j.press(SECRETARY, BRANCH_CHAT, t("card.button_contact"))
            assert any("+8613912345678" in x for x in shown), shown

    asyncio.run(scenario())
    me = person(factory, resident)
    with factory() as s:
        stored = [e for e in audit.entries(s, action="resident.phone") if e.subject == f"person:{me.id}"]
        assert len(stored) == 1 and "1391234" not in str(stored[0].detail)
        assert any(e.action == "ticket.contact" for e in audit.entries(s, action="ticket.contact"))
    logged = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert "1391234" not in logged and "5678" not in logged


def test_withdraw_correct_category_and_add_to_a_filed_ticket(factory: sessionmaker[Session], rasa_stack: Stack) -> None:
    resident = 735000002

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            await bind(j, resident, "樱花园2号楼", consent=False)
            number = await report(j, resident, "樱花园2号楼门口的垃圾桶满了好几天没人清运，臭得很")
            [ticket] = tickets_of(factory, resident)
            assert ticket.category_code == "sanitation" and ticket.number == number

            # 更正类别, in words, then two presses
            offered = await j.say(resident, "我的工单分类错了，要改一下")
            assert t("change.pick_category") in offered, offered
            await press_starting(j, resident, t("change.button_category", number=number))
            assert any("请选新的类别" in x for x in j.texts(resident)[-1:]), j.texts(resident)[-2:]
            changed = await j.press(resident, resident, "物业服务")
            assert any(t("change.recategorised", number=number, category="物业服务", resolve="7天") == x
                       for x in changed), changed
            assert any(t("card.recategorised", number=number, old="环境卫生", new="物业服务") in x
                       for x in j.texts(BRANCH_CHAT)), j.texts(BRANCH_CHAT)[-1:]

            # 补充: words, then a photo; the branch group is told (nobody claimed it yet)
            offered = await j.say(resident, "我要补充情况")
            assert t("change.pick_supplement") in offered, offered
            asked = await press_starting(j, resident, t("change.button_supplement", number=number))
            assert t("change.ask_supplement", number=number) in asked
            added = await j.say(resident, "垃圾桶旁边还有一堆建筑垃圾")
            assert added == [t("change.supplemented", number=number, status="已受理")]
            assert any("居民补充" in x and "建筑垃圾" in x for x in j.texts(BRANCH_CHAT)), j.texts(BRANCH_CHAT)[-1:]
            await j.say(resident, "我要补充情况")
            await press_starting(j, resident, t("change.button_supplement", number=number))
            added = await j.photo(resident, "photo-rubble-1")
            assert added == [t("change.supplemented", number=number, status="已受理")]
            photos = [m for m in j.fake.sent_messages(BRANCH_CHAT) if m.get("photo") == "photo-rubble-1"]
            assert len(photos) == 1 and "居民补充" in photos[0]["caption"]

            # 撤回 before anyone claimed it; the card's 领单 is refused afterwards
            offered = await j.say(resident, "我要撤回工单")
            assert t("change.pick_withdraw") in offered, offered
            done = await press_starting(j, resident, t("change.button_withdraw", number=number))
            assert t("change.withdrawn", number=number) in done, done
            assert t("line.withdrawn", number=number) in j.texts(BRANCH_CHAT)
            refused = await j.press(MEMBER, BRANCH_CHAT, t("card.button_claim"))
            assert t("deny.state_withdrawn") in refused, refused
            # nothing left to withdraw
            assert await j.say(resident, "撤回我的工单") == [t("change.none_withdraw")]

    asyncio.run(scenario())
    [ticket] = tickets_of(factory, resident)
    assert ticket.status is TicketStatus.withdrawn and ticket.category_code == "property"
    assert ticket.photo_file_ids == ["photo-rubble-1"]
    kinds = [(e.kind, e.to_status.value) for e in ticket.events]
    assert kinds == [("status", "new"), ("status", "accepted"), ("category", "accepted"),
                     ("supplement", "accepted"), ("supplement", "accepted"), ("status", "withdrawn")]
    assert ticket.events[2].detail == {"from": "sanitation", "to": "property"}


def test_a_claimed_ticket_cannot_be_withdrawn_or_recategorised(factory: sessionmaker[Session], rasa_stack: Stack) -> None:
    resident = 735000003

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            await bind(j, resident, "樱花园3号楼", consent=False)
            number = await report(j, resident, "樱花园3号楼后面的草坪被人挖了种菜")
            assert number in j.texts(BRANCH_CHAT)[-1]
            await j.press(MEMBER, BRANCH_CHAT, t("card.button_claim"))
            assert await j.say(resident, "我要撤回工单") == [t("change.none_withdraw")]
            assert await j.say(resident, "工单类别选错了") == [t("change.none_category")]

    asyncio.run(scenario())
    [ticket] = tickets_of(factory, resident)
    assert ticket.status is TicketStatus.claimed


def test_a_follow_up_joins_her_own_ticket_instead_of_me_too(factory: sessionmaker[Session], rasa_stack: Stack) -> None:
    resident, neighbour = 735000004, 735000005

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            await bind(j, resident, "樱花园4号楼", consent=False)
            await bind(j, neighbour, "樱花园4号楼", consent=False)
            number = await report(j, resident, "樱花园4号楼电梯坏了，停在五楼不动")
            assert number in j.texts(BRANCH_CHAT)[-1]
            await j.press(MEMBER, BRANCH_CHAT, t("card.button_claim"))

            answer = await j.say(resident, "电梯还是不动啊，你们根本没修")
            assert answer == [t("change.followup", number=number, status="处理中")], answer
            assert not any(t("report.button_me_too") in x or "请核对" in x for x in answer)
            # the claimer hears it in private
            assert any("居民补充" in x and "根本没修" in x for x in j.texts(MEMBER)), j.texts(MEMBER)[-1:]

            # the neighbour saying the same is offered 我也遇到了 on it, as before
            summary = await j.say(neighbour, "电梯还是不动啊，你们根本没修")
            assert any(number in x for x in summary), summary
            j.find_button(neighbour, t("report.button_me_too"))

            # resolved: the same words are added too, and carry 未解决, which reopens it
            await j.press(MEMBER, BRANCH_CHAT, t("card.button_resolve"))
            await j.say(MEMBER, "已经修好了")
            answer = await j.say(resident, "电梯还是不动啊，你们根本没修")
            assert answer == [t("change.followup_resolved", number=number, status=t("status.resolved"))], answer
            pressed = await j.press(resident, resident, t("visit.solved_0"))
            assert any(t("rating.ask_reason", number=number) in x for x in pressed), pressed

    asyncio.run(scenario())
    [ticket] = tickets_of(factory, resident)
    assert [e.kind for e in ticket.events][-5:] == ["supplement", "status", "supplement", "visit", "status"]
    assert ticket.events[-3].note == "电梯还是不动啊，你们根本没修"
    assert ticket.status is TicketStatus.reopened and ticket.solved is False
    assert tickets_of(factory, neighbour) == []


def test_a_person_to_talk_to_and_the_community_phone(factory: sessionmaker[Session], rasa_stack: Stack,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    resident = 735000006
    caplog.set_level(logging.INFO)

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            bound = await bind(j, resident, "樱花园5号楼", consent=False)
            assert t("phone.ask") not in bound  # no consent, no number asked

            asked = await j.say(resident, "找个人给我打电话")
            assert asked == [t("callback.filed_no_phone")], asked
            [question] = [m for m in j.fake.sent_messages(resident) if m.get("text") == t("callback.filed_no_phone")]
            assert question["reply_markup"]["keyboard"][0][0]["request_contact"] is True
            [card] = [m for m in j.fake.sent_messages(GRID_WORKER) if "回电请求" in str(m.get("text"))]
            assert "樱花园小区5号楼" in card["text"] and "找个人给我打电话" in card["text"]
            assert t("card.no_phone") in card["text"]
            assert not any("回电请求" in str(m.get("text")) for m in j.fake.sent_messages(OTHER_WORKER))

            assert await share_contact(j, resident, "13712340000") == [t("phone.saved", masked="****0000")]
            assert await j.say(resident, "转人工") == [t("callback.already")]

            # another grid's worker may not see the phone; the grid's own worker sees it, audited
            refused = await j.step(j.updates.callback_query(
                OTHER_WORKER, j.find_button(GRID_WORKER, t("callback.button_contact"))[1],
                j.fake.message(GRID_WORKER, card["message_id"])), OTHER_WORKER)
            alerts = [c.params.get("text") for c in j.fake.calls_to("answerCallbackQuery")]
            assert alerts[-1] == t("callback.deny"), (refused, alerts)
            shown = await j.press(GRID_WORKER, GRID_WORKER, t("callback.button_contact"))
            assert any("13712340000" in x for x in shown), shown
            done = await j.press(GRID_WORKER, GRID_WORKER, t("callback.button_done"))
            assert any("回电 ✅" in x for x in done), done
            assert not j.fake.last_keyboard(GRID_WORKER)

            # done: the next ask is a new request, and the card now has the number (masked)
            assert await j.say(resident, "我要找网格员") == [t("callback.filed")]
            cards = [m for m in j.fake.sent_messages(GRID_WORKER) if "回电请求" in str(m.get("text"))]
            assert len(cards) == 2 and "****0000" in cards[-1]["text"] and "13712340000" not in cards[-1]["text"]

            info = await j.say(resident, "社区电话多少")
            assert len(info) == 1, info
            for part in ("和平里社区", "010-6420-0001", "和平里东街11号", "周一至周五 8:30-17:30",
                         "和平里社区党群服务中心", "010-6420-0002", "每天 8:30-20:00"):
                assert part in info[0], (part, info)
            assert "青年湖" not in info[0]

    asyncio.run(scenario())
    with factory() as s:
        me = s.scalars(select(Person).where(Person.telegram_id == resident)).one()
        requests = list(s.scalars(select(CallbackRequest).where(CallbackRequest.person_id == me.id)
                                  .order_by(CallbackRequest.id)))
        assert [r.state for r in requests] == [CallbackState.done, CallbackState.open]
        shown = [e for e in audit.entries(s, action="callback.contact") if e.subject == f"callback:{requests[0].id}"]
        assert len(shown) == 1  # the refused press recorded nothing
        worker = s.scalars(select(Person).where(Person.telegram_id == GRID_WORKER)).one()
        assert shown[0].actor_id == worker.id and "1371234" not in str(shown[0].detail)
        assert s.scalar(select(TicketEvent.id).join(Ticket).where(Ticket.reporter_id == me.id)) is None
    logged = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert "1371234" not in logged and logged  # INFO lines were written, without the number


def test_someone_not_bound_is_asked_to_start_and_gets_the_community_phones(
        factory: sessionmaker[Session], rasa_stack: Stack) -> None:
    stranger = 735000007

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            answers = await j.say(stranger, "转人工")
            assert answers[0].startswith(t("callback.bind_first")), answers
            answer = "\n".join(answers)
            assert "010-6420-0001" in answer and "010-6420-0101" in answer  # both communities

    asyncio.run(scenario())
    with factory() as s:
        me = s.scalars(select(Person).where(Person.telegram_id == stranger)).one()
        assert s.scalar(select(CallbackRequest.id).where(CallbackRequest.person_id == me.id)) is None


def test_asking_for_a_person_in_the_middle_of_a_report_ends_the_form(
        factory: sessionmaker[Session], rasa_stack: Stack) -> None:
    resident = 735000008  # not bound: the form has to ask where

    async def scenario() -> None:
        async with journey(factory, rasa_stack.rasa_url) as j:
            asked = await j.say(resident, "路灯坏了好几天了，晚上黑乎乎的")
            assert t("report.ask_place") in asked, asked
            answers = await j.say(resident, "转人工")  # not taken as the place
            assert answers[0].startswith(t("callback.bind_first")), answers
            assert not any(t("report.place_unknown") in x for x in answers)
            info = await j.say(resident, "社区电话多少")
            assert any("010-6420-0001" in x for x in info), info
            assert not any(t("report.place_unknown") in x for x in info)

    asyncio.run(scenario())
