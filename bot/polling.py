"""Polling that keeps an update before Telegram is told it arrived ("durable before acknowledged").

python-telegram-bot's `run_polling` moves the getUpdates offset on (which tells Telegram
the updates were received) before any handler has stored anything: a kill -9 then loses
whatever was fetched but not handled. `Poller` instead

1. calls getUpdates(offset, long poll) through the Application's bot;
2. stores every update in `telegram_updates` and COMMITS (core/messaging/updates.py; an update
   already stored is ignored);
3. gives each stored, unhandled update to its person's lane (`Poller.feed`), which hands it to
   `Application.process_update` (the Application's own handlers and error handler) and marks it
   processed — each person's updates in update_id order, different people's concurrently, a
   new one never waiting for other people's conversations;
4. calls getUpdates again with max(update_id) + 1, which acknowledges what is now stored.

On start, updates stored but not handled before a kill are handled first, and the offset
continues from the table, so nothing committed is fetched (or handled) twice. (After a week
without updates no offset is sent: Telegram may then number updates at random.)

Network trouble (NetworkError, TimedOut) is retried with a growing pause (1 s … 30 s) and
logged once per outage; another poller with the same token (Conflict) or a bad token stops
the loop with a clear log line. `serve` runs an Application with it: the Application's
initialize/post_init/start … stop/post_stop/shutdown/post_shutdown, SIGINT/SIGTERM stop it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import signal
import time
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from telegram import Bot, Update
from telegram.error import Conflict, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application

from bot.replies import HANDLING
from core.db import read_scope, session_scope
from core.messaging import claims
from core.messaging import updates as stored
from core.messaging.claims import Claims
from core.metrics import Metrics

log = logging.getLogger("gridbot.polling")

POLL_TIMEOUT = 30  # seconds Telegram holds a getUpdates open when there is nothing new
BACKOFF_FIRST = 1.0  # seconds before the first retry after a network error ...
BACKOFF_MAX = 30.0  # ... doubling up to this
PRUNE_SECONDS = 3600.0  # how often handled updates older than core.messaging.updates.KEEP_PROCESSED go
BATCH = 100  # stored updates read per pass
LANES = 16  # people whose updates are handled at the same time
ELSEWHERE_RETRY = 2.0  # seconds before updates another process held are looked at again

AnyApplication = Application[Any, Any, Any, Any, Any, Any]


def sender_of(update: dict[str, Any]) -> int | None:
    """Whose updates must stay in order: the person who sent or pressed (else the chat)."""
    for key, value in update.items():
        if key == "update_id" or not isinstance(value, dict):
            continue
        person = value.get("from") or value.get("user") or {}
        if isinstance(person, dict) and "id" in person:
            return int(person["id"])
        chat = value.get("chat") or (value.get("message") or {}).get("chat") or {}
        if isinstance(chat, dict) and "id" in chat:
            return int(chat["id"])
    return None


class PollingStopped(Exception):
    """Polling cannot go on (another poller with this token, or the token is refused)."""


class Poller:
    def __init__(self, app: AnyApplication, factory: sessionmaker[Session], *,
                 poll_timeout: int = POLL_TIMEOUT, backoff_first: float = BACKOFF_FIRST,
                 backoff_max: float = BACKOFF_MAX, prune_seconds: float = PRUNE_SECONDS,
                 metrics: Metrics | None = None, claims: Claims | None = None) -> None:
        self.app = app
        # Several bot processes on one database: a person's updates are handled by the process
        # holding that person's claim (core/messaging/claims.py); by default the Application's own.
        self.claims: Claims | None = claims if claims is not None else \
            getattr(app.bot_data.get("services"), "claims", None)
        self.metrics = metrics
        self.factory = factory
        self.poll_timeout = poll_timeout
        self.backoff_first = backoff_first
        self.backoff_max = backoff_max
        self.prune_seconds = prune_seconds
        self.offset: int | None = None
        self._offset_at = 0.0  # time.monotonic() when the offset was last moved
        self._stop = asyncio.Event()
        self._last_prune = 0.0
        # The lanes (`feed`): each person's queue of updates taken by this process, the updates
        # taken (queued, being handled, or handled but maybe still in a read begun earlier), which
        # read was the latest when each was marked handled, and those another process holds.
        self._queues: dict[tuple[int, int], collections.deque[tuple[int, dict[str, Any]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._taken: set[int] = set()
        self._done: dict[int, int] = {}
        self._elsewhere: set[int] = set()
        self._elsewhere_at = 0.0
        self._reads = 0
        self._handled = 0
        self._lanes_free = asyncio.Semaphore(LANES)
        self._feeding = asyncio.Lock()

    def stop(self) -> None:
        """Stop after the update being handled (an open getUpdates is abandoned: nothing of it
        was acknowledged, Telegram sends it again)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def until_stopped(self) -> None:
        await self._stop.wait()

    async def pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less if stopped meanwhile."""
        await self._pause(seconds)

    async def run(self) -> None:
        """Poll until `stop()`; raises PollingStopped on Conflict or InvalidToken."""
        try:
            await self.process_stored()  # what a kill left between commit and handling, first
            self.offset = await asyncio.to_thread(self._read_offset)
            self._offset_at = time.monotonic()
            outage_since: float | None = None
            tries = 0
            delay = self.backoff_first
            while not self.stopping:
                if time.monotonic() - self._offset_at > stored.OFFSET_STALE.total_seconds():
                    self.offset = None  # a week without updates: see core.messaging.updates.next_offset
                try:
                    batch = await self._fetch()
                except Conflict as exc:
                    log.error("polling stopped: another bot instance polls with this token (%s)", exc)
                    raise PollingStopped(str(exc)) from exc
                except InvalidToken as exc:
                    log.error("polling stopped: Telegram refuses the bot token (%s)", exc)
                    raise PollingStopped(str(exc)) from exc
                except RetryAfter as exc:
                    wait = exc.retry_after if isinstance(exc.retry_after, (int, float)) \
                        else exc.retry_after.total_seconds()
                    log.warning("getUpdates: flood control, waiting %.0f s", wait)
                    await self._pause(float(wait))
                    continue
                except (NetworkError, TelegramError) as exc:  # TimedOut is a NetworkError
                    tries += 1
                    if outage_since is None:
                        outage_since = time.monotonic()
                        log.warning("getUpdates failed (%s: %s); retrying every %.0f-%.0f s until it works",
                                    type(exc).__name__, exc, self.backoff_first, self.backoff_max)
                    else:
                        log.debug("getUpdates failed again (%s)", exc)
                    await self._pause(delay)
                    delay = min(delay * 2, self.backoff_max)
                    continue
                if outage_since is not None:
                    log.info("getUpdates works again after %.0f s and %d failed tries",
                             time.monotonic() - outage_since, tries)
                    outage_since, tries, delay = None, 0, self.backoff_first
                if batch is None:  # stopped while waiting
                    break
                if batch:
                    try:
                        new = await asyncio.to_thread(self._store, batch)  # committed: only now is the offset moved
                    except Exception:  # noqa: BLE001 - not acknowledged: Telegram sends them again
                        log.exception("storing %d update(s) failed; fetching them again", len(batch))
                        await self._pause(self.backoff_max)
                        continue
                    if self.metrics is not None and new:
                        self.metrics.messages_in.labels("polling").inc(new)
                    self.offset = max(u["update_id"] for u in batch) + 1
                    self._offset_at = time.monotonic()
                try:
                    await self.feed()
                except Exception:  # noqa: BLE001 - the database; what is stored stays, tried again
                    log.exception("handling stored updates failed")
                    await self._pause(self.backoff_max)
                await self._maybe_prune()
        finally:
            await self.settle()  # each lane stops after its current update

    async def _fetch(self) -> list[dict[str, Any]] | None:
        """One getUpdates call, as JSON; None if `stop()` came first."""
        bot = self.app.bot
        # Bot.get_updates, not ExtBot's: the JSON is stored as Telegram sent it.
        call = asyncio.ensure_future(Bot.get_updates(
            bot, offset=self.offset, timeout=self.poll_timeout, allowed_updates=Update.ALL_TYPES))
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            done, _ = await asyncio.wait({call, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if call not in done:
            call.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await call
            return None
        return [update.to_dict() for update in call.result()]

    async def process_stored(self) -> int:
        """Hand every stored, unhandled update to the Application and wait until they are
        handled; how many. (The webhook worker and the polling loop use `feed`, which does not
        wait.) Updates another process is handling now are left to it."""
        before = self._handled
        self._elsewhere.clear()
        while not self.stopping:
            await self.feed()
            if not self._tasks:
                break
            await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
        return self._handled - before

    async def feed(self) -> int:
        """Read the stored updates no lane of this process has yet and give each to its person's
        lane, starting the lane where none runs; returns how many, without waiting for them.

        Each person's updates go in update_id order, one after the other; different people's
        go at once (at most LANES at a time), so one resident waiting on Rasa holds up nobody
        else, and a new message never waits for other people's conversations to finish."""
        async with self._feeding:
            if time.monotonic() - self._elsewhere_at > ELSEWHERE_RETRY:
                self._elsewhere.clear()  # the other process may have died since: look again
                self._elsewhere_at = time.monotonic()
            given = 0
            while not self.stopping:
                self._reads += 1
                generation = self._reads
                batch = await asyncio.to_thread(self._unprocessed, self._taken | self._elsewhere)
                self._forget_handled(generation)
                for update_id, data in batch:
                    if update_id in self._taken or update_id in self._elsewhere:
                        continue  # read before a lane of ours took (or handled) it
                    sender = sender_of(data)
                    key = (claims.UPDATES, sender) if sender is not None else (claims.UPDATE, update_id)
                    self._taken.add(update_id)
                    queue = self._queues.get(key)
                    if queue is None:
                        queue = self._queues[key] = collections.deque()
                        self._start_lane(key, queue)
                    queue.append((update_id, data))
                    given += 1
                if len(batch) < BATCH:
                    break
            return given

    async def settle(self) -> None:
        """Wait for the lanes to finish (after `stop()`, each stops after its current update)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    def _start_lane(self, key: tuple[int, int], queue: collections.deque[tuple[int, dict[str, Any]]]) -> None:
        task = asyncio.create_task(self._lane(key, queue))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _lane(self, key: tuple[int, int], queue: collections.deque[tuple[int, dict[str, Any]]]) -> None:
        """Handle `queue` (one person's updates, appended to while it runs) until it is empty."""
        async with self._lanes_free:
            if not await self._claim(key):  # another process handles this person now
                self._queues.pop(key, None)
                for update_id, _ in queue:
                    self._taken.discard(update_id)
                    self._elsewhere.add(update_id)
                return
            try:
                while queue and not self.stopping:
                    items = list(queue)
                    queue.clear()
                    # Another process may have handled some before this one got the claim.
                    still = await asyncio.to_thread(self._still_unprocessed, [u for u, _ in items]) \
                        if self.claims is not None and self.claims.shared else None
                    for n, (update_id, data) in enumerate(items):
                        if self.stopping:
                            queue.extendleft(reversed(items[n:]))
                            break
                        if still is None or update_id in still:
                            await self._handle(update_id, data)
                            await asyncio.to_thread(self._mark, update_id)
                            self._handled += 1
                        self._done[update_id] = self._reads  # reads begun from now on cannot see it
            except Exception:  # noqa: BLE001 - the database; what is stored stays and is read again
                log.exception("handling stored updates failed")
                await self._pause(self.backoff_first)
            finally:
                await self._release(key)
                if self._queues.get(key) is queue:
                    if queue and not self.stopping:
                        self._start_lane(key, queue)  # more came while the claim was let go
                    else:
                        del self._queues[key]
                        for update_id, _ in queue:  # not handled: read again next time
                            if update_id not in self._done:
                                self._taken.discard(update_id)

    def _forget_handled(self, generation: int) -> None:
        """Updates marked handled before read number `generation` began are in no later read."""
        for update_id in [u for u, g in self._done.items() if g < generation]:
            del self._done[update_id]
            self._taken.discard(update_id)

    async def _claim(self, key: tuple[int, int]) -> bool:
        if self.claims is None or not self.claims.shared:
            return True
        return await asyncio.to_thread(self.claims.try_claim, key[0], key[1])

    async def _release(self, key: tuple[int, int]) -> None:
        if self.claims is not None and self.claims.shared:
            await asyncio.to_thread(self.claims.release, key[0], key[1])

    async def _handle(self, update_id: int, data: dict[str, Any]) -> None:
        bot = self.app.bot
        handling = HANDLING.set((update_id, itertools.count()))  # handler messages keyed by the update
        try:
            update = Update.de_json(data, bot)  # a button's data is resolved by its handler (core.messaging.buttons)
            await self.app.process_update(update)  # handlers; their errors go to the error handler
        except Exception:  # noqa: BLE001 - one bad update must not block the ones behind it
            log.exception("update %d could not be handled; marked processed", update_id)
        finally:
            HANDLING.reset(handling)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    async def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now - self._last_prune < self.prune_seconds:
            return
        self._last_prune = now
        try:
            deleted = await asyncio.to_thread(self._prune)
            if deleted:
                log.info("deleted %d handled update(s) older than %s", deleted, stored.KEEP_PROCESSED)
        except Exception:  # noqa: BLE001 - housekeeping; polling goes on
            log.exception("pruning handled updates failed")

    # -- database (worker threads) --------------------------------------------------------

    def _read_offset(self) -> int | None:
        with read_scope(self.factory) as session:
            return stored.next_offset(session)

    def _store(self, batch: list[dict[str, Any]]) -> int:
        with session_scope(self.factory) as session:
            return stored.store(session, batch)

    def _unprocessed(self, skip: set[int]) -> list[tuple[int, dict[str, Any]]]:
        with read_scope(self.factory) as session:
            return stored.unprocessed(session, limit=BATCH, skip=skip)

    def _still_unprocessed(self, update_ids: list[int]) -> set[int]:
        with read_scope(self.factory) as session:
            return stored.still_unprocessed(session, update_ids)

    def _mark(self, update_id: int) -> None:
        with session_scope(self.factory) as session:
            stored.mark_processed(session, update_id)

    def _prune(self) -> int:
        with session_scope(self.factory) as session:
            return stored.prune(session)


async def serve(app: AnyApplication, factory: sessionmaker[Session], metrics: Metrics | None = None,
                signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
    """Run `app` with a `Poller` until SIGINT/SIGTERM, with the Application's whole life cycle
    (the order of Application.run_polling)."""
    poller = Poller(app, factory, metrics=metrics)
    loop = asyncio.get_running_loop()
    for sig in signals:
        loop.add_signal_handler(sig, poller.stop)
    try:
        async with app:  # initialize … shutdown
            if app.post_init is not None:
                await app.post_init(app)
            await app.bot.delete_webhook(drop_pending_updates=False)  # getUpdates refuses while one is set
            await app.start()
            try:
                await poller.run()
            except PollingStopped:
                pass  # logged
            finally:
                await app.stop()
                if app.post_stop is not None:
                    await app.post_stop(app)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        if app.post_shutdown is not None:
            await app.post_shutdown(app)
