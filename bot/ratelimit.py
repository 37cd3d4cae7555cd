"""One rate budget for everything the bot process sends: Telegram's limits, with priorities.

Telegram allows a bot about 30 messages a second overall, one a second to one chat and 20 a
minute to one group. `RateLimiter` holds all three for every sender in the process — the outbox
dispatcher (replies, cards, reminders: bot/dispatcher.py) and the broadcast sender
(bot/broadcast_sender.py) take their slots from the same object (bot/app.py's Services) — so
their sum stays within the limits, not each on its own.

* Overall: at most `rate` request starts in any `period` seconds (30 per 1.005 s), and bulk
  requests (broadcasts) evenly spaced `period / rate` apart (python-telegram-bot's
  AIORateLimiter lets a burst of 30 through at once, which a strict "30 in any second" count
  refuses when the window's edges jitter); a few replies at once are not spaced, so a reply
  does not wait behind other people's. A request counts in the window from the moment it
  really goes out (`sent`), not from its slot: a slow commit between the two would otherwise
  let 31 requests reach Telegram within one second; a sender that knows when the answer came
  (`answered`) counts it from the middle of its round trip.
* Per chat: one request every `per_chat` seconds on average, as a token bucket that holds
  `chat_burst` requests (3): a reply of two or three messages (a text and its buttons' edit,
  Rasa's answer in parts) goes out at once, as Telegram tolerates in a chat, and anything longer
  is paced to one a second. A sender that wants no burst (the broadcast sender: one notice per
  recipient, and its progress message) asks with `burst=1`: a strict second between two
  requests to a chat.
* Per group (a negative chat id: groups, supergroups, channels): at most `group_rate` in any
  `group_period` seconds.
* Priority: -1 (replies, emergencies) before 0 (a call-out's calls) before 1 (cards, reminders)
  before 2 (broadcasts; core.messaging.outbox's PRIORITY_*). When the overall budget is the only
  thing a more urgent request waits for, a less urgent one does not take the slot: a reply never
  queues behind a 10,000-recipient broadcast or a call-out, which simply get the slots nobody more
  urgent wants.
* Telegram's RetryAfter: a burst of them (BURST_429 within a second) pauses every send.

* Several bot processes (replicas on one PostgreSQL database): `shared`
  (core/ratebudget.py's SharedBudget.take) is asked too, once this process's own limits let a
  request go, so the replicas' sum stays within Telegram's limits; priorities hold within each
  process, across processes the earlier asker goes first.

A waiter sleeps without holding anything, so a request waiting for its chat's second holds up
no other chat. Everything runs on one event loop: the bookkeeping needs no lock.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable

from sqlalchemy import Engine

from core.ratebudget import SharedBudget

# (chat_id, burst, spaced) -> 0.0 when a slot was taken, else the seconds to wait; blocking
log = logging.getLogger("gridbot.ratelimit")

SharedTake = Callable[[int | None, int | None, bool], float]

RATE = 30
PERIOD = 1.005
PER_CHAT_SECONDS = 1.0
CHAT_BURST = 3
GROUP_RATE = 20
GROUP_PERIOD = 60.5  # Telegram's minute, with the same margin as PERIOD
# this many RetryAfter within a second: Telegram limits the bot as a whole, pause everything. Five,
# not three: at 30/s a few recipients' own 429s (Telegram's per-chat answer) meet by chance.
BURST_429 = 5
URGENT, CALLOUT, NORMAL, BULK = -1, 0, 1, 2  # core.messaging.outbox.PRIORITY_*
SHARED_RETRY_SECONDS = 1.0  # pause when the shared budget's database does not answer
FORGET_CHATS = 50_000  # chat entries kept before those long past their second are dropped


class RateLimiter:
    """Slots for requests within Telegram's limits (see the module docstring)."""

    def __init__(self, rate: int = RATE, period: float = PERIOD, per_chat: float = PER_CHAT_SECONDS,
                 group_rate: int = GROUP_RATE, group_period: float = GROUP_PERIOD,
                 chat_burst: int = CHAT_BURST, clock: Callable[[], float] = time.monotonic,
                 shared: SharedTake | None = None) -> None:
        self.rate, self.period, self.per_chat, self.clock = rate, period, per_chat, clock
        self.shared = shared
        self.chat_burst = chat_burst
        self.group_rate, self.group_period = group_rate, group_period
        # one cell [time] per request: the slot's time, moved to the moment the request really went
        # out when the sender reports it (`sent`)
        self._starts: collections.deque[list[float]] = collections.deque()
        self._chats: dict[int, list[float]] = {}  # chat -> [tokens, when they were counted]
        self._groups: dict[int, collections.deque[list[float]]] = {}
        self._paused_until = 0.0
        self._recent_429: collections.deque[float] = collections.deque()
        # waiters, by priority, that wait for nothing but the overall budget
        self._ready: collections.Counter[int] = collections.Counter()
        # Start as if we had been sending at full rate: a restarted process must not burst into
        # the window its predecessor filled a moment ago.
        start = clock()
        self._next_slot = start
        self._starts.extend([start - period + (k + 1) * period / rate] for k in range(rate))

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self.clock() + seconds)

    @property
    def paused_until(self) -> float:
        return self._paused_until

    def retry_after(self, seconds: float) -> bool:
        """Note a 429; True (and everything paused) when it is part of a burst."""
        now = self.clock()
        self._recent_429.append(now)
        while self._recent_429 and self._recent_429[0] < now - 1.0:
            self._recent_429.popleft()
        if len(self._recent_429) >= BURST_429:
            self.pause(seconds)
            self._recent_429.clear()
            return True
        return False

    def sent(self, slot: list[float], chat_id: int | None = None) -> None:
        """The request of `slot` (from `acquire`) is going out now: count it from now."""
        now = self.clock()
        slot[0] = max(slot[0], now)
        bucket = self._chats.get(chat_id) if chat_id is not None else None
        if bucket is not None and bucket[1] < now:
            bucket[1] = now  # the chat's bucket refills from the request's real start, not its slot

    def answered(self, slot: list[float]) -> None:
        """The request of `slot` (`sent` at its start) has its answer: Telegram got it somewhere in
        between, so it counts in the window from the middle of the two — a few milliseconds of
        building and writing it must not let a 31st request reach Telegram within the second, nor
        its round trip hold the slot longer (30 in 1.005 s plus a round trip would be 28 a second)."""
        slot[0] = max(slot[0], (slot[0] + self.clock()) / 2)

    def chat_wait(self, chat_id: int | None, burst: int | None = None) -> float:
        """Seconds a request to `chat_id` waits for that chat's own limits now (0: none)."""
        return max(0.0, self._chat_wait(chat_id, self.clock(), burst))

    def _chat_wait(self, chat_id: int | None, now: float, burst: int | None = None) -> float:
        if chat_id is None:
            return 0.0
        wait = 0.0
        bucket = self._refilled(chat_id, now)
        # the tokens this request needs: 1 may use the whole bucket, `burst` only that many of them
        need = self.chat_burst - min(self.chat_burst, burst or self.chat_burst) + 1
        if bucket is not None and bucket[0] < need:
            wait = (need - bucket[0]) * self.per_chat
        group = self._groups.get(chat_id)
        if group is not None:
            while group and group[0][0] <= now - self.group_period:
                group.popleft()
            if len(group) >= self.group_rate:
                wait = max(wait, group[0][0] + self.group_period - now)
        return wait

    def _refilled(self, chat_id: int, now: float) -> list[float] | None:
        bucket = self._chats.get(chat_id)
        if bucket is not None and now > bucket[1]:
            gained = (now - bucket[1]) / self.per_chat if self.per_chat > 0 else float(self.chat_burst)
            bucket[0], bucket[1] = min(float(self.chat_burst), bucket[0] + gained), now
        return bucket

    def _overall_wait(self, now: float, spaced: bool) -> float:
        while self._starts and self._starts[0][0] <= now - self.period:
            self._starts.popleft()
        waits = [self._paused_until - now]
        if spaced:  # evenly spaced: no bursts
            waits.append(self._next_slot - now)
        if len(self._starts) >= self.rate:
            waits.append(self._starts[0][0] + self.period - now)
        return max(waits)

    def _take(self, chat_id: int | None, now: float) -> list[float]:
        slot = [now]
        self._starts.append(slot)
        # the next slot follows this one's slot, not its (late) start, so that waking up late
        # does not slow the pace; the window above still caps any catch-up
        self._next_slot = max(self._next_slot + self.period / self.rate, now)
        if chat_id is not None:
            bucket = self._refilled(chat_id, now) or self._chats.setdefault(chat_id, [float(self.chat_burst), now])
            bucket[0] -= 1
            if chat_id < 0:
                self._groups.setdefault(chat_id, collections.deque()).append(slot)
            if len(self._chats) > FORGET_CHATS:  # drop chats whose bucket is full again
                full = self.chat_burst * self.per_chat
                self._chats = {c: b for c, b in self._chats.items() if b[1] > now - full}
                self._groups = {c: q for c, q in self._groups.items() if q and q[-1][0] > now - self.group_period}
        return slot

    async def acquire(self, chat_id: int | None = None, priority: int = BULK,
                      burst: int | None = None) -> list[float]:
        """Wait for a slot to send to `chat_id` at `priority`; the slot's cell, for `sent`.
        `burst`: how many requests in a row this sender may make to one chat (default the bucket)."""
        ready = False
        try:
            while True:
                now = self.clock()
                chat_wait = self._chat_wait(chat_id, now, burst)
                if (chat_wait <= 0) != ready:  # only the overall budget (still) holds it back
                    ready = not ready
                    self._ready[priority] += 1 if ready else -1
                wait = max(chat_wait, self._overall_wait(now, spaced=priority >= BULK))
                if wait <= 0 and any(n for p, n in self._ready.items() if p < priority):
                    wait = self.period / self.rate  # a more urgent request takes this slot
                if wait <= 0 and self.shared is not None:
                    wait = await self._shared_wait(chat_id, burst, spaced=priority >= BULK)
                    if wait <= 0:  # the other replicas' share taken; this process's own still free?
                        now = self.clock()
                        if max(self._chat_wait(chat_id, now, burst), self._overall_wait(now, priority >= BULK)) > 0:
                            continue  # taken meanwhile here: the shared slot goes unused
                if wait <= 0:
                    return self._take(chat_id, now)
                await asyncio.sleep(wait)
        finally:
            if ready:
                self._ready[priority] -= 1

    async def _shared_wait(self, chat_id: int | None, burst: int | None, spaced: bool) -> float:
        """The shared budget's answer; when the database cannot answer, a short pause (nothing
        is sent unaccounted for, and the database coming back ends it)."""
        assert self.shared is not None
        try:
            return await asyncio.to_thread(self.shared, chat_id, burst, spaced)
        except Exception as exc:  # noqa: BLE001 - the database is away: wait for it
            log.warning("shared rate budget unavailable (%s); waiting", exc)
            return SHARED_RETRY_SECONDS


def shared_budget(engine: Engine | None, rate: int = RATE) -> SharedTake | None:
    """The budget shared with every other bot process on this database (PostgreSQL), with the
    same limits as RateLimiter's (`rate`: TELEGRAM_RATE); None on SQLite (one process)."""
    if engine is None or engine.dialect.name != "postgresql":
        return None
    return SharedBudget(engine, rate=rate, period=PERIOD, per_chat=PER_CHAT_SECONDS, chat_burst=CHAT_BURST,
                        group_rate=GROUP_RATE, group_period=GROUP_PERIOD).take
