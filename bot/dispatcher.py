"""Send what the outbox holds, through python-telegram-bot, exactly as the outbox says.

One pass (`run_once`) claims due rows and sends each, one request per piece: text longer
than Telegram's 4,096 characters goes out in several messages (bot/textsplit.py), a photo
before its text when the text is too long for a caption, the buttons on the last piece.
Every request is committed as in flight just before it goes out (core.messaging.outbox.begin_request)
and every confirmed piece is recorded, so that:

* a piece Telegram confirmed is never sent again: a retry resumes with the next piece;
* a request that may have reached Telegram is never made again: a read timeout (the request
  was written, no answer came), an answer that cannot be read, or a dispatcher killed while
  the request was in flight leave the row `unconfirmed` (counted, logged without the text;
  a call-out's call is the one exception, see below);
* a request that provably reached nobody is retried: a connect or pool timeout, a network
  error or a 5xx answer, with the outbox's backoff, until core.messaging.outbox.MAX_ATTEMPTS;
* RetryAfter (429) is Telegram's pace, not a failure: the row is due again after
  retry_after without counting an attempt, and this dispatcher's other rows for the same
  chat wait as long or until that row comes back (keeping their order);
* ChatMigrated (a group became a supergroup): the branch's group chat id and every message
  still queued for that group move to the new chat, and the message goes there at once;
* Forbidden (403: blocked, removed from the group) and BadRequest (400) fail the row for good.

A kind that is resent on an unknown outcome (a call-out's call: core.messaging.outbox.KINDS) gets
its one marked copy from the outbox when its row becomes `unconfirmed`; the dispatcher sends the
copy like any other row once it is due. A fanned-out kind (the call-out's again) goes to FAN_OUT
chats at once (see `send_claimed`): a dispatcher that dies then leaves up to FAN_OUT requests in
flight, each `unconfirmed`.

Pace: every request takes a slot of the process's one rate budget (bot/ratelimit.py, shared with
the broadcast sender) at the row's priority, before the row is marked in flight, and counts in it
from the middle of its round trip (`RateLimiter.sent`, then `answered`); a row whose
chat must wait longer than INLINE_WAIT (a group's 20 a minute used up) goes back to pending for
that long, not counted as an attempt, and the pass goes on with the next row.

Whatever happens to one row, the rest of the batch is sent. Database work runs in a worker
thread so the bot's event loop never blocks on it.

A payload is {"text": str, "buttons": [[{"text", "callback_data"}]]?, "photo": file_id?,
"document": file_id?} (a photo or a document Telegram already has, sent again by its file_id,
with the text as its caption when it fits), or an
edit of a message the bot sent: {"edit": message_id, "text", "buttons"?} (its text and buttons),
{"edit": message_id, "markup_only": true, "buttons"?} (its buttons only; none removes them). A new
message may carry a reply keyboard instead of buttons: "ask_contact" or "remove_keyboard" (see
`reply_keyboard`). An
edit Telegram refuses because nothing changes ("message is not modified") counts as sent.
Button data is "b:<token>" (core.messaging.buttons, stored when the row was queued).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    LinkPreviewOptions,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from bot.ratelimit import RateLimiter
from bot.textsplit import split_message, utf16_len
from core.db import read_scope, session_scope
from core.messaging import outbox
from core.metrics import Metrics
from core.models import SendState, utcnow

log = logging.getLogger("gridbot.dispatcher")
CAPTION_LIMIT = 1024
# httpx timeouts that happen before a request is written: Telegram cannot have got it
NOT_SENT_TIMEOUTS = {"PoolTimeout", "ConnectTimeout"}
MAX_MIGRATIONS = 3  # ChatMigrated hops for one message in one pass
INLINE_WAIT = 2.0  # seconds a pass waits for a chat's budget; longer, the row waits in the outbox
FAN_OUT = 4  # chats a fanned-out kind (a call-out's calls) is sent to at once, as the broadcast sender's workers


@dataclass
class DispatchStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unconfirmed: int = 0  # may have reached Telegram; never sent again
    skipped: int = 0  # another dispatcher had taken the row over
    error: int = 0  # the dispatcher itself failed on the row (logged); the outbox settles it
    released: int = 0  # given back unsent because the dispatcher is stopping
    outcomes: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Piece:
    """One request: a photo or a document (with its caption) or a text."""

    text: str | None = None
    photo: str | None = None
    document: str | None = None
    markup: InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | None = None
    edit: int | None = None  # the message to edit instead of sending a new one
    markup_only: bool = False  # an edit of the buttons alone
    no_preview: bool = False  # no link preview (a /web login link: a preview must not fetch it)


def keyboard(buttons: list[list[dict[str, Any]]] | None) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b["text"], callback_data=b.get("callback_data"), url=b.get("url"))
          for b in row] for row in buttons]
    )


def reply_keyboard(payload: dict[str, Any]) -> ReplyKeyboardMarkup | ReplyKeyboardRemove | None:
    """{"ask_contact": {"share": text, "skip": text}}: Telegram's 发送手机号 button (request_contact)
    and a skip button under the input field, gone after one press; {"ask_location": {"share": text}}:
    a one-tap 发送位置 button (request_location; a 战时 check-in); {"remove_keyboard": true}: gone."""
    ask = payload.get("ask_contact")
    if ask:
        return ReplyKeyboardMarkup([[KeyboardButton(str(ask["share"]), request_contact=True)],
                                    [KeyboardButton(str(ask["skip"]))]], resize_keyboard=True, one_time_keyboard=True)
    where = payload.get("ask_location")
    if where:
        return ReplyKeyboardMarkup([[KeyboardButton(str(where["share"]), request_location=True)]],
                                   resize_keyboard=True, one_time_keyboard=True)
    return ReplyKeyboardRemove() if payload.get("remove_keyboard") else None


def pieces_of(payload: dict[str, Any]) -> list[Piece]:
    """The requests a payload takes, in order; the same payload always gives the same pieces
    (a row's `pieces_sent` counts them)."""
    markup = keyboard(payload.get("buttons")) or reply_keyboard(payload)
    text = str(payload.get("text") or "")
    if payload.get("edit") is not None:
        return [Piece(text=text or None, markup=markup, edit=int(payload["edit"]),
                      markup_only=bool(payload.get("markup_only")))]
    pieces: list[Piece] = []
    if payload.get("photo") or payload.get("document"):
        caption, rest = (text, "") if utf16_len(text) <= CAPTION_LIMIT else ("", text)
        pieces.append(Piece(text=caption or None, photo=str(payload["photo"]) if payload.get("photo") else None,
                            document=None if payload.get("photo") else str(payload["document"]),
                            markup=None if rest else markup))
        if not rest:
            return pieces
        text = rest
    parts = split_message(text)
    no_preview = bool(payload.get("no_preview"))
    pieces.extend(Piece(text=part, markup=markup if index == len(parts) - 1 else None, no_preview=no_preview)
                  for index, part in enumerate(parts))
    return pieces


NOT_MODIFIED = "message is not modified"


async def send_piece(bot: Bot, chat_id: int, piece: Piece) -> Message | None:
    """Make the piece's request; the message sent or edited (None: an edit that changed nothing)."""
    if piece.edit is not None:
        inline = piece.markup if isinstance(piece.markup, InlineKeyboardMarkup) else None  # edits: inline only
        try:
            if piece.markup_only:
                done = await bot.edit_message_reply_markup(chat_id, piece.edit, reply_markup=inline)
            else:
                done = await bot.edit_message_text(piece.text or "", chat_id, piece.edit, reply_markup=inline)
        except BadRequest as exc:
            if NOT_MODIFIED in exc.message.lower():
                return None
            raise
        return done if isinstance(done, Message) else None
    if piece.photo is not None:
        return await bot.send_photo(chat_id, piece.photo, caption=piece.text, reply_markup=piece.markup)
    if piece.document is not None:
        return await bot.send_document(chat_id, piece.document, caption=piece.text, reply_markup=piece.markup)
    if piece.no_preview:
        return await bot.send_message(chat_id, piece.text or "", reply_markup=piece.markup,
                                      link_preview_options=LinkPreviewOptions(is_disabled=True))
    return await bot.send_message(chat_id, piece.text or "", reply_markup=piece.markup)


def nothing_sent(exc: TimedOut) -> bool:
    """A connect or pool timeout: the request was never written (python-telegram-bot's
    HTTPXRequest raises TimedOut from the httpx exception)."""
    return type(exc.__cause__).__name__ in NOT_SENT_TIMEOUTS


def _seconds(exc: RetryAfter) -> float:
    value = exc.retry_after
    return value.total_seconds() if hasattr(value, "total_seconds") else float(value)


class OutboxDispatcher:
    def __init__(self, bot: Bot, factory: sessionmaker[Session], batch: int = 20,
                 limiter: RateLimiter | None = None, metrics: Metrics | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.bot = bot
        self.clock = clock  # the outbox's time: what is due, leases, when a resent copy is due
        self.metrics = metrics
        self.factory = factory
        self.batch = batch
        self.limiter = limiter or RateLimiter()
        # chat id -> (loop time, outbox id): that message got a 429, the chat's others wait for it
        self._held_until: dict[int, tuple[float, int]] = {}
        self._migrated: dict[int, int] = {}  # old group chat id -> its supergroup's
        self._wake = asyncio.Event()
        self.running = False  # run_forever is looping: a handler wakes it instead of sending itself

    def _claim(self) -> list[outbox.Claimed]:
        with read_scope(self.factory) as session:
            if not outbox.has_due(session, self.clock()):  # the usual case: no write transaction at all
                return []
        with session_scope(self.factory) as session:
            return outbox.claim(session, limit=self.batch, now=self.clock())

    def _record(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with session_scope(self.factory) as session:
            return fn(session, *args, **kwargs)

    async def _db(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(self._record, fn, *args, **kwargs)

    async def run_once(self, stop: asyncio.Event | None = None) -> DispatchStats:
        return await self.send_claimed(await asyncio.to_thread(self._claim), stop)

    async def send_claimed(self, items: list[outbox.Claimed], stop: asyncio.Event | None = None) -> DispatchStats:
        """Send messages already claimed (leased) for this process, in the given order. Once
        `stop` is set, the rest are given back (due at once for the next dispatcher).

        A run of rows of a fanned-out kind (a call-out's calls: core.messaging.outbox.KINDS) goes
        out FAN_OUT chats at a time, each chat's rows in order: one request's round trip to
        Telegram must not set the pace of a call to thousands (a sequence of requests 50 ms apart
        makes 20 a second, not 30)."""
        stats = DispatchStats()
        start = 0
        while start < len(items):
            end = start + 1
            if outbox.rule_of(items[start].kind).fan_out:
                while end < len(items) and outbox.rule_of(items[end].kind).fan_out:
                    end += 1
                await self._fan_out(items[start:end], stop, stats)
            else:
                await self._one(items[start], stop, stats)
            start = end
        return stats

    async def _fan_out(self, items: list[outbox.Claimed], stop: asyncio.Event | None, stats: DispatchStats) -> None:
        by_chat: dict[int, list[outbox.Claimed]] = {}
        for item in items:
            by_chat.setdefault(self._chat(item.chat_id), []).append(item)
        chats = collections.deque(by_chat.values())

        async def worker() -> None:
            while chats:
                for item in chats.popleft():
                    await self._one(item, stop, stats)

        await asyncio.gather(*(worker() for _ in range(min(FAN_OUT, len(chats)))))

    async def _one(self, item: outbox.Claimed, stop: asyncio.Event | None, stats: DispatchStats) -> None:
        try:
            if stop is not None and stop.is_set():
                released = await self._db(outbox.release, item.id, item.attempts, now=self.clock())
                outcome = "released" if released else "skipped"
            else:
                outcome = await self._send(item)
        except Exception:  # noqa: BLE001 - one row never stops the batch; the lease settles it
            log.exception("outbox %s (%s): dispatching failed", item.id, item.kind)
            outcome = "error"
        stats.outcomes[item.id] = outcome
        if outcome == "sent" and self.metrics is not None:
            self.metrics.messages_out.labels(item.kind).inc()
        setattr(stats, outcome, getattr(stats, outcome) + 1)

    def _failed(self, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.delivery_failures.labels(kind).inc()

    # -- per chat state -------------------------------------------------------------------------

    def _chat(self, chat_id: int) -> int:
        seen = {chat_id}
        while chat_id in self._migrated and self._migrated[chat_id] not in seen:
            chat_id = self._migrated[chat_id]
            seen.add(chat_id)
        return chat_id

    def _held_for(self, chat_id: int, message_id: int) -> float:
        """Seconds this chat still waits for an earlier message's 429; 0 if it does not. The
        message that got the 429 ends the wait when it comes back due (the outbox says so)."""
        held = self._held_until.get(chat_id)
        if held is None:
            return 0.0
        until, holder = held
        left = until - asyncio.get_running_loop().time()
        if left <= 0 or holder == message_id:
            del self._held_until[chat_id]
            return 0.0
        return left

    def _hold(self, chat_id: int, message_id: int, seconds: float) -> None:
        until = asyncio.get_running_loop().time() + seconds
        if until > self._held_until.get(chat_id, (0.0, 0))[0]:
            self._held_until[chat_id] = (until, message_id)

    # -- one row --------------------------------------------------------------------------------

    def _follow_migration(self, session: Session, item: outbox.Claimed, old: int, new: int) -> bool:
        outbox.migrate_chat(session, old, new)
        return outbox.request_answered(session, item.id, item.attempts)

    async def _retry(self, item: outbox.Claimed, error: str, **kwargs: Any) -> str:
        state = await self._db(outbox.retry_later, item.id, error, token=item.attempts, now=self.clock(), **kwargs)
        return "skipped" if state is None else "failed" if state is SendState.failed else "retried"

    async def _settle(self, fn: Any, item: outbox.Claimed, error: str, outcome: str, **kwargs: Any) -> str:
        state = await self._db(fn, item.id, error, token=item.attempts, **kwargs)
        return "skipped" if state is None else outcome

    async def _unconfirmed(self, item: outbox.Claimed, error: str) -> str:
        return await self._settle(outbox.mark_unconfirmed, item, error, "unconfirmed", now=self.clock())

    async def _sent(self, item: outbox.Claimed, message: Message | None, pieces_sent: int) -> str:
        done = await self._db(outbox.mark_sent, item.id, message.message_id if message is not None else None,
                              self.clock(), token=item.attempts, pieces_sent=pieces_sent, kind=item.kind)
        return "sent" if done else "skipped"

    async def _send(self, item: outbox.Claimed) -> str:
        try:
            pieces = pieces_of(item.payload)
        except Exception as exc:  # noqa: BLE001 - a payload no request can be built from
            log.error("outbox %s (%s): malformed payload (%s)", item.id, item.kind, type(exc).__name__)
            self._failed("malformed")
            return await self._settle(outbox.mark_failed, item, f"malformed payload: {type(exc).__name__}",
                                      "failed")
        chat_id = self._chat(item.chat_id)
        index = item.pieces_sent
        if index >= len(pieces):  # every piece confirmed already
            return await self._sent(item, None, index)
        held = self._held_for(chat_id, item.id)
        if held:  # an earlier message to this chat got a 429: keep the order, keep the pace
            return await self._retry(item, f"RetryAfter {held:.3g}s (chat waits)", retry_after=held)
        waits = self.limiter.chat_wait(chat_id)
        if waits > INLINE_WAIT:  # this chat's budget is used up for a while: the row waits, the pass goes on
            return await self._retry(item, f"rate budget: chat waits {waits:.3g}s", retry_after=waits)
        slot = await self.limiter.acquire(chat_id, item.priority)
        if not await self._db(outbox.begin_request, item.id, item.attempts, self.clock()):
            log.info("outbox %s: taken over by another dispatcher, not sent", item.id)
            return "skipped"
        migrations = 0
        while True:
            where = f"piece {index + 1}/{len(pieces)}"
            try:
                self.limiter.sent(slot, chat_id)
                try:
                    message = await send_piece(self.bot, chat_id, pieces[index])
                finally:  # Telegram got it somewhere in between
                    self.limiter.answered(slot)
            except RetryAfter as exc:
                seconds = _seconds(exc)
                self._failed("retry_after")
                if self.limiter.retry_after(seconds):
                    log.warning("Telegram limits the bot: every send paused for %gs", seconds)
                self._hold(chat_id, item.id, seconds)
                return await self._retry(item, f"RetryAfter {seconds:g}s ({where})", retry_after=seconds)
            except ChatMigrated as exc:
                new_chat = int(exc.new_chat_id)
                migrations += 1
                self._migrated[chat_id] = new_chat
                if not await self._db(self._follow_migration, item, chat_id, new_chat):
                    return "skipped"
                log.warning("outbox %s (%s): chat %s is now %s, sent there", item.id, item.kind, chat_id, new_chat)
                chat_id = new_chat
                if migrations > MAX_MIGRATIONS:
                    return await self._retry(item, f"ChatMigrated {migrations} times ({where})")
                slot = await self.limiter.acquire(chat_id, item.priority)
                if not await self._db(outbox.begin_request, item.id, item.attempts, self.clock()):
                    return "skipped"
                continue
            except Forbidden as exc:
                log.info("outbox %s: recipient unreachable (%s)", item.id, exc.message)
                self._failed("forbidden")
                return await self._settle(outbox.mark_failed, item, f"Forbidden: {exc.message} ({where})", "failed")
            except BadRequest as exc:
                log.warning("outbox %s (%s): refused by Telegram: %s", item.id, item.kind, exc.message)
                self._failed("bad_request")
                return await self._settle(outbox.mark_failed, item, f"BadRequest: {exc.message} ({where})",
                                          "failed")
            except TimedOut as exc:
                self._failed("timed_out" if nothing_sent(exc) else "unconfirmed")
                if nothing_sent(exc):  # never written: try again later
                    return await self._retry(item, f"TimedOut: {exc.message} ({where})")
                log.warning("outbox %s (%s): no answer to %s (%s); Telegram may have it: unconfirmed",
                            item.id, item.kind, where, type(exc.__cause__).__name__
                            if exc.__cause__ is not None else "read timeout")
                return await self._unconfirmed(item, f"TimedOut: {exc.message} ({where})")
            except NetworkError as exc:  # a 5xx answer, or the connection failed: nothing carried out
                self._failed("network")
                return await self._retry(item, f"{type(exc).__name__}: {exc.message} ({where})")
            except TelegramError as exc:
                self._failed("telegram" if type(exc) is not TelegramError else "unconfirmed")
                if type(exc) is not TelegramError:  # InvalidToken, Conflict, ...: Telegram answered no
                    return await self._retry(item, f"{type(exc).__name__}: {exc.message} ({where})")
                # a plain TelegramError is an answer that could not be read: it may be a success
                log.warning("outbox %s (%s): unreadable answer to %s; unconfirmed", item.id, item.kind, where)
                return await self._unconfirmed(item, f"TelegramError: {exc.message} ({where})")
            except Exception as exc:  # noqa: BLE001 - the request may have gone out: do not repeat it
                self._failed("unconfirmed")
                log.exception("outbox %s (%s): %s failed in the bot (%s); unconfirmed",
                              item.id, item.kind, where, type(exc).__name__)
                return await self._unconfirmed(item, f"{type(exc).__name__} ({where})")
            index += 1
            if index == len(pieces):
                return await self._sent(item, message, index)
            # this piece confirmed and the next one in flight, in one commit
            slot = await self.limiter.acquire(chat_id, item.priority)
            if not await self._db(outbox.piece_sent, item.id, item.attempts, index, next_in_flight=True,
                                  now=self.clock()):
                return "skipped"

    def wake(self) -> None:
        """Something was queued: the loop (`run_forever`) makes a pass now, not after its idle pause."""
        self._wake.set()

    async def run_forever(self, stop: asyncio.Event, idle_seconds: float = 1.0) -> None:
        self.running = True
        try:
            while not stop.is_set():
                self._wake.clear()  # before the pass: a wake during it makes another pass
                try:
                    stats = await self.run_once(stop)
                except Exception:  # noqa: BLE001 - keep dispatching; the error is logged
                    log.exception("outbox pass failed")
                    stats = DispatchStats()
                if not stats.outcomes:
                    stopped, woken = asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())
                    try:
                        await asyncio.wait({stopped, woken}, timeout=idle_seconds, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        stopped.cancel()
                        woken.cancel()
        finally:
            self.running = False
