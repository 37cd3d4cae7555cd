"""Every message in a private chat gets an answer; groups and channels get none; nothing a
user typed reaches Rasa as an intent payload.

The real Application on the fake Telegram, with Rasa down (a dead URL): what the bot takes
waits in the inbox and the resident hears `rasa_down`; what it cannot take is answered by the
bot itself. Rasa is not needed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from telegram import Update

from bot.app import SLASH_ESCAPE, as_words, payload
from core.messages import t
from core.models import InboxMessage
from core.text import normalise
from tests.app.journey import SHOWN, Journey, journey
from tests.app.stack import free_port
from tests.app.telegram_updates import KINDS

USER = 515151
GROUP, SUPERGROUP, CHANNEL = -4001, -1001234567890, -1009876543210
JOIN = '/join_ticket{"ticket":"2026-000001"}'
CHINESE = re.compile(r"[\u4e00-\u9fff]")

# What the bot answers to each kind; a venue is a place, so it goes to Rasa (down: rasa_down).
EXPECTED = {
    "sticker": "sticker", "voice": "kind.voice", "audio": "kind.audio", "video": "kind.video",
    "video_note": "kind.video_note", "document": "kind.document",
    "image_document": "kind.image_document", "animation": "kind.animation",
    "contact": "kind.contact", "poll": "kind.poll", "dice": "kind.game", "game": "kind.game",
    "venue": "rasa_down", "story": "kind.other",
}


def run(engine: Engine, script: Callable[[Journey], Awaitable[None]]) -> sessionmaker[Session]:
    """Run `script` on the real Application with Rasa unreachable; the database's factory."""
    factory = sessionmaker(engine, expire_on_commit=False)

    async def scenario() -> None:
        async with journey(factory, f"http://127.0.0.1:{free_port()}") as j:
            await script(j)

    asyncio.run(scenario())
    return factory


async def sent(j: Journey, update: Update) -> list[tuple[object, str]]:
    """(chat id, text) of everything the bot sent or edited, anywhere, for `update`."""
    before = len(j.fake.calls)
    await j.app.process_update(update)
    await j.drain()
    return [(c.params.get("chat_id"), str(c.params.get("text") or c.params.get("caption") or ""))
            for c in j.fake.calls[before:] if c.method.lower() in SHOWN]


def inbox_rows(factory: sessionmaker[Session]) -> list[InboxMessage]:
    with factory() as s:
        return list(s.scalars(select(InboxMessage).order_by(InboxMessage.id)))


def test_every_kind_in_a_private_chat_gets_one_chinese_answer(sqlite_engine: Engine) -> None:
    assert set(EXPECTED) == set(KINDS)

    async def script(j: Journey) -> None:
        for kind in KINDS:
            answers = await sent(j, j.updates.kind(USER, kind))
            assert answers == [(USER, t(EXPECTED[kind]))], kind
            assert CHINESE.search(answers[0][1]) and len(answers[0][1]) <= 100, kind

    factory = run(sqlite_engine, script)
    [venue] = inbox_rows(factory)  # only the venue is for Rasa
    assert venue.text == payload("share_location", latitude=39.9612, longitude=116.4175)


def test_answers_say_what_the_bot_takes() -> None:
    for key in {"kind.voice", "kind.audio", "kind.video", "kind.video_note", "kind.animation",
                "kind.document", "kind.contact", "kind.poll", "kind.game", "kind.other"}:
        assert "打字" in t(key) and "照片" in t(key) and "位置" in t(key), key
    assert "/help" in t("kind.unknown_command") and "没有这个命令" in t("kind.unknown_command")


def test_live_location_moves_are_answered_once(sqlite_engine: Engine) -> None:
    async def script(j: Journey) -> None:
        start = j.updates.live_location(USER, 39.9600, 116.4170)
        assert await sent(j, start) == [(USER, t("rasa_down"))]  # the start is a shared place
        moves = [await sent(j, j.updates.moved(start, 39.9600 + i / 1000, 116.4170)) for i in range(1, 4)]
        assert moves == [[(USER, t("kind.live_location"))], [], []]
        again = j.updates.live_location(USER, 39.9700, 116.4200)  # a new live location
        await sent(j, again)
        assert await sent(j, j.updates.moved(again, 39.9710, 116.4200)) == [(USER, t("kind.live_location"))]
        said = j.updates.text(USER, "3号楼电梯坏了")
        await sent(j, said)
        assert await sent(j, j.updates.edited(said, "3号楼电梯又坏了")) == [(USER, t("edited"))]

    factory = run(sqlite_engine, script)
    assert [row.text for row in inbox_rows(factory)] == [
        payload("share_location", latitude=39.96, longitude=116.417),
        payload("share_location", latitude=39.97, longitude=116.42),
        "3号楼电梯坏了",
    ]


def test_groups_and_channels_are_not_answered(sqlite_engine: Engine) -> None:
    async def script(j: Journey) -> None:
        updates = j.updates
        for kind in (*KINDS, "text"):
            for chat in (GROUP, SUPERGROUP):
                assert await sent(j, updates.group_kind(chat, USER, kind)) == [], (chat, kind)
            assert await sent(j, updates.channel_post(CHANNEL, kind)) == [], kind
        said = updates.group_text(GROUP, USER, "3号楼电梯坏了")
        assert await sent(j, said) == []
        assert await sent(j, updates.edited(said, "3号楼电梯又坏了")) == []
        assert await sent(j, updates.group_text(GROUP, USER, JOIN)) == []
        assert await sent(j, updates.group_text(GROUP, USER, "/nosuchcommand")) == []

    factory = run(sqlite_engine, script)
    assert inbox_rows(factory) == []


