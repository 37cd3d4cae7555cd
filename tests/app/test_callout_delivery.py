"""The call-out's delivery (kind "mobilise.call", core.messaging.outbox.KINDS): before cards and
broadcasts, after replies; to people who said /notify off; a call whose outcome is unknown sent
once more 60 s later, marked 【重发】, and never a third time. Through the real dispatcher
(bot/dispatcher.py) with python-telegram-bot's Bot on the fake Telegram, SQLite and PostgreSQL;
the outbox's time comes from a clock the test moves, nothing sleeps a minute."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from telegram import Bot

from bot import dispatcher, ratelimit
from bot.broadcast_sender import BroadcastSender, sender_bot
from bot.dispatcher import OutboxDispatcher
from bot.ratelimit import RateLimiter
from core.broadcasts import service as broadcasts
from core.db import session_scope
from core.messages import t
from core.messaging import buttons, outbox
from core.mobilise import answers, declare
from core.models import (
    Answer,
    AreaLevel,
    Branch,
    BroadcastAudience,
    BroadcastDelivery,
    Building,
    Grid,
    IncidentCall,
    IncidentKind,
    OutboxMessage,
    Person,
    SendState,
    utcnow,
)
from tests.app.telegram_fake import FakeTelegram

CALL = outbox.CALLOUT
MARK = t("callout.resend_mark")
TEXT = "【紧急召集】3号楼火情，请党员、志愿者立即到小区东门集合。"
ACK = {"text": "收到", "callback_data": "mobilise:ack:1"}
SECRETARY = 700000001
RESIDENTS = 810_500_000
T0 = utcnow().replace(microsecond=0)  # the outbox's clock starts now: rows queued by the code under test are due
TZ = ZoneInfo("Asia/Shanghai")


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.start = self.now = start

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> None:
        self.now = self.start + timedelta(seconds=seconds)


def _call(factory: sessionmaker[Session], chat_id: int, *, kind: str = CALL, not_before: datetime = T0) -> int:
    """A call as core.mobilise queues it: one per (incident, person); its row id."""
    with session_scope(factory) as s:
        assert outbox.enqueue(s, dedupe_key=f"mobilise:1:{chat_id}:{kind}", kind=kind, chat_id=chat_id,
                              payload={"text": TEXT, "buttons": [[ACK]]}, not_before=not_before)
        key = f"mobilise:1:{chat_id}:{kind}"
        return int(s.scalars(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == key)).one())


def _rows(factory: sessionmaker[Session]) -> dict[str, OutboxMessage]:
    with session_scope(factory) as s:
        return {row.dedupe_key: row for row in s.scalars(select(OutboxMessage))}


def _texts(fake: FakeTelegram, chat_id: int) -> list[str]:
    return [str(m.get("text") or "") for m in fake.sent_messages(chat_id)]


async def _dispatcher(factory: sessionmaker[Session], fake: FakeTelegram, clock: Callable[[], datetime],
                      limiter: RateLimiter | None = None) -> OutboxDispatcher:
    bot = Bot("123:ABC", request=fake)
    await bot.initialize()
    return OutboxDispatcher(bot, factory, limiter=limiter, clock=clock)


def test_the_call_out_s_kind() -> None:
    rule = outbox.rule_of(CALL)
    assert outbox.PRIORITY_URGENT < rule.priority == outbox.PRIORITY_CALLOUT < outbox.PRIORITY_NORMAL \
        < outbox.PRIORITY_BULK
    assert (rule.essential, rule.resend_after) == (True, timedelta(seconds=60))
    assert outbox.essential(CALL) and not outbox.essential("notice") and not outbox.essential("card")
    assert outbox.rule_of("notice").resend_after is None and outbox.rule_of("reply").resend_after is None
    # the rate budget serves the same order with the same numbers
    assert (ratelimit.URGENT, ratelimit.CALLOUT, ratelimit.NORMAL, ratelimit.BULK) == (
        outbox.PRIORITY_URGENT, outbox.PRIORITY_CALLOUT, outbox.PRIORITY_NORMAL, outbox.PRIORITY_BULK)
    assert MARK == "【重发】"


# -- priority and /notify off ------------------------------------------------------------------

class Gate(RateLimiter):
    """One request a `period`, held until the dispatcher and the broadcast sender both wait for a
    slot: then who goes first is the priorities' doing, not whose database work ended first."""

    def __init__(self, period: float) -> None:
        super().__init__(rate=1, period=period)
        self.asked: set[int] = set()
        self.open = asyncio.Event()

    async def acquire(self, chat_id: int | None = None, priority: int = ratelimit.BULK,
                      burst: int | None = None) -> list[float]:
        self.asked.add(priority)
        if {ratelimit.CALLOUT, ratelimit.BULK} <= self.asked and not self.open.is_set():
            self.pause(self.period)  # everyone woken below is waiting when the budget frees
            self.open.set()
        await self.open.wait()
        return await super().acquire(chat_id, priority, burst)


