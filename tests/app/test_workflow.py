"""The ticket workflow: routing to the branch, permissions, notices, the return visit, duplicates
(the visit's own cases: tests/app/test_visit.py)."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.access import tickets as ticket_access
from core.access.permissions import NotAllowed
from core.db import make_engine, make_session_factory, session_scope
from core.messages import t
from core.messaging import buttons
from core.migrate import downgrade, upgrade
from core.models import (
    JOINED_GRANT,
    Branch,
    BranchMember,
    Building,
    OutboxMessage,
    Person,
    Role,
    Ticket,
    TicketEvent,
    TicketFollower,
    TicketStatus,
)
from core.people import residents
from core.presentation import cards
from core.tickets import lifecycle, visit
from core.tickets import service as ticket_service
from core.tickets.categories import sync_categories
from core.tickets.lifecycle import NewTicket, change_status, file_ticket

TZ = ZoneInfo("Asia/Shanghai")
S = TicketStatus
T0 = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
BRANCH_CHAT = -1001000000001  # BR-HPL-01, grid G-HPL-01
ADMIN_HPL, ADMIN_QNH = 700000069, 700000070
REPORTER = "P-0071"  # 戴春生, resident, phone 13800000071, telegram 700000071


def who(s: Session, code: str) -> Person:
    return s.scalars(select(Person).where(Person.code == code)).one()


def report(s: Session, category: str = "parking", building: str = "B-HPL-01-07",
           reporter: str | None = REPORTER, now: datetime = T0, **extra: Any) -> Ticket:
    b = s.scalars(select(Building).where(Building.code == building)).one()
    data = NewTicket(category, "7号楼门口的消防通道被私家车堵了",
                     reporter_id=who(s, reporter).id if reporter else None,
                     community_id=b.grid.community_id, grid_id=b.grid_id, building_id=b.id, **extra)
    return ticket_service.submit_report(s, data, tz=TZ, now=now)


def sent(s: Session, chat_id: int) -> list[dict]:
    """The payloads queued for `chat_id`, their buttons' data as written (core.messaging.buttons.plain)."""
    return [buttons.plain(s, m.payload) for m in s.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == chat_id)
                                                           .order_by(OutboxMessage.id))]


def count(s: Session, model: type) -> int:
    return s.scalar(select(func.count()).select_from(model)) or 0


def resolved_ticket(s: Session, now: datetime = T0) -> Ticket:
    ticket = report(s, now=now)
    ticket_service.claim(s, ticket.id, who(s, "P-0002"), now=now + HOUR)
    return ticket_service.resolve(s, ticket.id, who(s, "P-0002"), "已联系车主挪车", now=now + 2 * HOUR)


