"""Sends queued broadcasts within Telegram's limits, exactly once per recipient.

An asyncio loop in the bot process (started in post_init with background=True). For each due
broadcast it works through the pending delivery rows (core.broadcasts.service) with a few concurrent
workers; each send is:

    limiter.acquire(chat) -> the request but its last byte -> mark 'sending' (commit)
        -> the last byte -> sent | blocked | retry

Limits. The sender takes its slots from the process's one rate budget (bot/ratelimit.py's
`RateLimiter`, shared with the outbox dispatcher: 30 per 1.005 s evenly spaced, one second
between two requests to one chat, 20 a minute to a group) at the lowest priority, so replies,
emergencies, cards and reminders go first and a broadcast gets the rest of the 30 a second. A
request counts in the window from the moment it really goes out (`RateLimiter.sent`, after the
delivery's commit), not from its slot. Recipients are private chats, one message each, and the
sender asks for no burst (`burst=1`): a strict second between two requests to one chat.

Answers. RetryAfter (429): that recipient waits the time Telegram asked for (the row goes back
to pending with next_attempt_at = now + retry_after; it does not count as an attempt); when
several 429s come within a second, Telegram is limiting the whole bot and every send pauses
for retry_after. Forbidden (403: the user blocked the bot) marks the recipient blocked, never
retried. BadRequest (400) fails the row. Other network errors and 5xx answers retry with
backoff until core.broadcasts.service.MAX_ATTEMPTS. A read or write timeout is ambiguous (Telegram
may have got the message) and, like a crash during a send, makes the row 'unconfirmed', not
resent; a connect or pool timeout provably sent nothing and is retried.

Progress: the sender's chat gets one message "已发送 n/N", edited at most every
`progress_every` seconds and once more to N/N when nothing is left to send, then a report
(delivered, blocked, failed) through the outbox, queued once by core.broadcasts.service.finish_if_done.

The sender sends with a plain `telegram.Bot` and its own transport (see LastByteRequest); the
已读 button's callback data ("bc:r:<id>") goes out as is, not as a token (core.messaging.buttons), so a
broadcast to 10,000 people stores no button rows; bot/app.py recognises it when pressed.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram._utils.defaultvalue import DefaultValue
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.request import BaseRequest, HTTPXRequest, RequestData

from bot.ratelimit import BULK, RateLimiter
from core.broadcasts import service as broadcasts
from core.db import read_scope, session_scope
from core.models import DeliveryState

log = logging.getLogger("gridbot.broadcast")

WORKERS = 4
BATCH = 200
# A secretary watching 已发送 n/N needs no more; each edit takes one of the 30 sends a second.
PROGRESS_EVERY = 5.0
# httpx timeouts that happen before a request is written: Telegram cannot have got it
NOT_SENT_TIMEOUTS = {"PoolTimeout", "ConnectTimeout"}


_MARK: contextvars.ContextVar[Callable[[], bool] | None] = contextvars.ContextVar("broadcast_mark",
                                                                                 default=None)


class NotTaken(TelegramError):
    """The delivery was no longer pending when its send was about to go out: nothing was sent."""


def _run_mark(mark: Callable[[], bool]) -> None:
    """The delivery's 'sending' commit; NotTaken if another sender had it meanwhile."""
    if not mark():
        raise NotTaken("delivery no longer pending")


class MarkBeforeSend(BaseRequest):
    """The sender's transport for a transport that does not run the mark itself (the tests'
    fake; a LastByteRequest runs it before the request's last byte and is used unwrapped): runs
    the delivery's 'sending' commit (the mark) in the same task, after python-telegram-bot has
    built the request, just before the inner do_request, so that the
    window in which a crash leaves a row 'sending' although Telegram never got the request is the
    commit plus writing the request, not a thread hop and the request building too. The commit
    runs on the event loop on purpose: a short single-row UPDATE."""

    runs_mark = True  # a transport that runs the mark itself is used as it is (sender_bot)

    def __init__(self, inner: BaseRequest) -> None:
        self.inner = inner

    async def initialize(self) -> None:
        await self.inner.initialize()

    async def shutdown(self) -> None:
        await self.inner.shutdown()

    @property
    def read_timeout(self) -> float | None:
        return self.inner.read_timeout

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         read_timeout: Any = BaseRequest.DEFAULT_NONE,
                         write_timeout: Any = BaseRequest.DEFAULT_NONE,
                         connect_timeout: Any = BaseRequest.DEFAULT_NONE,
                         pool_timeout: Any = BaseRequest.DEFAULT_NONE) -> tuple[int, bytes]:
        mark = _MARK.get()
        if mark is not None:
            _MARK.set(None)  # one mark, one request
            _run_mark(mark)
        return await self.inner.do_request(url, method, request_data, read_timeout, write_timeout,
                                           connect_timeout, pool_timeout)