def _residents(factory: sessionmaker[Session], n: int) -> list[int]:
    with session_scope(factory) as s:
        grid = s.scalars(select(Grid).where(Grid.code == "G-HPL-01")).one()
        building = s.scalars(select(Building).where(Building.grid_id == grid.id).order_by(Building.id)).first()
        assert building is not None
        s.add_all([Person(telegram_id=RESIDENTS + i, display_name=f"居民{i}", building_id=building.id)
                   for i in range(n)])
    return [RESIDENTS + i for i in range(n)]


def test_calls_go_before_a_card_and_a_broadcast_queued_earlier_and_reach_notify_off(
        demo_factory: sessionmaker[Session]) -> None:
    factory = demo_factory
    quiet, called, other = _residents(factory, 3)
    with session_scope(factory) as s:
        person = s.scalars(select(Person).where(Person.telegram_id == quiet)).one()
        broadcasts.set_notify(s, person, on=False)  # /notify off
        secretary = s.scalars(select(Person).where(Person.telegram_id == SECRETARY)).one()
        branch = s.scalars(select(Branch.id).where(Branch.code == "BR-HPL-01")).one()
        notice = broadcasts.create(s, secretary, audience=BroadcastAudience.residents, branch_id=branch,
                                   text="周六上午停水，请提前储水。")
        broadcasts.queue(s, notice.id, secretary)
        notified = set(s.scalars(select(BroadcastDelivery.chat_id)))
        outbox.enqueue(s, dedupe_key="card:1", kind="card", chat_id=other, payload={"text": "工单 2026-000001 待领单"},
                       not_before=T0 - timedelta(minutes=1))
    assert quiet not in notified and {called, other} <= notified
    _call(factory, quiet)
    _call(factory, called)
    fake = FakeTelegram()

    async def scenario() -> None:
        gate = Gate(period=0.4)
        dispatcher = await _dispatcher(factory, fake, lambda: T0, gate)
        bot = sender_bot("123:ABC", fake)
        await bot.initialize()
        sender = BroadcastSender(bot, factory, limiter=gate)
        await asyncio.wait_for(asyncio.gather(dispatcher.run_once(), sender.run_once()), timeout=120)

    asyncio.run(scenario())
    order = [(int(m["chat_id"]), str(m["text"])) for m in fake.sent_messages()]
    assert sorted(order[:2]) == [(quiet, TEXT), (called, TEXT)], order[:4]  # the calls, at once
    assert order[2] == (other, "工单 2026-000001 待领单"), order[:4]
    rest = order[3:]
    assert rest and all("停水" in text for _, text in rest)  # then the broadcast, to everyone but `quiet`
    assert {chat for chat, _ in rest} == notified
    assert _texts(fake, quiet) == [TEXT]  # /notify off held the broadcast back, not the call


# -- an unknown outcome: once more after 60 s, marked, never a third time ----------------------

