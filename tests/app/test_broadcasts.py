"""Broadcasts: audiences and permissions (core.broadcasts.service) and the sender (bot.broadcast_sender)
against python-telegram-bot's real Bot and the fake Telegram."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.broadcast_sender import (
    _MARK,
    BroadcastSender,
    LastByteRequest,
    NotTaken,
    sender_bot,
)
from bot.dispatcher import OutboxDispatcher
from bot.ratelimit import BURST_429, RateLimiter
from core import audit
from core.access.permissions import NotAllowed
from core.broadcasts import service as broadcasts
from core.db import session_scope
from core.models import (
    Branch,
    BroadcastAudience,
    BroadcastDelivery,
    BroadcastState,
    Building,
    DeliveryState,
    Grid,
    Person,
    Role,
    RoleGrant,
)
from core.presentation import callbacks
from tests.app.telegram_fake import FakeTelegram

SECRETARY, MEMBER, OUTSIDER, ADMIN = 700000001, 700000002, 700000009, 700000069
A = BroadcastAudience
RESIDENT_BASE = 810_000_000


def _person(s: Session, telegram_id: int) -> Person:
    return s.scalars(select(Person).where(Person.telegram_id == telegram_id)).one()


def _branch(s: Session, code: str) -> Branch:
    return s.scalars(select(Branch).where(Branch.code == code)).one()


def _add_residents(factory: sessionmaker[Session], n: int, grid_code: str = "G-HPL-01",
                   base: int = RESIDENT_BASE) -> list[int]:
    """n residents living in the grid; their telegram ids."""
    with session_scope(factory) as s:
        grid = s.scalars(select(Grid).where(Grid.code == grid_code)).one()
        building = s.scalars(select(Building).where(Building.grid_id == grid.id).order_by(Building.id)).first()
        assert building is not None
        s.add_all([Person(telegram_id=base + i, display_name=f"居民{i}", building_id=building.id)
                   for i in range(n)])
    return [base + i for i in range(n)]


def _queued(factory: sessionmaker[Session], audience: BroadcastAudience = A.residents, *,
            essential: bool = False, read_button: bool = False, text: str = "周六上午停水，请提前储水。",
            progress: bool = True) -> int:
    with session_scope(factory) as s:
        sec = _person(s, SECRETARY)
        branch = _branch(s, "BR-HPL-01")
        b = broadcasts.create(s, sec, audience=audience, text=text, branch_id=branch.id,
                              essential=essential, read_button=read_button,
                              progress_chat_id=SECRETARY if progress else None)
        broadcasts.queue(s, b.id, sec)
        return b.id


def _deliveries(factory: sessionmaker[Session], broadcast_id: int) -> dict[int, BroadcastDelivery]:
    with session_scope(factory) as s:
        return {d.chat_id: d for d in s.scalars(select(BroadcastDelivery).where(
            BroadcastDelivery.broadcast_id == broadcast_id))}


async def _sender(factory: sessionmaker[Session], fake: FakeTelegram, **kwargs: object) -> BroadcastSender:
    bot = sender_bot("123:ABC", fake)
    await bot.initialize()
    return BroadcastSender(bot, factory, **kwargs)  # type: ignore[arg-type]


def _notices(fake: FakeTelegram) -> list[int]:
    """Chat ids that received the notice (not the progress message)."""
    return [int(m["chat_id"]) for m in fake.sent_messages() if "停水" in str(m.get("text", ""))]


# -- audiences and permissions --------------------------------------------------------------

def test_secretary_addresses_own_branch_only_admin_whole_community(demo_factory) -> None:  # type: ignore[no-untyped-def]
    _add_residents(demo_factory, 3)
    with session_scope(demo_factory) as s:
        sec, admin, member = _person(s, SECRETARY), _person(s, ADMIN), _person(s, MEMBER)
        own, other = _branch(s, "BR-HPL-01"), _branch(s, "BR-HPL-02")
        kinds = {(c.audience, c.branch_id) for c in broadcasts.choices(s, sec)}
        assert kinds == {(A.members, own.id), (A.residents, own.id), (A.volunteers, own.id)}
        members = next(c for c in broadcasts.choices(s, sec) if c.audience is A.members)
        assert members.count == 7 and "和平里第一网格党支部" in members.label
        with pytest.raises(NotAllowed):
            broadcasts.create(s, sec, audience=A.members, text="x", branch_id=other.id)
        with pytest.raises(NotAllowed):
            broadcasts.create(s, sec, audience=A.community, text="x", community_id=1)
        with pytest.raises(NotAllowed):
            broadcasts.create(s, member, audience=A.members, text="x", branch_id=own.id)
        assert broadcasts.choices(s, member) == []
        grid = s.get(Grid, own.grid_id)
        assert grid is not None
        admin_choices = broadcasts.choices(s, admin)
        community = [c for c in admin_choices if c.audience is A.community]
        assert len(community) == 1 and community[0].count >= 10
        b = broadcasts.create(s, admin, audience=A.community, text="社区通知", community_id=grid.community_id)
        assert broadcasts.preview_count(s, b) == community[0].count
        # residents: everyone bound to a building in the grid (the three added, demo people)
        living = s.scalars(select(Person).join(Building, Building.id == Person.building_id).where(
            Building.grid_id == own.grid_id, Person.telegram_id.is_not(None))).all()
        res = broadcasts.create(s, sec, audience=A.residents, text="x", branch_id=own.id)
        assert broadcasts.preview_count(s, res) == len(living) >= 3 + 6


def test_volunteers_audience_and_notify_off(demo_factory) -> None:  # type: ignore[no-untyped-def]
    [v1, v2] = _add_residents(demo_factory, 2)
    with session_scope(demo_factory) as s:
        own = _branch(s, "BR-HPL-01")
        for tg in (v1, v2):
            s.add(RoleGrant(person_id=_person(s, tg).id, role=Role.volunteer, branch_id=own.id))
        broadcasts.set_notify(s, _person(s, v2), on=False)
    with session_scope(demo_factory) as s:
        sec = _person(s, SECRETARY)
        own = _branch(s, "BR-HPL-01")
        plain = broadcasts.create(s, sec, audience=A.volunteers, text="志愿者集合", branch_id=own.id)
        urgent = broadcasts.create(s, sec, audience=A.volunteers, text="紧急集合", branch_id=own.id,
                                   essential=True)
        broadcasts.queue(s, plain.id, sec)
        broadcasts.queue(s, urgent.id, sec)
        broadcasts.queue(s, plain.id, sec)  # twice: nobody is added twice
        plain_chats = {d.chat_id for d in s.scalars(select(BroadcastDelivery).where(
            BroadcastDelivery.broadcast_id == plain.id))}
        urgent_chats = {d.chat_id for d in s.scalars(select(BroadcastDelivery).where(
            BroadcastDelivery.broadcast_id == urgent.id))}
        assert v1 in plain_chats and v2 not in plain_chats and urgent_chats == plain_chats | {v2}
        assert plain.recipients == len(plain_chats) and plain.state is BroadcastState.queued
        logged = audit.entries(s, action="broadcast.send")
        assert len(logged) == 2  # the second queue of `plain` is not a second send
        assert logged[-1].detail["recipients"] == len(plain_chats) and "志愿者" not in str(logged[-1].detail)


def test_read_counted_once_and_only_for_recipients(demo_factory) -> None:  # type: ignore[no-untyped-def]
    [r1, r2] = _add_residents(demo_factory, 2)
    bid = _queued(demo_factory, read_button=True)
    with session_scope(demo_factory) as s:
        for d in s.scalars(select(BroadcastDelivery).where(BroadcastDelivery.broadcast_id == bid)):
            broadcasts.mark_sent(s, d.id, 1)
    with session_scope(demo_factory) as s:
        assert broadcasts.mark_read(s, bid, r1) == "read"
        assert broadcasts.mark_read(s, bid, r1) == "again"
        assert broadcasts.mark_read(s, bid, 123456) == "stranger"
        assert broadcasts.mark_read(s, bid, ADMIN) == "stranger"  # known, but not a recipient
        assert broadcasts.counts(s, bid)["read"] == 1
        assert callbacks.parse_read(f"bc:r:{bid}") == bid and callbacks.parse_read("bc:r:x") is None
    assert r2


# -- the sender -------------------------------------------------------------------------------

def test_sends_each_recipient_once_with_progress_and_report(sqlite_demo_factory) -> None:  # type: ignore[no-untyped-def]
    factory = sqlite_demo_factory
    chats = _add_residents(factory, 12)
    bid = _queued(factory, read_button=True)
    fake = FakeTelegram()

    async def scenario() -> None:
        sender = await _sender(factory, fake, progress_every=0.0)
        assert await sender.run_once() == 1
        await OutboxDispatcher(sender.bot, factory).run_once()  # the final report

    asyncio.run(scenario())
    got = _notices(fake)
    assert sorted(got) == sorted(set(got)) and set(chats) <= set(got)
    first = fake.sent_messages(chats[0])[0]
    assert first["text"].startswith("【和平里第一网格党支部通知】") or "和平里" in first["text"]
    assert fake.last_keyboard(chats[0]) == [{"text": "已读", "callback_data": f"bc:r:{bid}"}]
    total = len(got)
    progress = fake.sent_messages(SECRETARY)[0]
    edits = fake.calls_to("editMessageText", SECRETARY)
    assert progress["text"].startswith("已发送 0/")
    assert edits and edits[-1].params["text"] == f"已发送 {total}/{total}"
    assert fake.message(SECRETARY, progress["message_id"])["text"] == f"已发送 {total}/{total}"
    report = fake.sent_messages(SECRETARY)[-1]["text"]
    assert f"共 {total} 人，已送达 {total} 人，已屏蔽机器人 0 人，发送失败 0 人" in report
    assert "已读 0/" in report
    with session_scope(factory) as s:
        b = s.get(broadcasts.Broadcast, bid)
        assert b is not None and b.state is BroadcastState.done and b.finished_at is not None


def test_resume_after_crash_sends_no_duplicates(sqlite_demo_factory) -> None:  # type: ignore[no-untyped-def]
    factory = sqlite_demo_factory
    chats = _add_residents(factory, 30)
    bid = _queued(factory, progress=False)
    # The first sender got through 10 recipients and died during the 11th send.
    with session_scope(factory) as s:
        rows = list(s.scalars(select(BroadcastDelivery).where(BroadcastDelivery.broadcast_id == bid)
                              .order_by(BroadcastDelivery.id)))
        for d in rows[:10]:
            assert broadcasts.mark_sending(s, d.id)
            broadcasts.mark_sent(s, d.id, 1)
        assert broadcasts.mark_sending(s, rows[10].id)
        done_before = {d.chat_id for d in rows[:10]}
        in_flight = rows[10].chat_id
    fake = FakeTelegram()

    async def scenario() -> None:
        sender = await _sender(factory, fake)
        await sender.run_once()
        assert (sender.stats.sent, sender.stats.retried) == (len(rows) - 11, 0)
        again = await _sender(factory, fake)  # a third start finds nothing left to send
        await again.run_once()

    asyncio.run(scenario())
    got = _notices(fake)
    assert len(got) == len(set(got)) == len(rows) - 11
    assert not (set(got) & done_before) and in_flight not in got
    states = {c: d.state for c, d in _deliveries(factory, bid).items()}
    assert states[in_flight] is DeliveryState.unconfirmed
    assert all(states[c] is DeliveryState.sent for c in chats if c != in_flight)
    with session_scope(factory) as s:
        c = broadcasts.counts(s, bid)
        assert "1 人发送时程序中断" in broadcasts.report_text(c, False)


def test_blocked_recipient_is_marked_and_not_retried(sqlite_demo_factory) -> None:  # type: ignore[no-untyped-def]
    factory = sqlite_demo_factory
    chats = _add_residents(factory, 3)
    bid = _queued(factory, progress=False)
    fake = FakeTelegram()
    fake.fail_next("sendMessage", chats[1], status=403)

    async def scenario() -> None:
        sender = await _sender(factory, fake)
        await sender.run_once()
        await sender.run_once()
        assert sender.stats.blocked == 1

    asyncio.run(scenario())
    assert len(fake.calls_to("sendMessage", chats[1])) == 1
    d = _deliveries(factory, bid)
    assert d[chats[1]].state is DeliveryState.blocked and d[chats[0]].state is DeliveryState.sent
    with session_scope(factory) as s:
        assert broadcasts.counts(s, bid)["blocked"] == 1


def test_retry_after_pauses_that_chat_then_succeeds(sqlite_demo_factory) -> None:  # type: ignore[no-untyped-def]
    factory = sqlite_demo_factory
    chats = _add_residents(factory, 3)
    bid = _queued(factory, progress=False)
    fake = FakeTelegram()
    fake.fail_next("sendMessage", chats[0], status=429, retry_after=1)

    async def scenario() -> None:
        sender = await _sender(factory, fake)
        await sender.run_once()
        assert sender.stats.retried == 1

    asyncio.run(scenario())
    calls = fake.calls_to("sendMessage", chats[0])
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 0.99
    others = [c.at for c in fake.calls_to("sendMessage") if c.chat_id != chats[0] and c.ok]
    assert min(others) < calls[0].at + 0.9  # the others did not wait for it
    d = _deliveries(factory, bid)[chats[0]]
    assert d.state is DeliveryState.sent and d.attempts == 1


def test_burst_of_retry_after_pauses_every_send() -> None:
    async def scenario() -> None:
        limiter = RateLimiter()
        assert not any(limiter.retry_after(1.0) for _ in range(BURST_429 - 1))  # single recipients
        assert limiter.retry_after(1.0)  # one more within the second: the bot as a whole is limited
        start = time.monotonic()
        await limiter.acquire(42)
        assert time.monotonic() - start >= 0.95

    asyncio.run(scenario())


def test_rate_limiter_allows_thirty_per_period_and_one_per_chat() -> None:
    async def scenario() -> None:
        limiter = RateLimiter(rate=30, period=0.5, per_chat=0.3, chat_burst=1)
        start = time.monotonic()
        for chat in range(31):
            await limiter.acquire(chat)
        assert time.monotonic() - start >= 0.49  # the 31st waited for the window
        before = time.monotonic()
        await limiter.acquire(100)
        await limiter.acquire(100)
        assert time.monotonic() - before >= 0.29

    asyncio.run(scenario())


def test_rate_limiter_counts_a_late_request_from_when_it_went_out() -> None:
    """A slot whose request left late (a slow commit in between) holds the window from then on:
    Telegram counts arrivals, not our slots."""
    async def scenario() -> float:
        limiter = RateLimiter(rate=3, period=0.3, per_chat=0.0)
        await asyncio.sleep(0.35)  # the start-up's assumed full window has passed
        t0 = time.monotonic()
        first = await limiter.acquire(1)
        await asyncio.sleep(0.15)
        limiter.sent(first, 1)  # its request goes out only now
        await limiter.acquire(2)
        await limiter.acquire(3)
        await limiter.acquire(4)  # the fourth in a window: waits for the first's real time + period
        return time.monotonic() - t0

    assert asyncio.run(scenario()) >= 0.44  # from the slot's time it would have been 0.3


def test_notify_off_is_respected_and_essential_still_delivered(sqlite_demo_factory) -> None:  # type: ignore[no-untyped-def]
    factory = sqlite_demo_factory
    [quiet, loud] = _add_residents(factory, 2)
    with session_scope(factory) as s:
        broadcasts.set_notify(s, _person(s, quiet), on=False)
    plain = _queued(factory, progress=False)
    urgent = _queued(factory, essential=True, progress=False, text="明天停水，紧急通知。")
    fake = FakeTelegram()

    async def scenario() -> None:
        sender = await _sender(factory, fake)
        assert await sender.run_once() == 2

    asyncio.run(scenario())
    quiet_texts = [m["text"] for m in fake.sent_messages(quiet)]
    loud_texts = [m["text"] for m in fake.sent_messages(loud)]
    assert len(quiet_texts) == 1 and "紧急通知" in quiet_texts[0] and "重要通知" in quiet_texts[0]
    assert len(loud_texts) == 2
    assert quiet not in _deliveries(factory, plain) and quiet in _deliveries(factory, urgent)


def test_failures_retry_with_backoff_then_fail(sqlite_demo_factory) -> None:  # type: ignore[no-untyped-def]
    factory = sqlite_demo_factory
    [chat] = _add_residents(factory, 1)
    bid = _queued(factory, audience=A.residents, progress=False)
    with session_scope(factory) as s:
        row = s.scalars(select(BroadcastDelivery).where(BroadcastDelivery.broadcast_id == bid,
                                                        BroadcastDelivery.chat_id == chat)).one()
        for _ in range(broadcasts.MAX_ATTEMPTS - 1):
            assert broadcasts.mark_sending(s, row.id)
            assert broadcasts.retry_later(s, row.id, "NetworkError") is DeliveryState.pending
        s.refresh(row)
        assert (row.next_attempt_at - broadcasts.utcnow()).total_seconds() > 30  # backoff grew
        assert broadcasts.mark_sending(s, row.id)
        assert broadcasts.retry_later(s, row.id, "NetworkError") is DeliveryState.failed


def test_a_row_taken_meanwhile_is_not_sent(sqlite_demo_factory) -> None:  # type: ignore[no-untyped-def]
    """The 'sending' commit is the last step before the request: a row that stopped being pending
    after it was claimed (another sender, a cancel) goes out to nobody."""
    factory = sqlite_demo_factory
    [chat] = _add_residents(factory, 1)
    bid = _queued(factory, progress=False)
    fake = FakeTelegram()

    async def scenario() -> None:
        sender = await _sender(factory, fake)
        with session_scope(factory) as s:
            [due] = [d for d in broadcasts.claim_due(s, bid) if d.chat_id == chat]
            broadcasts.mark_failed(s, due.id, "cancelled")
        assert await sender._send(due, {"text": "停水"}) == "skipped"

    asyncio.run(scenario())
    assert fake.calls_to("sendMessage", chat) == []


def test_photo_notice_and_schedule(sqlite_demo_factory) -> None:  # type: ignore[no-untyped-def]
    """A photo goes out as one sendPhoto with the text as caption and the 已读 button; a notice
    scheduled for later is not sent before its time."""
    factory = sqlite_demo_factory
    [chat] = _add_residents(factory, 1)
    with session_scope(factory) as s:
        sec, branch = _person(s, SECRETARY), _branch(s, "BR-HPL-01")
        photo = broadcasts.create(s, sec, audience=A.residents, branch_id=branch.id, text="停水范围见图",
                                  photo_file_id="photo-file-1", read_button=True)
        broadcasts.queue(s, photo.id, sec)
        later = broadcasts.create(s, sec, audience=A.residents, branch_id=branch.id, text="明天停水")
        broadcasts.queue(s, later.id, sec, scheduled_at=broadcasts.utcnow() + timedelta(hours=2))
        photo_id, later_id = photo.id, later.id
        with pytest.raises(NotAllowed):
            broadcasts.create(s, sec, audience=A.residents, branch_id=branch.id, text="长" * 1000,
                              photo_file_id="photo-file-2")
    fake = FakeTelegram()

    async def scenario() -> None:
        sender = await _sender(factory, fake)
        assert await sender.run_once() == 1

    asyncio.run(scenario())
    [sent] = [c for c in fake.calls_to("sendPhoto", chat)]
    assert sent.params["photo"] == "photo-file-1" and "停水范围见图" in sent.params["caption"]
    assert fake.last_keyboard(chat) == [{"text": "已读", "callback_data": f"bc:r:{photo_id}"}]
    assert all("明天停水" not in str(c.params.get("text")) for c in fake.calls)
    with session_scope(factory) as s:
        assert s.get(broadcasts.Broadcast, later_id).state is BroadcastState.queued  # type: ignore[union-attr]
        assert broadcasts.due_broadcasts(s, broadcasts.utcnow() + timedelta(hours=3)) == [later_id]


def test_timeouts_retry_only_when_nothing_was_sent(sqlite_demo_factory) -> None:  # type: ignore[no-untyped-def]
    """A read timeout may have delivered the notice: unconfirmed, never resent. A pool or connect
    timeout happened before the request was written: retried."""
    import httpx
    from telegram.error import TimedOut

    factory = sqlite_demo_factory
    [maybe, never] = _add_residents(factory, 2)
    bid = _queued(factory, progress=False)
    read_timeout, pool_timeout = TimedOut(), TimedOut("Pool timeout")
    read_timeout.__cause__ = httpx.ReadTimeout("read")
    pool_timeout.__cause__ = httpx.PoolTimeout("pool")
    fake = FakeTelegram()
    fake.fail_next("sendMessage", maybe, exception=read_timeout)
    fake.fail_next("sendMessage", never, exception=pool_timeout)

    async def scenario() -> None:
        sender = await _sender(factory, fake)
        with session_scope(factory) as s:
            due = {d.chat_id: d for d in broadcasts.claim_due(s, bid)}
        payload = {"text": "停水"}
        assert await sender._send(due[maybe], payload) == "unconfirmed"
        assert await sender._send(due[never], payload) == "retried"

    asyncio.run(scenario())
    d = _deliveries(factory, bid)
    assert d[maybe].state is DeliveryState.unconfirmed
    assert d[never].state is DeliveryState.pending and d[never].last_error.startswith("TimedOut")


async def _http_server(seen: list[dict[str, object]]) -> tuple[asyncio.AbstractServer, int]:
    """A minimal Bot API over HTTP/1.1 that records what arrived of each request's body."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length"))
            try:
                body = await reader.readexactly(length)
            except asyncio.IncompleteReadError as cut:
                seen.append({"length": length, "got": len(cut.partial), "complete": False})
                break
            seen.append({"length": length, "got": len(body), "complete": True})
            answer = (b'{"ok":true,"result":{"message_id":7,"date":0,'
                      b'"chat":{"id":5,"type":"private"},"text":"x"}}')
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(answer)).encode() + b"\r\n\r\n" + answer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("taken", [True, False])
def test_last_byte_request_commits_before_the_last_byte(taken: bool) -> None:
    """The 'sending' commit runs when Telegram has all of the request but its last byte: if the
    row was no longer pending, the request stays incomplete and nothing is sent."""
    seen: list[dict[str, object]] = []
    marks: list[int] = []

    async def scenario() -> object:
        server, port = await _http_server(seen)
        request = LastByteRequest()
        bot = sender_bot("123:TEST", request, base_url=f"http://127.0.0.1:{port}/bot")
        await request.initialize()

        def mark() -> bool:
            marks.append(len(seen))  # no request had been completed yet
            return taken

        token = _MARK.set(mark)
        try:
            first: object = await bot.send_message(5, "明天上午停水，请提前储水。")
        except NotTaken as exc:
            first = exc
        finally:
            _MARK.reset(token)
        try:
            after = await bot.send_message(6, "下一位")  # the broken connection is not reused
            assert after.message_id == 7
            return first
        finally:
            await request.shutdown()
            await asyncio.sleep(0.05)  # let the server see the connection close
            server.close()
            await server.wait_closed()

    result = asyncio.run(scenario())
    assert marks == [0]
    complete = [e for e in seen if e["complete"]]
    cut = [e for e in seen if not e["complete"]]
    assert all(int(e["length"]) > 10 for e in seen)  # type: ignore[call-overload]
    if taken:
        assert getattr(result, "message_id", None) == 7
        assert len(complete) == 2 and not cut
    else:
        assert isinstance(result, NotTaken)
        assert len(complete) == 1  # only the following message
        [arrived] = cut
        assert arrived["got"] == int(arrived["length"]) - 1  # type: ignore[call-overload]
