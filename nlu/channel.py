"""The bot's way into Rasa: Rasa's REST channel behind the shared secret.

Rasa's `--jwt-secret` protects its HTTP API (`/model`, `/conversations/...`), but not input
channels: Rasa's own `rest` channel answers anybody who can reach the port, as any user id.
This channel (`credentials.yml`: `nlu.channel.GridbotInput`, served at
POST /webhooks/gridbot/webhook) is that REST channel, except that every request (its health
check too) must carry the shared secret in the SECRET_HEADER (`core/secret.py`); anything
else is answered 401 and never reaches the dialogue. `rest` is not enabled.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from core import secret as shared

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

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[None]]) -> Blueprint:
        webhook = super().blueprint(on_new_message)

        @webhook.middleware("request")
        async def authenticate(request: Request) -> HTTPResponse | None:
            if shared.matches(request.headers.get(shared.SECRET_HEADER), self._secret):
                return None
            log.warning("refused %s %s from %s: no or wrong %s", request.method, request.path,
                        request.ip, shared.SECRET_HEADER)
            return response.json({"error": "unauthorized"}, status=401)

        return webhook
