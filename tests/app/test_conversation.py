"""Residents' messages go inbox → Rasa → outbox exactly once, and wait out a Rasa outage."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from actions.deps import Deps, GridAction
from actions.emergency import ActionFileEmergency
from actions.report_form import ActionSubmitReport
from bot import app as bot_app
from bot.conversation import answer_pending
from bot.rasa_client import (
    WARM_UP_TEXT,
    RasaClient,
    RasaUnavailable,
    Reply,
    parse_reply,
    to_payload,
)
from core.config import get_settings
from core.db import make_engine, make_session_factory, read_scope, session_scope
from core.messaging import inbox
from core.messaging.inbox import WARM_UP_SENDER
from core.models import InboxMessage, InboxState, OutboxMessage, Ticket
from tests.app.stack import TEST_SECRET, Stack, free_port


def test_rasa_reply_becomes_an_outbox_payload() -> None:
    reply = parse_reply({"recipient_id": "1", "text": "请选择类别",
                         "buttons": [{"title": "消防安全", "payload": "/complaint_fire_safety"}]})
    assert reply == Reply("请选择类别", [("消防安全", "/complaint_fire_safety")])
    assert to_payload(reply) == {"text": "请选择类别",
                                 "buttons": [[{"text": "消防安全", "callback_data": "/complaint_fire_safety"}]]}


def test_unreachable_rasa_raises_rasa_unavailable() -> None:
    async def scenario() -> None:
        client = RasaClient(f"http://127.0.0.1:{free_port()}", timeout=2)
        with pytest.raises(RasaUnavailable):
            await client.send(1, "你好")
        await client.aclose()

    asyncio.run(scenario())


def test_messages_wait_while_rasa_is_down_then_are_answered_once(
    engine, rasa_stack: Stack  # type: ignore[no-untyped-def]
) -> None:
    factory: sessionmaker[Session] = sessionmaker(engine, expire_on_commit=False)
    with session_scope(factory) as s:
        for sender, text in [(801, "你好"), (802, "我的养老金怎么领"), (801, "7号楼消防通道被车堵死了")]:
            inbox.accept(s, sender_id=sender, chat_id=sender, text=text)

    async def scenario() -> None:
        down = RasaClient(f"http://127.0.0.1:{free_port()}", timeout=2)
        result = await answer_pending(factory, down)
        assert result.rasa_down and result.answered == 0 and result.waiting == 3
        await down.aclose()
        with session_scope(factory) as s:
            assert inbox.has_pending(s, 801) and inbox.has_pending(s, 802)
        up = RasaClient(rasa_stack.rasa_url, TEST_SECRET)
        result = await answer_pending(factory, up)
        assert (result.answered, result.rasa_down) == (3, False)
        again = await answer_pending(factory, up)
        assert again.answered == 0
        await up.aclose()

    asyncio.run(scenario())
    with session_scope(factory) as s:
        assert all(m.state is InboxState.done for m in s.scalars(select(InboxMessage)))
        replies = s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        keys = [r.dedupe_key for r in replies]
        assert len(keys) == len(set(keys)) >= 3
        by_chat = {r.chat_id: [] for r in replies}
        for r in replies:
            by_chat[r.chat_id].append(r.payload["text"])
        assert any("12345" in t for t in by_chat[802])
        assert len(by_chat[801]) >= 2  # a greeting answer, then the report's answer, in order


def _scripted_rasa(answers: dict[str, list[dict[str, object]]], heard: list[str],
                   down_first: int = 0) -> httpx.AsyncClient:
    """An httpx client whose Rasa answers each message from `answers` (unknown ones: nothing)."""
    calls = [0]

    def handle(request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        if calls[0] <= down_first:
            raise httpx.ConnectError("connection refused", request=request)
        body = json.loads(request.content)
        assert body["sender"] == WARM_UP_SENDER
        heard.append(body["message"])
        return httpx.Response(200, json=answers.get(body["message"], []))

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


def test_warm_up_presses_a_place_but_never_confirms() -> None:
    summary = {"text": "请确认", "buttons": [{"title": "确认", "payload": "/affirm"},
                                              {"title": "取消", "payload": "/cancel"}]}
    ask = {"text": "是哪一栋？", "buttons": [{"title": "确认", "payload": "/affirm"},
                                               {"title": "3号楼", "payload": '/inform{"place_code":"B-1"}'},
                                               {"title": "另一栋", "payload": '/inform{"place_code":"B-2"}'}]}
    heard: list[str] = []
    client = RasaClient("http://rasa", client=_scripted_rasa(
        {WARM_UP_TEXT: [ask], '/inform{"place_code":"B-1"}': [summary]}, heard))
    assert asyncio.run(client.warm_up())
    assert heard == ["/restart", WARM_UP_TEXT, '/inform{"place_code":"B-1"}', "/restart"]

    heard.clear()  # a registry where the place is clear at once: straight to the summary
    client = RasaClient("http://rasa", client=_scripted_rasa({WARM_UP_TEXT: [summary]}, heard))
    assert asyncio.run(client.warm_up())
    assert heard == ["/restart", WARM_UP_TEXT, "/restart"]

    heard.clear()  # Rasa answers, the action server does not (no buttons): not warmed up
    client = RasaClient("http://rasa", client=_scripted_rasa({WARM_UP_TEXT: [{"text": "抱歉"}]}, heard))
    assert not asyncio.run(client.warm_up())


def test_the_bot_warms_rasa_up_once_it_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot_app, "WARM_UP_RETRY_SECONDS", 0.01)
    heard: list[str] = []
    summary = {"text": "请确认", "buttons": [{"title": "确认", "payload": "/affirm"}]}
    rasa = RasaClient("http://rasa", client=_scripted_rasa({WARM_UP_TEXT: [summary]}, heard, down_first=3))
    svc = bot_app.Services(sessionmaker(), rasa, get_settings())
    asyncio.run(asyncio.wait_for(bot_app._warm_up(svc), timeout=10))
    assert heard == ["/restart", WARM_UP_TEXT, "/restart"]  # after three refused connections

    monkeypatch.setattr(bot_app, "WARM_UP_TRIES", 3)  # no action server: tried three times, then no more
    heard.clear()
    svc = bot_app.Services(sessionmaker(), RasaClient("http://rasa", client=_scripted_rasa({}, heard)), get_settings())
    asyncio.run(asyncio.wait_for(bot_app._warm_up(svc), timeout=10))
    assert heard == ["/restart", WARM_UP_TEXT, "/restart"] * 3


@pytest.mark.parametrize("action_class", [ActionSubmitReport, ActionFileEmergency], ids=lambda a: a.__name__)
def test_the_actions_that_file_do_nothing_for_the_warm_up(action_class: type[GridAction]) -> None:
    action = action_class(Deps.build(get_settings(), sessionmaker()))  # a database it must not touch
    slots = {"category": "parking", "description": "消防通道被车堵了", "grid_code": "G-HPL-01", "place": "3号楼"}
    tracker = Tracker(WARM_UP_SENDER, slots, {"text": WARM_UP_TEXT, "intent": {"name": "emergency"}},
                      [], False, None, {}, "action_listen")
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, tracker, {})
    assert dispatcher.messages == []  # no "filed" answer: it returned before the database
    assert {e["name"]: e["value"] for e in events if e["event"] == "slot"}["category"] is None


def test_warm_up_through_the_real_stack_files_nothing(stack_db_url: str, rasa_stack: Stack) -> None:
    engine = make_engine(stack_db_url)
    factory = make_session_factory(engine)

    def tickets() -> int:
        with read_scope(factory) as s:
            return len(s.scalars(select(Ticket.id)).all())

    before = tickets()
    client = RasaClient(rasa_stack.rasa_url, TEST_SECRET)
    sent: list[str] = []
    answered: list[Reply] = []
    send = client.send

    async def recording(sender_id: int | str, text: str, metadata: dict[str, object] | None = None) -> list[Reply]:
        sent.append(text)
        replies = await send(sender_id, text, metadata)
        answered.extend(replies)
        return replies

    client.send = recording  # type: ignore[method-assign]

    async def scenario() -> None:
        await client.warm_up()
        await client.aclose()

    asyncio.run(scenario())
    engine.dispose()
    # It got as far as the summary (all the report's actions ran) and stopped there.
    assert any(p.startswith('/affirm{"report":') for r in answered for _, p in r.buttons), answered
    assert not any(x.startswith("/affirm") for x in sent) and sent[-1] == "/restart"
    assert tickets() == before
