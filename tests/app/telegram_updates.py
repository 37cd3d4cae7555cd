"""Builders for real `telegram.Update` objects, shaped like the JSON Telegram delivers.

Each builder writes the Bot API JSON of an update and turns it into an `Update` with
`Update.de_json(data, bot)`, so the objects are exactly what python-telegram-bot makes of a
real update (shortcuts such as `message.reply_text` work through `bot`)::

    updates = UpdateBuilder(app.bot, fake)
    await app.process_update(updates.text(1001, "/start"))

With the `FakeTelegram` passed in, users' and the bot's messages share the chat's message
ids (as in Telegram) and the fake learns the chats' names. Update ids count up from
`first_update_id`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from telegram import Bot, Message, Update

from tests.app.telegram_fake import FakeTelegram, chat_type_for

JSONDict = dict[str, Any]

# A bot command as Telegram marks it: "/name" or "/name@bot", at the start or after a space.
_COMMAND_RE = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{1,32})?")


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def command_entities(text: str) -> list[JSONDict]:
    """The bot_command entities Telegram attaches to `text` (offsets in UTF-16 units)."""
    return [
        {
            "type": "bot_command",
            "offset": _utf16_len(text[: match.start()]),
            "length": _utf16_len(match.group()),
        }
        for match in _COMMAND_RE.finditer(text)
    ]


class UpdateBuilder:
    """Makes updates for one bot. All ids are plain ints, like Telegram's.

    Args:
        bot: the bot the updates are bound to (`app.bot`).
        telegram: the `FakeTelegram` behind `bot`, to share message ids and chat names.
        first_update_id: the first update's id; later ones count up by one.
        clock: wall clock for the `date` fields.
    """

    def __init__(
        self,
        bot: Bot | None,
        telegram: FakeTelegram | None = None,
        *,
        first_update_id: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bot = bot
        self.telegram = telegram
        self.clock = clock
        self._update_id = first_update_id - 1
        self._message_ids: dict[int, int] = {}
        self._query_id = 0
        self._file_counter = 0

    # -- parts ---------------------------------------------------------------------------

    @staticmethod
    def user(
        user_id: int,
        first_name: str = "Alice",
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> JSONDict:
        """A User object."""
        user: JSONDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        return user

    def private_chat(self, user: JSONDict) -> JSONDict:
        chat: JSONDict = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        for key in ("last_name", "username"):
            if key in user:
                chat[key] = user[key]
        return self._remember(chat)

    def group_chat(self, chat_id: int, title: str = "Test group") -> JSONDict:
        return self._remember({"id": chat_id, "type": chat_type_for(chat_id), "title": title})

    def _remember(self, chat: JSONDict) -> JSONDict:
        if self.telegram is not None:
            self.telegram.remember_chat(chat)
        return chat

    def next_message_id(self, chat_id: int) -> int:
        if self.telegram is not None:
            return self.telegram.next_message_id(chat_id)
        self._message_ids[chat_id] = self._message_ids.get(chat_id, 0) + 1
        return self._message_ids[chat_id]

    def _new_file_id(self, kind: str) -> tuple[str, str]:
        self._file_counter += 1
        return f"user-{kind}-{self._file_counter}", f"user-{kind}-unique-{self._file_counter}"

    def message_json(
        self,
        user: JSONDict,
        chat: JSONDict,
        content: JSONDict,
        message_id: int | None = None,
    ) -> JSONDict:
        """A Message object from `user` in `chat` with `content` (text, photo, ...)."""
        if message_id is None:
            message_id = self.next_message_id(chat["id"])
        return {
            "message_id": message_id,
            "from": user,
            "chat": chat,
            "date": int(self.clock()),
            **content,
        }

    def _text_content(self, text: str) -> JSONDict:
        content: JSONDict = {"text": text}
        entities = command_entities(text)
        if entities:
            content["entities"] = entities
        return content

    def update(self, **fields: Any) -> Update:
        """An update with the next update_id and the given fields (message=..., ...)."""
        self._update_id += 1
        return Update.de_json({"update_id": self._update_id, **fields}, self.bot)

    def _private(
        self,
        user_id: int,
        first_name: str,
        content: JSONDict,
        message_id: int | None,
        user_kwargs: dict[str, Any],
    ) -> Update:
        user = self.user(user_id, first_name, **user_kwargs)
        message = self.message_json(user, self.private_chat(user), content, message_id)
        return self.update(message=message)

    # -- updates -------------------------------------------------------------------------

    def text(
        self,
        user_id: int,
        text: str,
        *,
        first_name: str = "Alice",
        message_id: int | None = None,
        **user_kwargs: Any,
    ) -> Update:
        """A text message from a user in the private chat with the bot.

        Commands ("/start") get their bot_command entity, as Telegram sends them.
        """
        return self._private(user_id, first_name, self._text_content(text), message_id, user_kwargs)

    def photo(
        self,
        user_id: int,
        *,
        caption: str | None = None,
        file_id: str | None = None,
        first_name: str = "Alice",
        message_id: int | None = None,
        **user_kwargs: Any,
    ) -> Update:
        """A photo from a user in the private chat: three sizes, the largest last.

        `file_id` names the largest size (the one a bot downloads).
        """
        sizes = []
        for width, height in ((90, 68), (320, 240), (1280, 960)):
            size_id, unique_id = self._new_file_id("photo")
            sizes.append(
                {
                    "file_id": size_id,
                    "file_unique_id": unique_id,
                    "width": width,
                    "height": height,
                    "file_size": width * height // 10,
                }
            )
        if file_id is not None:
            sizes[-1]["file_id"] = file_id
        content: JSONDict = {"photo": sizes}
        if caption:
            content["caption"] = caption
        return self._private(user_id, first_name, content, message_id, user_kwargs)

    def location(
        self,
        user_id: int,
        latitude: float,
        longitude: float,
        *,
        horizontal_accuracy: float | None = None,
        first_name: str = "Alice",
        message_id: int | None = None,
        **user_kwargs: Any,
    ) -> Update:
        """A location shared by a user in the private chat."""
        location: JSONDict = {"latitude": latitude, "longitude": longitude}
        if horizontal_accuracy is not None:
            location["horizontal_accuracy"] = horizontal_accuracy
        return self._private(user_id, first_name, {"location": location}, message_id, user_kwargs)

    def sticker(
        self,
        user_id: int,
        *,
        emoji: str = "👍",
        set_name: str | None = "TestStickers",
        first_name: str = "Alice",
        message_id: int | None = None,
        **user_kwargs: Any,
    ) -> Update:
        """A (static, regular) sticker from a user in the private chat."""
        file_id, unique_id = self._new_file_id("sticker")
        sticker: JSONDict = {
            "file_id": file_id,
            "file_unique_id": unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
            "file_size": 20_480,
        }
        if set_name:
            sticker["set_name"] = set_name
        return self._private(user_id, first_name, {"sticker": sticker}, message_id, user_kwargs)

    def edited(self, original: Update | Message | JSONDict, text: str) -> Update:
        """The `edited_message` update for a text message the user edited to `text`."""
        if isinstance(original, Update):
            if original.message is None:
                raise ValueError("the update holds no message to edit")
            original = original.message
        data = original.to_dict() if isinstance(original, Message) else dict(original)
        data.pop("entities", None)
        data.update(self._text_content(text))
        data["edit_date"] = max(int(self.clock()), int(data["date"]) + 1)
        return self.update(edited_message=data)

    def callback_query(
        self,
        user_id: int,
        data: str,
        message: Message | JSONDict | None,
        *,
        first_name: str = "Alice",
        inline_message_id: str | None = None,
        **user_kwargs: Any,
    ) -> Update:
        """The update for a user pressing an inline button with `data` on `message`.

        `message` is the bot message that carries the keyboard, e.g.
        `fake.last_message(chat_id)` or the `Message` a handler sent. Pass
        `message=None, inline_message_id=...` for buttons on inline-mode messages.
        """
        self._query_id += 1
        user = self.user(user_id, first_name, **user_kwargs)
        query: JSONDict = {
            "id": f"{user_id}{self._query_id:06d}",
            "from": user,
            "data": data,
        }
        if message is not None:
            message_data = message.to_dict() if isinstance(message, Message) else dict(message)
            chat_id = int(message_data["chat"]["id"])
            query["message"] = message_data
        else:
            query["inline_message_id"] = inline_message_id or f"inline-{self._query_id}"
            chat_id = user_id
        query["chat_instance"] = str(abs(chat_id) * 7919 + 104_729)
        return self.update(callback_query=query)

    def group_text(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        *,
        title: str = "Test group",
        first_name: str = "Alice",
        message_id: int | None = None,
        **user_kwargs: Any,
    ) -> Update:
        """A text message from a user in a group (chat_id < 0; -100... for a supergroup)."""
        if chat_id >= 0:
            raise ValueError("group chat ids are negative")
        user = self.user(user_id, first_name, **user_kwargs)
        chat = self.group_chat(chat_id, title)
        message = self.message_json(user, chat, self._text_content(text), message_id)
        return self.update(message=message)
