"""Talk to the Rasa server, and turn its answers into chat payloads.

Messages go through our input channel (`nlu/channel.py`, POST /webhooks/gridbot/webhook) with
the shared secret in its header; Rasa's HTTP API (/model/parse) gets a short-lived token
signed with the secret (`core/secret.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from core import secret as shared
from core.messaging.inbox import WARM_UP_SENDER
from core.models import utcnow

# Warm-up: one report conversation after a start, so that the first residents do not wait for
# Rasa's and the action server's first-call work (loading, query compilation, the router: about
# 0.3 s). The sender is no Telegram user (the actions find no resident, and those that file
# do nothing for it); the conversation stops before 确认 and ends with /restart.
WARM_UP_TEXT = "3号楼消防通道被车堵了"
WARM_UP_PRESS = "/inform"  # the only buttons it presses: a place to choose, never 确认


CHANNEL_PATH = "/webhooks/gridbot/webhook"


class RasaUnavailable(Exception):
    """Rasa could not be reached or failed; the message must wait, not be lost."""


class RasaRefused(RasaUnavailable):
    """Rasa refused the bot's secret (401/403): GRIDBOT_SECRET differs between the two. The
    message waits like when Rasa is down, but this needs an operator."""


@dataclass(frozen=True)
class Reply:
    text: str = ""
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (title, payload)
    custom: dict[str, Any] | None = None


class RasaClient:
    def __init__(self, base_url: str, secret: str | None = None, client: httpx.AsyncClient | None = None,
                 timeout: float = 15.0) -> None:
        """`secret`: the shared secret (core.secret); None sends no credentials, which a real
        Rasa server started by `nlu/server.py` refuses."""
        self._base = base_url.rstrip("/")
        self._url = self._base + CHANNEL_PATH
        self._channel_headers = {shared.SECRET_HEADER: secret} if secret else {}
        self._api_token = shared.RasaToken(secret) if secret else None
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None
        # Exactly once (core.protocol.REPLAY): inbox messages this process has sent and not yet
        # recorded an answer for, and when it started (a pending message older than that may
        # have reached Rasa from an earlier process).
        self.sent_inbox: set[int] = set()
        self.started = utcnow()

    def _api_headers(self) -> dict[str, str]:
        return self._api_token.headers() if self._api_token is not None else {}

    async def send(self, sender_id: int | str, text: str, metadata: dict[str, Any] | None = None) -> list[Reply]:
        body = {"sender": str(sender_id), "message": text, "metadata": metadata or {}}
        try:
            response = await self._client.post(self._url, json=body, headers=self._channel_headers)
        except httpx.HTTPError as exc:
            raise RasaUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code in (401, 403):
            raise RasaRefused(f"Rasa answered {response.status_code} to the bot's secret: "
                              "GRIDBOT_SECRET must be the same for the bot and Rasa")
        if response.status_code >= 500:
            raise RasaUnavailable(f"Rasa answered {response.status_code}")
        response.raise_for_status()
        return [parse_reply(item) for item in response.json()]

    async def intent_of(self, text: str, timeout: float = 3.0) -> str | None:
        """The NLU's intent for a text, without a conversation turn (Rasa's /model/parse);
        None when Rasa cannot say (down, loading, slow)."""
        try:
            response = await self._client.post(self._base + "/model/parse", json={"text": text},
                                               headers=self._api_headers(), timeout=timeout)
            response.raise_for_status()
            return str(((response.json() or {}).get("intent") or {}).get("name") or "") or None
        except (httpx.HTTPError, ValueError):
            return None

    async def warm_up(self) -> bool:
        """Run the warm-up conversation; RasaUnavailable if Rasa cannot be reached. True if the
        action server answered too (its replies carry buttons: a place to choose or the summary)."""
        await self.send(WARM_UP_SENDER, "/restart")  # a clean start, also after a failed attempt
        replies = await self.send(WARM_UP_SENDER, WARM_UP_TEXT)
        presses = [p for r in replies for _, p in r.buttons if p.startswith(WARM_UP_PRESS)]
        if presses:
            replies = await self.send(WARM_UP_SENDER, presses[0])
        await self.send(WARM_UP_SENDER, "/restart")
        return any(r.buttons for r in replies)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def parse_reply(item: dict[str, Any]) -> Reply:
    buttons = [(str(b.get("title", "")), str(b.get("payload", ""))) for b in item.get("buttons") or []]
    return Reply(text=str(item.get("text") or ""), buttons=buttons, custom=item.get("custom"))


def to_payload(reply: Reply) -> dict[str, Any]:
    """An outbox payload: the text, and one button per row (elderly fingers, small screens)."""
    payload: dict[str, Any] = {"text": reply.text}
    if reply.buttons:
        payload["buttons"] = [[{"text": title, "callback_data": value}] for title, value in reply.buttons]
    if reply.custom is not None:
        payload["custom"] = reply.custom
    return payload
