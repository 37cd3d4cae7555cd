"""Webhook mode: Telegram posts each update to us instead of the bot polling (TELEGRAM_WEBHOOK_URL).

The same promise as polling (bot/polling.py), "durable before acknowledged": Telegram takes a
200 as the acknowledgement, so a delivery is answered 200 only after its update is committed
to `telegram_updates` (core/messaging/updates.py, the row polling writes, idempotent by
update_id: a delivery Telegram retries is kept once and handled once). The stored updates are
then handled by the same code as polled ones (`Poller.feed`: each person's in order,
different people's at once), woken by each new delivery.

A delivery is refused, with nothing stored and one log line that never carries the body:
- 403 without the right `X-Telegram-Bot-Api-Secret-Token` (compared in constant time; the
  token is Settings.webhook_secret(), given to Telegram with setWebhook);
- 400 when the body is not a Telegram update (not JSON, no integer update_id, no known field);
- 413 over MAX_BODY_BYTES; 405 for anything but POST; 404 off the webhook's path.
When the database cannot take the update the answer is 500, and Telegram delivers it again.

The server (Sanic, run in the bot's event loop) binds TELEGRAM_WEBHOOK_HOST:PORT (127.0.0.1:8081)
and serves the path of TELEGRAM_WEBHOOK_URL; nginx in front terminates TLS. `serve` runs the
Application with it: setWebhook at start (so the latest replica's call wins with the same URL
and token), never deleteWebhook at stop (the other replicas still serve it); `make run` without
the URL keeps polling, which deletes any webhook first.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import signal
from typing import Any
from urllib.parse import urlsplit

from sanic import Request, Sanic, response
from sanic.exceptions import MethodNotSupported, NotFound, PayloadTooLarge
from sanic.response import HTTPResponse
from sanic.server.async_server import AsyncioServer
from sqlalchemy.orm import Session, sessionmaker
from telegram import Update
from telegram.ext import Application

from bot.polling import Poller
from core import secret as shared
from core.config import Settings
from core.db import session_scope
from core.messaging import updates as stored
from core.metrics import Metrics

log = logging.getLogger("gridbot.webhook")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY_BYTES = 1024 * 1024  # an update is a few kilobytes
# The updates the handlers take (bot/app.py): messages (private chats, and the commands and
# migrations of branch groups), their edits, and button presses.
ALLOWED_UPDATES = (Update.MESSAGE, Update.EDITED_MESSAGE, Update.CALLBACK_QUERY)
IDLE_PASS_SECONDS = 5.0  # stored updates are looked for this often even without a delivery
_names = itertools.count(1)

AnyApplication = Application[Any, Any, Any, Any, Any, Any]


def path_of(url: str) -> str:
    """The local route: the path of the public URL ("/" when it has none)."""
    return urlsplit(url).path or "/"


def as_update(body: bytes) -> dict[str, Any] | None:
    """The body as an update's JSON, or None when it is not one: an object with a non-negative
    integer update_id and at least one of the fields an Update has, each an object."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    update_id = data.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool) or update_id < 0:
        return None
    fields = [key for key in data if key != "update_id"]
    if not fields or any(key not in Update.ALL_TYPES or not isinstance(data[key], dict) for key in fields):
        return None
    try:
        Update.de_json(data, None)  # what the handlers will do with it
    except Exception:  # noqa: BLE001 - anything python-telegram-bot cannot read is not an update
        return None
    return data


