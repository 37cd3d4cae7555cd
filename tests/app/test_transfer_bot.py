"""改派, the triage queue, 接手 and 合并 through the real Application (fake Telegram): the buttons on
the cards, the grid picked in private, the reason typed, and who hears what."""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.db import session_scope
from core.messages import t
from core.messaging.outbox import enqueue
from core.models import Building, Grid, Person, Ticket, TicketEvent, TicketStatus
from core.tickets import service as ticket_service
from core.tickets.deadlines import escalation_buttons
from core.tickets.lifecycle import NewTicket
from tests.app.journey import journey

S = TicketStatus
TZ = ZoneInfo("Asia/Shanghai")
NO_RASA = "http://127.0.0.1:9"  # none of these flows reaches Rasa
GROUP_1, GROUP_2 = -1001000000001, -1001000000002
SECRETARY, MEMBER, SECRETARY_2 = 700000001, 700000002, 700000008
ADMIN = 700000069  # P-0069 汤嘉懿, community admin of 和平里社区
RESIDENT, NEIGHBOUR = 700000071, 700000072


def new_ticket(factory: sessionmaker[Session], reporter: int = RESIDENT) -> tuple[int, str]:
    with session_scope(factory) as s:
        b = s.scalars(select(Building).where(Building.code == "B-HPL-01-07")).one()
        person = s.scalars(select(Person).where(Person.telegram_id == reporter)).one()
        ticket = ticket_service.submit_report(s, NewTicket(
            "parking", "楼下有车堵了消防通道", reporter_id=person.id, community_id=b.grid.community_id,
            grid_id=b.grid_id, building_id=b.id), tz=TZ)
        return ticket.id, ticket.number


def ticket_of(factory: sessionmaker[Session], ticket_id: int) -> Ticket:
    with factory() as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None
        return ticket


def grid_code(factory: sessionmaker[Session], grid_id: int | None) -> str | None:
    with factory() as s:
        grid = s.get(Grid, grid_id) if grid_id is not None else None
        return grid.code if grid else None


