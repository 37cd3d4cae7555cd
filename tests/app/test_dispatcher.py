"""The outbox dispatcher against python-telegram-bot's real Bot and a fake Telegram."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from telegram import Bot
from telegram.error import NetworkError

from bot.dispatcher import OutboxDispatcher
from bot.ratelimit import RateLimiter
from bot.textsplit import split_message, utf16_len
from core.db import session_scope
from core.messaging import buttons, outbox
from core.models import OutboxMessage, SendState, utcnow
from tests.app.telegram_fake import FakeTelegram


def _queue(factory: sessionmaker[Session], key: str, chat_id: int, **payload: object) -> None:
    with session_scope(factory) as s:
        outbox.enqueue(s, dedupe_key=key, kind="notice", chat_id=chat_id, payload=dict(payload))


def _make_due(factory: sessionmaker[Session]) -> None:
    """Let time pass: every pending message is due now."""
    with session_scope(factory) as s:
        s.execute(update(OutboxMessage).where(OutboxMessage.send_state == SendState.pending)
                  .values(next_attempt_at=utcnow() - timedelta(seconds=1)))


def _states(factory: sessionmaker[Session]) -> dict[str, tuple[SendState, int]]:
    with session_scope(factory) as s:
        return {m.dedupe_key: (m.send_state, m.attempts) for m in s.scalars(select(OutboxMessage))}


async def _dispatcher(factory: sessionmaker[Session], fake: FakeTelegram,
                      limiter: RateLimiter | None = None) -> OutboxDispatcher:
    bot = Bot("123:ABC", request=fake)
    await bot.initialize()
    return OutboxDispatcher(bot, factory, limiter=limiter)


def test_sends_queued_messages_with_buttons_once(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = FakeTelegram()
    _queue(factory, "a", 501, text="工单 2026-000001 已受理", buttons=[[{"text": "领单", "callback_data": "claim:1"}]])
    _queue(factory, "b", 502, text="您好")

    async def scenario() -> None:
        d = await _dispatcher(factory, fake)
        stats = await d.run_once()
        assert (stats.sent, stats.retried, stats.failed) == (2, 0, 0)
        again = await d.run_once()
        assert again.outcomes == {}

    asyncio.run(scenario())
    assert [m["text"] for m in fake.sent_messages(501)] == ["工单 2026-000001 已受理"]
    [sent] = fake.last_keyboard(501)
    assert sent["text"] == "领单" and sent["callback_data"].startswith("b:")  # a token, not the data
    with session_scope(factory) as s:
        assert buttons.resolve(s, sent["callback_data"]) == (True, "claim:1")
    assert _states(factory) == {"a": (SendState.sent, 1), "b": (SendState.sent, 1)}


@pytest.mark.parametrize(
    ("status", "expected_state", "delivered_after_retry"),
    [(429, SendState.sent, True), (500, SendState.sent, True), (403, SendState.failed, False)],
)
def test_telegram_errors(engine, status: int, expected_state: SendState, delivered_after_retry: bool) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(engine, expire_on_commit=False)
    fake = FakeTelegram()
    _queue(factory, "card", -100200, text="紧急工单")
    _queue(factory, "other", 601, text="另一条")
    fake.fail_next("sendMessage", chat_id=-100200, status=status, retry_after=2 if status == 429 else None)

    async def scenario() -> None:
        d = await _dispatcher(factory, fake)
        first = await d.run_once()
        assert first.sent == 1  # the other chat is not held up
        assert await d.run_once() == type(first)()  # not due yet / never again
        _make_due(factory)
        await d.run_once()

    asyncio.run(scenario())
    state, attempts = _states(factory)["card"]
    assert state is expected_state
    delivered = [m for m in fake.sent_messages(-100200) if m["text"] == "紧急工单"]
    assert len(delivered) == (1 if delivered_after_retry else 0)  # never twice
    # a 429 is Telegram's pace, not a failed attempt: it does not count
    assert attempts == (1 if status in (429, 403) else 2)
    with session_scope(factory) as s:
        row = s.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == "card"))
        assert row is not None
        if status == 403:
            assert row.last_error is not None and "blocked" in row.last_error
        else:
            assert row.last_error is None and row.telegram_message_id is not None


def test_long_text_is_split_and_buttons_go_on_the_last_piece(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = FakeTelegram()
    long_text = "\n".join(f"第{i}行：" + "楼道堆物严重" * 20 for i in range(80))
    assert len(long_text) > 4096
    _queue(factory, "long", 700, text=long_text, buttons=[[{"text": "已读", "callback_data": "read:1"}]])

    async def scenario() -> None:
        d = await _dispatcher(factory, fake)
        assert (await d.run_once()).sent == 1

    asyncio.run(scenario())
    sent = fake.sent_messages(700)
    assert len(sent) == len(split_message(long_text)) >= 2
    assert all(len(m["text"]) <= 4096 for m in sent)
    assert "".join(m["text"] for m in sent).replace("\n", "") == long_text.replace("\n", "")
    assert [bool(m.get("reply_markup")) for m in sent] == [False] * (len(sent) - 1) + [True]


@pytest.mark.parametrize("length", [0, 1, 4096, 4097, 10000])
def test_split_message_bounds(length: int) -> None:
    text = "电" * length
    pieces = split_message(text)
    assert all(len(p) <= 4096 for p in pieces)
    assert "".join(pieces) == text
    assert split_message("一句话。" * 1500)[0].endswith("。")


@pytest.mark.parametrize("text", ["😀" * 3000, ("楼道里堆满了纸箱😡" * 700), "𠀀" * 2049 + "好"])
def test_split_message_counts_as_telegram_does(text: str) -> None:
    """Telegram counts UTF-16 units: an emoji (or a CJK character beyond the BMP) counts twice."""
    pieces = split_message(text)
    assert all(utf16_len(p) <= 4096 for p in pieces) and len(pieces) >= 2
    assert "".join(pieces) == text


def test_run_forever_delivers_what_arrives_while_running_and_stops(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = FakeTelegram()

    async def scenario() -> None:
        d = await _dispatcher(factory, fake)
        stop = asyncio.Event()
        task = asyncio.create_task(d.run_forever(stop, idle_seconds=0.05))
        await asyncio.sleep(0.1)
        _queue(factory, "late", 900, text="运行中加入的通知")
        for _ in range(100):
            if fake.sent_messages(900):
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, timeout=5)

    asyncio.run(scenario())
    assert [m["text"] for m in fake.sent_messages(900)] == ["运行中加入的通知"]
    assert _states(factory)["late"] == (SendState.sent, 1)


@pytest.mark.parametrize("status", [429, 500, 403])
def test_branch_card_under_telegram_errors(demo_factory: sessionmaker[Session], status: int) -> None:
    """The real ticket card (photo, buttons) to the branch group: retried, counted, never sent twice,
    and the ticket's own status is not touched by its send state."""
    from zoneinfo import ZoneInfo

    from core.models import Building, Ticket, TicketStatus
    from core.tickets import service as ticket_service
    from core.tickets.lifecycle import NewTicket

    branch_chat = -1001000000001
    with session_scope(demo_factory) as s:
        building = s.scalars(select(Building).where(Building.code == "B-HPL-01-04")).one()
        ticket_id = ticket_service.submit_report(s, NewTicket(
            category_code="sanitation", description="4号楼垃圾三天没清", grid_id=building.grid_id,
            community_id=building.grid.community_id, building_id=building.id, photo_file_ids=["photo-1"],
        ), tz=ZoneInfo("Asia/Shanghai")).id
    fake = FakeTelegram()
    fake.fail_next("sendPhoto", chat_id=branch_chat, status=status, retry_after=1 if status == 429 else None)

    async def scenario() -> None:
        d = await _dispatcher(demo_factory, fake)
        await d.run_once()
        await d.run_once()  # not due yet: nothing is sent again
        _make_due(demo_factory)
        await d.run_once()
        _make_due(demo_factory)
        await d.run_once()

    asyncio.run(scenario())
    cards = [m for m in fake.sent_messages(branch_chat) if m["method"] == "sendPhoto"]
    tries = [c for c in fake.calls_to("sendPhoto", branch_chat)]
    with session_scope(demo_factory) as s:
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == branch_chat)).one()
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None and ticket.status is TicketStatus.accepted
        if status == 403:
            assert cards == [] and len(tries) == 1
            assert row.send_state is SendState.failed and row.attempts == 1 and row.last_error
        else:
            assert len(cards) == 1 and len(tries) == 2  # one failure, one delivery, never twice
            assert row.send_state is SendState.sent and row.attempts == (1 if status == 429 else 2)
            assert cards[0]["photo"] == "photo-1" and "4号楼垃圾三天没清" in cards[0]["caption"]