class WebhookServer:
    """The HTTP side: check, store, commit, then 200; wakes the worker that handles updates."""

    def __init__(self, factory: sessionmaker[Session], *, secret: str, path: str,
                 metrics: Metrics | None = None, name: str | None = None) -> None:
        if not secret:
            raise ValueError("a webhook needs a secret token")
        self.factory = factory
        self.secret = secret
        self.metrics = metrics
        self.arrived = asyncio.Event()  # a new update is stored
        self.app = Sanic(name or f"gridbot_webhook_{next(_names)}", configure_logging=False)
        self.app.config.REQUEST_MAX_SIZE = MAX_BODY_BYTES
        self.app.config.KEEP_ALIVE_TIMEOUT = 15
        self.app.add_route(self.receive, path, methods=["POST"], name="receive")
        self.app.error_handler.add(PayloadTooLarge, self._too_large)
        self.app.error_handler.add(NotFound, self._not_found)
        self.app.error_handler.add(MethodNotSupported, self._not_allowed)
        self._server: AsyncioServer | None = None

    def _refuse(self, request: Request, status: int, reason: str, why: str) -> HTTPResponse:
        # One line: who and why, never the body (it holds what a person wrote) nor the header.
        log.warning("webhook refused %s %s from %s: %s (%d)", request.method, request.path,
                    request.ip, why, status)
        if self.metrics is not None:
            self.metrics.webhook_refused.labels(reason).inc()
        return response.json({"ok": False, "error": why}, status=status)

    async def _too_large(self, request: Request, exception: Exception) -> HTTPResponse:
        return self._refuse(request, 413, "too_large", f"body over {MAX_BODY_BYTES} bytes")

    async def _not_found(self, request: Request, exception: Exception) -> HTTPResponse:
        return response.json({"ok": False, "error": "not found"}, status=404)

    async def _not_allowed(self, request: Request, exception: Exception) -> HTTPResponse:
        return response.json({"ok": False, "error": "POST only"}, status=405)

    async def receive(self, request: Request) -> HTTPResponse:
        if not shared.matches(request.headers.get(SECRET_HEADER), self.secret):
            return self._refuse(request, 403, "secret", f"no or wrong {SECRET_HEADER}")
        data = as_update(request.body or b"")
        if data is None:
            return self._refuse(request, 400, "not_an_update", "the body is not a Telegram update")
        try:
            new = await asyncio.to_thread(self._store, data)
        except Exception:  # noqa: BLE001 - not acknowledged: Telegram delivers it again
            log.exception("webhook: update %d could not be stored; answered 500", data["update_id"])
            return response.json({"ok": False, "error": "not stored, send again"}, status=500)
        if new and self.metrics is not None:
            self.metrics.messages_in.labels("webhook").inc()
        self.arrived.set()
        return response.json({"ok": True})  # committed: Telegram may forget it now

    def _store(self, data: dict[str, Any]) -> int:
        with session_scope(self.factory) as session:  # committed when the block ends
            return stored.store(session, [data])

    # -- serving in the running event loop -------------------------------------------------

    async def start(self, host: str, port: int) -> None:
        server = await self.app.create_server(host=host, port=port, return_asyncio_server=True,
                                              access_log=False)
        if server is None:
            raise RuntimeError(f"the webhook server could not listen on {host}:{port}")
        await server.startup()
        await server.before_start()
        await server.start_serving()
        await server.after_start()
        self._server = server
        log.info("webhook server on %s:%d", host, port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        await server.before_stop()
        for connection in list(server.connections):
            connection.close_if_idle()
        closing = server.close()
        if closing is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(closing, timeout=5)
        await server.after_stop()


async def handle_stored(poller: Poller, arrived: asyncio.Event, idle: float = IDLE_PASS_SECONDS) -> None:
    """Give stored updates to the poller's lanes as they arrive (and every `idle` seconds, for
    what a kill or a database hiccup left), until the poller is stopped; then wait for the lanes.
    A new update starts at once: it never waits for other people's conversations."""
    try:
        while not poller.stopping:
            arrived.clear()
            try:
                await poller.feed()
            except Exception:  # noqa: BLE001 - the database; what is stored stays and is tried again
                log.exception("handling stored updates failed")
                await poller.pause(idle)
                continue
            waiter = asyncio.ensure_future(arrived.wait())
            stopper = asyncio.ensure_future(poller.until_stopped())
            try:
                await asyncio.wait({waiter, stopper}, timeout=idle, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                stopper.cancel()
    finally:
        await poller.settle()


async def serve(app: AnyApplication, factory: sessionmaker[Session], settings: Settings,
                metrics: Metrics | None = None,
                signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
    """Run `app` in webhook mode until SIGINT/SIGTERM: the Application's whole life cycle, the
    webhook server, setWebhook, and the worker that handles what is stored."""
    url = settings.telegram_webhook_url
    if not url:
        raise ValueError("TELEGRAM_WEBHOOK_URL is not set")
    server = WebhookServer(factory, secret=settings.webhook_secret(), path=path_of(url), metrics=metrics)
    poller = Poller(app, factory)  # its lanes (feed) and stop; it never calls getUpdates here
    loop = asyncio.get_running_loop()
    for sig in signals:
        loop.add_signal_handler(sig, poller.stop)
    try:
        async with app:
            if app.post_init is not None:
                await app.post_init(app)
            await app.start()
            worker = asyncio.create_task(handle_stored(poller, server.arrived))
            try:
                await server.start(settings.telegram_webhook_host, settings.telegram_webhook_port)
                await app.bot.set_webhook(url=url, secret_token=settings.webhook_secret(),
                                          allowed_updates=list(ALLOWED_UPDATES), drop_pending_updates=False)
                log.info("webhook set: Telegram delivers %s to %s", ", ".join(ALLOWED_UPDATES), url)
                await poller.until_stopped()
            finally:
                poller.stop()
                await server.stop()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(worker, timeout=30)
                await app.stop()
                if app.post_stop is not None:
                    await app.post_stop(app)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        if app.post_shutdown is not None:
            await app.post_shutdown(app)
