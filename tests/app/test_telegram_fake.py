"""FakeTelegram drives the real python-telegram-bot Application, offline."""

from __future__ import annotations

import asyncio
import datetime as dtm
from collections.abc import Awaitable, Callable

import pytest
from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    Update,
)
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.app.telegram_fake import FakeTelegram, SentCall, UploadedFile
from tests.app.telegram_updates import UpdateBuilder

TOKEN = "123:ABC"
USER = 1001


def build_app(fake: FakeTelegram, *, arbitrary_callback_data: bool = False) -> Application:
    builder = Application.builder().token(TOKEN).request(fake).get_updates_request(fake)
    if arbitrary_callback_data:
        builder = builder.arbitrary_callback_data(True)
    return builder.build()


def run(
    scenario: Callable[[Application, FakeTelegram], Awaitable[None]], **app_kwargs: bool
) -> None:
    """Run `scenario(app, fake)` on an initialised application, then shut it down."""
    fake = FakeTelegram()

    async def main() -> None:
        app = build_app(fake, **app_kwargs)
        await app.initialize()
        try:
            await scenario(app, fake)
        finally:
            await app.shutdown()

    asyncio.run(main())


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message and update.effective_user
    keyboard = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton("Report a problem", callback_data="report")],
            [InlineKeyboardButton("Help", callback_data="help")],
        ]
    )
    await update.effective_message.reply_text(
        f"Welcome, {update.effective_user.first_name}!", reply_markup=keyboard
    )


async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    await query.answer("Noted")
    await query.edit_message_text(f"You chose: {query.data}")


# -- the real Application, end to end --------------------------------------------------------


def test_start_replies_with_keyboard_and_the_button_edits_the_message() -> None:
    async def scenario(app: Application, fake: FakeTelegram) -> None:
        app.add_handler(CommandHandler("start", start))
        app.add_handler(CallbackQueryHandler(pressed))
        updates = UpdateBuilder(app.bot, fake)
        assert fake.methods() == ["getMe"]
        assert app.bot.id == 123 and app.bot.username == "gridbot_test_bot"

        await app.process_update(updates.text(USER, "/start", first_name="Mei"))

        [reply] = fake.sent_messages(USER)
        assert reply["method"] == "sendMessage"
        assert reply["chat_id"] == USER
        assert reply["text"] == "Welcome, Mei!"
        assert fake.last_keyboard(USER) == [
            {"text": "Report a problem", "callback_data": "report"},
            {"text": "Help", "callback_data": "help"},
        ]
        # The result was a complete Message: user and bot share the chat's message ids.
        sent = fake.last_message(USER)
        assert sent is not None
        assert sent["message_id"] == reply["message_id"] == 2
        assert sent["from"]["id"] == 123 and sent["from"]["is_bot"] is True
        assert sent["chat"] == {"id": USER, "type": "private", "first_name": "Mei"}

        fake.clear()
        button = fake.last_keyboard(USER)[0]
        press = updates.callback_query(USER, button["callback_data"], sent, first_name="Mei")
        await app.process_update(press)
        assert press.callback_query is not None

        assert fake.methods() == ["answerCallbackQuery", "editMessageText"]
        answer, edit = fake.calls
        assert answer.params == {"callback_query_id": press.callback_query.id, "text": "Noted"}
        assert edit.params["chat_id"] == USER
        assert edit.params["message_id"] == sent["message_id"]
        assert edit.params["text"] == "You chose: report"
        # Editing the text without reply_markup removes the keyboard, as in Telegram.
        assert fake.last_keyboard(USER) == []
        edited = fake.last_message(USER)
        assert edited is not None
        assert edited["text"] == "You chose: report"
        assert "edit_date" in edited

    run(scenario)


