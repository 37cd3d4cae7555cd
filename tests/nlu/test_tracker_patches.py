"""A tracker store failure fails the turn (the bot sends the message again) instead of Rasa's
silent fall-back to a conversation in this process's memory; dead pooled connections are replaced."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from rasa.core import tracker_store as rasa_tracker_store
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.tracker_store import FailSafeTrackerStore, InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

import nlu  # noqa: F401 - importing the package applies the patches
from core.protocol import ACTION_FAILED, INBOX_ID, REPLAY
from nlu import tracker_patches
from nlu.channel import GridbotInput
from nlu.tracker_patches import TrackerStoreUnavailable

SECRET = "s" * 32


class BrokenStore(InMemoryTrackerStore):
    """A tracker store whose database has just gone away."""

    async def retrieve(self, sender_id: str) -> Any:
        raise ConnectionError("server closed the connection unexpectedly")

    async def retrieve_full_tracker(self, sender_id: str) -> Any:
        raise ConnectionError("server closed the connection unexpectedly")

    async def save(self, tracker: DialogueStateTracker) -> None:
        raise ConnectionError("server closed the connection unexpectedly")


def test_postgresql_engines_check_their_connections() -> None:
    # SQLTrackerStore calls the module's function when it builds its engine
    assert rasa_tracker_store.create_engine_kwargs is tracker_patches.create_engine_kwargs
    kwargs = rasa_tracker_store.create_engine_kwargs("postgresql://rasa@db.internal:5432/rasa_tracker")
    assert kwargs["pool_pre_ping"] is True
    assert kwargs["pool_size"] >= 1  # Rasa's own settings stay


def test_a_failing_tracker_store_raises_instead_of_falling_back_to_memory() -> None:
    store = FailSafeTrackerStore(BrokenStore(Domain.empty()))
    tracker = DialogueStateTracker("42", slots=[])

    async def scenario() -> None:
        with pytest.raises(TrackerStoreUnavailable):
            await store.retrieve("42")
        with pytest.raises(TrackerStoreUnavailable):
            await store.retrieve_full_tracker("42")
        with pytest.raises(TrackerStoreUnavailable):
            await store.save(tracker)

    asyncio.run(scenario())
    assert store._fallback_tracker_store is None  # nothing was kept in memory
    working = FailSafeTrackerStore(InMemoryTrackerStore(Domain.empty()))

    async def fine() -> None:
        await working.save(tracker)
        assert (await working.retrieve("42")) is not None

    asyncio.run(fine())


def _message(metadata: dict[str, Any]) -> tuple[UserMessage, CollectingOutputChannel]:
    out = CollectingOutputChannel()
    return UserMessage("确认提交", out, "42", metadata=metadata), out


def test_the_answer_says_the_turn_failed_so_the_bot_sends_it_again() -> None:
    channel = GridbotInput(SECRET)
    ran: list[str] = []

    async def dialogue_on_a_dead_store(message: UserMessage) -> None:
        ran.append(str(message.text))
        raise TrackerStoreUnavailable("saving the tracker failed: connection closed")

    message, out = _message({INBOX_ID: 7})
    asyncio.run(channel.handle_once(message, dialogue_on_a_dead_store))
    assert ran == ["确认提交"]
    assert out.messages == [{"recipient_id": "42", "custom": {ACTION_FAILED: "tracker_store"}}]

    # A replay whose earlier answer cannot be read is not run through the dialogue again.
    class Agent:
        tracker_store = FailSafeTrackerStore(BrokenStore(Domain.empty()))

    channel._agent = Agent()
    ran.clear()
    message, out = _message({INBOX_ID: 7, REPLAY: True})
    asyncio.run(channel.handle_once(message, dialogue_on_a_dead_store))
    assert ran == []
    assert out.messages == [{"recipient_id": "42", "custom": {ACTION_FAILED: "tracker_store"}}]


def test_a_replay_still_gets_the_earlier_answer() -> None:
    store = FailSafeTrackerStore(InMemoryTrackerStore(Domain.empty()))
    tracker = DialogueStateTracker("42", slots=[])
    tracker.update(UserUttered("确认提交", metadata={INBOX_ID: 7}))
    tracker.update(BotUttered("已提交"))
    asyncio.run(store.save(tracker))

    class Agent:
        tracker_store = store

    channel = GridbotInput(SECRET)
    channel._agent = Agent()

    async def must_not_run(message: UserMessage) -> None:
        raise AssertionError("the dialogue ran again")

    message, out = _message({INBOX_ID: 7, REPLAY: True})
    asyncio.run(channel.handle_once(message, must_not_run))
    assert [m.get("text") for m in out.messages] == ["已提交"]


def test_a_lock_store_away_fails_the_turn_so_the_bot_sends_it_again() -> None:
    """Redis away: Rasa 3.6's RedisLockStore raises LockError before the dialogue runs, which
    Rasa's REST channel would turn into an empty 200 (the message answered with nothing)."""
    from rasa.core.lock_store import RedisLockStore

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = RedisLockStore(host="127.0.0.1", port=port, socket_timeout=1)
    ran: list[str] = []

    async def dialogue(message: UserMessage) -> None:
        async with store.lock(str(message.sender_id)):
            ran.append(str(message.text))

    message, out = _message({INBOX_ID: 8})
    asyncio.run(GridbotInput(SECRET).handle_once(message, dialogue))
    assert ran == []
    assert out.messages == [{"recipient_id": "42", "custom": {ACTION_FAILED: "lock_store"}}]

