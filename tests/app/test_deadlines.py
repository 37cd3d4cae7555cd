"""Time limits that act: reminders, the group digest, overdue and escalation, 督办, renewal on reopening.

Every test moves a frozen clock (`now=`) through the leader's deadline round (DutyScheduler.deadlines),
as the scheduler runs it, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from core.access.permissions import NotAllowed
from core.db import session_scope
from core.messages import t
from core.messaging import buttons, outbox
from core.models import (
    Building,
    OutboxMessage,
    Person,
    Ticket,
    TicketDeadline,
    TicketEvent,
    TicketStatus,
)
from core.presentation import cards
from core.scheduler import DutyScheduler
from core.tickets import deadlines, lifecycle, visit
from core.tickets import service as ticket_service
from core.tickets.lifecycle import NewTicket
from tests.app.journey import journey

TZ = ZoneInfo("Asia/Shanghai")
S = TicketStatus
T0 = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
BRANCH_CHAT = -1001000000001  # BR-HPL-01, grid G-HPL-01
WORKER = 700000061  # P-0061 史振华, grid worker of G-HPL-01
SECRETARY = 700000001  # P-0001, secretary of BR-HPL-01
ADMIN_HPL = 700000069
MEMBER = "P-0002"
A_QNH = "B-QNH-01-01"  # a building of 青年湖社区
NO_RASA = "http://127.0.0.1:9"  # these tests press buttons; nothing reaches Rasa


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
def leader(engine: Engine) -> DutyScheduler:
    """The leader's round, without its thread: the tests call `deadlines(now)` themselves."""
    sched = DutyScheduler(url_of(engine), tz=TZ)
    yield sched
    sched.stop()


def who(s: Session, code: str) -> Person:
    return s.scalars(select(Person).where(Person.code == code)).one()


def report(s: Session, category: str = "parking", building: str = "B-HPL-01-07", now: datetime = T0) -> Ticket:
    b = s.scalars(select(Building).where(Building.code == building)).one()
    data = NewTicket(category, "7号楼门口的消防通道被私家车堵了", community_id=b.grid.community_id, grid_id=b.grid_id,
                     building_id=b.id, reporter_id=who(s, "P-0071").id)
    return ticket_service.submit_report(s, data, tz=TZ, now=now)


def texts(factory: sessionmaker[Session], chat_id: int, kind: str | None = None) -> list[str]:
    with session_scope(factory) as s:
        query = select(OutboxMessage).where(OutboxMessage.chat_id == chat_id).order_by(OutboxMessage.id)
        if kind is not None:
            query = query.where(OutboxMessage.kind == kind)
        return [m.payload.get("text", "") for m in s.scalars(query)]


def payloads(factory: sessionmaker[Session], chat_id: int) -> list[dict[str, Any]]:
    with session_scope(factory) as s:
        return [buttons.plain(s, m.payload) for m in s.scalars(
            select(OutboxMessage).where(OutboxMessage.chat_id == chat_id).order_by(OutboxMessage.id))]


def steps(factory: sessionmaker[Session], ticket_id: int) -> dict[str, tuple[datetime, str | None]]:
    with session_scope(factory) as s:
        return {f"{d.step.value}@{d.round}": (d.due_at, d.outcome) for d in s.scalars(
            select(TicketDeadline).where(TicketDeadline.ticket_id == ticket_id).order_by(TicketDeadline.id))}


def file(factory: sessionmaker[Session], **kw: Any) -> tuple[int, str]:
    with session_scope(factory) as s:
        ticket = report(s, **kw)
        return ticket.id, ticket.number


def test_a_filed_ticket_gets_its_steps_at_the_fractions_of_its_limits(
        demo_factory: sessionmaker[Session], leader: DutyScheduler) -> None:
    ticket_id, _ = file(demo_factory)  # parking: general, 24 h to respond, 7 days to resolve
    assert leader.deadlines(T0)["planned"] == 6
    assert leader.deadlines(T0)["planned"] == 0  # planned once
    assert {k: v[0] for k, v in steps(demo_factory, ticket_id).items()} == {
        "respond_first@0": T0 + 12 * HOUR, "respond_second@0": T0 + 19.2 * HOUR, "respond_overdue@0": T0 + DAY,
        "resolve_first@0": T0 + 3.5 * DAY, "resolve_second@0": T0 + 5.6 * DAY, "resolve_overdue@0": T0 + 7 * DAY}