def test_arbitrary_callback_data_round_trips_through_the_real_cache() -> None:
    seen: list[object] = []

    async def start_with_objects(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message
        keyboard = InlineKeyboardMarkup(
            [[InlineKeyboardButton("Claim ticket 42", callback_data=("claim", 42))]]
        )
        await update.effective_message.reply_text("Ticket 42 is open", reply_markup=keyboard)

    async def claim(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        seen.append(query.data)
        await query.answer()
        await query.edit_message_reply_markup(None)

    async def scenario(app: Application, fake: FakeTelegram) -> None:
        app.add_handler(CommandHandler("start", start_with_objects))
        app.add_handler(CallbackQueryHandler(claim))
        updates = UpdateBuilder(app.bot, fake)

        await app.process_update(updates.text(USER, "/start"))
        [button] = fake.last_keyboard(USER)
        # On the wire the data is the cache's opaque id, not the tuple.
        assert button["text"] == "Claim ticket 42"
        assert isinstance(button["callback_data"], str)
        assert button["callback_data"] != "('claim', 42)"

        # Deliver the press the way the Updater does: getUpdates resolves the cached data.
        message = fake.last_message(USER)
        fake.push_update(updates.callback_query(USER, button["callback_data"], message))
        [press] = await app.bot.get_updates(timeout=0)
        await app.process_update(press)

        assert seen == [("claim", 42)]
        assert fake.methods()[-2:] == ["answerCallbackQuery", "editMessageReplyMarkup"]
        assert fake.last_keyboard(USER) == []

    run(scenario, arbitrary_callback_data=True)


def test_every_built_update_kind_reaches_its_handler() -> None:
    async def echo_kind(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None
        if update.edited_message:
            kind = f"edited to {message.text}"
        elif message.photo:
            kind = f"photo {message.photo[-1].file_id} {message.caption}"
        elif message.location:
            kind = f"location {message.location.latitude},{message.location.longitude}"
        elif message.sticker:
            kind = f"sticker {message.sticker.emoji}"
        else:
            kind = f"{message.chat.type} text {message.text}"
        await context.bot.send_message(message.chat_id, kind)

    async def scenario(app: Application, fake: FakeTelegram) -> None:
        app.add_handler(MessageHandler(filters.ALL, echo_kind))
        updates = UpdateBuilder(app.bot, fake)
        first = updates.text(USER, "hello")
        built = [
            first,
            updates.photo(USER, caption="broken lamp", file_id="lamp-photo"),
            updates.location(USER, 31.2304, 121.4737),
            updates.sticker(USER, emoji="😀"),
            updates.edited(first, "hello again"),
            updates.group_text(-4001, USER, "in a group"),
            updates.group_text(-1001234567890, USER, "in a supergroup", title="Block 7"),
        ]
        ids = [update.update_id for update in built]
        assert ids == list(range(ids[0], ids[0] + len(built)))
        for update in built:
            await app.process_update(update)

        assert [m["text"] for m in fake.sent_messages(USER)] == [
            "private text hello",
            "photo lamp-photo broken lamp",
            "location 31.2304,121.4737",
            "sticker 😀",
            "edited to hello again",
        ]
        assert [m["text"] for m in fake.sent_messages(-4001)] == ["group text in a group"]
        assert [m["text"] for m in fake.sent_messages(-1001234567890)] == [
            "supergroup text in a supergroup"
        ]
        group_reply = fake.last_message(-1001234567890)
        assert group_reply is not None
        assert group_reply["chat"] == {
            "id": -1001234567890,
            "type": "supergroup",
            "title": "Block 7",
        }

    run(scenario)


def test_command_entities_use_utf16_offsets() -> None:
    updates = UpdateBuilder(None)
    update = updates.text(USER, "👋 /report@gridbot_test_bot now")
    assert update.message is not None
    [entity] = update.message.entities
    assert (entity.type, entity.offset, entity.length) == ("bot_command", 3, 24)
    assert update.message.parse_entity(entity) == "/report@gridbot_test_bot"


def test_files_actions_and_housekeeping_methods_get_real_results() -> None:
    async def scenario(app: Application, fake: FakeTelegram) -> None:
        bot = app.bot
        photo = await bot.send_photo(
            USER,
            InputFile(b"\x89PNG fake", filename="map.png"),
            caption="<b>Map</b>",
            parse_mode=ParseMode.HTML,
        )
        assert isinstance(photo, Message)
        assert photo.caption == "Map"
        assert len(photo.photo) == 3
        document = await bot.send_document(USER, b"a,b\n1,2\n", filename="report.csv")
        assert document.document is not None
        assert document.document.file_name == "report.csv"
        assert document.document.file_size == 8
        assert photo.message_id < document.message_id

        uploads = [
            m["photo" if m["method"] == "sendPhoto" else "document"]
            for m in fake.sent_messages(USER)
        ]
        assert all(isinstance(u, UploadedFile) for u in uploads)
        assert [u.filename for u in uploads] == ["map.png", "report.csv"]
        assert uploads[0].content == b"\x89PNG fake"

        assert await bot.send_chat_action(USER, ChatAction.TYPING) is True
        assert await bot.delete_message(USER, photo.message_id) is True
        assert fake.message(USER, photo.message_id) is None
        assert await bot.set_my_commands([BotCommand("start", "Start")]) is True
        assert [c.command for c in await bot.get_my_commands()] == ["start"]
        assert await bot.delete_webhook() is True
        assert await bot.get_updates() == ()
        chat = await bot.get_chat(USER)
        assert (chat.id, chat.type) == (USER, "private")
        assert await bot.do_api_request("someFutureMethod") is True

        file = await bot.get_file("user-photo-3")
        fake.file_contents["user-photo-3"] = b"jpeg bytes"
        assert bytes(await file.download_as_bytearray()) == b"jpeg bytes"

        assert fake.calls_to("sendChatAction")[0].params == {"chat_id": USER, "action": "typing"}
        assert all(isinstance(call, SentCall) and call.ok for call in fake.calls)

    run(scenario)


def test_telegram_validation_answers_bad_request() -> None:
    async def scenario(app: Application, fake: FakeTelegram) -> None:
        with pytest.raises(BadRequest, match="(?i)message text is empty"):
            await app.bot.send_message(USER, " ")
        with pytest.raises(BadRequest, match="(?i)message is too long"):
            await app.bot.send_message(USER, "x" * 4097)
        with pytest.raises(BadRequest, match="(?i)button_data_invalid"):
            await app.bot.send_message(
                USER,
                "too much data",
                reply_markup=InlineKeyboardMarkup.from_button(
                    InlineKeyboardButton("x", callback_data="x" * 65)
                ),
            )
        sent = await app.bot.send_message(USER, "same")
        with pytest.raises(BadRequest, match="(?i)message is not modified"):
            await sent.edit_text("same")
        assert fake.sent_messages() == [
            {"chat_id": USER, "text": "same", "method": "sendMessage", "message_id": 1}
        ]
        assert [call.status for call in fake.calls[1:]] == [400, 400, 400, 200, 400]

    run(scenario)


# -- failure injection -----------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
def test_429_raises_retry_after() -> None:
    async def scenario(app: Application, fake: FakeTelegram) -> None:
        fake.fail_next("sendMessage", status=429, retry_after=1)
        with pytest.raises(RetryAfter) as caught:
            await app.bot.send_message(USER, "hi")
        # An int today; a timedelta once python-telegram-bot switches (PTB_TIMEDELTA).
        assert caught.value.retry_after in (1, dtm.timedelta(seconds=1))
        failed = fake.calls[-1]
        assert failed.status == 429
        assert failed.result == {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 1",
            "parameters": {"retry_after": 1},
        }
        assert fake.sent_messages() == []
        # Only the next call failed.
        await app.bot.send_message(USER, "hi")
        assert [m["text"] for m in fake.sent_messages(USER)] == ["hi"]

    run(scenario)


def test_403_raises_forbidden_only_for_the_chosen_chat() -> None:
    async def scenario(app: Application, fake: FakeTelegram) -> None:
        fake.fail_next("sendMessage", chat_id=USER, status=403, times=2)
        await app.bot.send_message(2002, "other chat is fine")
        for _ in range(2):
            with pytest.raises(Forbidden, match="bot was blocked by the user"):
                await app.bot.send_message(USER, "hi")
        await app.bot.send_message(USER, "unblocked")
        assert [m["text"] for m in fake.sent_messages()] == ["other chat is fine", "unblocked"]

    run(scenario)


def test_500_raises_network_error_and_400_bad_request() -> None:
    async def scenario(app: Application, fake: FakeTelegram) -> None:
        fake.fail_next("sendMessage", status=500)
        with pytest.raises(NetworkError, match="Internal Server Error") as caught:
            await app.bot.send_message(USER, "hi")
        assert type(caught.value) is NetworkError
        fake.fail_next(
            "editMessageText", status=400, description="Bad Request: message to edit not found"
        )
        with pytest.raises(BadRequest, match="(?i)message to edit not found"):
            await app.bot.edit_message_text("new", chat_id=USER, message_id=99)
        fake.fail_next("sendMessage", exception=TimedOut())
        with pytest.raises(TimedOut):
            await app.bot.send_message(USER, "hi")

    run(scenario)


def test_timeouts_look_like_httpxrequest_s_and_a_read_timeout_comes_after_delivery() -> None:
    async def scenario(app: Application, fake: FakeTelegram) -> None:
        for kind, cause, delivered in (("pool", "PoolTimeout", False), ("connect", "ConnectTimeout", False),
                                       ("write", "WriteTimeout", False), ("read", "ReadTimeout", True)):
            fake.fail_next("sendMessage", chat_id=USER, timeout=kind)
            with pytest.raises(TimedOut) as caught:
                await app.bot.send_message(USER, kind)
            assert type(caught.value.__cause__).__name__ == cause
            assert (kind in [m["text"] for m in fake.sent_messages(USER)]) is delivered
        assert [m["text"] for m in fake.sent_messages(USER)] == ["read"]
        with pytest.raises(ValueError, match="timeout is one of"):
            fake.fail_next("sendMessage", timeout="slow")
        fake.fail_next("sendMessage", chat_id=USER, status=500, after=1)  # the second call fails
        await app.bot.send_message(USER, "first")
        with pytest.raises(NetworkError):
            await app.bot.send_message(USER, "second")
        await app.bot.send_message(USER, "third")
        assert [m["text"] for m in fake.sent_messages(USER)] == ["read", "first", "third"]

    run(scenario)


def test_a_migrated_group_answers_chat_migrated_for_good() -> None:
    async def scenario(app: Application, fake: FakeTelegram) -> None:
        fake.migrate_chat(-4001, -1004001)
        for _ in range(2):
            with pytest.raises(ChatMigrated) as caught:
                await app.bot.send_message(-4001, "hi")
            assert caught.value.new_chat_id == -1004001
        assert fake.calls[-1].status == 400
        await app.bot.send_message(-1004001, "hi")
        assert fake.sent_messages(-4001) == [] and len(fake.sent_messages(-1004001)) == 1

    run(scenario)


def test_handler_errors_reach_the_error_handler() -> None:
    errors: list[BaseException] = []

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert context.error is not None
        errors.append(context.error)

    async def scenario(app: Application, fake: FakeTelegram) -> None:
        app.add_handler(CommandHandler("start", start))
        app.add_error_handler(on_error)
        fake.fail_next("sendMessage", status=403)
        await app.process_update(UpdateBuilder(app.bot, fake).text(USER, "/start"))
        assert len(errors) == 1 and isinstance(errors[0], Forbidden)

    run(scenario)


def test_updater_polling_delivers_pushed_updates() -> None:
    async def scenario(app: Application, fake: FakeTelegram) -> None:
        app.add_handler(CommandHandler("start", start))
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        await app.start()
        try:
            fake.push_update(UpdateBuilder(app.bot, fake).text(USER, "/start", first_name="Li"))
            for _ in range(200):
                if fake.sent_messages(USER):
                    break
                await asyncio.sleep(0.01)
        finally:
            await app.updater.stop()
            await app.stop()
        assert [m["text"] for m in fake.sent_messages(USER)] == ["Welcome, Li!"]
        assert fake.calls_to("deleteWebhook")
        # The confirming getUpdates (offset = last id + 1) emptied the queue.
        assert await app.bot.get_updates(timeout=0) == ()

    run(scenario)
