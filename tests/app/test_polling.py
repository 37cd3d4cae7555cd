"""bot/polling.py through the real Application and the fake Bot API: an update is committed
to `telegram_updates` before the getUpdates call that acknowledges it, handled once, and a
kill between the two loses nothing."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from telegram import Update
from telegram.error import NetworkError
from telegram.ext import TypeHandler

from bot.app import build_application
from bot.polling import Poller, PollingStopped, sender_of, serve
from bot.rasa_client import RasaClient
from core.config import Settings
from core.db import session_scope
from core.messages import t
from core.messaging import inbox
from core.messaging import updates as stored
from core.models import InboxMessage, InboxState, ReceivedUpdate, utcnow
from tests.app.stack import free_port
from tests.app.telegram_fake import FakeTelegram
from tests.app.telegram_updates import UpdateBuilder

USER = 515151


class RecordingTelegram(FakeTelegram):
    """The fake Bot API, noting for every getUpdates call its offset and what the table held
    (update_id → processed?) at that moment."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        super().__init__()
        self.factory = factory
        self.polls: list[tuple[int | None, dict[int, bool]]] = []

    async def do_request(self, url: str, method: str, request_data: Any = None,
                         *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        if url.endswith("/getUpdates"):
            params = dict(request_data.parameters) if request_data is not None else {}
            self.polls.append((params.get("offset"), table(self.factory)))
        return await super().do_request(url, method, request_data, *args, **kwargs)


def table(factory: sessionmaker[Session]) -> dict[int, bool]:
    with factory() as session:
        return {row.update_id: row.processed_at is not None
                for row in session.scalars(select(ReceivedUpdate).order_by(ReceivedUpdate.update_id))}


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def run_poller(factory: sessionmaker[Session], fake: FakeTelegram,
               script: Callable[[Poller, UpdateBuilder], Awaitable[None]]) -> list[BaseException]:
    """The Application's life cycle around a running Poller; `script` drives it, then it stops.
    What the poller raised, if anything."""
    raised: list[BaseException] = []
    settings = Settings(_env_file=None, telegram_bot_token="123:ABC",  # type: ignore[call-arg]
                        rasa_url=f"http://127.0.0.1:{free_port()}")

    async def scenario() -> None:
        app = build_application(settings, factory, request=fake, background=False)
        poller = Poller(app, factory, poll_timeout=1, backoff_first=0.05, backoff_max=0.2)
        async with app:
            assert app.post_init is not None and app.post_shutdown is not None
            await app.post_init(app)
            await app.start()
            task = asyncio.create_task(poller.run())
            try:
                await script(poller, UpdateBuilder(app.bot, fake))
            finally:
                poller.stop()
                try:
                    await asyncio.wait_for(task, timeout=10)
                except PollingStopped as exc:
                    raised.append(exc)
                await app.stop()
        await app.post_shutdown(app)

    asyncio.run(scenario())
    return raised


def sticker_answers(fake: FakeTelegram) -> int:
    return sum(1 for m in fake.sent_messages(USER) if m.get("text") == t("sticker"))


def test_updates_are_committed_before_the_offset_acknowledges_them(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = RecordingTelegram(factory)

    async def script(poller: Poller, updates: UpdateBuilder) -> None:
        await until(lambda: len(fake.polls) >= 1)
        first, second = updates.sticker(USER), updates.sticker(USER)
        fake.push_update(first)
        fake.push_update(second)
        await until(lambda: sticker_answers(fake) == 2)
        await until(lambda: any(offset == second.update_id + 1 for offset, _ in fake.polls))

    run_poller(factory, fake, script)
    ids = [100_000, 100_001]
    # The first call that carries the higher offset (and so acknowledges both) finds both
    # committed (handled or still in their lane: either way kept); every call before it had a
    # lower offset.
    acked = next(i for i, (offset, _) in enumerate(fake.polls) if offset == ids[-1] + 1)
    assert sorted(fake.polls[acked][1]) == ids
    assert all(offset is None or offset <= ids[0] for offset, _ in fake.polls[:acked])
    # Stored (and committed) before they were answered: the replies came after the
    # getUpdates that delivered them.
    methods = fake.methods()
    delivered = [i for i, c in enumerate(fake.calls) if c.method == "getUpdates" and c.result]
    replies = [i for i, m in enumerate(methods) if m == "sendMessage"]
    assert delivered and replies
    assert delivered[0] < replies[0]
    assert table(factory) == {ids[0]: True, ids[1]: True}
    assert sticker_answers(fake) == 2


def test_an_update_stored_before_a_kill_is_handled_once_on_start(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = RecordingTelegram(factory)
    update = UpdateBuilder(None, first_update_id=700).sticker(USER)
    with session_scope(factory) as session:  # committed, then the process was killed
        assert stored.store(session, [update.to_dict()]) == 1

    async def script(poller: Poller, updates: UpdateBuilder) -> None:
        await until(lambda: len(fake.polls) >= 2)

    run_poller(factory, fake, script)
    assert sticker_answers(fake) == 1
    assert table(factory) == {700: True}
    # Handled before polling started, and polling continued after the stored update.
    assert fake.polls[0] == (701, {700: True})


def test_a_message_accepted_before_a_kill_is_not_asked_again_on_start(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = RecordingTelegram(factory)
    update = UpdateBuilder(None, first_update_id=800).text(USER, "3号楼电梯坏了")
    message = update.message
    assert message is not None
    with session_scope(factory) as session:  # stored, accepted and answered; killed before the mark
        stored.store(session, [update.to_dict()])
        row = inbox.accept(session, sender_id=USER, chat_id=USER, text=message.text or "",
                           meta={"message_id": message.message_id})
        inbox.mark_done(session, row.id)

    async def script(poller: Poller, updates: UpdateBuilder) -> None:
        await until(lambda: len(fake.polls) >= 2)

    run_poller(factory, fake, script)
    assert table(factory) == {800: True}
    with session_scope(factory) as session:  # one row: Rasa (down here) was not asked again
        assert [r.state for r in session.scalars(select(InboxMessage))] == [InboxState.done]
    assert fake.sent_messages(USER) == []  # nor was the resident told to wait for it


def test_an_update_telegram_sends_again_is_not_handled_twice(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = RecordingTelegram(factory)
    update = UpdateBuilder(None, first_update_id=900).sticker(USER)
    with session_scope(factory) as session:  # stored and handled; the acknowledging call never came
        stored.store(session, [update.to_dict()])
        stored.mark_processed(session, 900)

    async def script(poller: Poller, updates: UpdateBuilder) -> None:
        await until(lambda: len(fake.polls) >= 1)
        poller.offset = None  # as if the acknowledgement were lost: Telegram sends 900 again
        fake.push_update(update)
        await until(lambda: any(c.method == "getUpdates" and c.result for c in fake.calls))
        await until(lambda: any(offset == 901 for offset, _ in fake.polls[1:]))

    run_poller(factory, fake, script)
    assert sticker_answers(fake) == 0
    assert table(factory) == {900: True}


def test_network_errors_are_retried_and_logged_once(sqlite_engine, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = RecordingTelegram(factory)
    fake.fail_next("getUpdates", exception=NetworkError("httpx.ConnectError: network down"), times=4)
    caplog.set_level(logging.INFO, logger="gridbot.polling")

    async def script(poller: Poller, updates: UpdateBuilder) -> None:
        fake.push_update(updates.sticker(USER))
        await until(lambda: sticker_answers(fake) == 1)

    run_poller(factory, fake, script)
    failed = [c for c in fake.calls if c.method == "getUpdates" and c.status == 0]
    assert len(failed) == 4
    warnings = [r for r in caplog.records if r.name == "gridbot.polling" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "network down" in warnings[0].getMessage()
    assert any("works again" in r.getMessage() for r in caplog.records)
    assert table(factory) == {100_000: True}


def test_a_conflict_stops_polling(sqlite_engine, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = RecordingTelegram(factory)
    fake.fail_next("getUpdates", status=409)

    async def script(poller: Poller, updates: UpdateBuilder) -> None:
        await until(lambda: len(fake.polls) >= 1)
        await asyncio.sleep(0.2)  # no retry follows

    raised = run_poller(factory, fake, script)
    assert len(raised) == 1 and isinstance(raised[0], PollingStopped)
    assert len(fake.polls) == 1
    assert any("another bot instance" in r.getMessage() for r in caplog.records)


def test_store_is_idempotent_and_prune_keeps_the_newest(factory) -> None:  # type: ignore[no-untyped-def]
    old = utcnow() - timedelta(days=10)
    with session_scope(factory) as session:
        assert stored.store(session, [{"update_id": 1}, {"update_id": 2}, {"update_id": 3}], now=old) == 3
        assert stored.store(session, [{"update_id": 3}, {"update_id": 4}]) == 1
        for update_id in (1, 2, 3):
            stored.mark_processed(session, update_id, now=old)
    with session_scope(factory) as session:
        assert stored.unprocessed(session) == [(4, {"update_id": 4})]
        assert stored.prune(session) == 3
        assert stored.next_offset(session) == 5
        stored.mark_processed(session, 4, now=old)
    with session_scope(factory) as session:
        assert stored.prune(session) == 0  # the newest row holds the offset
        assert stored.next_offset(session) == 5
        # A week without updates: Telegram may number the next one at random, so no offset.
        assert stored.next_offset(session, now=utcnow() + timedelta(days=7)) is None


def test_serve_runs_the_life_cycle_and_stops_on_sigterm(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = RecordingTelegram(factory)
    settings = Settings(_env_file=None, telegram_bot_token="123:ABC",  # type: ignore[call-arg]
                        rasa_url=f"http://127.0.0.1:{free_port()}")

    async def scenario() -> None:
        app = build_application(settings, factory, request=fake, background=False)
        fake.push_update(UpdateBuilder(app.bot, fake).sticker(USER))
        served = asyncio.create_task(serve(app, factory))
        await until(lambda: sticker_answers(fake) == 1)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(served, timeout=10)
        assert not app.running
        assert app.bot_data["services"].stop.is_set()  # post_shutdown ran

    asyncio.run(scenario())
    assert fake.methods()[:2] == ["getMe", "deleteWebhook"]
    assert fake.shut_down >= 1
    assert table(factory) == {100_000: True}


def test_one_persons_slow_update_holds_up_nobody_else(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = RecordingTelegram(factory)
    slow = USER + 1
    seen: list[tuple[int, int]] = []  # (person, update_id) in the order handling began

    async def script(poller: Poller, updates: UpdateBuilder) -> None:
        gate = asyncio.Event()

        async def hold(update: Update, _context: object) -> None:
            assert update.effective_user is not None
            seen.append((update.effective_user.id, update.update_id))
            if update.effective_user.id == slow and not gate.is_set():
                await gate.wait()  # the slow person's first message takes its time

        poller.app.add_handler(TypeHandler(Update, hold), group=-1)
        await until(lambda: len(fake.polls) >= 1)
        first, second, other = updates.sticker(slow), updates.sticker(slow), updates.sticker(USER)
        for update in (first, second, other):
            fake.push_update(update)
        await until(lambda: sticker_answers(fake) == 1)  # answered while the slow one waits
        assert [u for p, u in seen if p == slow] == [first.update_id]
        gate.set()
        await until(lambda: sum(1 for m in fake.sent_messages(slow) if m.get("text") == t("sticker")) == 2)

    run_poller(factory, fake, script)
    assert [u for p, u in seen if p == slow] == sorted(u for p, u in seen if p == slow)  # in order


def test_sender_of_finds_the_person_for_every_kind_of_update() -> None:
    assert sender_of({"update_id": 1, "message": {"from": {"id": 7}, "chat": {"id": -5}}}) == 7
    assert sender_of({"update_id": 2, "callback_query": {"from": {"id": 8}, "message": {"chat": {"id": 9}}}}) == 8
    assert sender_of({"update_id": 3, "channel_post": {"chat": {"id": -100}}}) == -100
    assert sender_of({"update_id": 4, "poll": {"id": "x"}}) is None


def test_an_update_handled_again_after_a_kill_is_answered_once(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = RecordingTelegram(factory)

    async def script(poller: Poller, updates: UpdateBuilder) -> None:
        update = updates.sticker(USER)
        await poller._handle(update.update_id, update.to_dict())  # noqa: SLF001 - handled, then killed
        await poller._handle(update.update_id, update.to_dict())  # noqa: SLF001 - before it was marked
        await until(lambda: sticker_answers(fake) >= 1)
        await asyncio.sleep(0.2)

    run_poller(factory, fake, script)
    assert sticker_answers(fake) == 1


def test_a_new_message_does_not_wait_for_another_persons_slow_conversation(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    """The lanes (`Poller.feed`): Rasa takes 2 s over SLOW's message; FAST's message, stored
    while SLOW's is being handled, is answered at once, and SLOW's own later message waits for
    SLOW's first (each person's in order)."""
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = FakeTelegram()
    slow, quick = 616161, 626262
    heard: list[str] = []
    release = asyncio.Event()

    async def rasa(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        heard.append(body["message"])
        if body["sender"] == str(slow) and body["message"] == "第一句":
            await asyncio.wait_for(release.wait(), timeout=10)
        return httpx.Response(200, json=[{"recipient_id": body["sender"], "text": f"答:{body['message']}"}])

    settings = Settings(_env_file=None, telegram_bot_token="123:ABC")  # type: ignore[call-arg]

    async def scenario() -> None:
        app = build_application(settings, factory, request=fake, background=False,
                                rasa=RasaClient("http://rasa.invalid",
                                                client=httpx.AsyncClient(transport=httpx.MockTransport(rasa))))
        poller = Poller(app, factory)
        updates = UpdateBuilder(app.bot, fake)
        async with app:
            assert app.post_init is not None and app.post_shutdown is not None
            await app.post_init(app)
            await app.start()
            with session_scope(factory) as session:
                stored.store(session, [updates.text(slow, "第一句").to_dict()])
            assert await poller.feed() == 1
            await until(lambda: "第一句" in heard)  # SLOW's lane waits on Rasa now
            with session_scope(factory) as session:
                stored.store(session, [updates.text(slow, "第二句").to_dict(),
                                       updates.text(quick, "你好").to_dict()])
            assert await poller.feed() == 2
            await until(lambda: any(m.get("text") == "答:你好" for m in fake.sent_messages(quick)))
            assert [m.get("text") for m in fake.sent_messages(slow)] == []  # still on its first
            assert "第二句" not in heard  # SLOW's second waits for SLOW's first
            release.set()
            await poller.settle()
            assert [m.get("text") for m in fake.sent_messages(slow) if str(m.get("text", "")).startswith("答")] \
                == ["答:第一句", "答:第二句"]
            assert await poller.feed() == 0  # each update given once
            await app.stop()
        await app.post_shutdown(app)

    asyncio.run(scenario())
    handled = table(factory)
    assert len(handled) == 3 and all(handled.values())
