"""An offline Telegram Bot API, and real `Update`s to feed it: `gridbot shell` and the tests.

`FakeTelegram` is a `telegram.request.BaseRequest` that plays Telegram's Bot API without a
network; `UpdateBuilder` writes the Update JSON Telegram would deliver. Together they let the
REAL python-telegram-bot `Application` (bot/app.py) run offline: `gridbot shell` (bot/shell.py)
chats with it in a terminal, and the tests drive it and inspect what it sent.

FakeTelegram
------------
A `BaseRequest` that answers like Telegram does.

`FakeTelegram` plugs into the REAL python-telegram-bot stack in place of the HTTP
transport::

    fake = FakeTelegram()
    app = Application.builder().token("123:ABC").request(fake).get_updates_request(fake).build()

Every Bot API call the bot makes ends up in `FakeTelegram.do_request`, which never
touches the network. It records the call (`fake.calls`) and answers with the JSON
Telegram would send: `{"ok": true, "result": ...}` with complete `Message` objects
for the sending and editing methods, or the real error JSON with the real HTTP status
code, so that python-telegram-bot itself raises `RetryAfter`, `Forbidden`,
`BadRequest`, `NetworkError`, ... (see `fail_next`).

What the fake models, because real bots trip over it:

* message ids count up per chat; messages the bot sent are kept (`message()`,
  `last_message()`) and edits change them;
* `editMessageText` without `reply_markup` removes the inline keyboard, and an edit that
  changes nothing answers 400 "message is not modified";
* only inline keyboards are echoed back in `Message.reply_markup` (reply keyboards and
  `ForceReply` are not part of a returned message);
* empty texts, texts over 4096 characters, captions over 1024 characters and callback data
  over 64 bytes answer 400 like Telegram (switch off with `validate=False`);
* `parse_mode="HTML"` texts come back with the tags stripped (no entities are computed;
  Markdown is echoed unchanged).

Failures to inject: Telegram's error answers and exceptions (`fail_next`), timeouts as
python-telegram-bot's HTTPXRequest raises them (`fail_next(timeout=...)`: a read timeout
after Telegram carried out the call), a group upgraded to a supergroup (`migrate_chat`).

What it does not model: rate limits (inject them with `fail_next`), entity parsing,
permissions, most methods' validation. Unknown methods answer `{"ok": true, "result": true}`.

UpdateBuilder
-------------
Real `telegram.Update` objects, shaped like the JSON Telegram delivers.

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

import asyncio
import base64
import html
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import httpx
from telegram import Bot, Message, Update
from telegram.error import TimedOut
from telegram.request import BaseRequest, RequestData

__all__ = [
    "DEFAULT_DESCRIPTIONS",
    "MAX_CALLBACK_DATA_BYTES",
    "MAX_CAPTION_LENGTH",
    "MAX_TEXT_LENGTH",
    "MIGRATED",
    "NOT_MODIFIED",
    "SENDING_METHODS",
    "TIMEOUTS",
    "TINY_JPEG",
    "FakeTelegram",
    "JSONDict",
    "SentCall",
    "UpdateBuilder",
    "UploadedFile",
    "buttons",
    "chat_type_for",
    "command_entities",
    "timed_out",
]

JSONDict = dict[str, Any]

#: An 8x8 JPEG: what a made-up photo holds when the bot downloads it.
TINY_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4"
    "UG1RV19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2Nj"
    "Y2NjY2NjY2NjY2NjY2NjY2NjY2P/wAARCAAIAAgDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcI"
    "CQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRol"
    "JicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ip"
    "qrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAA"
    "AAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLR"
    "ChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaX"
    "mJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEA"
    "PwDaooorzzc//9k="
)

#: The methods whose calls `FakeTelegram.sent_messages` returns.
SENDING_METHODS = ("sendmessage", "sendphoto", "senddocument")

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)

#: Telegram's descriptions for the error codes `fail_next` is used with most.
DEFAULT_DESCRIPTIONS: dict[int, str] = {
    400: "Bad Request: chat not found",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running",
    429: "Too Many Requests: retry after {retry_after}",
    500: "Internal Server Error",
    502: "Bad Gateway",
}

_URL_RE = re.compile(r"/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)/?$")
_FILE_URL_RE = re.compile(r"/file/bot(?P<token>[^/]+)/(?P<path>.+)$")
_TAG_RE = re.compile(r"<[^>]+>")


@dataclass
class SentCall:
    """One Bot API call the bot made.

    `method` is spelled as python-telegram-bot sends it (e.g. "sendMessage"); `params` are
    the decoded parameters (reply_markup etc. as dicts, uploaded files as `UploadedFile`);
    `at` is `time.monotonic()` when the call arrived; `status` the HTTP status answered
    (200, the error's code, or 0 when an injected exception was raised); `result` the JSON
    `result` (or the error body).
    """

    method: str
    params: JSONDict
    at: float
    status: int = 200
    result: Any = None
    files: dict[str, UploadedFile] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def chat_id(self) -> int | str | None:
        return self.params.get("chat_id")


@dataclass(frozen=True)
class UploadedFile:
    """A file the bot uploaded (multipart part), e.g. the `photo` of a sendPhoto call."""

    field: str
    filename: str
    mime_type: str
    content: bytes

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass
class _Failure:
    method: str  # lower case
    chat_id: int | str | None
    status: int
    description: str
    retry_after: int | None
    times: int
    exception: BaseException | None
    timeout: str | None = None
    after: int = 0  # matching calls that still go through before this failure


#: `fail_next(timeout=...)`: the httpx exception HTTPXRequest turns into TimedOut, and whether
#: Telegram got (and carried out) the request before the time ran out.
TIMEOUTS: dict[str, tuple[type[httpx.TimeoutException], bool]] = {
    "pool": (httpx.PoolTimeout, False),
    "connect": (httpx.ConnectTimeout, False),
    "write": (httpx.WriteTimeout, False),
    "read": (httpx.ReadTimeout, True),
}

MIGRATED = "Bad Request: group chat was upgraded to a supergroup chat"


def timed_out(kind: str) -> TimedOut:
    """The TimedOut python-telegram-bot's HTTPXRequest raises for an httpx timeout of `kind`
    (its `__cause__` is the httpx exception, as with `raise TimedOut from err`)."""
    cause = TIMEOUTS[kind][0](f"{kind} timed out")
    error = TimedOut("Pool timeout: All connections in the connection pool are occupied. Request "
                     "was *not* sent to Telegram.") if kind == "pool" else TimedOut()
    error.__cause__ = cause
    return error


def chat_type_for(chat_id: int) -> str:
    """The chat type Telegram's id scheme implies: users > 0, supergroups -100..., groups < 0."""
    if chat_id > 0:
        return "private"
    if chat_id <= -1_000_000_000_000:
        return "supergroup"
    return "group"


def _normalise_chat_id(value: Any) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value)
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text  # "@channelusername"


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _inline_markup(markup: Any) -> JSONDict | None:
    """The part of a reply_markup parameter Telegram echoes back in a Message."""
    if isinstance(markup, str):
        markup = json.loads(markup)
    if isinstance(markup, dict) and "inline_keyboard" in markup:
        return markup
    return None