# -- exactly once: what may have reached Telegram is never sent again, nothing else is lost -----

def _row(factory: sessionmaker[Session], key: str) -> OutboxMessage:
    with session_scope(factory) as s:
        row = s.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == key))
        assert row is not None
        return row


def _expire_leases(factory: sessionmaker[Session]) -> None:
    """Let a lease's time pass: every message being sent is past its lease."""
    with session_scope(factory) as s:
        s.execute(update(OutboxMessage).where(OutboxMessage.send_state == SendState.sending)
                  .values(lease_until=utcnow() - timedelta(seconds=1)))


def _texts(fake: FakeTelegram, chat_id: int) -> list[str]:
    return [m.get("text") or m.get("caption") or "" for m in fake.sent_messages(chat_id)]


@pytest.mark.parametrize("kind", ["read", "write"])
def test_a_timeout_after_the_request_was_written_is_unconfirmed_and_never_sent_again(
        engine, kind: str, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(engine, expire_on_commit=False)
    fake = FakeTelegram()
    _queue(factory, "slow", 501, text="您的工单已受理：楼道灯坏了")
    _queue(factory, "other", 502, text="另一条")
    fake.fail_next("sendMessage", chat_id=501, timeout=kind)

    async def scenario() -> None:
        d = await _dispatcher(factory, fake)
        first = await d.run_once()
        assert (first.sent, first.unconfirmed, first.retried, first.failed) == (1, 1, 0, 0)
        for _ in range(3):  # however long we wait, it is not sent again
            _make_due(factory)
            _expire_leases(factory)
            assert (await d.run_once()).outcomes == {}

    with caplog.at_level("INFO"):
        asyncio.run(scenario())
    row = _row(factory, "slow")
    assert row.send_state is SendState.unconfirmed and not row.in_flight and row.attempts == 1
    assert row.last_error is not None and row.last_error.startswith("TimedOut")
    assert len(fake.calls_to("sendMessage", 501)) == 1  # one request, never repeated
    # a read timeout came after Telegram had carried it out: the resident has it, once
    assert _texts(fake, 501) == (["您的工单已受理：楼道灯坏了"] if kind == "read" else [])
    with session_scope(factory) as s:
        assert outbox.counts(s) == {"sent": 1, "unconfirmed": 1}
    said = [r.getMessage() for r in caplog.records]
    assert any("unconfirmed" in m and "outbox" in m for m in said)
    assert not any("楼道灯坏了" in m for m in said)  # logged without the message text


@pytest.mark.parametrize("failure", [dict(timeout="connect"), dict(timeout="pool"),
                                     dict(exception=NetworkError("httpx.ConnectError: refused")),
                                     dict(status=502)])
def test_a_request_that_reached_nobody_is_retried_and_sent_once(engine, failure: dict) -> None:  # type: ignore[no-untyped-def,type-arg]
    factory = sessionmaker(engine, expire_on_commit=False)
    fake = FakeTelegram()
    _queue(factory, "m", 501, text="通知")
    fake.fail_next("sendMessage", chat_id=501, **failure)

    async def scenario() -> None:
        d = await _dispatcher(factory, fake)
        assert (await d.run_once()).retried == 1
        assert _row(factory, "m").send_state is SendState.pending
        _make_due(factory)
        assert (await d.run_once()).sent == 1

    asyncio.run(scenario())
    row = _row(factory, "m")
    assert (row.send_state, row.attempts, row.pieces_sent) == (SendState.sent, 2, 1)
    assert _texts(fake, 501) == ["通知"] and len(fake.calls_to("sendMessage", 501)) == 2


LONG = "\n".join(f"第{i}条：" + "本周六上午九点在小区广场开展垃圾分类宣传活动，请各位居民准时参加。" * 6 for i in range(60))


@pytest.mark.parametrize(("failure", "counts_attempt"), [
    (dict(status=500), True), (dict(timeout="connect"), True), (dict(status=429, retry_after=1), False)])
def test_a_long_message_resumes_from_the_piece_that_failed(engine, failure: dict,  # type: ignore[no-untyped-def,type-arg]
                                                           counts_attempt: bool) -> None:
    factory = sessionmaker(engine, expire_on_commit=False)
    fake = FakeTelegram()
    pieces = split_message(LONG)
    assert len(pieces) >= 3
    _queue(factory, "long", 700, text=LONG, buttons=[[{"text": "已读", "callback_data": "read:1"}]])
    fake.fail_next("sendMessage", chat_id=700, after=2, **failure)  # the third piece fails

    async def scenario() -> None:
        d = await _dispatcher(factory, fake)
        assert (await d.run_once()).retried == 1
        row = _row(factory, "long")
        assert (row.send_state, row.pieces_sent, row.attempts) == (SendState.pending, 2, int(counts_attempt))
        _make_due(factory)
        assert (await d.run_once()).sent == 1

    asyncio.run(scenario())
    assert _texts(fake, 700) == pieces  # every piece once, in order
    assert len(fake.calls_to("sendMessage", 700)) == len(pieces) + 1  # and one failed request
    assert [bool(m.get("reply_markup")) for m in fake.sent_messages(700)] == [False] * (len(pieces) - 1) + [True]
    row = _row(factory, "long")
    assert (row.send_state, row.pieces_sent) == (SendState.sent, len(pieces))


def test_a_read_timeout_in_the_middle_of_a_long_message_keeps_what_went_out(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = FakeTelegram()
    pieces = split_message(LONG)
    _queue(factory, "long", 700, text=LONG)
    fake.fail_next("sendMessage", chat_id=700, after=1, timeout="read")

    async def scenario() -> None:
        d = await _dispatcher(factory, fake)
        assert (await d.run_once()).unconfirmed == 1
        _make_due(factory)
        _expire_leases(factory)
        assert (await d.run_once()).outcomes == {}

    asyncio.run(scenario())
    assert _texts(fake, 700) == pieces[:2]  # the second reached Telegram; neither is repeated
    row = _row(factory, "long")
    assert (row.send_state, row.pieces_sent) == (SendState.unconfirmed, 1)


def test_a_photo_and_its_long_text_resume_without_the_photo_again(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = FakeTelegram()
    text = "办结说明：" + "已清理楼道堆放的杂物并张贴提示。" * 90  # too long for a caption
    _queue(factory, "photo", 701, text=text, photo="photo-after")
    fake.fail_next("sendMessage", chat_id=701, status=500)

    async def scenario() -> None:
        d = await _dispatcher(factory, fake)
        await d.run_once()
        _make_due(factory)
        await d.run_once()

    asyncio.run(scenario())
    assert len(fake.calls_to("sendPhoto", 701)) == 1
    assert _texts(fake, 701) == ["", *split_message(text)]
    assert _row(factory, "photo").send_state is SendState.sent


def test_no_number_of_429s_drops_a_message(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = FakeTelegram()
    _queue(factory, "m", 501, text="停水通知")
    fake.fail_next("sendMessage", chat_id=501, status=429, retry_after=1, times=3 * outbox.MAX_ATTEMPTS)

    async def scenario() -> None:
        # the rows are made due at once below, faster than the chat's second: no per-chat pace here
        d = await _dispatcher(factory, fake, RateLimiter(per_chat=0.0))
        for _ in range(3 * outbox.MAX_ATTEMPTS):
            assert (await d.run_once()).retried == 1
            row = _row(factory, "m")
            assert (row.send_state, row.attempts) == (SendState.pending, 0)
            assert row.next_attempt_at > utcnow()  # after Telegram's retry_after
            _make_due(factory)
        assert (await d.run_once()).sent == 1

    asyncio.run(scenario())
    assert _texts(fake, 501) == ["停水通知"]
    assert _row(factory, "m").attempts == 1


def test_after_a_429_the_chat_s_other_messages_wait_and_keep_their_order(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = FakeTelegram()
    for key, chat in (("g1", -100800), ("g2", -100800), ("other", 801), ("g3", -100800)):
        _queue(factory, key, chat, text=key)
    fake.fail_next("sendMessage", chat_id=-100800, status=429, retry_after=2)

    async def scenario() -> None:
        d = await _dispatcher(factory, fake)
        first = await d.run_once()
        assert (first.sent, first.retried) == (1, 3)
        assert len(fake.calls_to("sendMessage", -100800)) == 1  # the others did not ask again
        assert {k: v for k, v in _states(factory).items() if k != "other"} == {
            k: (SendState.pending, 0) for k in ("g1", "g2", "g3")}
        _make_due(factory)
        assert (await d.run_once()).sent == 3

    asyncio.run(scenario())
    assert _texts(fake, -100800) == ["g1", "g2", "g3"]


def test_a_group_upgraded_to_a_supergroup_takes_the_branch_and_its_queue_along(
        demo_factory: sessionmaker[Session]) -> None:
    from zoneinfo import ZoneInfo

    from core.models import AuditEntry, Branch, Building, Person
    from core.tickets import service as ticket_service
    from core.tickets.lifecycle import NewTicket

    old, new = -1001000000001, -1001999000001
    with session_scope(demo_factory) as s:
        building = s.scalars(select(Building).where(Building.code == "B-HPL-01-04")).one()
        reporter = s.scalars(select(Person).where(Person.code == "P-0071")).one()
        ticket_id = ticket_service.submit_report(s, NewTicket(
            category_code="sanitation", description="4号楼垃圾三天没清", grid_id=building.grid_id,
            community_id=building.grid.community_id, building_id=building.id, reporter_id=reporter.id,
        ), tz=ZoneInfo("Asia/Shanghai")).id
    _queue(demo_factory, "line", old, text="第二条群消息")
    with session_scope(demo_factory) as s:  # one for later: still queued when the group moves
        outbox.enqueue(s, dedupe_key="later", kind="line", chat_id=old, payload={"text": "明天的提醒"},
                       not_before=utcnow() + timedelta(hours=1))
    fake = FakeTelegram()
    fake.migrate_chat(old, new)

    async def scenario() -> None:
        d = await _dispatcher(demo_factory, fake)
        stats = await d.run_once()
        assert (stats.sent, stats.failed, stats.retried, stats.error) == (3, 0, 0, 0)  # card, line, resident
        with session_scope(demo_factory) as s:
            ticket_service.claim(s, ticket_id, s.scalars(select(Person).where(Person.code == "P-0002")).one())
        assert (await d.run_once()).sent == 2  # the claim's line to the group, the resident's notice

    asyncio.run(scenario())
    assert len([c for c in fake.calls if c.chat_id == old]) == 1  # refused once, never asked again
    to_group = _texts(fake, new)
    assert "4号楼垃圾三天没清" in to_group[0] and to_group[1] == "第二条群消息" and "领单" in to_group[2]
    with session_scope(demo_factory) as s:
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        assert branch.telegram_chat_id == new
        assert s.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == old)).all() == []
        later = s.scalars(select(OutboxMessage).where(OutboxMessage.dedupe_key == "later")).one()
        assert (later.chat_id, later.send_state) == (new, SendState.pending)
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "branch.chat_migrated")).one()
        assert entry.subject == f"branch:{branch.id}" and entry.detail == {"from": old, "to": new}


def test_one_message_s_trouble_never_stops_the_batch(engine, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from telegram.error import TelegramError

    factory = sessionmaker(engine, expire_on_commit=False)
    fake = FakeTelegram()
    _queue(factory, "malformed", 501, text="x", buttons=[[{"label": "没有 text"}]])
    _queue(factory, "unreadable", 502, text="回答读不懂")
    _queue(factory, "unrecorded", 503, text="记录失败")
    _queue(factory, "fine", 504, text="正常")
    fake.fail_next("sendMessage", chat_id=502, exception=TelegramError("Invalid server response"))
    unrecorded = _row(factory, "unrecorded").id
    real_mark_sent = outbox.mark_sent

    def broken_mark_sent(session: Session, message_id: int, *args: object, **kwargs: object) -> bool:
        if message_id == unrecorded:
            raise RuntimeError("the database went away")
        return real_mark_sent(session, message_id, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(outbox, "mark_sent", broken_mark_sent)

    async def scenario() -> None:
        d = await _dispatcher(factory, fake)
        stats = await d.run_once()
        assert (stats.failed, stats.unconfirmed, stats.error, stats.sent) == (1, 1, 1, 1)
        monkeypatch.setattr(outbox, "mark_sent", real_mark_sent)
        _make_due(factory)
        _expire_leases(factory)  # the unrecorded one was in flight: Telegram may have it
        assert (await d.run_once()).outcomes == {}

    asyncio.run(scenario())
    assert _states(factory) == {"malformed": (SendState.failed, 1), "unreadable": (SendState.unconfirmed, 1),
                                "unrecorded": (SendState.unconfirmed, 1), "fine": (SendState.sent, 1)}
    assert _texts(fake, 503) == ["记录失败"] and _texts(fake, 504) == ["正常"]
    assert fake.calls_to("sendMessage", 501) == []


class _Hanging(FakeTelegram):
    """Telegram that never answers one chat: the request is out, the dispatcher waits."""

    def __init__(self, chat_id: int) -> None:
        super().__init__()
        self.hang_chat = chat_id
        self.reached = asyncio.Event()

    async def do_request(self, url: str, method: str, request_data=None, *args, **kwargs):  # type: ignore[no-untyped-def,override]
        if request_data is not None and request_data.parameters.get("chat_id") == self.hang_chat:
            self.reached.set()
            await asyncio.Event().wait()
        return await super().do_request(url, method, request_data, *args, **kwargs)


def test_a_dispatcher_killed_mid_request_never_repeats_that_request_and_loses_nothing_else(engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(engine, expire_on_commit=False)
    for key, chat in (("before", 601), ("hung", 602), ("after1", 603), ("after2", 604)):
        _queue(factory, key, chat, text=key)

    async def scenario() -> None:
        hanging = _Hanging(602)
        killed = await _dispatcher(factory, hanging)
        task = asyncio.create_task(killed.run_once())
        await asyncio.wait_for(hanging.reached.wait(), timeout=10)
        task.cancel()  # the process dies: nothing after this line of its work happens
        with pytest.raises(asyncio.CancelledError):
            await task
        assert _texts(hanging, 601) == ["before"]
        row = _row(factory, "hung")
        assert (row.send_state, row.in_flight) == (SendState.sending, True)

        fake = FakeTelegram()
        d = await _dispatcher(factory, fake)
        assert (await d.run_once()).outcomes == {}  # leased: not yet
        _expire_leases(factory)
        stats = await d.run_once()
        assert stats.outcomes == {_row(factory, "after1").id: "sent", _row(factory, "after2").id: "sent"}
        assert fake.calls_to("sendMessage", 602) == []

    asyncio.run(scenario())
    assert _states(factory) == {"before": (SendState.sent, 1), "hung": (SendState.unconfirmed, 1),
                                "after1": (SendState.sent, 2), "after2": (SendState.sent, 2)}


def test_a_dispatcher_that_lost_its_lease_sends_nothing(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = FakeTelegram()
    _queue(factory, "m", 501, text="只发一次")
    with session_scope(factory) as s:
        stale = outbox.claim(s)
    _expire_leases(factory)
    with session_scope(factory) as s:
        fresh = outbox.claim(s)
    assert [c.attempts for c in stale + fresh] == [1, 2]

    async def scenario() -> None:
        d = await _dispatcher(factory, fake)
        assert (await d.send_claimed(stale)).skipped == 1  # woke up late: the row is someone else's
        assert (await d.send_claimed(fresh)).sent == 1

    asyncio.run(scenario())
    assert _texts(fake, 501) == ["只发一次"]


def test_kill_9_at_random_moments_never_sends_a_piece_twice_and_loses_at_most_the_request_in_flight(
        sqlite_engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A dispatcher process killed with SIGKILL three times at random moments, then one that
    runs to the end. Telegram's record (what the fake carried out) shows every piece at most
    once; every message is sent in full, except at most one per kill: the one whose request
    was in flight, `unconfirmed`, which Telegram has up to that piece or the one before."""
    import json
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    from core.config import PROJECT_ROOT
    from tests.app.outbox_child import RecordingTelegram

    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    url = sqlite_engine.url.render_as_string(hide_password=False)
    log = tmp_path / "telegram.jsonl"
    texts: dict[int, str] = {}
    for i in range(40):
        chat = 9000 + i
        texts[chat] = LONG if i % 4 == 0 else f"第{i}条通知"
        _queue(factory, f"k:{i}", chat, text=texts[chat])
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    kills = 0
    for _ in range(3):
        child = subprocess.Popen([sys.executable, "-m", "tests.app.outbox_child", url, str(log)],
                                 cwd=PROJECT_ROOT, env=env)
        deadline = time.monotonic() + 60
        start = len(log.read_text().splitlines()) if log.exists() else 0
        while time.monotonic() < deadline and child.poll() is None:  # sending: then kill at random
            if log.exists() and len(log.read_text().splitlines()) > start:
                break
            time.sleep(0.01)
        time.sleep(random.uniform(0, 0.25))
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            kills += 1
        child.wait(timeout=30)
        _expire_leases(factory)  # the dead child's leases run out

    async def finish() -> None:
        bot = Bot("123:ABC", request=RecordingTelegram(str(log), delay=0))
        await bot.initialize()
        d = OutboxDispatcher(bot, factory)
        while (await d.run_once()).outcomes:
            pass

    asyncio.run(finish())
    delivered: dict[int, list[str]] = {}
    for line in log.read_text().splitlines():
        item = json.loads(line)
        delivered.setdefault(int(item["chat_id"]), []).append(item["text"])
    with session_scope(factory) as s:
        rows = {r.chat_id: r for r in s.scalars(select(OutboxMessage))}
    unconfirmed = [chat for chat, r in rows.items() if r.send_state is SendState.unconfirmed]
    assert {r.send_state for r in rows.values()} <= {SendState.sent, SendState.unconfirmed}
    assert len(unconfirmed) <= kills, (kills, unconfirmed)
    for chat, row in rows.items():
        pieces, got = split_message(texts[chat]), delivered.get(chat, [])
        if row.send_state is SendState.sent:
            assert got == pieces and row.pieces_sent == len(pieces), chat
        else:  # Telegram has the confirmed pieces and perhaps the one in flight, never one twice
            assert got in (pieces[:row.pieces_sent], pieces[:row.pieces_sent + 1]), chat


def test_a_stopping_dispatcher_gives_back_what_it_has_not_started(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = FakeTelegram()
    for i in range(3):
        _queue(factory, f"m{i}", 500 + i, text=f"第{i}条")
    with session_scope(factory) as s:
        claimed = outbox.claim(s)
    stop = asyncio.Event()
    stop.set()

    async def scenario() -> None:
        d = await _dispatcher(factory, fake)
        assert (await d.send_claimed(claimed, stop)).released == 3
        assert (await d.run_once()).sent == 3  # due at once, not after the lease

    asyncio.run(scenario())
    assert _states(factory) == {f"m{i}": (SendState.sent, 1) for i in range(3)}