class LastByteRequest(HTTPXRequest):
    """python-telegram-bot's HTTPXRequest, except that a delivery's 'sending' commit happens
    between the request's last byte and all the others.

    The request (headers and body but its last byte) is written first; then the commit; then the
    last byte, with no await in between that could let other work run. A crash before the commit
    leaves Telegram an incomplete request, which no HTTP server acts on, and the row pending: the
    next sender sends it, once. A crash after it leaves the row 'sending' (unconfirmed, never
    resent) and Telegram, almost always, the whole request. The window in which a notice is lost
    shrinks from the commit plus httpx writing the request (a few milliseconds, more on a loaded
    machine) to one socket write. Used only by the broadcast sender."""

    runs_mark = True

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         read_timeout: Any = BaseRequest.DEFAULT_NONE,
                         write_timeout: Any = BaseRequest.DEFAULT_NONE,
                         connect_timeout: Any = BaseRequest.DEFAULT_NONE,
                         pool_timeout: Any = BaseRequest.DEFAULT_NONE) -> tuple[int, bytes]:
        mark = _MARK.get()
        _MARK.set(None)  # one mark, one request
        client = self._client
        files = request_data.multipart_data if request_data else None
        data = request_data.json_parameters if request_data else None
        defaults = client.timeout
        timeout = httpx.Timeout(
            connect=defaults.connect if isinstance(connect_timeout, DefaultValue) else connect_timeout,
            read=defaults.read if isinstance(read_timeout, DefaultValue) else read_timeout,
            write=(defaults.write if not files else self._media_write_timeout)
            if isinstance(write_timeout, DefaultValue) else write_timeout,
            pool=defaults.pool if isinstance(pool_timeout, DefaultValue) else pool_timeout)
        built = client.build_request(method, url, headers={"User-Agent": self.USER_AGENT},
                                     files=files, data=data, timeout=timeout)
        body = built.read()
        if mark is not None and not body:  # nothing to hold back: commit first, as MarkBeforeSend does
            _run_mark(mark)
            mark = None

        async def parts() -> AsyncIterator[bytes]:
            yield body[:-1]
            if mark is not None:
                _run_mark(mark)  # NotTaken here leaves the request incomplete
            yield body[-1:]

        # Content-Length stays in the headers, so httpx sends the parts as one plain body.
        request = httpx.Request(method, url, headers=built.headers,
                                content=parts() if body else b"", extensions=built.extensions)
        try:
            response = await client.send(request)
        except httpx.TimeoutException as err:
            raise TimedOut(f"httpx.{err.__class__.__name__}") from err
        except httpx.HTTPError as err:
            raise NetworkError(f"httpx.{err.__class__.__name__}: {err}") from err
        return response.status_code, response.content


def sender_bot(token: str, request: BaseRequest, **kwargs: Any) -> Bot:
    """The plain Bot the broadcast sender uses: a LastByteRequest as it is (it runs the mark
    itself; give it one to send over HTTP), any other transport wrapped in MarkBeforeSend."""
    return Bot(token, request=request if _runs_mark(request) else MarkBeforeSend(request), **kwargs)


def _runs_mark(request: BaseRequest) -> bool:
    return bool(getattr(request, "runs_mark", False))


@dataclass
class SenderStats:
    sent: int = 0
    blocked: int = 0
    failed: int = 0
    retried: int = 0
    unconfirmed: int = 0


def read_markup(payload: dict[str, Any]) -> InlineKeyboardMarkup | None:
    button = payload.get("read_button")
    if not button:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(button["text"], callback_data=button["callback_data"])]])


async def send_notice(bot: Bot, chat_id: int, payload: dict[str, Any]) -> Message:
    """One request per recipient: the text, or the photo/document with the text as caption."""
    markup = read_markup(payload)
    if payload.get("photo"):
        return await bot.send_photo(chat_id, payload["photo"], caption=payload["text"], reply_markup=markup)
    if payload.get("document"):
        return await bot.send_document(chat_id, payload["document"], caption=payload["text"],
                                       reply_markup=markup)
    return await bot.send_message(chat_id, payload["text"], reply_markup=markup)


