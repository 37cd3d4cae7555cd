"""The bot's way into Rasa: Rasa's REST channel behind the shared secret.

Rasa's `--jwt-secret` protects its HTTP API (`/model`, `/conversations/...`), but not input
channels: Rasa's own `rest` channel answers anybody who can reach the port, as any user id.
This channel (`credentials.yml`: `nlu.channel.GridbotInput`, served at
POST /webhooks/gridbot/webhook) is that REST channel, except that every request (its health
check too) must carry the shared secret in the SECRET_HEADER (`core/secret.py`); anything
else is answered 401 and never reaches the dialogue. `rest` is not enabled.

Exactly once: the bot sends each resident message with its inbox id (metadata `inbox_id`), and
`replay` when it may have sent it before. Then, if the tracker already holds a user message with that id — the bot died after Rasa answered
and before it recorded the answer — the channel sends the answer Rasa gave then, and the
dialogue does not run again (a report is not filed twice, a form does not move on twice).
A turn rewound after a failed action (nlu/rasa_patches.py) does not count: it runs again.
When the tracker store fails (nlu/tracker_patches.py: its database restarting) or the lock store
does (Redis away: Rasa 3.6's RedisLockStore has no fall-back), the answer says so with
ACTION_FAILED, and the bot keeps the message pending and sends it again when Rasa can take it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from rasa.core.lock_store import LockError
from rasa.shared.core.events import BotUttered, UserUttered
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from core import secret as shared
from core.protocol import ACTION_FAILED, INBOX_ID, REPLAY
from nlu.tracker_patches import TrackerStoreUnavailable

log = logging.getLogger(__name__)


class GridbotInput(RestInput):
    @classmethod
    def name(cls) -> str:
        return "gridbot"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        value = str((credentials or {}).get("secret") or "").strip()
        if not value:
            raise shared.SecretError(
                "credentials.yml: nlu.channel.GridbotInput needs `secret: ${GRIDBOT_SECRET}`, "
                "and GRIDBOT_SECRET must be set (nlu/server.py sets it)")
        return cls(shared.check(value, origin="the gridbot channel's secret"))

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._agent: Any = None

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[None]]) -> Blueprint:
        async def once(message: UserMessage) -> None:
            await self.handle_once(message, on_new_message)

        webhook = super().blueprint(once)

        @webhook.middleware("request")
        async def authenticate(request: Request) -> HTTPResponse | None:
            if shared.matches(request.headers.get(shared.SECRET_HEADER), self._secret):
                self._agent = getattr(request.app.ctx, "agent", None)
                return None
            log.warning("refused %s %s from %s: no or wrong %s", request.method, request.path,
                        request.ip, shared.SECRET_HEADER)
            return response.json({"error": "unauthorized"}, status=401)

        return webhook

    async def handle_once(self, message: UserMessage,
                          on_new_message: Callable[[UserMessage], Awaitable[None]]) -> None:
        """A message the bot sends again (it died before it recorded Rasa's answer) is
        answered with what Rasa said the first time, not run through the dialogue twice."""
        metadata = message.metadata or {}
        inbox_id = metadata.get(INBOX_ID)
        try:
            earlier = (await self._answered(message.sender_id, inbox_id)
                       if inbox_id is not None and metadata.get(REPLAY) else None)
            if earlier is None:
                await on_new_message(message)
                return
        except (TrackerStoreUnavailable, LockError) as exc:
            # Rasa's REST channel would answer 200 with whatever was said so far (nothing, when
            # the lock store -- Redis -- is away), and log the message's text: say that the turn
            # failed, so the bot keeps the message pending and sends it again.
            store = "lock_store" if isinstance(exc, LockError) else "tracker_store"
            log.warning("inbox message %s: the %s failed (%s); the bot sends it again",
                        inbox_id, store, type(exc).__name__)
            await message.output_channel.send_custom_json(message.sender_id, {ACTION_FAILED: store})
            return
        log.info("inbox message %s was answered before; its answer is sent again", inbox_id)
        for reply in earlier:
            await message.output_channel.send_response(message.sender_id, reply)

    async def _answered(self, sender_id: str, inbox_id: object) -> list[dict[str, Any]] | None:
        """What the bot said after the user message carrying `inbox_id`, if the tracker holds
        that message (and it was not rewound after a failed action); None otherwise."""
        store = getattr(self._agent, "tracker_store", None)
        tracker = await store.retrieve(sender_id) if store is not None else None
        if tracker is None:
            return None
        replies: list[dict[str, Any]] | None = None
        for event in tracker.applied_events():
            if isinstance(event, UserUttered):
                if replies is not None:
                    break  # the next message: the answer is complete
                if (event.metadata or {}).get(INBOX_ID) == inbox_id:
                    replies = []
            elif replies is not None and isinstance(event, BotUttered):
                replies.append({"text": event.text, **{k: v for k, v in (event.data or {}).items() if v}})
        return replies