def test_unclaimed_reminders_reach_the_group_as_one_digest_and_the_grid_worker(
        demo_factory: sessionmaker[Session], leader: DutyScheduler) -> None:
    first, n1 = file(demo_factory)
    second, n2 = file(demo_factory, building="B-HPL-01-04", now=T0 + 10 * MINUTE)
    leader.deadlines(T0 + 10 * MINUTE)
    assert leader.deadlines(T0 + 12 * HOUR - MINUTE).get("sent", 0) == 0  # nothing due yet
    assert leader.deadlines(T0 + 12 * HOUR) == {"planned": 0, "sent": 1, "digests": 1}  # the first's 50 %
    digests = texts(demo_factory, BRANCH_CHAT, deadlines.DIGEST_KIND)
    assert len(digests) == 1 and n1 in digests[0] and n2 not in digests[0]
    # The second ticket's 50 % falls 10 minutes later: the grid worker hears it at once, the group
    # not before its digest window is over …
    assert leader.deadlines(T0 + 12 * HOUR + 10 * MINUTE) == {"planned": 0, "sent": 1}
    assert any(n2 in x and "还没有人领单" in x for x in texts(demo_factory, WORKER))
    assert len(texts(demo_factory, BRANCH_CHAT, deadlines.DIGEST_KIND)) == 1
    # … and then in the next digest, with nothing sent twice.
    with session_scope(demo_factory) as s:  # the digest row is stamped with the real clock: age it
        for row in s.scalars(select(OutboxMessage).where(OutboxMessage.kind == deadlines.DIGEST_KIND)):
            row.created_at = T0 + 12 * HOUR
    assert leader.deadlines(T0 + 12 * HOUR + 11 * MINUTE) == {"planned": 0, "digests": 1}
    digests = texts(demo_factory, BRANCH_CHAT, deadlines.DIGEST_KIND)
    assert len(digests) == 2 and n2 in digests[1] and n1 not in digests[1]
    worker = texts(demo_factory, WORKER)
    assert sum(n1 in x and "还没有人领单" in x for x in worker) == 1
    assert sum(n2 in x and "还没有人领单" in x for x in worker) == 1
    assert steps(demo_factory, first)["respond_first@0"][1] == "sent"
    assert steps(demo_factory, second)["respond_first@0"][1] == "sent"


def test_a_claimed_ticket_hears_no_response_reminders_and_its_claimer_is_reminded_to_resolve(
        demo_factory: sessionmaker[Session], leader: DutyScheduler) -> None:
    ticket_id, number = file(demo_factory)
    leader.deadlines(T0)
    with session_scope(demo_factory) as s:
        ticket_service.claim(s, ticket_id, who(s, MEMBER), now=T0 + HOUR)
        member = who(s, MEMBER).telegram_id
    outcome = leader.deadlines(T0 + DAY)
    assert outcome.get("skipped") == 3 and outcome.get("sent", 0) == 0
    assert texts(demo_factory, BRANCH_CHAT, deadlines.DIGEST_KIND) == []
    leader.deadlines(T0 + 3.5 * DAY)
    assert any(number in x and "还没有办结" in x for x in texts(demo_factory, member))
    assert not any("还没有办结" in x for x in texts(demo_factory, SECRETARY))
    leader.deadlines(T0 + 5.6 * DAY)  # 80 %: the claimer again, and the secretary
    assert sum("还没有办结" in x for x in texts(demo_factory, member)) == 2
    assert any(number in x and "梁海涛" in x for x in texts(demo_factory, SECRETARY))


def test_past_the_response_limit_the_ticket_is_overdue_and_escalated_with_urge(
        demo_factory: sessionmaker[Session], leader: DutyScheduler) -> None:
    ticket_id, number = file(demo_factory)
    leader.deadlines(T0)
    assert leader.deadlines(T0 + DAY)["sent"] >= 1
    with session_scope(demo_factory) as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None and ticket.overdue_at == T0 + DAY and ticket.status is S.accepted  # a flag
        last = lifecycle.events_of(s, ticket)[-1]
        assert (last.from_status, last.to_status, last.actor_id, last.note) == (
            S.accepted, S.accepted, None, t("deadline.overdue_respond"))
        assert cards.status_label(ticket) == "已受理（已超期）"
    card = [p for p in payloads(demo_factory, ADMIN_HPL) if number in p.get("text", "")][-1]
    assert card["text"].startswith(t("deadline.escalated_respond", number=number))
    assert "【已超期】" in card["text"]
    assert [b["callback_data"] for row in card["buttons"] for b in row] == [
        f"t:{action}:{ticket_id}" for action in ("urge", "transfer", "take", "contact", "merge")]
    assert any(number in x and "已超过响应时限" in x for x in texts(demo_factory, BRANCH_CHAT))
    assert leader.deadlines(T0 + DAY + MINUTE).get("sent", 0) == 0  # once