def test_full_loop_records_who_and_when_and_tells_everyone(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        reporter, handler = who(s, REPORTER), who(s, "P-0002")  # P-0002 梁海涛, branch member
        ticket = report(s)
        assert ticket.status is S.accepted
        ticket_service.claim(s, ticket.id, handler, now=T0 + HOUR)
        ticket_service.resolve(s, ticket.id, handler, "已联系车主挪车", "photo-after", now=T0 + 2 * HOUR)
        visit.answer(s, ticket.id, reporter, solved=True, now=T0 + 3 * HOUR, tz=TZ)
        visit.answer(s, ticket.id, reporter, score=3, now=T0 + 4 * HOUR, tz=TZ)
        assert ticket.status is S.closed and ticket.rating == 3 and ticket.rated_at == T0 + 4 * HOUR and ticket.solved
        assert [(e.kind, e.from_status, e.to_status, e.actor_id, e.at, e.note)
                for e in lifecycle.events_of(s, ticket)] == [
            ("status", None, S.new, reporter.id, T0, None),
            ("status", S.new, S.accepted, None, T0, "派至和平里第一网格"),
            ("status", S.accepted, S.claimed, handler.id, T0 + HOUR, None),
            ("status", S.claimed, S.resolved, handler.id, T0 + 2 * HOUR, "已联系车主挪车"),
            ("visit", S.resolved, S.resolved, reporter.id, T0 + 3 * HOUR, "已解决"),
            ("visit", S.resolved, S.resolved, reporter.id, T0 + 4 * HOUR, "满意"),
            ("status", S.resolved, S.closed, reporter.id, T0 + 4 * HOUR, "回访：已解决，满意"),
        ]
        to_reporter = sent(s, 700000071)
        assert [ticket.number in m["text"] for m in to_reporter] == [True] * 4
        accepted, claimed, resolved, closed = to_reporter
        assert "11-27 10:00" in accepted["text"]  # 7 days, in Shanghai time
        assert "梁同志" in claimed["text"] and "梁海涛" not in json.dumps(to_reporter, ensure_ascii=False)
        assert "已联系车主挪车" in resolved["text"] and "问题解决了吗？您对处理满意吗？" in resolved["text"]
        assert resolved["photo"] == "photo-after"
        assert [[(b["text"], b["callback_data"]) for b in row] for row in resolved["buttons"]] == [
            [("已解决", f"r:{ticket.id}:y"), ("未解决", f"r:{ticket.id}:n")],
            [("满意", f"r:{ticket.id}:3"), ("基本满意", f"r:{ticket.id}:2"), ("不满意", f"r:{ticket.id}:1")]]
        assert "已关闭" in closed["text"]
        group = [m["text"] for m in sent(s, BRANCH_CHAT)]
        assert group[1:] == [f"{ticket.number} 已由 梁同志 领单", f"{ticket.number} 已由 梁同志 办结",
                             f"{ticket.number} 居民回访：已解决，满意，已关闭"]


def test_card_goes_to_the_branch_chat_with_the_reporter_masked(sqlite_demo_factory: sessionmaker[Session]) -> None:
    with session_scope(sqlite_demo_factory) as s:
        ticket = report(s, photo_file_ids=["photo-1", "photo-2"])
        [card] = sent(s, BRANCH_CHAT)
        text = card["text"]
        assert text.startswith(f"工单 {ticket.number}") and "【紧急】" not in text
        for part in ("乱停车", "和平里小区7号楼", "消防通道被私家车堵了", "戴** ****0071", "11-21 10:00"):
            assert part in text
        dumped = json.dumps(card, ensure_ascii=False)
        assert "13800000071" not in dumped and "戴春生" not in dumped
        assert card["photo"] == "photo-1"
        data = [b["callback_data"] for row in card["buttons"] for b in row]
        assert data == [f"t:{a}:{ticket.id}" for a in ("claim", "resolve", "escalate", "transfer", "reject", "contact")]
        assert all(len(d.encode()) <= 64 for d in data)
        assert sent(s, ADMIN_HPL) == []  # not urgent: the community is not bothered
        anonymous = report(s, anonymous=True)
        assert "报告人：匿名" in sent(s, BRANCH_CHAT)[-1]["text"]
        assert ticket_service.contact_details(s, anonymous.id, who(s, "P-0001")).endswith("不能查看联系方式。")


@pytest.mark.parametrize(("phone", "shown"), [
    ("13800000071", "****0071"),  # mobile: the last four only, not 138****0071
    ("65432178", "****2178"),  # 8-digit landline
    ("6543217", "****217"),  # 7 digits: at least four stay hidden
    ("1234", "****"),  # 4 digits: nothing shown
    ("12345", "****5"),
    ("+86 138-0000-0071", "****0071"),  # only digits count
    ("010-6543 2178", "****2178"),
    ("１３８００００００７１", "****0071"),  # full-width digits
    ("  138 0000 0071 ", "****0071"),
    ("unknown", "****"),  # something, but no digits to show
    ("-", "****"),
    ("", "未留电话"),
    ("   ", "未留电话"),
    (None, "未留电话"),
])
def test_mask_phone_shows_at_most_the_last_four_digits(phone: str | None, shown: str) -> None:
    masked = cards.mask_phone(phone)
    assert masked == shown
    digits = [c for c in masked if c.isdigit()]
    assert len(digits) <= 4
    if phone and len([c for c in phone if c.isdecimal()]) <= 4:
        assert not digits  # a short number is never shown whole


def test_urgent_card_also_goes_to_the_community_admin(sqlite_demo_factory: sessionmaker[Session]) -> None:
    with session_scope(sqlite_demo_factory) as s:
        ticket = report(s, category="emergency")
        assert ticket.urgent
        for chat in (BRANCH_CHAT, ADMIN_HPL):
            [card] = sent(s, chat)
            assert card["text"].startswith(f"【紧急】工单 {ticket.number}")
            assert "13800000071" not in json.dumps(card)
        assert sent(s, ADMIN_QNH) == []  # another community's admin


def test_ticket_without_grid_stays_new_and_goes_to_the_community(sqlite_demo_factory: sessionmaker[Session]) -> None:
    with session_scope(sqlite_demo_factory) as s:
        community_id = who(s, "P-0069").grants[0].community_id
        data = NewTicket("noise", "小区里晚上有人唱歌", reporter_id=who(s, REPORTER).id, community_id=community_id)
        ticket = ticket_service.submit_report(s, data, tz=TZ, now=T0)
        assert ticket.status is S.new
        [card] = sent(s, ADMIN_HPL)
        assert card["text"].startswith("【待分派】")
        assert sent(s, BRANCH_CHAT) == []
        assert "正在确认所属网格" in sent(s, 700000071)[0]["text"]


def test_claim_by_someone_outside_the_grid_is_refused_and_changes_nothing(
        sqlite_demo_factory: sessionmaker[Session]) -> None:
    with session_scope(sqlite_demo_factory) as s:
        ticket = report(s)
        before = (count(s, TicketEvent), count(s, OutboxMessage))
        for outsider in ("P-0009", "P-0062", REPORTER):  # other branch, other grid's worker, the resident
            with pytest.raises(NotAllowed, match="才可以领单|可以领单"):
                ticket_service.claim(s, ticket.id, who(s, outsider))
        with pytest.raises(NotAllowed, match="还没有登记"):
            ticket_service.claim(s, ticket.id, None)
        assert ticket.status is S.accepted and ticket.claimed_by_id is None
        assert (count(s, TicketEvent), count(s, OutboxMessage)) == before
        ticket_service.claim(s, ticket.id, who(s, "P-0061"))  # the grid worker, not a branch member
        assert ticket.claimed_by_id == who(s, "P-0061").id
        with pytest.raises(NotAllowed, match="这个工单已被领取"):
            ticket_service.claim(s, ticket.id, who(s, "P-0003"))
        with pytest.raises(NotAllowed, match="找不到"):
            ticket_service.claim(s, 999_999, who(s, "P-0003"))


def test_resolve_only_by_the_claimer_secretary_worker_or_admin(sqlite_demo_factory: sessionmaker[Session]) -> None:
    with session_scope(sqlite_demo_factory) as s:
        ticket = report(s)
        with pytest.raises(NotAllowed, match="请先领单"):
            ticket_service.resolve(s, ticket.id, who(s, "P-0001"), "处理好了")
        ticket_service.claim(s, ticket.id, who(s, "P-0002"))
        for code in ("P-0003", "P-0009", "P-0062", "P-0070", REPORTER):  # another member, outsiders, other admin
            with pytest.raises(NotAllowed, match="可以办结"):
                ticket_service.resolve(s, ticket.id, who(s, code), "处理好了")
        for code in ("P-0002", "P-0001", "P-0061", "P-0069"):  # claimer, secretary, worker, admin
            ticket_access.check(s, who(s, code), "resolve", ticket)
        with pytest.raises(NotAllowed, match="请写明处理结果"):
            ticket_service.resolve(s, ticket.id, who(s, "P-0001"), "  ")
        assert ticket.status is S.claimed
        ticket_service.resolve(s, ticket.id, who(s, "P-0001"), "书记协调物业处理")
        assert ticket.status is S.resolved and lifecycle.events_of(s, ticket)[-1].actor_id == who(s, "P-0001").id


def test_escalate_and_reject_are_for_secretary_worker_and_admin(sqlite_demo_factory: sessionmaker[Session]) -> None:
    with session_scope(sqlite_demo_factory) as s:
        ticket = report(s)
        with pytest.raises(NotAllowed, match="上报社区"):
            ticket_service.escalate(s, ticket.id, who(s, "P-0002"), tz=TZ)
        ticket_service.escalate(s, ticket.id, who(s, "P-0061"), "涉及多个部门", tz=TZ)
        assert ticket.status is S.escalated
        assert sent(s, ADMIN_HPL)[-1]["text"].startswith(f"【吹哨】{ticket.number} 已由 史同志 上报社区：涉及多个部门")
        with pytest.raises(NotAllowed, match="退回"):
            ticket_service.reject(s, ticket.id, who(s, "P-0002"), "不归我们管", tz=TZ)
        ticket_service.reject(s, ticket.id, who(s, "P-0069"), "属于市政管理范围", tz=TZ)
        assert ticket.status is S.rejected
        last = sent(s, 700000071)[-1]["text"]
        assert "属于市政管理范围" in last and "12345" in last


def test_contact_is_visible_only_to_secretary_worker_and_admin(sqlite_demo_factory: sessionmaker[Session]) -> None:
    with session_scope(sqlite_demo_factory) as s:
        ticket = report(s)
        for code in ("P-0001", "P-0061", "P-0069"):
            details = ticket_service.contact_details(s, ticket.id, who(s, code))
            assert "戴春生" in details and "13800000071" in details
        for code in ("P-0002", "P-0062", "P-0070", REPORTER):
            with pytest.raises(NotAllowed, match="查看联系人"):
                ticket_service.contact_details(s, ticket.id, who(s, code))


def test_close_unrated_only_after_three_days(sqlite_demo_factory: sessionmaker[Session]) -> None:
    with session_scope(sqlite_demo_factory) as s:
        old, recent = resolved_ticket(s, now=T0), resolved_ticket(s, now=T0 + 2 * DAY)
        assert ticket_service.close_unrated(s, now=T0 + 2 * HOUR + 3 * DAY - timedelta(minutes=1)) == 0
        assert ticket_service.close_unrated(s, now=T0 + 2 * HOUR + 3 * DAY + timedelta(minutes=1)) == 1
        assert (old.status, recent.status) == (S.closed, S.resolved)
        last = lifecycle.events_of(s, old)[-1]
        assert (last.actor_id, last.note) == (None, "未评价，自动关闭")
        assert sent(s, 700000071)[-1]["text"] == f"工单 {old.number} 已关闭，感谢您的反馈！"
        assert ticket_service.close_unrated(s, now=T0 + 2 * HOUR + 3 * DAY + timedelta(minutes=2)) == 0


def test_duplicates_same_category_and_place_within_seven_days(sqlite_demo_factory: sessionmaker[Session]) -> None:
    with session_scope(sqlite_demo_factory) as s:
        first = report(s, now=T0)
        same_grid = report(s, building="B-HPL-01-01", now=T0 + 12 * HOUR)
        second = report(s, now=T0 + DAY)
        report(s, category="noise", now=T0 + DAY)  # other category
        report(s, building="B-HPL-02-12", now=T0 + DAY)  # other grid
        rejected = report(s, now=T0 + DAY)
        ticket_service.reject(s, rejected.id, who(s, "P-0069"), "重复反映", tz=TZ)
        grid, building = first.grid_id, first.building_id
        assert grid is not None and building is not None
        assert ticket_service.find_duplicates(s, "parking", grid, building, now=T0 + 2 * DAY) == [second, first]
        assert ticket_service.find_duplicates(s, "parking", grid, now=T0 + 2 * DAY) == [second, same_grid, first]
        assert ticket_service.find_duplicates(s, "parking", grid, building, now=T0 + 7 * DAY + HOUR) == [second]
        assert ticket_service.find_duplicates(s, "parking", grid, building, now=T0 + 9 * DAY) == []


def test_join_is_idempotent_and_the_follower_hears_of_changes(sqlite_demo_factory: sessionmaker[Session]) -> None:
    with session_scope(sqlite_demo_factory) as s:
        ticket = report(s)
        neighbour = residents.reporter_for(s, 800000001, "小王")
        assert neighbour is not None and neighbour.has_role(Role.resident)
        ticket_service.join(s, ticket.id, neighbour)
        ticket_service.join(s, ticket.id, neighbour)
        ticket_service.join(s, ticket.id, who(s, REPORTER))  # the reporter does not become a follower
        followers = s.scalars(select(TicketFollower.person_id).where(TicketFollower.ticket_id == ticket.id)).all()
        assert followers == [neighbour.id]
        assert [m["text"] for m in sent(s, 800000001)] == [
            f"已把您加为工单 {ticket.number} 的关注人，处理进展会通知您。当前状态：已受理。"]
        ticket_service.claim(s, ticket.id, who(s, "P-0002"))
        ticket_service.resolve(s, ticket.id, who(s, "P-0002"), "已挪车")
        assert [m["text"].splitlines()[0] for m in sent(s, 800000001)[1:]] == [
            f"工单 {ticket.number} 已由梁同志领单，正在处理。", f"工单 {ticket.number} 已办结。"]
        assert ticket_service.tickets_of(s, neighbour) == [ticket]
        visit.answer(s, ticket.id, neighbour, solved=True, score=3, tz=TZ)  # a follower may answer the visit
        assert ticket.status is S.closed


def test_tickets_of_and_history_text(sqlite_demo_factory: sessionmaker[Session]) -> None:
    with session_scope(sqlite_demo_factory) as s:
        reporter = who(s, REPORTER)
        older, newer = resolved_ticket(s, now=T0), report(s, now=T0 + DAY)
        report(s, reporter="P-0006")
        assert ticket_service.tickets_of(s, reporter) == [newer, older]
        assert ticket_service.tickets_of(s, reporter, limit=1) == [newer]
        text = cards.history_text(s, older, reporter, tz=TZ)
        assert text.splitlines() == [
            f"工单 {older.number}（乱停车）当前状态：已办结",
            "11-20 10:00 待受理 · 您",
            "11-20 10:00 已受理 · 系统：派至和平里第一网格",
            "11-20 11:00 处理中 · 梁同志",
            "11-20 12:00 已办结 · 梁同志：已联系车主挪车",
        ]
        assert "居民" in cards.history_text(s, older, who(s, "P-0001"), tz=TZ).splitlines()[1]


def test_bind_resident_creates_then_rebinds(sqlite_demo_factory: sessionmaker[Session]) -> None:
    with session_scope(sqlite_demo_factory) as s:
        b7, b1 = (s.scalars(select(Building).where(Building.code == c)).one() for c in ("B-HPL-01-07", "B-HPL-01-01"))
        person = residents.bind_resident(s, 800000002, "李明", b7.id, consent=True)
        assert (person.display_name, person.building_id, person.contact_consent) == ("李明", b7.id, True)
        again = residents.bind_resident(s, 800000002, "李小明", b1.id, consent=False)
        assert again.id == person.id and (again.display_name, again.building_id, again.contact_consent) == (
            "李小明", b1.id, False)
        assert [g.role for g in again.grants] == [Role.resident]
        registered = residents.bind_resident(s, 700000071, "Dai", b7.id, consent=True)
        assert registered.display_name == "戴春生"  # the registry's name is kept
        earlier = report(s, reporter=registered.code)
        assert "13800000071" in ticket_service.contact_details(s, earlier.id, who(s, "P-0001"))
        residents.bind_resident(s, 700000071, "Dai", b1.id, consent=False)  # consent withdrawn
        assert ticket_service.contact_details(s, earlier.id, who(s, "P-0001")).endswith("不能查看联系方式。")
        assert t("card.anonymous") in cards.card_payload(s, earlier, tz=TZ)["text"]
        assert residents.person_by_telegram(s, 800000002) is person and residents.person_by_telegram(s, 1) is None
        # every binding is audited (core.access.limits counts them): moved or not, consent, never the address
        details = [(e.subject, e.detail) for e in reversed(audit.entries(s, action="resident.bind"))]
        assert details == [(f"person:{person.id}", {"moved": True, "consent": True}),
                           (f"person:{person.id}", {"moved": True, "consent": False}),
                           (f"person:{registered.id}", {"moved": True, "consent": True}),
                           (f"person:{registered.id}", {"moved": True, "consent": False})]


def test_retried_notices_are_queued_once(sqlite_demo_factory: sessionmaker[Session]) -> None:
    with session_scope(sqlite_demo_factory) as s:
        ticket = report(s)
        event = change_status(s, ticket, S.claimed, actor=who(s, "P-0002"))
        before = count(s, OutboxMessage)
        for _ in range(2):
            ticket_service.tell_residents(s, ticket, event, "claimed", {"text": "x"})
            ticket_service.tell_branch(s, ticket, event, {"text": "x"})
        assert count(s, OutboxMessage) == before + 2


def test_rating_migration_upgrades_and_downgrades_keeping_tickets(empty_db_url: str) -> None:
    engine: Engine = make_engine(empty_db_url)

    def columns() -> set[str]:
        return {c["name"] for c in inspect(engine).get_columns("tickets")}

    upgrade(engine, "bde2c7ecde33")
    assert "rating" not in columns()
    upgrade(engine)
    assert {"rating", "rated_at", "resolution_photo_id"} <= columns()
    with session_scope(make_session_factory(engine)) as s:
        sync_categories(s)
        number = file_ticket(s, NewTicket("noise", "楼上装修太吵"), tz=TZ).number
    downgrade(engine, "bde2c7ecde33")
    assert not {"rating", "rated_at", "resolution_photo_id"} & columns()
    upgrade(engine)
    with session_scope(make_session_factory(engine)) as s:
        assert s.scalars(select(Ticket.number)).all() == [number]
    engine.dispose()


def test_twenty_simultaneous_claims_make_one_claim_and_nineteen_refusals(
        demo_factory: sessionmaker[Session]) -> None:
    """20 branch members press 领单 on the same card at the same moment, each in their own thread
    and session: on PostgreSQL the ticket's row lock makes them wait for each other, and the
    state is checked again after the lock, so one claims and 19 are told it is taken."""
    bind = demo_factory.kw["bind"]
    # one connection per presser, so that all twenty really are in the database at once
    wide = make_engine(bind.url.render_as_string(hide_password=False), pool_size=20, max_overflow=2)
    factory = make_session_factory(wide)
    with session_scope(factory) as s:
        ticket = report(s)
        ticket_id, number = ticket.id, ticket.number
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        members = []
        for i in range(20):
            person = Person(display_name=f"成员{i:02d}", telegram_id=810_000_000 + i)
            s.add(person)
            s.flush()
            s.add(BranchMember(branch_id=branch.id, person_id=person.id, joined_by=JOINED_GRANT))
            members.append(person.id)
    barrier = threading.Barrier(len(members))
    results: dict[int, str] = {}

    def press(person_id: int) -> None:
        barrier.wait()  # before the session: SQLite's writer lock would otherwise hold the others back
        try:
            with session_scope(factory) as s:
                ticket_service.claim(s, ticket_id, s.get(Person, person_id))
            results[person_id] = "claimed"
        except NotAllowed as exc:
            results[person_id] = str(exc)
        except BaseException as exc:  # noqa: BLE001 - asserted below: nothing else may happen
            results[person_id] = repr(exc)

    threads = [threading.Thread(target=press, args=(pid,)) for pid in members]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    wide.dispose()
    winners = [pid for pid, outcome in results.items() if outcome == "claimed"]
    assert len(results) == 20 and len(winners) == 1, results
    assert sorted(o for o in results.values() if o != "claimed") == [t("deny.state_claimed")] * 19
    with session_scope(demo_factory) as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None and ticket.status is S.claimed and ticket.claimed_by_id == winners[0]
        claims = [e for e in lifecycle.events_of(s, ticket) if e.to_status is S.claimed]
        assert [e.actor_id for e in claims] == winners
        lines = [m["text"] for m in sent(s, BRANCH_CHAT) if "领单" in m["text"]]
        assert lines == [f"{number} 已由 {residents.first_name(s.get(Person, winners[0]))} 领单"]  # type: ignore[arg-type]
        assert len([m for m in sent(s, 700000071) if "领单" in m["text"]]) == 1  # the reporter hears once