def test_an_unconfirmed_call_is_sent_once_more_after_60_s_marked_and_never_a_third_time(
        factory: sessionmaker[Session]) -> None:
    timed_out, confirmed, blocked, notice = 501, 502, 503, 504
    first = _call(factory, timed_out)
    _call(factory, confirmed)
    _call(factory, blocked)
    _call(factory, notice, kind="notice")  # an ordinary kind: at most once
    fake = FakeTelegram()
    fake.fail_next("sendMessage", chat_id=timed_out, timeout="read")  # Telegram carried it out, no answer
    fake.fail_next("sendMessage", chat_id=notice, timeout="read")
    fake.fail_next("sendMessage", chat_id=blocked, status=403)
    clock = Clock()

    async def scenario() -> None:
        d = await _dispatcher(factory, fake, clock)
        stats = await d.run_once()
        assert (stats.sent, stats.unconfirmed, stats.failed) == (1, 2, 1)
        clock.at(59)
        assert (await d.run_once()).outcomes == {}  # not yet
        clock.at(60)
        fake.fail_next("sendMessage", chat_id=timed_out, timeout="read")  # the copy's outcome unknown too
        again = await d.run_once()
        assert (again.sent, again.unconfirmed) == (0, 1)
        for seconds in (120, 600, 3600):  # however long we wait: no third time, no copy of anything else
            clock.at(seconds)
            assert (await d.run_once()).outcomes == {}

    asyncio.run(scenario())
    assert _texts(fake, timed_out) == [TEXT, MARK + TEXT]  # both reached the chat: the read timeouts came late
    assert len(fake.calls_to("sendMessage", timed_out)) == 2
    assert _texts(fake, confirmed) == [TEXT]
    assert _texts(fake, blocked) == [] and len(fake.calls_to("sendMessage", blocked)) == 1
    assert _texts(fake, notice) == [TEXT] and len(fake.calls_to("sendMessage", notice)) == 1
    rows = _rows(factory)
    copy = rows[outbox.resend_key(first)]
    assert (copy.kind, copy.chat_id, copy.priority, copy.send_state) == (CALL, timed_out, outbox.PRIORITY_CALLOUT,
                                                                         SendState.unconfirmed)
    assert copy.next_attempt_at == T0 + timedelta(seconds=60)
    assert outbox.resend_key(copy.id) not in rows
    assert len(rows) == 5  # four calls and the one copy
    assert {k: r.send_state for k, r in rows.items() if not k.startswith(outbox.RESEND_PREFIX)} == {
        f"mobilise:1:{timed_out}:{CALL}": SendState.unconfirmed, f"mobilise:1:{confirmed}:{CALL}": SendState.sent,
        f"mobilise:1:{blocked}:{CALL}": SendState.failed, f"mobilise:1:{notice}:notice": SendState.unconfirmed}
    # the copy's button means what the call's does
    [button] = fake.last_keyboard(timed_out)
    with session_scope(factory) as s:
        assert buttons.resolve(s, button["callback_data"]) == (True, ACK["callback_data"])


def test_the_copy_goes_out_when_its_minute_is_up_and_reaches_the_chat_once(factory: sessionmaker[Session]) -> None:
    """The copy of a call whose read timed out, sent when due; it was confirmed: nothing more."""
    _call(factory, 601)
    fake = FakeTelegram()
    fake.fail_next("sendMessage", chat_id=601, timeout="write")  # written in part: Telegram may have it
    clock = Clock()

    async def scenario() -> None:
        d = await _dispatcher(factory, fake, clock)
        assert (await d.run_once()).unconfirmed == 1
        clock.at(60)
        assert (await d.run_once()).sent == 1
        clock.at(600)
        assert (await d.run_once()).outcomes == {}

    asyncio.run(scenario())
    assert _texts(fake, 601) == [MARK + TEXT]  # the write timed out before Telegram had it: the copy is the call


