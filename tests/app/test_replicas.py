"""Several bot processes on one PostgreSQL database (webhook replicas behind a load balancer).

Two Applications, each on its own engine (its own connections, as two processes have), handle
the same stored updates at once: each resident's messages reach Rasa once each and in order,
and each answer reaches Telegram once. The per-person claims (core/messaging/claims.py) free
themselves when a process is killed, and the Telegram rate budget is one for both.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import sessionmaker

from bot.app import build_application
from bot.polling import Poller
from bot.rasa_client import RasaClient
from bot.ratelimit import RATE, RateLimiter, shared_budget
from core.config import Settings
from core.db import make_engine, session_scope
from core.messaging import claims, inbox
from core.messaging import updates as stored
from core.messaging.claims import Claims
from core.models import InboxMessage, InboxState, ReceivedUpdate
from tests.app.telegram_fake import FakeTelegram
from tests.app.telegram_updates import UpdateBuilder

ROOT = Path(__file__).resolve().parents[2]
RESIDENTS = [7100 + n for n in range(24)]  # more than one replica's LANES
MESSAGES = 5  # each resident's, interleaved with everyone else's


@pytest.fixture
def pg_url(postgres_templates) -> Iterator[str]:  # type: ignore[no-untyped-def]
    url = postgres_templates.create(demo=True)
    yield url
    postgres_templates.drop(url)


class LoggedTelegram(FakeTelegram):
    """The fake Bot API, noting each sendMessage's (chat_id, text) in a list both replicas share."""

    def __init__(self, log: list[tuple[int, str]]) -> None:
        super().__init__()
        self.log = log

    async def do_request(self, url: str, method: str, request_data: Any = None,
                         *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        answer = await super().do_request(url, method, request_data, *args, **kwargs)
        if url.endswith("/sendMessage") and request_data is not None:
            params = dict(request_data.parameters)
            self.log.append((int(params["chat_id"]), str(params["text"])))
        return answer


def _rasa(heard: list[tuple[str, str, bool]]) -> httpx.AsyncClient:
    """Rasa that answers "答:<text>" after a pause (so that the two replicas overlap), noting
    (sender, text, replayed) for every message it hears."""

    async def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        heard.append((body["sender"], body["message"], bool(body["metadata"].get("replay"))))
        await asyncio.sleep(0.02)
        return httpx.Response(200, json=[{"recipient_id": body["sender"], "text": f"答:{body['message']}"}])

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


def test_two_replicas_answer_each_message_once_and_in_order(pg_url: str) -> None:
    engines: list[Engine] = [make_engine(pg_url), make_engine(pg_url)]
    factories = [sessionmaker(e, expire_on_commit=False) for e in engines]
    sent: list[tuple[int, str]] = []  # what Telegram got, in the order it got it
    fakes = [LoggedTelegram(sent), LoggedTelegram(sent)]
    heard: list[tuple[str, str, bool]] = []
    settings = Settings(_env_file=None, telegram_bot_token="123:ABC")  # type: ignore[call-arg]

    async def scenario() -> None:
        apps = [build_application(settings, f, request=fake, background=False,
                                  rasa=RasaClient("http://rasa.invalid", client=_rasa(heard)))
                for f, fake in zip(factories, fakes, strict=True)]
        for app in apps:
            await app.initialize()
            assert app.post_init is not None
            await app.post_init(app)
            await app.start()
        builder = UpdateBuilder(apps[0].bot, fakes[0])
        updates = [builder.text(user, f"第{n}句 {user}").to_dict()
                   for n in range(MESSAGES) for user in RESIDENTS]  # interleaved: 1st of all, 2nd of all, ...
        pollers = [Poller(app, f) for app, f in zip(apps, factories, strict=True)]
        # The updates arrive in three deliveries, each stored by whichever replica got it, and
        # both replicas handle what is stored at the same time, with their replay passes running.
        for part in (updates[:30], updates[30:70], updates[70:]):
            with session_scope(factories[len(part) % 2]) as session:
                stored.store(session, part)
            await asyncio.gather(*(p.process_stored() for p in pollers),
                                 *(app.bot_data["services"].answer_all() for app in apps))
        for app in apps:
            await app.bot_data["services"].dispatch()
            await app.stop()
            assert app.post_shutdown is not None
            await app.post_shutdown(app)
            await app.shutdown()

    asyncio.run(scenario())
    # Rasa heard every message once, each resident's in the order they were sent.
    first_time = [(sender, text) for sender, text, replay in heard if not replay]
    assert sorted(first_time) == sorted({(s, t) for s, t in first_time})
    for user in RESIDENTS:
        said = [text for sender, text, _ in heard if sender == str(user)]
        assert said == [f"第{n}句 {user}" for n in range(MESSAGES)]
    # Telegram got each answer once, in order, from one replica or the other.
    for user in RESIDENTS:
        texts = [m["text"] for fake in fakes for m in fake.sent_messages(user)]
        assert sorted(texts) == sorted(f"答:第{n}句 {user}" for n in range(MESSAGES))
        assert [text for chat, text in sent if chat == user] == [f"答:第{n}句 {user}" for n in range(MESSAGES)]
    assert all(fake.sent_messages() for fake in fakes), "both replicas took part"
    with session_scope(factories[0]) as session:
        assert session.scalar(select(ReceivedUpdate).where(ReceivedUpdate.processed_at.is_(None))) is None
        assert {m.state for m in session.scalars(select(InboxMessage))} == {InboxState.done}
        assert len(session.scalars(select(InboxMessage)).all()) == len(RESIDENTS) * MESSAGES
    for engine in engines:
        engine.dispose()


def test_a_message_another_replica_sent_to_rasa_is_sent_again_as_a_replay(pg_url: str) -> None:
    """A replica that died after sending a message to Rasa (before recording the answer) leaves
    the row marked; the replica that takes it over asks Rasa for the earlier answer."""
    engine = make_engine(pg_url)
    factory = sessionmaker(engine, expire_on_commit=False)
    with session_scope(factory) as session:
        row = inbox.accept(session, sender_id=RESIDENTS[0], chat_id=RESIDENTS[0], text="你好")
        inbox.note_sent_to_rasa(session, row.id)  # what the dead replica committed before sending
    heard: list[tuple[str, str, bool]] = []

    async def scenario() -> None:
        from bot.conversation import answer_pending
        rasa = RasaClient("http://rasa.invalid", client=_rasa(heard))
        rasa.started = rasa.started.replace(year=2000)  # this process started long before
        result = await answer_pending(factory, rasa)
        assert result.answered == 1

    asyncio.run(scenario())
    assert heard == [(str(RESIDENTS[0]), "你好", True)]
    engine.dispose()


def test_a_claim_is_one_process_at_a_time_and_freed_when_its_process_is_killed(pg_url: str) -> None:
    engine = make_engine(pg_url)
    here = Claims(engine)
    assert here.try_claim(claims.INBOX, RESIDENTS[0])
    there = Claims(make_engine(pg_url))
    assert not there.try_claim(claims.INBOX, RESIDENTS[0])
    assert there.try_claim(claims.UPDATES, RESIDENTS[0])  # another kind of claim, the same person
    assert there.try_claim(claims.INBOX, -1001234567890)  # a group chat's id
    here.release(claims.INBOX, RESIDENTS[0])
    assert there.try_claim(claims.INBOX, RESIDENTS[0])
    there.close()
    # A process holding a claim is killed (SIGKILL, no clean-up): PostgreSQL frees it at once.
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from core.db import make_engine; from core.messaging.claims import Claims;"
         f"c = Claims(make_engine({pg_url!r})); assert c.try_claim(2, {RESIDENTS[1]});"
         "print('held', flush=True); time.sleep(600)"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        assert not here.try_claim(claims.INBOX, RESIDENTS[1])
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        deadline = time.monotonic() + 30
        while not here.try_claim(claims.INBOX, RESIDENTS[1]):
            assert time.monotonic() < deadline, "the killed process's claim was not freed within 30 s"
            time.sleep(0.1)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    here.close()
    engine.dispose()


def test_the_rate_budget_is_one_for_every_replica(pg_url: str) -> None:
    """Two processes' limiters, each with its own engine, send as fast as they may to many chats:
    together they stay within RATE per second, and one chat gets its burst of 3, then 1 a second."""
    engines = [make_engine(pg_url), make_engine(pg_url)]
    limiters = [RateLimiter(shared=shared_budget(e)) for e in engines]
    starts: list[float] = []
    chat_starts: list[float] = []

    async def sender(limiter: RateLimiter, first_chat: int, count: int) -> None:
        for n in range(count):
            slot = await limiter.acquire(first_chat + n, priority=0)
            limiter.sent(slot, first_chat + n)
            starts.append(time.monotonic())

    async def one_chat(limiter: RateLimiter) -> None:
        for _ in range(3):
            slot = await limiter.acquire(4242, priority=0)
            limiter.sent(slot, 4242)
            chat_starts.append(time.monotonic())

    async def scenario() -> None:
        await asyncio.gather(sender(limiters[0], 10_000, 45), sender(limiters[1], 20_000, 45))
        await asyncio.gather(one_chat(limiters[0]), one_chat(limiters[1]))

    began = time.monotonic()
    asyncio.run(scenario())
    starts.sort()
    # any window of ~1 s holds at most RATE starts (a small margin for the clocks' granularity)
    most = max(sum(1 for s in starts if a <= s < a + 1.0) for a in starts)
    assert most <= RATE, most
    assert starts[-1] - began >= 2.0  # 90 requests at < 30/s: both replicas were paced, not 2 × 30/s
    chat_starts.sort()
    assert chat_starts[3] - chat_starts[0] >= 0.9  # the 4th request to one chat waits its second
    assert len(chat_starts) == 6 and chat_starts[5] - chat_starts[3] >= 1.8
    for engine in engines:
        engine.dispose()
