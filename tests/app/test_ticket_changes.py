"""The reporter's changes to a filed ticket (core.tickets.changes), callback requests
(core.people.callbacks), phones (core.people.phones) and the community's contact details
(core.places.contacts),
on SQLite and PostgreSQL with the demo registry."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.access.permissions import NotAllowed
from core.db import session_scope
from core.messages import t
from core.messaging import prompts
from core.models import (
    Building,
    CallbackState,
    Community,
    DeadlineStep,
    OutboxMessage,
    Person,
    Ticket,
    TicketDeadline,
    TicketEvent,
    TicketStatus,
)
from core.people import callbacks, phones
from core.places import contacts as community_info
from core.presentation import cards
from core.tickets import changes as ticket_changes
from core.tickets import deadlines, visit
from core.tickets import service as workflow
from core.tickets.lifecycle import NewTicket

TZ = ZoneInfo("Asia/Shanghai")
S = TicketStatus
T0 = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
BRANCH_CHAT = -1001000000001  # BR-HPL-01, grid G-HPL-01
REPORTER, NEIGHBOUR = "P-0071", "P-0072"  # residents (P-0071: 700000071)
MEMBER, WORKER, OTHER_WORKER, ADMIN = "P-0002", "P-0061", "P-0062", "P-0069"


def who(s: Session, code: str) -> Person:
    return s.scalars(select(Person).where(Person.code == code)).one()


def report(s: Session, category: str = "sanitation", building: str = "B-HPL-01-07", reporter: str = REPORTER,
           now: datetime = T0) -> Ticket:
    b = s.scalars(select(Building).where(Building.code == building)).one()
    return workflow.submit_report(s, NewTicket(category, "7号楼门口垃圾桶满了没人清", reporter_id=who(s, reporter).id,
                                               community_id=b.grid.community_id, grid_id=b.grid_id, building_id=b.id),
                                  tz=TZ, now=now)


def texts_to(s: Session, chat_id: int) -> list[str]:
    return [str(m.payload.get("text")) for m in s.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == chat_id)
                                                          .order_by(OutboxMessage.id))]


def test_withdraw_before_a_claim_only_by_the_reporter(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        ticket = report(s)
        with pytest.raises(NotAllowed, match=t("change.not_yours")):
            ticket_changes.withdraw(s, ticket.id, who(s, NEIGHBOUR))
        workflow.join(s, ticket.id, who(s, NEIGHBOUR))  # a follower hears of the withdrawal
        ticket_changes.withdraw(s, ticket.id, who(s, REPORTER), now=T0 + HOUR)
        assert ticket.status is S.withdrawn
        assert t("line.withdrawn", number=ticket.number) in texts_to(s, BRANCH_CHAT)
        assert t("notify.withdrawn", number=ticket.number) in texts_to(s, who(s, NEIGHBOUR).telegram_id or 0)
        with pytest.raises(NotAllowed, match=t("deny.state_withdrawn")):
            workflow.claim(s, ticket.id, who(s, MEMBER))
        # withdrawn is no longer open: not offered as a duplicate, not changeable again
        assert ticket not in workflow.find_duplicates(s, "sanitation", ticket.grid_id or 0, now=T0 + HOUR)
        assert ticket_changes.changeable(s, who(s, REPORTER), "withdraw") == []

        claimed = report(s, category="noise")
        workflow.claim(s, claimed.id, who(s, MEMBER))
        with pytest.raises(NotAllowed) as refused:
            ticket_changes.withdraw(s, claimed.id, who(s, REPORTER))
        assert "不能撤回" in str(refused.value)
        assert claimed.status is S.claimed


def test_correct_the_category_before_a_claim_moves_the_due_times(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        ticket = report(s, category="sanitation")  # general: 7 days
        assert deadlines.plan_one(s, ticket.id, limits=deadlines.Limits()) > 0
        event = ticket_changes.recategorise(s, ticket.id, who(s, REPORTER), "elevator", tz=TZ, now=T0 + HOUR)
        # the old limits' deadline steps are skipped and the new ones planned (a new round)
        steps = list(s.scalars(select(TicketDeadline).where(TicketDeadline.ticket_id == ticket.id)))
        assert steps and all(x.done_at is not None and x.outcome == "skipped" for x in steps)
        assert ticket.deadline_round == 1 and ticket.deadlines_pending
        assert deadlines.plan_one(s, ticket.id, limits=deadlines.Limits()) > 0
        overdue = s.scalars(select(TicketDeadline).where(TicketDeadline.ticket_id == ticket.id,
                                                         TicketDeadline.round == 1,
                                                         TicketDeadline.step == DeadlineStep.resolve_overdue)).one()
        assert overdue.due_at == T0 + DAY
        assert (event.kind, event.from_status, event.to_status) == ("category", S.accepted, S.accepted)
        assert event.detail == {"from": "sanitation", "to": "elevator"}
        assert ticket.category_code == "elevator"
        assert ticket.resolve_due_at == T0 + DAY and ticket.respond_due_at == T0 + 2 * HOUR  # elevator: 2 h / 24 h
        [card] = [m for m in s.scalars(select(OutboxMessage).where(OutboxMessage.dedupe_key.like("change:category:%")))]
        assert card.chat_id == BRANCH_CHAT and "电梯" in card.payload["text"] and card.payload["buttons"]
        for code in ("elevator", "emergency", "no_such_category"):
            with pytest.raises(NotAllowed):
                ticket_changes.recategorise(s, ticket.id, who(s, REPORTER), code, tz=TZ)
        with pytest.raises(NotAllowed, match=t("change.not_yours")):
            ticket_changes.recategorise(s, ticket.id, who(s, NEIGHBOUR), "noise", tz=TZ)
        workflow.claim(s, ticket.id, who(s, MEMBER))
        with pytest.raises(NotAllowed):
            ticket_changes.recategorise(s, ticket.id, who(s, REPORTER), "noise", tz=TZ)
        lines = cards.history_text(s, ticket, who(s, REPORTER), tz=TZ).splitlines()
        assert any(t("event.category") in x and "环境卫生 → 电梯" in x for x in lines), lines


def test_supplement_tells_the_handler_and_does_not_delay_the_auto_close(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        ticket = report(s)
        ticket_changes.supplement(s, ticket.id, who(s, REPORTER), "还有一袋建筑垃圾", now=T0 + HOUR)
        assert any("建筑垃圾" in x for x in texts_to(s, BRANCH_CHAT))  # nobody claimed: the group
        workflow.claim(s, ticket.id, who(s, MEMBER), now=T0 + 2 * HOUR)
        member = who(s, MEMBER).telegram_id or 0
        event = ticket_changes.supplement(s, ticket.id, who(s, REPORTER), None, "photo-bag-1", key="700000071:9",
                                          now=T0 + 3 * HOUR)
        again = ticket_changes.supplement(s, ticket.id, who(s, REPORTER), None, "photo-bag-1", key="700000071:9")
        assert again.id == event.id  # the same message retried adds nothing
        photos = [m for m in s.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == member))
                  if m.payload.get("photo") == "photo-bag-1"]
        assert len(photos) == 1  # the claimer, in private
        assert ticket.photo_file_ids == ["photo-bag-1"]
        with pytest.raises(NotAllowed):
            ticket_changes.supplement(s, ticket.id, who(s, REPORTER), "  ")
        with pytest.raises(NotAllowed, match=t("change.not_yours")):
            ticket_changes.supplement(s, ticket.id, who(s, NEIGHBOUR), "我也补充")

        workflow.resolve(s, ticket.id, who(s, MEMBER), "已清运", now=T0 + 4 * HOUR)
        ticket_changes.supplement(s, ticket.id, who(s, REPORTER), "谢谢", now=T0 + 3 * DAY + 3 * HOUR)
        # three days after 办结, not after the supplement: it closes as unrated
        assert workflow.close_unrated(s, now=T0 + 3 * DAY + 5 * HOUR) == 1
        assert ticket.status is S.closed
        kinds = [e.kind for e in s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
                                           .order_by(TicketEvent.id))]
        assert kinds.count("supplement") == 3 and kinds[-1] == "status"


def test_follow_up_target_is_her_own_open_or_recently_closed_ticket(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        me, neighbour = who(s, REPORTER), who(s, NEIGHBOUR)
        assert ticket_changes.followup_target(s, me, "elevator", "电梯坏了") is None
        ticket = report(s, category="elevator")
        assert ticket_changes.followup_target(s, me, "elevator", "电梯还是不动") == ticket
        assert ticket_changes.followup_target(s, neighbour, "elevator", "电梯还是不动") is None
        assert ticket_changes.followup_target(s, me, "noise", "还是很吵") is None
        other = s.scalars(select(Building).where(Building.code == "B-HPL-01-03")).one()
        assert ticket_changes.followup_target(s, me, "elevator", "3号楼电梯还是不动", building_id=other.id) is None

        workflow.claim(s, ticket.id, who(s, MEMBER), now=T0 + HOUR)
        workflow.resolve(s, ticket.id, who(s, MEMBER), "已修好", now=T0 + 2 * HOUR)
        visit.answer(s, ticket.id, me, solved=True, score=3, tz=TZ, now=T0 + 3 * HOUR)
        assert ticket.status is S.closed
        now = T0 + 2 * DAY
        assert ticket_changes.followup_target(s, me, "elevator", "电梯还是不动，根本没修好", now=now) == ticket
        assert ticket_changes.followup_target(s, me, "elevator", "电梯门关不上", now=now) is None  # a new problem
        assert ticket_changes.followup_target(s, me, "elevator", "电梯还是不动", now=T0 + 9 * DAY) is None
        assert [x.number for x in ticket_changes.changeable(s, me, "supplement", now=now)] == [ticket.number]
        # a closed ticket's supplement reaches the branch group as well as the one who claimed it
        ticket_changes.supplement(s, ticket.id, me, "电梯还是不动，根本没修好", now=now)
        assert ticket.status is S.closed
        for chat in (BRANCH_CHAT, who(s, MEMBER).telegram_id or 0):
            assert any("根本没修好" in x for x in texts_to(s, chat)), chat


def test_callback_request_card_permissions_and_audit(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        resident = who(s, REPORTER)  # bound to a building of G-HPL-01, phone in the registry
        row, new = callbacks.request(s, resident, "找个人给我打电话", tz=TZ, now=T0)
        assert new and row is not None and row.state is CallbackState.open
        [card] = [m for m in s.scalars(select(OutboxMessage).where(OutboxMessage.dedupe_key.like("callback:%")))]
        assert card.chat_id == who(s, WORKER).telegram_id
        assert "****0071" in card.payload["text"] and "13800000071" not in card.payload["text"]
        assert callbacks.request(s, resident, "转人工", tz=TZ, now=T0 + HOUR) == (row, False)

        for outsider in (who(s, OTHER_WORKER), who(s, MEMBER), resident):
            with pytest.raises(NotAllowed, match=t("callback.deny")):
                callbacks.contact(s, row.id, outsider)
        assert audit.entries(s, action="callback.contact") == []
        assert "13800000071" in callbacks.contact(s, row.id, who(s, WORKER))
        assert "13800000071" in callbacks.contact(s, row.id, who(s, ADMIN))  # the community's admin may too
        shown = audit.entries(s, action="callback.contact")
        assert len(shown) == 2 and all("13800000071" not in str(e.detail) for e in shown)

        callbacks.mark_done(s, row.id, who(s, WORKER), now=T0 + HOUR)
        assert row.state is CallbackState.done and row.done_by_id == who(s, WORKER).id
        with pytest.raises(NotAllowed, match=t("callback.already_done")):
            callbacks.mark_done(s, row.id, who(s, WORKER))
        assert callbacks.parse("cb:done:12") == ("done", 12) and callbacks.parse("cb:x:1") is None

        stranger = Person(telegram_id=790000001, display_name="路人")  # bound nowhere: nobody to ask
        s.add(stranger)
        s.flush()
        assert callbacks.request(s, stranger, "转人工", tz=TZ) == (None, False)


def test_phones_are_normalised_stored_audited_and_asked_with_the_button(demo_factory: sessionmaker[Session]) -> None:
    assert phones.normalise("+86 138-0013-8000") == "+8613800138000"
    assert phones.normalise("１３８００１３８０００") == "13800138000"
    for bad in ("", "12345", "电话", "+86+138", "1" * 16):
        assert phones.normalise(bad) is None, bad
    assert phones.typed(" 138 0013-8000 ") == "13800138000" and phones.typed("（010）64200001") == "01064200001"
    assert phones.typed("12号楼1单元1201室漏水了") is None and phones.typed("2026年11月20日电梯坏了") is None
    with session_scope(demo_factory) as s:
        person = phones.store(s, 790000002, "王", "138 0013 8000")
        assert person is not None and person.phone == "13800138000"
        assert phones.store(s, 790000002, "王", "不是号码") is None
        [entry] = audit.entries(s, action="resident.phone")
        assert entry.detail == {"changed": True}
        phones.ask(s, 790000002, now=T0)
        assert prompts.current(s, 790000002, now=T0) == prompts.Asked(prompts.PHONE, {})
        [asked] = [m for m in s.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == 790000002))]
        assert asked.payload["ask_contact"] == {"share": t("phone.button_share"), "skip": t("phone.button_skip")}


def test_community_contact_comes_from_the_registry(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        hpl = s.scalars(select(Community).where(Community.code == "C-HPL")).one()
        assert (hpl.phone, hpl.center_name, hpl.center_hours) == ("010-6420-0001", "和平里社区党群服务中心",
                                                                  "每天 8:30-20:00")
        own = community_info.contact_text(s, who(s, REPORTER))
        assert "010-6420-0001" in own and "010-6420-0002" in own and "青年湖" not in own
        everyone = community_info.contact_text(s, None)
        assert "010-6420-0001" in everyone and "010-6420-0101" in everyone
        hpl.center_name = hpl.center_phone = hpl.hours = None
        assert t("community.unknown") in community_info.text_for(hpl) and "党群" not in community_info.text_for(hpl)