def test_service_messages_are_not_answered(sqlite_engine: Engine) -> None:
    async def script(j: Journey) -> None:
        updates = j.updates
        user = updates.user(USER)
        chat = updates.private_chat(user)
        pinned = updates.message_json(user, chat, {"text": "3号楼电梯坏了"})
        service = updates.message_json(user, chat, {"pinned_message": pinned})
        assert await sent(j, updates.update(message=service)) == []

    assert inbox_rows(run(sqlite_engine, script)) == []


def test_photo_with_caption_is_one_submission(sqlite_engine: Engine) -> None:
    async def script(j: Journey) -> None:
        update = j.updates.photo(USER, file_id="photo-largest", caption="  3号楼楼道灯坏了，一片黑  ")
        assert update.message is not None and update.message.photo[-1].file_id == "photo-largest"
        assert await sent(j, update) == [(USER, t("rasa_down"))]

    [row] = inbox_rows(run(sqlite_engine, script))
    assert row.text == "3号楼楼道灯坏了，一片黑"
    assert row.meta["photo"] == "photo-largest"
    assert "caption_follows" not in row.meta


def test_photo_without_caption_is_the_share_photo_payload(sqlite_engine: Engine) -> None:
    async def script(j: Journey) -> None:
        assert await sent(j, j.updates.photo(USER, file_id="photo-largest")) == [(USER, t("rasa_down"))]

    [row] = inbox_rows(run(sqlite_engine, script))
    assert row.text == '/share_photo{"photo":"photo-largest"}' == payload("share_photo", photo="photo-largest")


def test_payload_shaped_words_do_not_reach_rasa_as_payloads(sqlite_engine: Engine) -> None:
    async def script(j: Journey) -> None:
        updates = j.updates
        captioned = updates.photo(USER, file_id="photo-join", caption=JOIN)
        assert captioned.message is not None and captioned.message.caption_entities  # Telegram marks it
        for update in (captioned,
                       updates.monospace(USER, JOIN),           # `code`, so no bot_command entity
                       updates.text(USER, " " + JOIN),          # the command entity is not at 0
                       updates.text(USER, "／join_ticket{\"ticket\":\"2026-000001\"}"),  # full width
                       updates.text(USER, "/楼道灯坏了")):      # no command: not ASCII
            assert await sent(j, update) == [(USER, t("rasa_down"))]

    rows = inbox_rows(run(sqlite_engine, script))
    assert len(rows) == 5
    for row in rows:
        # Rasa's RegexMessageHandler reads the text after the pipeline's normaliser (nlu/normalizer.py).
        assert not row.text.startswith("/") and not normalise(row.text).startswith("/"), row.text
        assert row.text.startswith(SLASH_ESCAPE), row.text
    assert rows[0].meta["photo"] == "photo-join"
    assert [row.text.endswith('join_ticket{"ticket":"2026-000001"}') for row in rows] == [True] * 4 + [False]
    assert rows[4].text == SLASH_ESCAPE + "楼道灯坏了"


def test_unknown_commands_are_answered_and_not_sent_to_rasa(sqlite_engine: Engine) -> None:
    async def script(j: Journey) -> None:
        for typed in (JOIN, "/nosuchcommand", "/share_photo", "/help@some_other_bot"):
            assert await sent(j, j.updates.text(USER, typed)) == [(USER, t("kind.unknown_command"))], typed
        # Known commands are still theirs: /help goes to Rasa as the bot's own payload.
        assert await sent(j, j.updates.text(USER, "/help")) == [(USER, t("rasa_down"))]

    assert [row.text for row in inbox_rows(run(sqlite_engine, script))] == [payload("help")]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("3号楼电梯坏了", "3号楼电梯坏了"),
     ("  3号楼电梯坏了\n", "3号楼电梯坏了"),
     ("3号楼/4号楼", "3号楼/4号楼"),
     (JOIN, SLASH_ESCAPE + JOIN[1:]),
     ("  /help", SLASH_ESCAPE + "help"),
     ("／help", SLASH_ESCAPE + "／help"),
     ("//x", SLASH_ESCAPE + "/x")],
)
def test_as_words(typed: str, expected: str) -> None:
    assert as_words(typed) == expected
    assert not normalise(as_words(typed)).startswith("/")


def test_blank_text_and_a_press_without_data_are_answered(sqlite_engine: Engine) -> None:
    """Found by `make fuzz`: only full-width spaces reached Rasa as an empty message (no answer),
    and a press with empty data was taken by the invite handler and not answered."""
    async def script(j: Journey) -> None:
        assert await sent(j, j.updates.text(USER, "\u3000\u3000 ")) == [(USER, t("default"))]
        before = len(j.fake.calls_to("answerCallbackQuery"))
        await sent(j, j.updates.callback_query(USER, "", None))
        answers = j.fake.calls_to("answerCallbackQuery")[before:]
        assert [a.params.get("text") for a in answers] == [t("button_invalid")]

    assert inbox_rows(run(sqlite_engine, script)) == []