def test_a_branch_transfers_from_its_group_and_the_next_branch_gets_the_card(
        sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory
    ticket_id, number = new_ticket(factory)

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            await j.drain()
            got = await j.press(SECRETARY, GROUP_1, t("card.button_transfer"))
            assert t("ticket.see_private") in got  # the grids come in private
            asked = j.texts(SECRETARY)[-1]
            assert asked.startswith(f"把工单 {number}（乱停车，和平里小区7号楼）改派到哪个网格？")
            got = await j.press(SECRETARY, SECRETARY, "和平里第二网格（和平里社区）")
            assert got == [t("transfer.ask_note", number=number, grid="和平里第二网格")]
            assert ticket_of(factory, ticket_id).status is S.accepted  # nothing changes before the reason
            assert await j.say(SECRETARY, "取消") == [t("ticket.note_cancelled")]
            assert grid_code(factory, ticket_of(factory, ticket_id).grid_id) == "G-HPL-01"
            # again, to the end
            await j.press(SECRETARY, GROUP_1, t("card.button_transfer"))
            await j.press(SECRETARY, SECRETARY, "和平里第二网格（和平里社区）")
            done = await j.say(SECRETARY, "是第二网格商户的货车")
            assert done == [t("transfer.done", grid="和平里第二网格")]
            assert grid_code(factory, ticket_of(factory, ticket_id).grid_id) == "G-HPL-02"
            [card] = [x for x in j.texts(GROUP_2) if number in x]
            assert card.startswith(f"【改派】{number} 由 和平里第一网格 转来（董同志）：是第二网格商户的货车")
            assert any(f"{number} 已由 董同志 改派到和平里第二网格" in x for x in j.texts(GROUP_1))
            assert j.texts(RESIDENT)[-1] == t("transfer.notify", number=number, grid="和平里第二网格")
            # the second branch claims it from its card; the first one's /tickets shows 已转出
            assert await j.press(SECRETARY_2, GROUP_2, t("card.button_claim")) == [t("ticket.claimed_toast")]
            [listing] = await j.say(SECRETARY, "/tickets")
            assert "【已转出】1件" in listing and f"{number} 乱停车｜转至和平里第二网格｜处理中" in listing
            # a stale grid button: the ticket is another branch's now, so this secretary may not
            assert await j.press(SECRETARY, SECRETARY, "和平里第二网格（和平里社区）") == [t("deny.role_transfer")]
            assert j.prompt(SECRETARY) is None

    asyncio.run(scenario())


def test_the_branch_rejects_the_admin_takes_over_and_merges_a_duplicate(
        sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory
    ticket_id, number = new_ticket(factory)
    dup_id, dup = new_ticket(factory, NEIGHBOUR)

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            await j.drain()
            # the branch's 退回 goes to the community's queue
            got = await j.press(SECRETARY, GROUP_1, t("card.button_reject"))
            assert any("应由哪里办理" in x for x in got), got
            with factory() as s:  # the newest card in the group is the duplicate's: the reason goes to it
                assert s.scalar(select(TicketEvent.id).where(TicketEvent.ticket_id == ticket_id,
                                                             TicketEvent.to_status == S.triage)) is None
            assert await j.say(SECRETARY, "不是车，是商户占道，应由城管处理") == [t("triage.done")]
            assert ticket_of(factory, dup_id).status is S.triage
            [card] = [x for x in j.texts(ADMIN) if x.startswith(f"【待分派】{dup}")]
            assert "应由城管处理" in card
            assert j.texts(NEIGHBOUR)[-1] == t("triage.notify", number=dup)
            [shown] = await j.say(ADMIN, "/tickets")
            assert "待分派的工单（1件）" in shown and dup in shown and "应由城管处理" in shown

            # 合并 from the admin's card: the original's number typed
            asked = await j.press(ADMIN, ADMIN, t("card.button_merge"))
            assert t("ticket.ask_merge", number=dup) in asked
            assert await j.say(ADMIN, "2026-999999") == [t("merge.deny.not_found", number="2026-999999")]
            await j.press(ADMIN, ADMIN, t("card.button_merge"))
            assert await j.say(ADMIN, number) == [t("merge.done", duplicate=dup, original=number)]
            assert ticket_of(factory, dup_id).status is S.duplicate
            assert j.texts(NEIGHBOUR)[-1] == t("merge.notify_duplicate", original=number)
            assert j.texts(RESIDENT)[-1] == t("merge.notify_original", duplicate=dup, original=number)

            # a member claims the original; the admin takes it over from an admin card (接手)
            with session_scope(factory) as s:  # (the newest 领单 in the group is the duplicate's card)
                member = s.scalars(select(Person).where(Person.telegram_id == MEMBER)).one()
                ticket = ticket_service.claim(s, ticket_id, member)
                # an overdue escalation card reaches the admin (core.tickets.deadlines, tested there)
                enqueue(s, dedupe_key="test-escalation", kind="card", chat_id=ADMIN,
                        payload={"text": f"【超期吹哨】{number}", "buttons": escalation_buttons(ticket)})
            await j.drain()
            assert await j.press(ADMIN, ADMIN, t("card.button_take")) == [t("take.toast")]
            taken = ticket_of(factory, ticket_id)
            with factory() as s:
                admin = s.scalars(select(Person).where(Person.telegram_id == ADMIN)).one()
                assert taken.status is S.claimed and taken.claimed_by_id == admin.id
            assert j.texts(MEMBER)[-1] == t("take.notice", number=number, handler="汤同志")
            # pressed again: refused, nothing changes
            again = await j.press(ADMIN, ADMIN, t("card.button_take"))
            assert t("take.deny.already") in again

    asyncio.run(scenario())