class _Hanging(FakeTelegram):
    """A Telegram that never answers requests to one chat (the dispatcher is killed meanwhile)."""

    def __init__(self, hang_chat: int) -> None:
        super().__init__()
        self.hang_chat = hang_chat
        self.reached = asyncio.Event()

    async def do_request(self, url: str, method: str, request_data: Any = None, *args: Any,
                         **kwargs: Any) -> tuple[int, bytes]:
        if request_data is not None and request_data.parameters.get("chat_id") == self.hang_chat:
            self.reached.set()
            await asyncio.Event().wait()
        return await super().do_request(url, method, request_data, *args, **kwargs)


def test_a_call_in_flight_when_its_dispatcher_died_is_sent_once_more_a_minute_after_its_request(
        factory: sessionmaker[Session]) -> None:
    chats = [701, 702, 703, 704, 705, 706]
    for chat in chats:
        _call(factory, chat)
    clock = Clock()
    fake = FakeTelegram()
    hanging = _Hanging(702)

    def settled() -> int:
        return sum(1 for key, row in _rows(factory).items() if row.send_state is SendState.sent)

    async def scenario() -> None:
        killed = await _dispatcher(factory, hanging, clock)
        task = asyncio.create_task(killed.run_once())
        await asyncio.wait_for(hanging.reached.wait(), timeout=30)
        for _ in range(600):  # the other workers send the other calls meanwhile
            if settled() == len(chats) - 1:
                break
            await asyncio.sleep(0.05)
        task.cancel()  # the process dies with the request to 702 in flight
        with pytest.raises(asyncio.CancelledError):
            await task
        d = await _dispatcher(factory, fake, clock)
        clock.at(59)
        assert (await d.run_once()).outcomes == {}  # the dead dispatcher's lease still holds the call
        clock.at(60)  # the lease (60 s from the request) is up, and so is the copy's minute
        assert (await d.run_once()).sent == 1
        clock.at(3600)
        assert (await d.run_once()).outcomes == {}

    asyncio.run(scenario())
    for chat in chats:
        if chat != 702:
            assert _texts(hanging, chat) == [TEXT] and _texts(fake, chat) == [], chat
    assert _texts(fake, 702) == [MARK + TEXT]  # the request in flight never reached Telegram: the copy is the call
    rows = _rows(factory)
    assert rows[f"mobilise:1:702:{CALL}"].send_state is SendState.unconfirmed
    assert [(r.chat_id, r.send_state) for k, r in rows.items() if k.startswith(outbox.RESEND_PREFIX)] == [
        (702, SendState.sent)]


class _Slow(FakeTelegram):
    """A Telegram 50 ms away; the most requests under way at once, by whether they are calls."""

    def __init__(self) -> None:
        super().__init__()
        self.under_way = {True: 0, False: 0}
        self.most = {True: 0, False: 0}

    async def do_request(self, url: str, method: str, request_data: Any = None, *args: Any,
                         **kwargs: Any) -> tuple[int, bytes]:
        call = "召集" in str((request_data.parameters if request_data is not None else {}).get("text"))
        self.under_way[call] += 1
        self.most[call] = max(self.most[call], self.under_way[call])
        try:
            await asyncio.sleep(0.05)
            return await super().do_request(url, method, request_data, *args, **kwargs)
        finally:
            self.under_way[call] -= 1


def test_calls_go_to_several_chats_at_once_each_chat_s_in_order(factory: sessionmaker[Session]) -> None:
    """A call-out to many people is not paced by one request's round trip: FAN_OUT chats at a
    time; two calls to one chat (two incidents) keep their order; other kinds one at a time."""
    chats = list(range(901, 913))
    with session_scope(factory) as s:
        for incident in (1, 2):
            for chat in chats:
                outbox.enqueue(s, dedupe_key=f"mobilise:{incident}:{chat}", kind=CALL, chat_id=chat,
                               payload={"text": f"{incident}号召集"}, not_before=T0)
        for chat in chats[:4]:
            outbox.enqueue(s, dedupe_key=f"card:{chat}", kind="card", chat_id=chat, payload={"text": "工单"},
                           not_before=T0)
    fake = _Slow()

    async def scenario() -> None:
        d = await _dispatcher(factory, fake, lambda: T0, RateLimiter(per_chat=0.0))
        d.batch = 100
        assert (await d.run_once()).sent == 2 * len(chats) + 4

    asyncio.run(scenario())
    assert 1 < fake.most[True] <= dispatcher.FAN_OUT and fake.most[False] == 1, fake.most
    for chat in chats:
        assert _texts(fake, chat) == ["1号召集", "2号召集"] + (["工单"] if chat in chats[:4] else []), chat