def test_urge_is_recorded_tells_the_branch_and_the_claimer_and_counts_once_a_minute(
        demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        ticket = report(s)
        ticket_service.claim(s, ticket.id, who(s, MEMBER), now=T0 + HOUR)
        admin = s.scalars(select(Person).where(Person.telegram_id == ADMIN_HPL)).one()
        assert ticket_service.urge(s, ticket.id, admin, now=T0 + 2 * HOUR)
        assert not ticket_service.urge(s, ticket.id, admin, now=T0 + 2 * HOUR + 30 * timedelta(seconds=1))
        assert ticket_service.urge(s, ticket.id, admin, now=T0 + 2 * HOUR + 2 * MINUTE)
        with pytest.raises(NotAllowed, match="只有社区管理员可以督办"):
            ticket_service.urge(s, ticket.id, who(s, "P-0001"), now=T0 + 3 * HOUR)  # a secretary may not
        urges = s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id,
                                                    TicketEvent.note == t("deadline.urged_note"))).all()
        assert [(e.actor_id, e.at) for e in urges] == [(admin.id, T0 + 2 * HOUR), (admin.id, T0 + 2 * HOUR + 2 * MINUTE)]
        member = who(s, MEMBER).telegram_id
    assert sum("社区督办" in x for x in texts(demo_factory, BRANCH_CHAT)) == 2
    assert sum("社区督办" in x for x in texts(demo_factory, member)) == 2


def test_a_reopened_ticket_gets_fresh_limits_and_a_new_round(
        demo_factory: sessionmaker[Session], leader: DutyScheduler) -> None:
    ticket_id, _ = file(demo_factory)
    leader.deadlines(T0)
    leader.deadlines(T0 + DAY)  # overdue on response
    with session_scope(demo_factory) as s:
        ticket_service.claim(s, ticket_id, who(s, MEMBER), now=T0 + DAY + HOUR)
        ticket_service.resolve(s, ticket_id, who(s, MEMBER), "已挪车", now=T0 + DAY + 2 * HOUR)
        visit.answer(s, ticket_id, who(s, "P-0071"), solved=False, now=T0 + 2 * DAY, tz=TZ)  # 未解决: reopened
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None and ticket.status is S.reopened and ticket.overdue_at is None
        assert ticket.respond_due_at == T0 + 3 * DAY and ticket.deadline_round == 1
    leader.deadlines(T0 + 2 * DAY)
    planned = steps(demo_factory, ticket_id)
    assert planned["respond_overdue@1"][0] == T0 + 3 * DAY and planned["resolve_overdue@1"][0] == T0 + 9 * DAY
    assert all(outcome is not None for key, (_, outcome) in planned.items() if key.endswith("@0"))
    assert all(outcome is None for key, (_, outcome) in planned.items() if key.endswith("@1"))


def test_an_emergency_nobody_claims_is_put_before_the_admins_again(
        demo_factory: sessionmaker[Session], leader: DutyScheduler) -> None:
    ticket_id, number = file(demo_factory, category="emergency")
    leader.deadlines(T0)
    before = len(payloads(demo_factory, ADMIN_HPL))
    leader.deadlines(T0 + 10 * MINUTE)
    recalled = payloads(demo_factory, ADMIN_HPL)[before:]
    assert len(recalled) == 1 and recalled[0]["text"].startswith(t("deadline.emergency_recall", number=number))
    with session_scope(demo_factory) as s:
        assert s.scalars(select(OutboxMessage.priority).where(OutboxMessage.chat_id == ADMIN_HPL)
                         .order_by(OutboxMessage.id.desc())).first() == outbox.PRIORITY_URGENT  # before everything else