def _seconds(exc: RetryAfter) -> float:
    value = exc.retry_after
    return value.total_seconds() if hasattr(value, "total_seconds") else float(value)


class BroadcastSender:
    def __init__(self, bot: Bot, factory: sessionmaker[Session], *, limiter: RateLimiter | None = None,
                 workers: int = WORKERS, progress_every: float = PROGRESS_EVERY,
                 on_finished: Callable[[], Awaitable[None]] | None = None) -> None:
        self.bot = bot
        self.factory = factory
        self.limiter = limiter or RateLimiter()
        self.workers = workers
        self.progress_every = progress_every
        self.on_finished = on_finished
        self.stats = SenderStats()
        self._recovered = False
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A notice was queued to go now: look at once instead of at the next idle tick."""
        self._wake.set()

    # -- database work -----------------------------------------------------------------------------
    # A delivery's own commits (sending, then its outcome) are single-row UPDATEs run on the event
    # loop, not in a worker thread: a thread hop between the 'sending' commit and the request
    # would widen the crash window (see MarkBeforeSend), and no other thread competes for the GIL
    # there. Reads and per-broadcast work go to a thread.

    def _tx(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with session_scope(self.factory) as session:
            return fn(session, *args, **kwargs)

    def _read(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with read_scope(self.factory) as session:
            return fn(session, *args, **kwargs)

    async def recover(self) -> int:
        """Once per sender: rows a dead sender left in 'sending' become 'unconfirmed'."""
        n = int(await asyncio.to_thread(self._tx, broadcasts.recover))
        self._recovered = True
        if n:
            log.warning("%d broadcast deliveries were in flight when a sender stopped: not resent", n)
        return n

    # -- the loop --------------------------------------------------------------------------------

    async def run_once(self, stop: asyncio.Event | None = None) -> int:
        """Send every broadcast that is due now, to the end; how many were finished."""
        if not self._recovered:
            await self.recover()
        finished = 0
        for broadcast_id in await asyncio.to_thread(self._read, broadcasts.due_broadcasts):
            if await self.run_broadcast(broadcast_id, stop or asyncio.Event()):
                finished += 1
        return finished

    async def run_forever(self, stop: asyncio.Event, idle_seconds: float = 2.0) -> None:
        while not stop.is_set():
            try:
                await self.run_once(stop)
            except Exception:  # noqa: BLE001 - keep the loop alive; logged
                log.exception("broadcast pass failed")
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            await asyncio.wait(waiters, timeout=idle_seconds, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            self._wake.clear()

    def _start(self, session: Session, broadcast_id: int) -> tuple[dict[str, Any], int | None, int | None]:
        broadcast = broadcasts.start(session, broadcast_id)
        return (broadcasts.message_payload(session, broadcast), broadcast.progress_chat_id,
                broadcast.progress_message_id)

    async def run_broadcast(self, broadcast_id: int, stop: asyncio.Event) -> bool:
        payload, chat, progress_id = await asyncio.to_thread(self._tx, self._start, broadcast_id)
        progress = _Progress(self, broadcast_id, chat, progress_id)
        await progress.update(force=True)
        gate = asyncio.Semaphore(self.workers)
        while not stop.is_set():
            batch = await asyncio.to_thread(self._read, broadcasts.claim_due, broadcast_id, BATCH)
            if not batch:
                left = await asyncio.to_thread(self._read, broadcasts.counts, broadcast_id)
                if not left["pending"] and not left["sending"]:
                    await progress.update(force=True)  # 已发送 N/N before the report, not after it
                if await asyncio.to_thread(self._tx, broadcasts.finish_if_done, broadcast_id):
                    log.info("broadcast %s done", broadcast_id)
                    if self.on_finished is not None:
                        await self.on_finished()
                    return True
                nxt = await asyncio.to_thread(self._read, broadcasts.next_due_at, broadcast_id)
                wait = 0.2 if nxt is None else max(0.05, (nxt - broadcasts.utcnow()).total_seconds())
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=min(wait, 1.0))
                await progress.update()
                continue
            tasks = []
            for due in batch:
                if stop.is_set():
                    break
                await gate.acquire()
                task = asyncio.create_task(self._deliver(due, payload))
                task.add_done_callback(lambda _t: gate.release())
                tasks.append(task)
                await progress.update()
            for result in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(result, BaseException):  # e.g. the database refused an outcome
                    log.error("broadcast %s: a delivery failed in the sender", broadcast_id, exc_info=result)
        return False

    async def _deliver(self, due: broadcasts.Due, payload: dict[str, Any]) -> str:
        slot = await self.limiter.acquire(due.chat_id, BULK, burst=1)
        outcome = await self._send(due, payload, slot)
        if outcome != "skipped":
            setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
        return outcome

    def _mark(self, due: broadcasts.Due, slot: list[float] | None) -> Callable[[], bool]:
        def mark() -> bool:
            taken = bool(self._tx(broadcasts.mark_sending, due.id))
            if slot is not None:
                self.limiter.sent(slot, due.chat_id)
            return taken
        return mark

    async def _send(self, due: broadcasts.Due, payload: dict[str, Any], slot: list[float] | None = None) -> str:
        in_transport = _runs_mark(self.bot.request)  # else mark here, before building the request
        if not in_transport and not self._tx(broadcasts.mark_sending, due.id):
            return "skipped"
        token = _MARK.set(self._mark(due, slot)) if in_transport else None
        try:
            message = await send_notice(self.bot, due.chat_id, payload)
        except NotTaken:
            return "skipped"
        except RetryAfter as exc:
            seconds = _seconds(exc)
            if self.limiter.retry_after(seconds):
                log.warning("Telegram limits the bot: every send paused for %gs", seconds)
            self._tx(broadcasts.retry_later, due.id, f"RetryAfter {seconds:g}s",
                                    delay=timedelta(seconds=seconds))
            return "retried"
        except Forbidden as exc:
            self._tx(broadcasts.mark_blocked, due.id, f"Forbidden: {exc.message}")
            return "blocked"
        except BadRequest as exc:
            self._tx(broadcasts.mark_failed, due.id, f"BadRequest: {exc.message}")
            log.warning("broadcast delivery %s refused by Telegram: %s", due.id, exc.message)
            return "failed"
        except TimedOut as exc:
            if type(exc.__cause__).__name__ in NOT_SENT_TIMEOUTS:  # provably never sent: try again
                state = self._tx(broadcasts.retry_later, due.id, f"TimedOut: {exc.message}")
                return "failed" if state is DeliveryState.failed else "retried"
            self._tx(_mark_unconfirmed, due.id)
            return "unconfirmed"
        except (NetworkError, TelegramError) as exc:
            state = self._tx(broadcasts.retry_later, due.id,
                                            f"{type(exc).__name__}: {exc.message}")
            return "failed" if state is DeliveryState.failed else "retried"
        finally:
            if token is not None:
                _MARK.reset(token)
        self._tx(broadcasts.mark_sent, due.id, message.message_id)
        return "sent"


def _mark_unconfirmed(session: Session, delivery_id: int) -> None:
    broadcasts.set_delivery(session, delivery_id, state=DeliveryState.unconfirmed, last_error="timed out")


class _Progress:
    """The sender's "已发送 n/N" message: sent once, edited at most every few seconds."""

    def __init__(self, sender: BroadcastSender, broadcast_id: int, chat_id: int | None,
                 message_id: int | None) -> None:
        self.sender, self.broadcast_id = sender, broadcast_id
        self.chat_id, self.message_id = chat_id, message_id
        self.last_at = 0.0
        self.last_text = ""

    async def update(self, force: bool = False) -> None:
        if self.chat_id is None:
            return
        now = time.monotonic()
        if not force and now - self.last_at < self.sender.progress_every:
            return
        self.last_at = now
        counts = await asyncio.to_thread(self.sender._read, broadcasts.counts, self.broadcast_id)
        text = broadcasts.progress_text(counts)
        if text == self.last_text:
            return
        try:
            await self.sender.limiter.acquire(self.chat_id, BULK, burst=1)
            if self.message_id is None:
                message = await self.sender.bot.send_message(self.chat_id, text)
                self.message_id = message.message_id
                await asyncio.to_thread(self.sender._tx, _store_progress, self.broadcast_id, message.message_id)
            else:
                await self.sender.bot.edit_message_text(text, chat_id=self.chat_id, message_id=self.message_id)
            self.last_text = text
        except TelegramError as exc:  # progress is a courtesy: never stop the broadcast for it
            log.info("broadcast %s: progress message not updated (%s)", self.broadcast_id, exc.message)


def _store_progress(session: Session, broadcast_id: int, message_id: int) -> None:
    broadcasts.set_progress_message(session, broadcast_id, message_id)
