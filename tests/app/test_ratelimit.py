"""The process's one rate budget (bot/ratelimit.py) under a mixed load, on the real clock: a
broadcast to many private chats, replies to two chats and cards to a group, all at once."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from bot.ratelimit import BULK, NORMAL, URGENT, RateLimiter

RATE, PERIOD, BURST = 30, 1.005, 3
GROUP_RATE, GROUP_PERIOD = 5, 2.0  # Telegram's 20 a minute, scaled down to keep the test short
GROUP = -1001000000001


def _most_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max((sum(1 for u in times[i:] if u < t + window) for i, t in enumerate(times)), default=0)


def test_the_budget_holds_under_a_mixed_load_and_serves_replies_first() -> None:
    sends: dict[int, list[float]] = defaultdict(list)
    waited: dict[int, list[float]] = defaultdict(list)  # by chat, in order

    async def scenario() -> None:
        limiter = RateLimiter(rate=RATE, period=PERIOD, per_chat=1.0, group_rate=GROUP_RATE,
                              group_period=GROUP_PERIOD, chat_burst=BURST)
        await asyncio.sleep(PERIOD)  # the assumed full window at start-up has passed

        async def send(chat: int, priority: int) -> None:
            asked = time.monotonic()
            slot = await limiter.acquire(chat, priority)
            limiter.sent(slot, chat)
            sends[chat].append(time.monotonic())
            waited[chat].append(time.monotonic() - asked)

        async def broadcast() -> None:  # 90 recipients waiting for a slot at once
            await asyncio.gather(*(send(chat, BULK) for chat in range(1, 91)))

        async def replies(chat: int) -> None:
            await asyncio.sleep(0.5)  # the broadcast is under way
            for _ in range(6):
                await send(chat, URGENT)

        async def cards() -> None:
            await asyncio.gather(*(send(GROUP, NORMAL) for _ in range(8)))

        await asyncio.gather(broadcast(), replies(500), replies(501), cards())

    asyncio.run(scenario())
    everything = [t for times in sends.values() for t in times]
    assert len(everything) == 90 + 12 + 8
    assert _most_in_window(everything, 1.0) <= RATE  # overall: never more than 30 in a second
    for chat, times in sends.items():
        # per chat: at most BURST at once, then one a second
        assert _most_in_window(times, 1.0) <= BURST, chat
        assert _most_in_window(times, 3.0) <= BURST + 2, chat
        if len(times) > BURST:
            assert max(times) - min(times) >= (len(times) - BURST) * 1.0 - 0.02, chat
    assert _most_in_window(sends[GROUP], GROUP_PERIOD) <= GROUP_RATE  # a group: its own minute
    assert max(sends[GROUP]) - min(sends[GROUP]) >= GROUP_PERIOD - 0.02  # the sixth waited for the window
    # Priority: the broadcast alone needs 3 s of the budget and its 90 requests were waiting
    # before the replies came; a reply waits only for its own chat (3 at once, then one a second).
    for chat in (500, 501):
        assert all(w < 0.15 for w in waited[chat][:BURST]), waited[chat]
        assert all(w < 1.0 + 0.15 for w in waited[chat]), waited[chat]
    assert max(w for chat in range(1, 91) for w in waited[chat]) > 2.0  # the budget was contended


def test_a_strict_second_per_chat_when_asked_for() -> None:
    """With burst=1 (the broadcast sender) two requests to one chat are `per_chat` apart, though
    the chat's bucket would let a reply through at once."""
    async def scenario() -> tuple[float, float]:
        limiter = RateLimiter(chat_burst=3, per_chat=0.3)
        await limiter.acquire(7, BULK, burst=1)
        before = time.monotonic()
        await limiter.acquire(7, BULK, burst=1)
        strict = time.monotonic() - before
        before = time.monotonic()
        await limiter.acquire(7, URGENT)  # a reply may use what is left of the bucket
        return strict, time.monotonic() - before

    strict, reply = asyncio.run(scenario())
    assert strict >= 0.29 and reply < 0.1


def test_telegram_rate_sets_the_overall_budget_of_the_process(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy.orm import sessionmaker  # noqa: PLC0415

    from bot.app import build_application  # noqa: PLC0415
    from core.config import Settings  # noqa: PLC0415
    from tests.app.telegram_fake import FakeTelegram  # noqa: PLC0415

    def limiter_of(**extra: object) -> RateLimiter:
        settings = Settings(_env_file=None, telegram_bot_token="123:ABC", **extra)  # type: ignore[call-arg]
        app = build_application(settings, sessionmaker(bind=sqlite_engine), request=FakeTelegram(),
                                background=False)
        return app.bot_data["services"].limiter  # type: ignore[no-any-return]

    assert limiter_of().rate == 30  # Telegram's limit unless it was raised for the bot
    fast = limiter_of(telegram_rate=120)
    assert fast.rate == 120