def test_a_late_confirmation_calls_off_the_copy_still_waiting(factory: sessionmaker[Session]) -> None:
    """A dispatcher that hung past its lease: another one settled the call `unconfirmed` and queued
    the copy; then the first one's answer came after all. The call was confirmed: no copy."""
    first = _call(factory, 801)
    with session_scope(factory) as s:
        [claimed] = outbox.claim(s, now=T0)
        assert outbox.begin_request(s, claimed.id, claimed.attempts, now=T0)
    with session_scope(factory) as s:
        assert outbox.settle_abandoned(s, now=T0 + timedelta(seconds=61)) == 1
    assert outbox.resend_key(first) in _rows(factory)
    with session_scope(factory) as s:
        assert outbox.mark_sent(s, claimed.id, 42, T0 + timedelta(seconds=62), token=claimed.attempts, kind=CALL)
    rows = _rows(factory)
    assert outbox.resend_key(first) not in rows and rows[f"mobilise:1:801:{CALL}"].send_state is SendState.sent
    with session_scope(factory) as s:  # and another settlement finds nothing to resend
        assert outbox.settle_abandoned(s, now=T0 + timedelta(minutes=5)) == 0
    assert len(_rows(factory)) == 1


def test_answering_the_call_calls_off_its_copy(demo_factory: sessionmaker[Session]) -> None:
    """The commander declares (core.mobilise); two calls end unconfirmed. One of the two answers
    到 before the minute is up: the call got there, so no 重发; the other gets the copy."""
    factory = demo_factory
    with session_scope(factory) as s:
        commander = s.scalars(select(Person).where(Person.code == "P-0069")).one()
        grid = s.scalars(select(Grid.id).where(Grid.code == "G-HPL-01")).one()
        incident, called = declare.declare(s, commander, IncidentKind.fire, AreaLevel.grids, grid_ids=[grid],
                                           order="3号楼火情，到东门集合", now=T0, tz=TZ)
        incident_id = incident.id
        people = list(s.scalars(select(Person).join(IncidentCall, IncidentCall.person_id == Person.id)
                                .where(IncidentCall.incident_id == incident_id).order_by(Person.id)))
        answering, silent = people[0], people[1]
    assert called == len(people) >= 2
    fake = FakeTelegram()
    for person in (answering, silent):
        fake.fail_next("sendMessage", chat_id=person.telegram_id, timeout="read")
    clock = Clock(utcnow())  # the calls were queued on the real clock, a moment ago

    async def scenario(until: float) -> None:
        d = await _dispatcher(factory, fake, clock)
        while (await d.run_once()).outcomes:
            pass
        clock.at(until)
        while (await d.run_once()).outcomes:
            pass

    asyncio.run(scenario(until=10))
    with session_scope(factory) as s:
        answers.answer(s, s.get(Person, answering.id), incident_id, Answer.coming,
                       now=clock.start + timedelta(seconds=10), tz=TZ)
    asyncio.run(scenario(until=60))
    assert [t.startswith(MARK) for t in _texts(fake, answering.telegram_id)] == [False]
    assert [t.startswith(MARK) for t in _texts(fake, silent.telegram_id)] == [False, True]
    copies = [r for k, r in _rows(factory).items() if k.startswith(outbox.RESEND_PREFIX)]
    assert [(r.chat_id, r.send_state) for r in copies] == [(silent.telegram_id, SendState.sent)]
