"""改派, the community's triage queue (a branch's 退回), 接手 and 合并, on SQLite and PostgreSQL,
each with the clock given: who may, where to, what the history keeps and who hears of it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.access.permissions import NotAllowed
from core.db import session_scope
from core.messages import t
from core.messaging import buttons
from core.models import (
    Building,
    Grid,
    OutboxMessage,
    Person,
    Street,
    Ticket,
    TicketEvent,
    TicketFollower,
    TicketStatus,
)
from core.presentation.cards import history_text
from core.registry import grants
from core.tickets import assign, deadlines, transfer, visit
from core.tickets import service as ticket_service
from core.tickets.lifecycle import NewTicket, events_of

S = TicketStatus
TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 12, 7, 1, 0, tzinfo=timezone.utc)  # Monday 09:00 in Beijing
MIN, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
GROUP_1, GROUP_2 = -1001000000001, -1001000000002  # BR-HPL-01 (G-HPL-01), BR-HPL-02 (G-HPL-02)
ADMIN_HPL, ADMIN_QNH = 700000069, 700000070
REPORTER, NEIGHBOUR = 700000071, 700000072  # P-0071 in B-HPL-01-09, P-0072 in B-HPL-01-07
MEMBER, SECRETARY_1, WORKER_1 = 700000002, 700000001, 700000061
STREET = 930000001


def who(s: Session, telegram_id: int) -> Person:
    return s.scalars(select(Person).where(Person.telegram_id == telegram_id)).one()


def grid(s: Session, code: str) -> Grid:
    return s.scalars(select(Grid).where(Grid.code == code)).one()


def report(s: Session, reporter: int = REPORTER, building: str = "B-HPL-01-07", now: datetime = T0,
           category: str = "parking") -> Ticket:
    b = s.scalars(select(Building).where(Building.code == building)).one()
    return ticket_service.submit_report(s, NewTicket(
        category, "7号楼门口的消防通道被私家车堵了", reporter_id=who(s, reporter).id,
        community_id=b.grid.community_id, grid_id=b.grid_id, building_id=b.id), tz=TZ, now=now)


def sent(s: Session, chat_id: int, since: int = 0) -> list[dict[str, Any]]:
    return [buttons.plain(s, m.payload) for m in s.scalars(
        select(OutboxMessage).where(OutboxMessage.chat_id == chat_id, OutboxMessage.id > since).order_by(OutboxMessage.id))]


def texts(s: Session, chat_id: int, since: int = 0) -> list[str]:
    return [m["text"] for m in sent(s, chat_id, since)]


def mark(s: Session) -> int:
    return s.scalar(select(OutboxMessage.id).order_by(OutboxMessage.id.desc()).limit(1)) or 0


def data(card: dict[str, Any]) -> list[str]:
    return [b["callback_data"].split(":")[1] for row in card["buttons"] for b in row]


def street_admin(s: Session) -> Person:
    person = Person(telegram_id=STREET, display_name="街道干部")
    s.add(person)
    s.flush()
    grants.grant(s, grants.resolve(s, str(STREET), "street_admin", street="ST-HP"))
    s.expire(person)
    return person


def test_a_branch_rejects_into_the_triage_queue_and_the_community_transfers_it(
        demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        ticket = report(s)
        ticket_id, number = ticket.id, ticket.number
        before = mark(s)
        # 退回 by the grid worker: not the void, the community's triage queue
        ticket_service.reject(s, ticket_id, who(s, WORKER_1), "是商户门前的货车，应由第二网格处理", tz=TZ, now=T0 + HOUR)
        assert ticket.status is S.triage and ticket.claimed_by_id is None and ticket.grid_id == grid(s, "G-HPL-01").id
        [card] = sent(s, ADMIN_HPL, before)
        assert card["text"].startswith(f"【待分派】{number} 已由 史同志 退回社区：是商户门前的货车")
        assert data(card) == ["take", "resolve", "return", "transfer", "reject", "contact", "merge"]
        assert texts(s, REPORTER, before) == [t("triage.notify", number=number)]
        assert any("退回社区" in x for x in texts(s, GROUP_1, before))
        # the admin's /tickets lists the queue with the branch's reason
        [queue] = assign.triage_listing(s, who(s, ADMIN_HPL), tz=TZ, now=T0 + HOUR)
        assert queue.tickets == [ticket] and "应由第二网格处理" in "\n".join(queue.lines)
        assert assign.triage_listing(s, who(s, ADMIN_QNH), tz=TZ)[0].tickets == []  # another community's admin

        # 改派 by the admin to the second grid, with a reason
        before = mark(s)
        transfer.transfer(s, ticket_id, who(s, ADMIN_HPL), grid(s, "G-HPL-02").id, "商户在第二网格", tz=TZ,
                          now=T0 + 2 * HOUR)
        assert ticket.status is S.accepted and ticket.grid_id == grid(s, "G-HPL-02").id
        [card] = sent(s, GROUP_2, before)
        assert card["text"].startswith(f"【改派】{number} 由 和平里第一网格 转来（汤同志）：商户在第二网格")
        assert data(card) == ["claim", "resolve", "escalate", "transfer", "reject", "contact"]
        assert texts(s, GROUP_1, before) == [t("transfer.line_out", number=number, handler="汤同志",
                                               grid="和平里第二网格", note="商户在第二网格")]
        assert texts(s, REPORTER, before) == [t("transfer.notify", number=number, grid="和平里第二网格")]
        # the history keeps both grids; the first branch still sees it, as 已转出
        last = events_of(s, ticket)[-1]
        assert (last.kind, last.from_status, last.to_status) == ("transfer", S.triage, S.accepted)
        assert last.detail == {"from": grid(s, "G-HPL-01").id, "to": grid(s, "G-HPL-02").id}
        history = history_text(s, ticket, None, tz=TZ)
        assert "改派" in history and "退回社区" not in history and "待社区分派" in history
        [first] = assign.branch_listing(s, who(s, SECRETARY_1), tz=TZ, now=T0 + 3 * HOUR)
        shown = "\n".join(first.lines)
        assert "【已转出】1件" in shown and f"{number} 乱停车｜转至和平里第二网格｜已受理" in shown
        # the new branch claims and resolves it; the first branch still sees its progress
        ticket_service.claim(s, ticket_id, who(s, 700000008), now=T0 + 3 * HOUR)
        [first] = assign.branch_listing(s, who(s, SECRETARY_1), tz=TZ, now=T0 + 4 * HOUR)
        assert f"{number} 乱停车｜转至和平里第二网格｜处理中" in "\n".join(first.lines)
        ticket_service.resolve(s, ticket_id, who(s, 700000008), "已联系商户挪车", now=T0 + 5 * HOUR)
        visit.answer(s, ticket_id, who(s, REPORTER), solved=True, score=3, tz=TZ, now=T0 + 6 * HOUR)
        [first] = assign.branch_listing(s, who(s, SECRETARY_1), tz=TZ, now=T0 + 7 * HOUR)
        assert "已转出" not in "\n".join(first.lines)  # finished: off the list


def test_transfers_that_are_refused_say_why(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        ticket = report(s)
        tid, own, qnh = ticket.id, grid(s, "G-HPL-01").id, grid(s, "G-QNH-01").id
        with pytest.raises(NotAllowed, match="已在和平里第一网格"):
            transfer.transfer(s, tid, who(s, SECRETARY_1), own, "试试", tz=TZ)
        for person in (SECRETARY_1, ADMIN_HPL):  # another community: not for the branch, not for the community
            with pytest.raises(NotAllowed, match="不在本社区"):
                transfer.transfer(s, tid, who(s, person), qnh, "在青年湖", tz=TZ)
        with pytest.raises(NotAllowed, match="改派"):  # a member of the branch may not
            transfer.transfer(s, tid, who(s, MEMBER), grid(s, "G-HPL-02").id, "不归我们", tz=TZ)
        with pytest.raises(NotAllowed, match="改派"):  # nor another community's admin
            transfer.transfer(s, tid, who(s, ADMIN_QNH), grid(s, "G-HPL-02").id, "不归你们", tz=TZ)
        with pytest.raises(NotAllowed, match="改派原因"):
            transfer.transfer(s, tid, who(s, SECRETARY_1), grid(s, "G-HPL-02").id, "  ", tz=TZ)
        with pytest.raises(NotAllowed, match="没有找到这个网格"):
            transfer.transfer(s, tid, who(s, SECRETARY_1), 99999, "去别处", tz=TZ)
        # the picker offers the community's other grids only
        _, offered = transfer.targets(s, tid, who(s, SECRETARY_1))
        assert [g.code for g, _ in offered] == ["G-HPL-02", "G-HPL-03", "G-HPL-04"]
        # a street admin of the street may send it to the next community
        boss = street_admin(s)
        _, offered = transfer.targets(s, tid, boss)
        assert {g.code for g, _ in offered} >= {"G-HPL-02", "G-QNH-01", "G-QNH-04"} and "G-HPL-01" not in {
            g.code for g, _ in offered}
        transfer.transfer(s, tid, boss, qnh, "实际位置在青年湖社区", tz=TZ, now=T0 + HOUR)
        assert ticket.grid_id == qnh and ticket.community_id == grid(s, "G-QNH-01").community_id
        assert any(x.startswith(f"【改派】{ticket.number}") for x in texts(s, -1001000000005))
        # a finished ticket is not transferred
        ticket_service.claim(s, tid, boss, now=T0 + 2 * HOUR)
        ticket_service.resolve(s, tid, boss, "已处理", now=T0 + 3 * HOUR)
        with pytest.raises(NotAllowed, match="现在不能改派"):
            transfer.transfer(s, tid, boss, own, "再改回去", tz=TZ)


def test_a_claimed_ticket_transferred_releases_its_claimer_and_tells_them(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        ticket = report(s)
        ticket_service.claim(s, ticket.id, who(s, MEMBER), now=T0 + HOUR)
        before = mark(s)
        transfer.transfer(s, ticket.id, who(s, SECRETARY_1), grid(s, "G-HPL-02").id, "在第二网格", tz=TZ,
                          now=T0 + 2 * HOUR)
        assert ticket.status is S.accepted and ticket.claimed_by_id is None
        assert texts(s, MEMBER, before) == [t("transfer.line_out", number=ticket.number, handler="董同志",
                                              grid="和平里第二网格", note="在第二网格")]


def test_after_a_transfer_the_deadline_steps_reach_the_new_branch(
        demo_factory: sessionmaker[Session]) -> None:
    """The limits run on (the resident's wait does not restart); the reminders and the overdue mark
    go to the branch the ticket is in when they fall due."""
    limits = deadlines.Limits()
    with session_scope(demo_factory) as s:
        ticket = report(s)
        assert deadlines.plan(s, ticket, limits=limits) == 6
        transfer.transfer(s, ticket.id, who(s, SECRETARY_1), grid(s, "G-HPL-02").id, "在第二网格", tz=TZ,
                          now=T0 + 10 * MIN)
        assert ticket.respond_due_at == T0 + timedelta(minutes=ticket.category.respond_minutes)  # as filed
        before = mark(s)
        at = ticket.respond_due_at + MIN
        outcomes = deadlines.run(s, [i for i, _ in deadlines.due(s, at)], deadlines.Pass(at, TZ, limits))
        assert outcomes == ["sent", "sent", "sent"]  # two reminders and the overdue mark
        assert ticket.overdue_at == at
        assert any(ticket.number in x and "超过响应时限" in x for x in texts(s, GROUP_2, before))
        assert not any(ticket.number in x for x in texts(s, GROUP_1, before))
        assert any(ticket.number in x for x in texts(s, 700000062, before))  # G-HPL-02's grid worker
        assert not any(ticket.number in x for x in texts(s, WORKER_1, before))
        # the reminders wait for the new group's digest
        sweep = deadlines.Pass(at, TZ, limits)
        assert deadlines.digest(s, GROUP_2, sweep) == 1 and deadlines.digest(s, GROUP_1, sweep) == 0


def test_the_admin_takes_over_a_claimed_ticket(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        ticket = report(s)
        ticket_service.claim(s, ticket.id, who(s, MEMBER), now=T0 + HOUR)
        with pytest.raises(NotAllowed, match="只有社区管理员可以接手"):
            transfer.take_over(s, ticket.id, who(s, SECRETARY_1))
        before = mark(s)
        transfer.take_over(s, ticket.id, who(s, ADMIN_HPL), now=T0 + 2 * HOUR)
        assert ticket.status is S.claimed and ticket.claimed_by_id == who(s, ADMIN_HPL).id
        steps = [(e.from_status, e.to_status, e.actor_id) for e in events_of(s, ticket)][-2:]
        admin_id = who(s, ADMIN_HPL).id
        assert steps == [(S.claimed, S.accepted, admin_id), (S.accepted, S.claimed, admin_id)]
        assert texts(s, MEMBER, before) == [t("take.notice", number=ticket.number, handler="汤同志")]
        assert texts(s, REPORTER, before) == [t("notify.claimed", number=ticket.number, handler="汤同志")]
        with pytest.raises(NotAllowed, match="已由您办理"):
            transfer.take_over(s, ticket.id, who(s, ADMIN_HPL), now=T0 + 3 * HOUR)
        # the claimer now is the admin, who may resolve it
        ticket_service.resolve(s, ticket.id, who(s, ADMIN_HPL), "社区协调处理完毕", now=T0 + 4 * HOUR)
        assert ticket.status is S.resolved
        with pytest.raises(NotAllowed, match="不能接手"):
            transfer.take_over(s, ticket.id, who(s, ADMIN_HPL))


def test_the_admin_returns_a_ticket_from_the_queue_to_its_branch(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        ticket = report(s)
        ticket_service.reject(s, ticket.id, who(s, SECRETARY_1), "不是我们的事", tz=TZ, now=T0 + HOUR)
        before = mark(s)
        assign.return_to_branch(s, ticket.id, who(s, ADMIN_HPL), "就在你们网格，请处理", tz=TZ, now=T0 + 2 * HOUR)
        assert ticket.status is S.accepted
        assert texts(s, GROUP_1, before)[0].startswith(f"【社区发回】{ticket.number}")
        # and the admin's own 退回 is final: the residents get the reason and 12345
        ticket_service.reject(s, ticket.id, who(s, ADMIN_HPL), "属于市政道路，请拨打12345", tz=TZ, now=T0 + 3 * HOUR)
        assert ticket.status is S.rejected
        assert "12345" in texts(s, REPORTER)[-1]


def test_merging_a_duplicate_moves_its_people_to_the_original(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        original = report(s)
        duplicate = report(s, reporter=NEIGHBOUR, now=T0 + HOUR)
        s.add(TicketFollower(ticket_id=duplicate.id, person_id=who(s, 700000073).id))
        s.flush()
        with pytest.raises(NotAllowed, match="合并"):
            transfer.merge(s, duplicate.id, who(s, SECRETARY_1), original.number, tz=TZ)
        with pytest.raises(NotAllowed, match="没有找到工单 2026-999999"):
            transfer.merge(s, duplicate.id, who(s, ADMIN_HPL), "2026-999999", tz=TZ)
        with pytest.raises(NotAllowed, match="自己"):
            transfer.merge(s, duplicate.id, who(s, ADMIN_HPL), duplicate.number, tz=TZ)
        before = mark(s)
        transfer.merge(s, duplicate.id, who(s, ADMIN_HPL), f" {original.number} ", tz=TZ, now=T0 + 2 * HOUR)
        assert duplicate.status is S.duplicate and duplicate.duplicate_of_id == original.id
        followers = set(s.scalars(select(TicketFollower.person_id).where(TicketFollower.ticket_id == original.id)))
        assert followers == {who(s, NEIGHBOUR).id, who(s, 700000073).id}
        assert texts(s, NEIGHBOUR, before) == [t("merge.notify_duplicate", original=original.number)]
        assert texts(s, 700000073, before) == [t("merge.notify_duplicate", original=original.number)]
        assert texts(s, REPORTER, before) == [t("merge.notify_original", duplicate=duplicate.number,
                                                original=original.number)]
        joined = events_of(s, original)[-1]
        assert (joined.kind, joined.detail, joined.from_status, joined.to_status) == (
            "merge", {"duplicate": duplicate.id}, S.accepted, S.accepted)
        assert "合并" in history_text(s, original, None, tz=TZ)
        # the merged residents hear the original's progress from now on
        before = mark(s)
        ticket_service.claim(s, original.id, who(s, MEMBER), now=T0 + 3 * HOUR)
        for person in (REPORTER, NEIGHBOUR, 700000073):
            assert texts(s, person, before) == [t("notify.claimed", number=original.number, handler="梁同志")]
        # a duplicate is no original; a finished ticket neither; nor one of another community
        third = report(s, reporter=700000073, now=T0 + 4 * HOUR)
        with pytest.raises(NotAllowed, match=f"请合并到它的原工单 {original.number}"):
            transfer.merge(s, third.id, who(s, ADMIN_HPL), duplicate.number, tz=TZ)
        other = report(s, building="B-QNH-01-01", now=T0 + 4 * HOUR)
        with pytest.raises(NotAllowed, match="不在本社区"):
            transfer.merge(s, third.id, who(s, ADMIN_HPL), other.number, tz=TZ)
        ticket_service.resolve(s, original.id, who(s, MEMBER), "已挪车", now=T0 + 5 * HOUR)
        visit.answer(s, original.id, who(s, REPORTER), solved=True, score=3, tz=TZ, now=T0 + 6 * HOUR)
        with pytest.raises(NotAllowed, match="不能作为原工单"):
            transfer.merge(s, third.id, who(s, ADMIN_HPL), original.number, tz=TZ)


def test_a_street_admin_merges_across_the_communities_of_their_street(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        s.add(Street(code="ST-OTHER", name="别的街道"))
        boss = street_admin(s)
        original = report(s, building="B-QNH-01-01")
        duplicate = report(s, reporter=NEIGHBOUR, now=T0 + HOUR)
        transfer.merge(s, duplicate.id, boss, original.number, tz=TZ, now=T0 + 2 * HOUR)
        assert duplicate.duplicate_of_id == original.id


def test_history_names_every_kind_of_event(demo_factory: sessionmaker[Session]) -> None:
    """Overdue marks and 督办 are events of their own kind; the history names them (no status)."""
    with session_scope(demo_factory) as s:
        ticket = report(s)
        s.add(TicketEvent(ticket_id=ticket.id, at=T0 + HOUR, from_status=ticket.status, to_status=ticket.status,
                          note=t("deadline.overdue_respond"), kind="overdue"))
        s.flush()
        assert ticket_service.urge(s, ticket.id, who(s, ADMIN_HPL), now=T0 + 2 * HOUR)
        history = history_text(s, ticket, None, tz=TZ)
        assert "超期" in history and "督办" in history
