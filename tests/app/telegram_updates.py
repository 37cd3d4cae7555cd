"""Builders of real `telegram.Update` objects for the tests; they live in `bot/offline.py`.

    updates = UpdateBuilder(app.bot, fake)
    await app.process_update(updates.text(1001, "/start"))

This module's `UpdateBuilder` adds the other kinds of message people send (voice, video,
documents, polls, venues, live locations, ...), in private chats, groups and channels, to
the one of `bot/offline.py`. Like there, each builder writes the Bot API JSON Telegram
delivers and turns it into an `Update` with `Update.de_json`.
"""

from __future__ import annotations

from typing import Any

from telegram import Message, Update

from bot import offline
from bot.offline import JSONDict, command_entities

__all__ = ["KINDS", "JSONDict", "UpdateBuilder", "command_entities"]

#: The message kinds `UpdateBuilder.content` writes.
KINDS = (
    "sticker", "voice", "audio", "video", "video_note", "document", "image_document",
    "animation", "contact", "poll", "dice", "game", "venue", "story",
)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class UpdateBuilder(offline.UpdateBuilder):
    """`bot.offline.UpdateBuilder` plus every other kind of message (see KINDS)."""

    def message_json(
        self,
        user: JSONDict,
        chat: JSONDict,
        content: JSONDict,
        message_id: int | None = None,
    ) -> JSONDict:
        """As in bot/offline.py; a caption's commands get their entities, as Telegram sends them."""
        caption = content.get("caption")
        if caption and "caption_entities" not in content and command_entities(caption):
            content = {**content, "caption_entities": command_entities(caption)}
        return super().message_json(user, chat, content, message_id)

    def _file(self, kind: str, **fields: Any) -> JSONDict:
        file_id, unique_id = self._new_file_id(kind)
        return {"file_id": file_id, "file_unique_id": unique_id, **fields}

    def content(self, kind: str, *, caption: str | None = None) -> JSONDict:
        """The content fields of a message of `kind` (one of KINDS), as the Bot API writes them."""
        content: JSONDict
        match kind:
            case "sticker":
                content = {"sticker": self._file("sticker", type="regular", width=512, height=512,
                                                 is_animated=False, is_video=False, emoji="👍",
                                                 set_name="TestStickers")}
            case "voice":
                content = {"voice": self._file("voice", duration=4, mime_type="audio/ogg")}
            case "audio":
                content = {"audio": self._file("audio", duration=180, performer="某歌手",
                                               title="一首歌", mime_type="audio/mpeg")}
            case "video":
                content = {"video": self._file("video", width=1280, height=720, duration=12,
                                               mime_type="video/mp4")}
            case "video_note":
                content = {"video_note": self._file("video_note", length=240, duration=8)}
            case "document":
                content = {"document": self._file("document", file_name="情况说明.pdf",
                                                  mime_type="application/pdf")}
            case "image_document":  # a photo sent "as a file": a document, not a photo
                content = {"document": self._file("document", file_name="IMG_0001.jpg",
                                                  mime_type="image/jpeg")}
            case "animation":  # Telegram sets `document` too, for old clients
                file = self._file("animation", file_name="cat.mp4", mime_type="video/mp4")
                content = {"animation": {**file, "width": 320, "height": 240, "duration": 3},
                           "document": file}
            case "contact":
                content = {"contact": {"phone_number": "+8613800138000", "first_name": "王师傅",
                                       "user_id": 777001}}
            case "poll":
                content = {"poll": {
                    "id": "5400000000000000001", "question": "周六大扫除去吗？",
                    "options": [{"text": "去", "voter_count": 0, "persistent_id": "0"},
                                {"text": "不去", "voter_count": 0, "persistent_id": "1"}],
                    "total_voter_count": 0, "is_closed": False, "is_anonymous": True,
                    "type": "regular", "allows_multiple_answers": False, "allows_revoting": True,
                    "members_only": False}}
            case "dice":
                content = {"dice": {"emoji": "🎲", "value": 4}}
            case "game":
                content = {"game": {"title": "Lumberjack", "description": "Chop wood",
                                    "photo": [self._file("game", width=640, height=360)]}}
            case "venue":  # a place picked on the map; Telegram sets `location` too
                location = {"latitude": 39.9612, "longitude": 116.4175}
                content = {"venue": {"location": location, "title": "和平里社区服务中心",
                                     "address": "和平里东街11号"},
                           "location": location}
            case "story":  # a story forwarded into the chat
                content = {"story": {"chat": {"id": 888001, "type": "private", "first_name": "Bob"},
                                     "id": 7}}
            case _:
                raise ValueError(f"unknown message kind {kind!r}; one of {KINDS}")
        if caption:
            content["caption"] = caption
        return content

    # -- updates -------------------------------------------------------------------------

    def kind(self, user_id: int, kind: str, *, caption: str | None = None,
             first_name: str = "Alice", message_id: int | None = None, **user_kwargs: Any) -> Update:
        """A message of `kind` (one of KINDS) from a user in the private chat with the bot."""
        return self._private(user_id, first_name, self.content(kind, caption=caption), message_id,
                             user_kwargs)

    def group_kind(self, chat_id: int, user_id: int, kind: str, *, title: str = "Test group",
                   first_name: str = "Alice", **user_kwargs: Any) -> Update:
        """A message of `kind` (KINDS, or "text") from a user in a group (chat_id < 0)."""
        if chat_id >= 0:
            raise ValueError("group chat ids are negative")
        user = self.user(user_id, first_name, **user_kwargs)
        content = self._text_content("大家好") if kind == "text" else self.content(kind)
        return self.update(message=self.message_json(user, self.group_chat(chat_id, title), content))

    def channel_post(self, chat_id: int, kind: str, *, title: str = "Test channel") -> Update:
        """A post of `kind` (KINDS, or "text") in a channel: no sender, the channel signs it."""
        chat = self._remember({"id": chat_id, "type": "channel", "title": title})
        content = self._text_content("停水通知") if kind == "text" else self.content(kind)
        post = {"message_id": self.next_message_id(chat_id), "sender_chat": chat, "chat": chat,
                "date": int(self.clock()), **content}
        return self.update(channel_post=post)

    def monospace(self, user_id: int, text: str, *, first_name: str = "Alice",
                  message_id: int | None = None, **user_kwargs: Any) -> Update:
        """Text the user sent as `code`: one code entity, and so no bot_command entity."""
        content = {"text": text, "entities": [{"type": "code", "offset": 0, "length": _utf16_len(text)}]}
        return self._private(user_id, first_name, content, message_id, user_kwargs)

    def live_location(self, user_id: int, latitude: float, longitude: float, *,
                      live_period: int = 900, first_name: str = "Alice",
                      message_id: int | None = None, **user_kwargs: Any) -> Update:
        """The start of a live location shared in the private chat (live for `live_period` s)."""
        location = {"latitude": latitude, "longitude": longitude, "live_period": live_period}
        return self._private(user_id, first_name, {"location": location}, message_id, user_kwargs)

    def moved(self, original: Update | Message | JSONDict, latitude: float, longitude: float) -> Update:
        """The `edited_message` update Telegram sends as a live location moves."""
        if isinstance(original, Update):
            if original.message is None:
                raise ValueError("the update holds no message to edit")
            original = original.message
        data = original.to_dict() if isinstance(original, Message) else dict(original)
        data["location"] = {**data["location"], "latitude": latitude, "longitude": longitude}
        data["edit_date"] = max(int(self.clock()), int(data["date"]) + 1)
        return self.update(edited_message=data)
