"""Webhook mode (bot/webhook.py) through the real Application, real HTTP and the fake Bot API:
setWebhook with the secret token and the updates the bot needs; a delivery is answered 200 only
once its update is committed to `telegram_updates` (the row polling writes), then handled and
answered; without the right secret 403, a body that is no update 400, nothing stored either way
and one log line without the body; the same update delivered twice is kept and answered once."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sanic import Sanic
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from bot import webhook
from bot.app import build_application
from core.config import Settings
from core.messages import t
from core.messaging import updates as stored
from core.metrics import Metrics
from core.models import ReceivedUpdate
from tests.app.stack import free_port
from tests.app.telegram_fake import FakeTelegram
from tests.app.telegram_updates import UpdateBuilder

Sanic.test_mode = True  # several apps in one process (see tests/app/web_server.py)

USER = 626262
SECRET = "hook-Secret_0123456789"
PATH = "/telegram/hook"
PRIVATE_WORDS = "我家住在5号楼3单元"  # must never reach a log line


def settings_for(port: int) -> Settings:
    return Settings(_env_file=None, telegram_bot_token="123:ABC",  # type: ignore[call-arg]
                    rasa_url=f"http://127.0.0.1:{free_port()}",
                    telegram_webhook_url=f"https://bot.example.test{PATH}",
                    telegram_webhook_secret=SECRET, telegram_webhook_port=port)


def rows(factory: sessionmaker[Session]) -> dict[int, bool]:
    """update_id -> handled?, read on a connection of its own (what is committed)."""
    with factory() as session:
        return {r.update_id: r.processed_at is not None
                for r in session.scalars(select(ReceivedUpdate).order_by(ReceivedUpdate.update_id))}


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def sticker_answers(fake: FakeTelegram) -> int:
    return sum(1 for m in fake.sent_messages(USER) if m.get("text") == t("sticker"))


Script = Callable[[httpx.AsyncClient, UpdateBuilder], Awaitable[None]]


def run_webhook(factory: sessionmaker[Session], fake: FakeTelegram, script: Script,
                metrics: Metrics | None = None) -> None:
    """`webhook.serve` (the bot's webhook mode, whole life cycle) until `script` is done."""
    port = free_port()
    settings = settings_for(port)

    async def scenario() -> None:
        app = build_application(settings, factory, request=fake, background=False, metrics=metrics)
        served = asyncio.create_task(webhook.serve(app, factory, settings, metrics, signals=(signal.SIGUSR1,)))
        await until(lambda: fake.webhook.get("url") is not None or served.done())
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            try:
                await script(client, UpdateBuilder(app.bot, fake))
            finally:
                os.kill(os.getpid(), signal.SIGUSR1)
                await asyncio.wait_for(served, timeout=30)

    asyncio.run(scenario())


def post(client: httpx.AsyncClient, body: Any, secret: str | None = SECRET) -> Awaitable[httpx.Response]:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[webhook.SECRET_HEADER] = secret
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(PATH, content=content, headers=headers)


def test_set_webhook_then_an_update_is_stored_handled_and_answered(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = FakeTelegram()
    metrics = Metrics()

    async def script(client: httpx.AsyncClient, updates: UpdateBuilder) -> None:
        update = updates.sticker(USER)
        reply = await post(client, update.to_dict())
        assert reply.status_code == 200 and reply.json() == {"ok": True}
        assert update.update_id in rows(factory)  # committed by the time of the 200
        await until(lambda: sticker_answers(fake) == 1)
        await until(lambda: rows(factory) == {update.update_id: True})

    run_webhook(factory, fake, script, metrics)
    assert fake.webhook == {"url": f"https://bot.example.test{PATH}", "secret_token": SECRET,
                            "allowed_updates": ["message", "edited_message", "callback_query"]}
    assert "getUpdates" not in fake.methods()  # no polling in webhook mode
    assert "deleteWebhook" not in fake.methods()  # the other replicas still serve it
    assert metrics.messages_in.labels("webhook")._value.get() == 1
    assert metrics.messages_out.labels("reply")._value.get() + metrics.messages_out.labels("notice")._value.get() \
        >= 1


@pytest.mark.parametrize("secret", [None, "", "hook-Secret_012345678", SECRET + "x", SECRET.lower()])
def test_a_delivery_without_the_right_secret_is_refused_and_nothing_is_stored(
        sqlite_engine, caplog: pytest.LogCaptureFixture, secret: str | None) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = FakeTelegram()
    caplog.set_level(logging.INFO)

    async def script(client: httpx.AsyncClient, updates: UpdateBuilder) -> None:
        caplog.clear()
        reply = await post(client, updates.text(USER, PRIVATE_WORDS).to_dict(), secret=secret)
        assert reply.status_code == 403
        await asyncio.sleep(0.2)

    run_webhook(factory, fake, script)
    assert rows(factory) == {}
    assert fake.sent_messages(USER) == []
    refusals = [r for r in caplog.records if r.name == "gridbot.webhook" and "refused" in r.getMessage()]
    assert len(refusals) == 1 and "403" in refusals[0].getMessage()
    assert all(PRIVATE_WORDS not in r.getMessage() and (not secret or secret not in r.getMessage())
               for r in caplog.records)


GARBAGE = {
    "not json": b"\x00\xffnot json at all",
    "a JSON list": [{"update_id": 5, "message": {}}],
    "no update_id": {"message": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}}},
    "update_id a string": {"update_id": "7", "message": {"message_id": 1, "date": 0,
                                                          "chat": {"id": 1, "type": "private"}}},
    "only an update_id": {"update_id": 8},
    "an unknown field": {"update_id": 9, "hello": {"text": PRIVATE_WORDS}},
    "a message that is not an object": {"update_id": 10, "message": PRIVATE_WORDS},
    "a message PTB cannot read": {"update_id": 11, "message": {"text": PRIVATE_WORDS}},
}


