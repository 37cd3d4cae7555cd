"""Per-person limits (core/access/limits.py) and the consent rule for emergencies.

Counting over sliding windows in core; bindings (/start) through the real Application;
reports and emergencies through the real Application, Rasa server and action server on the
stack's shared database (fresh residents 7300000xx, buildings 和平里10-18号楼 of G-HPL-02
that the other stack tests do not use). Every limit concerns one person: the others are
answered as usual meanwhile.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from core.access import limits
from core.config import Settings, get_settings
from core.db import make_engine, session_scope
from core.messages import t
from core.models import AuditEntry, Building, Person, Ticket, utcnow
from core.people import residents
from core.tickets import service as ticket_service
from core.tickets.lifecycle import NewTicket, file_ticket
from tests.app.journey import journey
from tests.app.stack import Stack
from tests.app.test_journey import bind, tickets_of

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
NO_RASA = "http://127.0.0.1:9"
BRANCH_2 = -1001000000002  # 和平里第二网格党支部 (G-HPL-02: 和平里10-18号楼)
ADMIN = 700000069  # community admin of 和平里社区
FIRE = "快来人啊13号楼2单元着火了"


def person(s: Session, code: str = "P-0071") -> Person:
    return s.scalars(select(Person).where(Person.code == code)).one()


def seed_ticket(s: Session, reporter: Person, at: datetime, category: str = "other") -> Ticket:
    """A ticket filed at `at` without a grid (nobody is told of it)."""
    return file_ticket(s, NewTicket(category, "测试用的旧工单", reporter_id=reporter.id, anonymous=True),
                       tz=TZ, now=at)


# -- counting (core.access.limits) --------------------------------------------------------------------

def test_the_defaults_are_the_issues_numbers() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.report_limit_per_hour, settings.emergency_limit_per_hour, settings.binding_limit_per_day,
            settings.join_failures_per_hour) == (10, 3, 3, 5)


def test_reports_and_emergencies_are_counted_apart_over_the_last_hour(
        sqlite_demo_factory: sessionmaker[Session]) -> None:
    with session_scope(sqlite_demo_factory) as s:
        me, other = person(s), person(s, "P-0072")
        seed_ticket(s, me, T0 - 2 * HOUR)  # outside the window
        for i in range(10):
            seed_ticket(s, me, T0 - 50 * MINUTE + i * MINUTE)
        seed_ticket(s, other, T0 - MINUTE)
        verdict = limits.reports(s, me.id, now=T0, settings=get_settings())
        assert not verdict.allowed and verdict.limit == 10
        assert verdict.retry_at == T0 + 10 * MINUTE  # when the oldest of the ten is an hour old
        assert verdict.retry_local(TZ) == "10:10"
        assert limits.reports(s, me.id, now=T0 + 10 * MINUTE, settings=get_settings()).allowed  # it ends by itself
        assert limits.reports(s, other.id, now=T0, settings=get_settings()).allowed  # nobody else is held back
        assert limits.emergencies(s, me.id, now=T0, settings=get_settings()).allowed  # reports do not use up emergencies
        for i in range(3):
            seed_ticket(s, me, T0 - 30 * MINUTE + i * MINUTE, category="emergency")
        urgent = limits.emergencies(s, me.id, now=T0, settings=get_settings())
        assert not urgent.allowed and urgent.retry_at == T0 + 30 * MINUTE
        assert limits.emergencies(s, me.id, now=T0 + 31 * MINUTE, settings=get_settings()).allowed
        assert limits.reports(s, me.id, now=T0 + 10 * MINUTE, settings=get_settings()).allowed  # emergencies are not reports
        tight = Settings(_env_file=None, emergency_limit_per_hour=4)  # type: ignore[call-arg]
        assert limits.emergencies(s, me.id, now=T0, settings=tight).allowed


def test_bindings_are_counted_from_the_audit_log_over_a_day(sqlite_demo_factory: sessionmaker[Session]) -> None:
    with session_scope(sqlite_demo_factory) as s:
        b7, b8 = (s.scalars(select(Building).where(Building.code == c)).one() for c in ("B-HPL-01-07", "B-HPL-01-08"))
        assert limits.bindings(s, None, settings=get_settings()).allowed  # never bound
        me = residents.bind_resident(s, 730000090, "李明", b7.id, True, now=T0 - 23 * HOUR)
        residents.bind_resident(s, 730000090, "李明", b8.id, True, now=T0 - HOUR)
        assert limits.bindings(s, me.id, now=T0, settings=get_settings()).allowed
        residents.bind_resident(s, 730000090, "李明", b7.id, False, now=T0)
        verdict = limits.bindings(s, me.id, now=T0, settings=get_settings())
        assert not verdict.allowed and verdict.retry_at == T0 + HOUR
        assert verdict.retry_local(TZ, with_date=True) == "11-20 11:00"
        assert limits.bindings(s, me.id, now=T0 + HOUR, settings=get_settings()).allowed
        assert limits.bindings(s, person(s).id, now=T0, settings=get_settings()).allowed


# -- bindings through the bot ------------------------------------------------------------------

def test_a_fourth_binding_in_a_day_is_refused_but_consent_can_always_be_withdrawn(
        sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory
    resident, neighbour = 730000010, 730000011

    def home(user: int) -> tuple[str | None, bool]:
        with factory() as s:
            p = s.scalars(select(Person).where(Person.telegram_id == user)).one()
            b = s.get(Building, p.building_id)
            return (b.code if b else None), p.contact_consent

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            # a /start left at the consent question, to be answered once the limit is reached
            await j.say(resident, "/start")
            await j.press(resident, resident, "和平里社区")
            await j.press(resident, resident, "和平里1号楼")
            stale = j.find_button(resident, t("bind.button_agree"))
            for building in ("和平里7号楼", "和平里8号楼", "和平里9号楼"):
                done = await bind(j, resident, "和平里社区", building)
                assert any(t("bind.done", place="")[:5] in x for x in done), done
            assert home(resident) == ("B-HPL-01-09", True)

            limited = await j.say(resident, "/start")
            [reply] = limited
            assert reply.startswith("您24小时内已经登记了3次住址，暂时不能再修改，请在")
            assert t("limit.binding_withdraw") in reply and t("bind.welcome") not in reply
            # the old question's 同意 (another building) is refused too, and changes nothing
            message, data = stale
            late = await j.step(j.updates.callback_query(resident, data, message), resident)
            assert any(x.startswith("您24小时内已经登记了3次住址") for x in late), late
            assert home(resident) == ("B-HPL-01-09", True)
            # withdrawing consent is never refused
            withdrawn = await j.press(resident, resident, t("bind.button_withdraw"))
            assert any(t("bind.consent_no") in x for x in withdrawn), withdrawn
            assert home(resident) == ("B-HPL-01-09", False)
            # now without consent: the refusal offers nothing to withdraw
            [again] = await j.say(resident, "/start")
            assert again.startswith("您24小时内已经登记了3次住址") and t("limit.binding_withdraw") not in again
            # the neighbour is not held back
            done = await bind(j, neighbour, "和平里社区", "和平里1号楼")
            assert any("和平里小区1号楼" in x for x in done), done

            # a day later it works again by itself
            with session_scope(factory) as s:
                me = s.scalars(select(Person).where(Person.telegram_id == resident)).one()
                s.execute(update(AuditEntry).where(AuditEntry.subject == f"person:{me.id}")
                          .values(at=utcnow() - DAY - MINUTE))
            assert await j.say(resident, "/start") == [t("bind.welcome")]

    asyncio.run(scenario())
    with factory() as s:
        me = s.scalars(select(Person).where(Person.telegram_id == resident)).one()
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action == "resident.bind",
                                                     AuditEntry.subject == f"person:{me.id}")).all()
        assert [e.detail["consent"] for e in entries] == [True, True, True, False]


# -- reports and emergencies through Rasa -------------------------------------------------------

@pytest.fixture
def stack_factory(stack_db_url: str) -> sessionmaker[Session]:
    return sessionmaker(make_engine(stack_db_url), expire_on_commit=False)


def _card_for(j, chat: int, number: str) -> str:  # type: ignore[no-untyped-def]
    cards = [x for x in j.texts(chat) if number in x and "报告人" in x]
    assert cards, (number, j.texts(chat)[-3:])
    return cards[-1]


def test_an_eleventh_report_within_an_hour_is_refused_politely(stack_factory: sessionmaker[Session],
                                                               rasa_stack: Stack) -> None:
    resident, neighbour = 730000001, 730000002
    now = utcnow()

    async def scenario() -> None:
        async with journey(stack_factory, rasa_stack.rasa_url) as j:
            await bind(j, resident, "和平里社区", "和平里12号楼")
            await bind(j, neighbour, "和平里社区", "和平里14号楼")
            with session_scope(stack_factory) as s:  # nine reports in the last hour, one older
                me = s.scalars(select(Person).where(Person.telegram_id == resident)).one()
                seed_ticket(s, me, now - 2 * HOUR)
                for i in range(9):
                    seed_ticket(s, me, now - 50 * MINUTE + i * MINUTE)
            summary = await j.say(resident, "12号楼门口的路灯坏了一个礼拜了，晚上黑乎乎的")
            assert any("12号楼" in x for x in summary), summary
            filed = await j.press(resident, resident, t("report.button_confirm"))
            assert any("工单号" in x for x in filed), filed  # the tenth within the hour

            summary = await j.say(resident, "12号楼楼下有人天天遛狗不牵绳，还随地大小便")
            assert any("宠物" in x for x in summary), summary
            refused = await j.press(resident, resident, t("report.button_confirm"))
            oldest = (now - 50 * MINUTE + HOUR).astimezone(TZ).strftime("%H:%M")
            assert t("limit.reports", limit=10, at=oldest) in refused, refused
            assert not any("工单号" in x for x in refused), refused

            # the neighbour reports meanwhile and is filed as usual
            await j.say(neighbour, "14号楼楼下有人天天遛狗不牵绳，还随地大小便")
            filed = await j.press(neighbour, neighbour, t("report.button_confirm"))
            assert any("工单号" in x for x in filed), filed

    asyncio.run(scenario())
    mine = tickets_of(stack_factory, resident)
    assert len(mine) == 11 and len([x for x in mine if x.grid_id is not None]) == 1  # 1 older, 9 seeded, 1 filed
    assert [x.category_code for x in tickets_of(stack_factory, neighbour)] == ["pets"]


def test_emergencies_beyond_three_an_hour_get_the_numbers_but_page_nobody(
        stack_factory: sessionmaker[Session], rasa_stack: Stack) -> None:
    resident, neighbour = 730000003, 730000004

    async def scenario() -> None:
        async with journey(stack_factory, rasa_stack.rasa_url) as j:
            await bind(j, resident, "和平里社区", "和平里13号楼")
            await bind(j, neighbour, "和平里社区", "和平里13号楼")
            for _ in range(3):
                replies = await j.say(resident, FIRE)
                assert "119" in replies[0] and any("紧急工单" in x for x in replies), replies
            paged = len(j.fake.sent_messages(ADMIN)), len(j.fake.sent_messages(BRANCH_2))

            replies = await j.say(resident, FIRE)
            assert "119" in replies[0], replies  # the numbers to call come first, always
            assert t("limit.emergency", limit=3) in replies, replies
            assert not any("紧急工单" in x for x in replies), replies
            assert (len(j.fake.sent_messages(ADMIN)), len(j.fake.sent_messages(BRANCH_2))) == paged

            replies = await j.say(neighbour, FIRE)  # the neighbour is paged for as usual
            assert "119" in replies[0] and any("紧急工单" in x for x in replies), replies
            assert len(j.fake.sent_messages(ADMIN)) == paged[0] + 1

    asyncio.run(scenario())
    assert [x.urgent for x in tickets_of(stack_factory, resident)] == [True, True, True]
    assert [x.urgent for x in tickets_of(stack_factory, neighbour)] == [True]


def test_emergency_tickets_follow_the_consent_given_at_start(stack_factory: sessionmaker[Session],
                                                             rasa_stack: Stack) -> None:
    consented, refused = 730000005, 730000006

    async def scenario() -> None:
        async with journey(stack_factory, rasa_stack.rasa_url) as j:
            await bind(j, consented, "和平里社区", "和平里15号楼")
            await j.say(refused, "/start")
            await j.press(refused, refused, "和平里社区")
            await j.press(refused, refused, "和平里16号楼")
            await j.press(refused, refused, t("bind.button_refuse"))
            for user in (consented, refused):
                replies = await j.say(user, FIRE)
                assert any("紧急工单" in x for x in replies), replies
            [with_contact] = tickets_of(stack_factory, consented)
            [anonymous] = tickets_of(stack_factory, refused)
            for chat in (BRANCH_2, ADMIN):
                assert "报告人：匿名" in _card_for(j, chat, anonymous.number)
                card = _card_for(j, chat, with_contact.number)
                assert "报告人：匿名" not in card and "报告人：A** 未留电话" in card

    asyncio.run(scenario())
    [with_contact] = tickets_of(stack_factory, consented)
    [anonymous] = tickets_of(stack_factory, refused)
    assert with_contact.urgent and not with_contact.anonymous
    assert anonymous.urgent and anonymous.anonymous
    with session_scope(stack_factory) as s:  # 联系人 shows nothing for the anonymous one
        secretary = s.scalars(select(Person).where(Person.telegram_id == 700000008)).one()
        assert ticket_service.contact_details(s, anonymous.id, secretary) == t("contact.anonymous",
                                                                         number=anonymous.number)