class FakeTelegram(BaseRequest):
    """A `telegram.request.BaseRequest` that plays Telegram's Bot API offline.

    Args:
        bot_username: the bot's username in getMe and in `from` of its messages.
        bot_first_name: the bot's first name.
        validate: answer 400 for texts/captions/callback data Telegram would reject.
        poll_delay: how long an empty getUpdates with `timeout > 0` waits before answering
            `[]` (a short stand-in for long polling, so polling loops do not spin).
        clock: wall clock for message dates (seconds since the epoch).
        first_message_id: the first message id of every chat (later ones count up by one);
            a shell that restarts later starts higher, as a chat's ids never repeat.
    """

    def __init__(
        self,
        *,
        bot_username: str = "gridbot_test_bot",
        bot_first_name: str = "GridBot",
        validate: bool = True,
        poll_delay: float = 0.01,
        clock: Callable[[], float] = time.time,
        first_message_id: int = 1,
    ) -> None:
        self.bot_username = bot_username
        self.first_message_id = first_message_id
        self.bot_first_name = bot_first_name
        self.validate = validate
        self.poll_delay = poll_delay
        self.clock = clock
        self.bot_id: int | None = None  # learnt from the token in the URL
        self.calls: list[SentCall] = []
        self.initialized = 0
        self.shut_down = 0
        self.file_contents: dict[str, bytes] = {}
        self._failures: list[_Failure] = []
        self._migrated: dict[int | str, int] = {}
        self._next_message_id: dict[int | str, int] = {}
        self._messages: dict[tuple[int | str, int], JSONDict] = {}
        self._chats: dict[int | str, JSONDict] = {}
        self._updates: list[JSONDict] = []
        self.webhook: JSONDict = {}  # what setWebhook set: url, secret_token, allowed_updates
        self._file_counter = 0

    # -- BaseRequest -------------------------------------------------------------------

    async def initialize(self) -> None:
        self.initialized += 1

    async def shutdown(self) -> None:
        self.shut_down += 1

    @property
    def read_timeout(self) -> float | None:
        return 5.0

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        at = time.monotonic()
        file_match = _FILE_URL_RE.search(url)
        if method == "GET" and file_match:
            return self._download(file_match.group("path"), at)
        match = _URL_RE.search(url)
        if not match:
            return self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        self._learn_token(match.group("token"))
        api_method = match.group("method")
        params, files = self._decode(request_data)
        call = SentCall(method=api_method, params=params, at=at, files=files)
        self.calls.append(call)

        moved_to = self._migrated.get(params["chat_id"]) if "chat_id" in params else None
        if moved_to is not None:
            return self._error(call, 400, MIGRATED, None, {"migrate_to_chat_id": moved_to})
        failure = self._take_failure(api_method, params)
        if failure is not None and failure.timeout is not None:
            if TIMEOUTS[failure.timeout][1]:  # Telegram carried it out; the answer is lost
                handler = getattr(self, f"_api_{api_method.lower()}", None)
                try:
                    call.result = handler(params, files) if handler else True
                except _ApiError as exc:
                    call.status, call.result = exc.status, exc.description
            else:
                call.status = 0
                call.result = f"{failure.timeout} timeout"
            raise timed_out(failure.timeout)
        if failure is not None:
            if failure.exception is not None:
                call.status = 0
                call.result = repr(failure.exception)
                raise failure.exception
            return self._error(call, failure.status, failure.description, failure.retry_after)

        if api_method.lower() == "getupdates":
            result: Any = await self._get_updates(params)
        else:
            handler = getattr(self, f"_api_{api_method.lower()}", None)
            try:
                result = handler(params, files) if handler else True
            except _ApiError as exc:
                return self._error(call, exc.status, exc.description, None)
        call.result = result
        return self._reply(200, {"ok": True, "result": result})

    # -- failure injection ---------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        chat_id: int | str | None = None,
        status: int = 429,
        retry_after: int | None = None,
        times: int = 1,
        description: str | None = None,
        exception: BaseException | None = None,
        timeout: str | None = None,
        after: int = 0,
    ) -> None:
        """Make the next `times` calls of `method` (to `chat_id`, if given) fail like Telegram.

        The answer is Telegram's error JSON with `status` as HTTP status, e.g. for 429
        `{"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 3",
        "parameters": {"retry_after": 3}}`; python-telegram-bot turns it into RetryAfter
        (429), Forbidden (403), BadRequest (400), NetworkError (500, 502), ...
        `retry_after` defaults to 3 for 429. With `exception`, `do_request` raises it instead
        (e.g. `telegram.error.NetworkError("httpx.ConnectError: ...")`). With `timeout` ("pool",
        "connect", "write" or "read"), it raises the TimedOut HTTPXRequest raises for that
        httpx timeout (`timed_out`); a "read" timeout comes after Telegram carried out the call
        (the message is in the chat, `sent_messages` lists it), the others before. `after`:
        let that many matching calls through first (e.g. fail the third piece of a long text).
        """
        if timeout is not None and timeout not in TIMEOUTS:
            raise ValueError(f"timeout is one of {sorted(TIMEOUTS)}, not {timeout!r}")
        if status == 429 and retry_after is None:
            retry_after = 3
        if description is None:
            template = DEFAULT_DESCRIPTIONS.get(status, HTTPStatus(status).phrase)
            description = template.format(retry_after=retry_after)
        self._failures.append(
            _Failure(
                method=method.lower(),
                chat_id=_normalise_chat_id(chat_id),
                status=status,
                description=description,
                retry_after=retry_after,
                times=times,
                exception=exception,
                timeout=timeout,
                after=after,
            )
        )

    def migrate_chat(self, old_chat_id: int, new_chat_id: int) -> None:
        """The group `old_chat_id` became the supergroup `new_chat_id`: from now on every call to
        the old id answers 400 with `migrate_to_chat_id` (python-telegram-bot raises ChatMigrated)."""
        self._migrated[old_chat_id] = new_chat_id

    def _take_failure(self, method: str, params: JSONDict) -> _Failure | None:
        for failure in self._failures:
            if failure.method != method.lower():
                continue
            if failure.chat_id is not None and failure.chat_id != params.get("chat_id"):
                continue
            if failure.after > 0:
                failure.after -= 1
                continue
            failure.times -= 1
            if failure.times <= 0:
                self._failures.remove(failure)
            return failure
        return None

    # -- inspection helpers --------------------------------------------------------------

    def methods(self) -> list[str]:
        """The names of all calls so far, in order."""
        return [call.method for call in self.calls]

    def calls_to(self, method: str, chat_id: int | str | None = None) -> list[SentCall]:
        """The calls of one method (case-insensitive), optionally to one chat."""
        wanted = _normalise_chat_id(chat_id)
        return [
            call
            for call in self.calls
            if call.method.lower() == method.lower()
            and (wanted is None or call.params.get("chat_id") == wanted)
        ]

    def sent_messages(self, chat_id: int | str | None = None) -> list[JSONDict]:
        """Successful sendMessage/sendPhoto/sendDocument calls (to `chat_id`) as dicts.

        Each dict holds the call's parameters plus `method` and the `message_id` Telegram
        assigned.
        """
        wanted = _normalise_chat_id(chat_id)
        out = []
        for call in self.calls:
            if call.method.lower() not in SENDING_METHODS or not call.ok:
                continue
            if wanted is not None and call.params.get("chat_id") != wanted:
                continue
            item = dict(call.params)
            item["method"] = call.method
            if isinstance(call.result, dict):
                item["message_id"] = call.result["message_id"]
            out.append(item)
        return out

    def message(self, chat_id: int | str, message_id: int) -> JSONDict | None:
        """The current state (after edits) of a message the bot sent, as Message JSON."""
        key = _normalise_chat_id(chat_id)
        return None if key is None else self._messages.get((key, message_id))

    def last_message(self, chat_id: int | str) -> JSONDict | None:
        """The newest message the bot sent to `chat_id` that still exists, as Message JSON."""
        key = _normalise_chat_id(chat_id)
        ids = [mid for (cid, mid) in self._messages if cid == key]
        if key is None or not ids:
            return None
        return self._messages[(key, max(ids))]

    def last_keyboard(self, chat_id: int | str) -> list[JSONDict]:
        """The inline buttons of the bot's last message to `chat_id`, in their current state.

        A flat list, row by row, of `{"text": ..., "callback_data": ...}` (or `"url"`, ...);
        empty when that message has no inline keyboard.
        """
        message = self.last_message(chat_id)
        if not message:
            return []
        return [dict(button) for button in buttons(message.get("reply_markup"))]

    def clear(self) -> None:
        """Forget the recorded calls (messages, chats and injected failures stay)."""
        self.calls.clear()

    # -- state shared with the update builders -------------------------------------------

    def next_message_id(self, chat_id: int | str) -> int:
        """Allocate the chat's next message id (users' and the bot's messages share them)."""
        key = _normalise_chat_id(chat_id)
        assert key is not None
        self._next_message_id[key] = self._next_message_id.get(key, self.first_message_id - 1) + 1
        return self._next_message_id[key]

    def remember_chat(self, chat: JSONDict) -> None:
        """Record what a Chat looks like (first name, title, type) for messages and getChat."""
        self._chats[chat["id"]] = dict(chat)

    def push_update(self, update: Update | JSONDict) -> None:
        """Queue an update for getUpdates (so `Updater` polling or `bot.get_updates` sees it)."""
        data = update.to_dict() if isinstance(update, Update) else dict(update)
        self._updates.append(data)

    # -- internals -------------------------------------------------------------------------

    def _learn_token(self, token: str) -> None:
        if self.bot_id is None:
            head = token.split(":", 1)[0]
            self.bot_id = int(head) if head.isdigit() else 1

    def bot_user(self) -> JSONDict:
        return {
            "id": self.bot_id or 1,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    def _chat(self, chat_id: int | str) -> JSONDict:
        known = self._chats.get(chat_id)
        if known:
            return dict(known)
        if isinstance(chat_id, str):  # "@username": a public channel
            return {"id": -1_001_000_000_000, "type": "channel", "title": chat_id.lstrip("@")}
        chat: JSONDict = {"id": chat_id, "type": chat_type_for(chat_id)}
        if chat["type"] == "private":
            chat["first_name"] = f"User {chat_id}"
        else:
            chat["title"] = f"Chat {chat_id}"
        return chat

    @staticmethod
    def _reply(status: int, body: JSONDict) -> tuple[int, bytes]:
        return status, json.dumps(body).encode("utf-8")

    def _error(
        self, call: SentCall, status: int, description: str, retry_after: int | None,
        parameters: JSONDict | None = None,
    ) -> tuple[int, bytes]:
        body: JSONDict = {"ok": False, "error_code": status, "description": description}
        parameters = dict(parameters or {})
        if retry_after is not None:
            parameters["retry_after"] = retry_after
        if parameters:
            body["parameters"] = parameters
        call.status = status
        call.result = body
        return self._reply(status, body)

    def _decode(self, request_data: RequestData | None) -> tuple[JSONDict, dict[str, UploadedFile]]:
        if request_data is None:
            return {}, {}
        params: JSONDict = dict(request_data.parameters)
        if "chat_id" in params:
            params["chat_id"] = _normalise_chat_id(params["chat_id"])
        files: dict[str, UploadedFile] = {}
        if request_data.contains_files:
            for name, (filename, content, mime_type) in request_data.multipart_data.items():
                if not isinstance(content, bytes):  # a file handle
                    raw = content.read()
                    if content.seekable():
                        content.seek(0)
                    content = raw
                uploaded = UploadedFile(name, filename, mime_type, content)
                files[name] = uploaded
                params.setdefault(name, uploaded)
        return params, files

    def _download(self, file_path: str, at: float) -> tuple[int, bytes]:
        self.calls.append(SentCall(method="downloadFile", params={"file_path": file_path}, at=at))
        file_id = file_path.rsplit("/", 1)[-1].split(".", 1)[0]
        content = self.file_contents.get(file_id, self.file_contents.get(file_path, b"fake file"))
        return 200, content

    def _new_file_id(self, kind: str) -> tuple[str, str]:
        self._file_counter += 1
        return f"{kind}-file-{self._file_counter}", f"{kind}-unique-{self._file_counter}"

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        offset = params.get("offset")
        if offset is not None:
            # Telegram forgets every update older than the offset: they are confirmed.
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates and params.get("timeout"):
            await asyncio.sleep(self.poll_delay)
        limit = params.get("limit") or 100
        return list(self._updates[:limit])

    # -- validation --------------------------------------------------------------------------

    def _check_text(self, text: Any, *, caption: bool = False) -> str:
        text = "" if text is None else str(text)
        if not self.validate:
            return text
        if caption:
            if _utf16_len(text) > MAX_CAPTION_LENGTH:
                raise _ApiError(400, "Bad Request: message caption is too long")
            return text
        if not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if _utf16_len(text) > MAX_TEXT_LENGTH:
            raise _ApiError(400, "Bad Request: message is too long")
        return text

    def _check_markup(self, markup: JSONDict | None) -> None:
        if not self.validate or not markup:
            return
        for row in markup.get("inline_keyboard", []):
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= 64:
                    raise _ApiError(400, "Bad Request: BUTTON_DATA_INVALID")

    @staticmethod
    def _rendered(text: str, parse_mode: Any) -> str:
        if isinstance(parse_mode, str) and parse_mode.upper() == "HTML":
            return html.unescape(_TAG_RE.sub("", text))
        return text

    # -- messages -------------------------------------------------------------------------------

    def _new_message(self, params: JSONDict, content: JSONDict) -> JSONDict:
        chat_id = params.get("chat_id")
        if chat_id is None:
            raise _ApiError(400, "Bad Request: chat_id is empty")
        chat = self._chat(chat_id)
        markup = _inline_markup(params.get("reply_markup"))
        self._check_markup(markup)
        key = chat["id"]
        message: JSONDict = {
            "message_id": self.next_message_id(key),
            "date": int(self.clock()),
            "chat": chat,
        }
        if chat["type"] == "channel":
            message["sender_chat"] = dict(chat)
        else:
            message["from"] = self.bot_user()
        if params.get("message_thread_id") is not None:
            message["message_thread_id"] = params["message_thread_id"]
        reply_to = (params.get("reply_parameters") or {}).get("message_id") or params.get(
            "reply_to_message_id"
        )
        if reply_to is not None and (key, reply_to) in self._messages:
            replied = dict(self._messages[(key, reply_to)])
            replied.pop("reply_to_message", None)
            message["reply_to_message"] = replied
        message.update(content)
        if markup:
            message["reply_markup"] = markup
        self._messages[(key, message["message_id"])] = message
        return message

    def _target(self, params: JSONDict) -> tuple[tuple[int | str, int] | None, JSONDict | None]:
        """The stored message an edit method addresses (None for inline messages)."""
        if params.get("inline_message_id"):
            return None, None
        chat_id, message_id = params.get("chat_id"), params.get("message_id")
        if chat_id is None or message_id is None:
            raise _ApiError(400, "Bad Request: message identifier is not specified")
        key = (self._chat(chat_id)["id"], int(message_id))
        message = self._messages.get(key)
        if message is None:
            # A message the fake did not send (e.g. built by a test): start from a stub.
            message = {
                "message_id": key[1],
                "date": int(self.clock()),
                "chat": self._chat(chat_id),
                "from": self.bot_user(),
            }
        return key, message

    def _apply_edit(self, params: JSONDict, changes: JSONDict) -> JSONDict | bool:
        key, message = self._target(params)
        markup = _inline_markup(params.get("reply_markup"))
        self._check_markup(markup)
        if key is None or message is None:
            return True  # inline messages: Telegram answers True
        edited = dict(message)
        edited.update(changes)
        edited.pop("reply_markup", None)
        if markup:
            edited["reply_markup"] = markup
        if edited == message:
            raise _ApiError(400, NOT_MODIFIED)
        edited["edit_date"] = int(self.clock())
        self._messages[key] = edited
        return edited

    # -- Bot API methods (named _api_<lower-case method>) ----------------------------------------

    def _api_getme(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        return {
            **self.bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _api_sendmessage(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        text = self._check_text(params.get("text"))
        return self._new_message(params, {"text": self._rendered(text, params.get("parse_mode"))})

    def _caption(self, params: JSONDict) -> JSONDict:
        caption = self._check_text(params.get("caption"), caption=True)
        return {"caption": self._rendered(caption, params.get("parse_mode"))} if caption else {}

    def _api_sendphoto(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        photo = params.get("photo")
        size = photo.size if isinstance(photo, UploadedFile) else 54_321
        sizes = []
        for width, height in ((90, 67), (320, 240), (800, 600)):
            file_id, unique_id = self._new_file_id("photo")
            sizes.append(
                {
                    "file_id": file_id,
                    "file_unique_id": unique_id,
                    "width": width,
                    "height": height,
                    "file_size": max(1, size * width // 800),
                }
            )
        if isinstance(photo, str) and not photo.startswith(("http://", "https://")):
            sizes[-1]["file_id"] = photo  # re-sent by file_id
        return self._new_message(params, {"photo": sizes, **self._caption(params)})

    def _api_senddocument(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        document = params.get("document")
        file_id, unique_id = self._new_file_id("document")
        info: JSONDict = {"file_id": file_id, "file_unique_id": unique_id}
        if isinstance(document, UploadedFile):
            info.update(
                file_name=document.filename,
                mime_type=document.mime_type,
                file_size=document.size,
            )
        elif isinstance(document, str) and not document.startswith(("http://", "https://")):
            info["file_id"] = document
        return self._new_message(params, {"document": info, **self._caption(params)})

    def _api_sendlocation(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        location = {"latitude": params.get("latitude"), "longitude": params.get("longitude")}
        return self._new_message(params, {"location": location})

    def _api_editmessagetext(self, params: JSONDict, files: dict[str, UploadedFile]) -> Any:
        text = self._check_text(params.get("text"))
        return self._apply_edit(params, {"text": self._rendered(text, params.get("parse_mode"))})

    def _api_editmessagecaption(self, params: JSONDict, files: dict[str, UploadedFile]) -> Any:
        caption = self._check_text(params.get("caption"), caption=True)
        return self._apply_edit(
            params, {"caption": self._rendered(caption, params.get("parse_mode"))}
        )

    def _api_editmessagereplymarkup(self, params: JSONDict, files: dict[str, UploadedFile]) -> Any:
        return self._apply_edit(params, {})

    def _api_deletemessage(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        chat_id, message_id = params.get("chat_id"), params.get("message_id")
        if chat_id is not None and message_id is not None:
            self._messages.pop((self._chat(chat_id)["id"], int(message_id)), None)
        return True

    def _api_getchat(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        chat_id = params.get("chat_id")
        if chat_id is None:
            raise _ApiError(400, "Bad Request: chat_id is empty")
        return {
            **self._chat(chat_id),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def _api_getfile(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        file_id = str(params.get("file_id"))
        content = self.file_contents.get(file_id, b"fake file")
        return {
            "file_id": file_id,
            "file_unique_id": f"unique-{file_id}",
            "file_size": len(content),
            "file_path": f"files/{file_id}.bin",
        }

    def _api_getmycommands(self, params: JSONDict, files: dict[str, UploadedFile]) -> list[Any]:
        for call in reversed(self.calls):
            if call.method.lower() == "setmycommands" and call.ok:
                return list(call.params.get("commands", []))
        return []

    def _api_getwebhookinfo(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        info: JSONDict = {"url": self.webhook.get("url", ""), "has_custom_certificate": False,
                          "pending_update_count": 0}
        if self.webhook.get("allowed_updates") is not None:
            info["allowed_updates"] = self.webhook["allowed_updates"]
        return info

    def _api_setwebhook(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        """Like Telegram: an HTTPS URL (http only for a loopback test address) and a secret
        token of 1-256 characters of A-Z a-z 0-9 _ -; kept for getWebhookInfo and for tests."""
        url = str(params.get("url") or "")
        if not url:
            self.webhook = {}
            return True
        if not (url.startswith("https://") or url.startswith("http://127.0.0.1")):
            raise _ApiError(400, "Bad Request: bad webhook: HTTPS url must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise _ApiError(400, "Bad Request: secret token contains unallowed characters")
        allowed = params.get("allowed_updates")
        if isinstance(allowed, str):
            allowed = json.loads(allowed)
        self.webhook = {"url": url, "secret_token": secret, "allowed_updates": allowed}
        return True

    def _api_deletewebhook(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        self.webhook = {}
        return True

    # answerCallbackQuery, sendChatAction, setMyCommands, deleteWebhook, ... answer `true`
    # through the default branch of do_request.


class _ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def buttons(markup: JSONDict | None) -> Iterable[JSONDict]:
    """The buttons of an inline keyboard dict, row by row."""
    for row in (markup or {}).get("inline_keyboard", []):
        yield from row


# -- updates ------------------------------------------------------------------------------

# A bot command as Telegram marks it: "/name" or "/name@bot", at the start or after a space.
_COMMAND_RE = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{1,32})?")


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