@pytest.mark.parametrize("how", list(GARBAGE))
def test_a_body_that_is_not_an_update_is_400_and_nothing_is_stored(
        sqlite_engine, caplog: pytest.LogCaptureFixture, how: str) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = FakeTelegram()
    caplog.set_level(logging.INFO)
    metrics = Metrics()

    async def script(client: httpx.AsyncClient, updates: UpdateBuilder) -> None:
        caplog.clear()
        reply = await post(client, GARBAGE[how])
        assert reply.status_code == 400
        await asyncio.sleep(0.2)

    run_webhook(factory, fake, script, metrics)
    assert rows(factory) == {}
    refusals = [r for r in caplog.records if r.name == "gridbot.webhook" and "refused" in r.getMessage()]
    assert len(refusals) == 1 and "400" in refusals[0].getMessage()
    assert all(PRIVATE_WORDS not in r.getMessage() for r in caplog.records)
    assert metrics.webhook_refused.labels("not_an_update")._value.get() == 1


def test_the_same_update_delivered_twice_is_kept_and_answered_once(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = FakeTelegram()

    async def script(client: httpx.AsyncClient, updates: UpdateBuilder) -> None:
        update = updates.sticker(USER).to_dict()
        first, second = await asyncio.gather(post(client, update), post(client, update))
        assert first.status_code == second.status_code == 200
        await until(lambda: sticker_answers(fake) >= 1)
        third = await post(client, update)  # Telegram retrying after the update was handled
        assert third.status_code == 200
        await asyncio.sleep(0.5)

    run_webhook(factory, fake, script)
    assert len(rows(factory)) == 1 and all(rows(factory).values())
    assert sticker_answers(fake) == 1


def test_the_200_comes_only_after_the_commit(sqlite_engine, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = FakeTelegram()
    real_store = stored.store
    failing = {"left": 1}
    happened: list[tuple[str, float]] = []  # what happened when (time.monotonic())

    def slow_store(session: Session, batch: list[dict[str, Any]], *args: Any, **kwargs: Any) -> int:
        if failing["left"]:
            failing["left"] -= 1
            raise RuntimeError("the database went away")
        new = real_store(session, batch, *args, **kwargs)
        session.flush()
        happened.append(("stored", time.monotonic()))
        time.sleep(0.3)  # stored, not committed: no 200 may leave now
        return new

    def committed(connection: Any) -> None:
        happened.append(("commit", time.monotonic()))

    monkeypatch.setattr(stored, "store", slow_store)
    event.listen(sqlite_engine, "commit", committed)

    async def script(client: httpx.AsyncClient, updates: UpdateBuilder) -> None:
        update = updates.sticker(USER)
        failed = await post(client, update.to_dict())
        assert failed.status_code == 500  # not stored: Telegram must send it again
        assert rows(factory) == {}
        happened.clear()
        again = await post(client, update.to_dict())
        happened.append(("200", time.monotonic()))
        assert again.status_code == 200
        assert update.update_id in rows(factory)
        await until(lambda: sticker_answers(fake) == 1)

    try:
        run_webhook(factory, fake, script)
    finally:
        event.remove(sqlite_engine, "commit", committed)
    order = [what for what, _ in happened]
    assert order[:3] == ["stored", "commit", "200"]  # the store's own commit, then the answer
    assert happened[2][1] - happened[0][1] >= 0.3
    assert sticker_answers(fake) == 1


def test_other_paths_and_methods_store_nothing(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    fake = FakeTelegram()

    async def script(client: httpx.AsyncClient, updates: UpdateBuilder) -> None:
        update = updates.sticker(USER).to_dict()
        headers = {webhook.SECRET_HEADER: SECRET}
        assert (await client.post("/other", json=update, headers=headers)).status_code == 404
        assert (await client.get(PATH, headers=headers)).status_code == 405
        big = {**update, "message": {**update["message"], "text": "x" * (webhook.MAX_BODY_BYTES + 10)}}
        assert (await client.post(PATH, json=big, headers=headers)).status_code == 413

    run_webhook(factory, fake, script)
    assert rows(factory) == {}


def test_webhook_settings() -> None:
    base: dict[str, Any] = {"_env_file": None, "gridbot_secret": "g" * 40}
    assert Settings(**base, telegram_webhook_url="  ").telegram_webhook_url is None  # blank: polling
    derived = Settings(**base).webhook_secret()
    assert derived == Settings(**base).webhook_secret()  # every replica derives the same token
    assert derived != Settings(**{**base, "gridbot_secret": "h" * 40}).webhook_secret()
    assert webhook_secret_ok(derived) and "g" * 10 not in derived
    assert Settings(**base, telegram_webhook_secret="abc_DEF-1").webhook_secret() == "abc_DEF-1"
    with pytest.raises(ValueError) as refused:
        Settings(**base, telegram_webhook_secret="has spaces and $ymbols").webhook_secret()
    assert "$ymbols" not in str(refused.value)  # the error never prints the value
    with pytest.raises(ValueError):
        Settings(**base, telegram_webhook_url="bot.example.test/hook")
    assert webhook.path_of("https://bot.example.test/tg/hook") == "/tg/hook"
    assert webhook.path_of("https://bot.example.test") == "/"


def webhook_secret_ok(value: str) -> bool:
    from core.config import WEBHOOK_SECRET
    return WEBHOOK_SECRET.fullmatch(value) is not None