def test_steps_survive_a_restart_and_act_once(engine: Engine, demo_factory: sessionmaker[Session]) -> None:
    ticket_id, number = file(demo_factory)
    first = DutyScheduler(url_of(engine), tz=TZ)
    first.deadlines(T0)
    first.stop()  # the leader goes away between planning and the limit
    second = DutyScheduler(url_of(engine), tz=TZ)
    try:
        second.deadlines(T0 + DAY)
        second.deadlines(T0 + DAY)
    finally:
        second.stop()
    with session_scope(demo_factory) as s:
        overdue = s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id,
                                                      TicketEvent.note == t("deadline.overdue_respond"))).all()
        assert len(overdue) == 1
    assert sum(number in p.get("text", "") and "超期吹哨" in p.get("text", "")
               for p in payloads(demo_factory, ADMIN_HPL)) == 1


def test_the_admin_presses_urge_on_the_overdue_card_in_telegram(sqlite_engine: Engine,
                                                                 sqlite_demo_factory: sessionmaker[Session]) -> None:
    """Through the real Application: the overdue card reaches the admin, 督办 is answered, twice counts once."""
    factory = sqlite_demo_factory
    ticket_id, number = file(factory)
    leader = DutyScheduler(url_of(sqlite_engine), tz=TZ)
    try:
        leader.deadlines(T0)
        leader.deadlines(T0 + DAY)
    finally:
        leader.stop()

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            await j.drain()
            got = await j.press(ADMIN_HPL, ADMIN_HPL, "督办")
            assert t("deadline.urge_toast") in got
            assert any(number in str(m.get("text")) and "社区督办" in str(m.get("text")) for m in j.fake.sent_messages(BRANCH_CHAT))
            got = await j.press(ADMIN_HPL, ADMIN_HPL, "督办")
            assert t("deadline.urge_again") in got

    asyncio.run(scenario())
    with session_scope(factory) as s:
        assert len(s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id,
                                                       TicketEvent.note == t("deadline.urged_note"))).all()) == 1


def test_a_street_admin_urges_in_every_community_of_their_street_only(demo_factory: sessionmaker[Session]) -> None:
    from core.models import Street
    from core.registry import grants

    with session_scope(demo_factory) as s:
        s.add(Street(code="ST-OTHER", name="别的街道"))
        s.add_all([Person(telegram_id=930000001, display_name="街道干部"),
                   Person(telegram_id=930000002, display_name="别的街道干部")])
        s.flush()
        grants.grant(s, grants.resolve(s, "930000001", "street_admin", street="ST-HP"))
        grants.grant(s, grants.resolve(s, "930000002", "street_admin", street="ST-OTHER"))
        with pytest.raises(grants.GrantError, match="needs --street"):
            grants.resolve(s, "930000001", "street_admin", community="C-HPL")
    with session_scope(demo_factory) as s:
        ours = s.scalars(select(Person).where(Person.telegram_id == 930000001)).one()
        theirs = s.scalars(select(Person).where(Person.telegram_id == 930000002)).one()
        for building in (A_QNH, "B-HPL-01-07"):  # 青年湖 and 和平里, both on 和平街道
            ticket = report(s, building=building)
            assert ticket_service.urge(s, ticket.id, ours, now=T0 + HOUR)
            with pytest.raises(NotAllowed):
                ticket_service.urge(s, ticket.id, theirs, now=T0 + HOUR)


def test_an_emergency_not_dispatched_within_the_hour_reaches_the_street(
        demo_factory: sessionmaker[Session], leader: DutyScheduler) -> None:
    from core.registry import grants

    with session_scope(demo_factory) as s:
        s.add(Person(telegram_id=930000003, display_name="街道值班"))
        s.flush()
        grants.grant(s, grants.resolve(s, "930000003", "street_admin", street="ST-HP"))
    ticket_id, number = file(demo_factory, category="emergency")
    leader.deadlines(T0)
    leader.deadlines(T0 + 59 * MINUTE)
    assert payloads(demo_factory, 930000003) == []
    leader.deadlines(T0 + HOUR)  # the dispatch limit
    [card] = payloads(demo_factory, 930000003)
    assert card["text"].startswith(t("deadline.escalated_resolve", number=number))
    ordinary, _ = file(demo_factory)
    leader.deadlines(T0 + 8 * DAY)  # an ordinary ticket past its limits stays with the community
    assert len(payloads(demo_factory, 930000003)) == 1
