"""Rasa 3.6's tracker store when its database goes away for a moment (a PostgreSQL restart).

Two things Rasa does on its own lose conversations (found by `make test-cluster`, which restarts
its PostgreSQL in the middle of 100 report conversations):
- Its SQL tracker store's engine has no `pool_pre_ping`: after the database restarted, every
  pooled connection is dead and each fails one turn ("server closed the connection
  unexpectedly"). Here the engine checks a connection before using it and replaces a dead one,
  as core/db.py's engines do.
- Its FailSafeTrackerStore falls back to an InMemoryTrackerStore on an error: a failed read is
  answered as a conversation that does not exist (a report form in the middle starts over; a
  message the bot sends again as a replay runs through the dialogue a second time), and a failed
  write keeps the turn only in this process's memory, which the other Rasa servers never see.
  Here an error is raised instead; nlu/channel.py turns it into ACTION_FAILED in the answer, so
  the bot keeps the message pending and sends it again once the database answers.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa.core import tracker_store as rasa_tracker_store
from rasa.core.tracker_store import FailSafeTrackerStore

log = logging.getLogger(__name__)
_ORIGINAL_ENGINE_KWARGS = rasa_tracker_store.create_engine_kwargs


class TrackerStoreUnavailable(RuntimeError):
    """The tracker store failed; the turn did not happen (or was not kept) and must be sent again."""


def create_engine_kwargs(url: Any) -> dict[str, Any]:
    return {**_ORIGINAL_ENGINE_KWARGS(url), "pool_pre_ping": True}


async def _retrieve(self: FailSafeTrackerStore, sender_id: str) -> Any:
    try:
        return await self._tracker_store.retrieve(sender_id)
    except Exception as exc:
        raise TrackerStoreUnavailable(f"reading the tracker failed: {exc}") from exc


async def _retrieve_full_tracker(self: FailSafeTrackerStore, sender_id: str) -> Any:
    try:
        return await self._tracker_store.retrieve_full_tracker(sender_id)
    except Exception as exc:
        raise TrackerStoreUnavailable(f"reading the tracker failed: {exc}") from exc


async def _save(self: FailSafeTrackerStore, tracker: Any) -> None:
    try:
        await self._tracker_store.save(tracker)
    except Exception as exc:
        raise TrackerStoreUnavailable(f"saving the tracker failed: {exc}") from exc


def apply() -> None:
    rasa_tracker_store.create_engine_kwargs = create_engine_kwargs
    FailSafeTrackerStore.retrieve = _retrieve  # type: ignore[method-assign]
    FailSafeTrackerStore.retrieve_full_tracker = _retrieve_full_tracker  # type: ignore[method-assign]
    FailSafeTrackerStore.save = _save  # type: ignore[method-assign]
