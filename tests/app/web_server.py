"""The real web app (web.app.create_app) served over real HTTP on a free loopback port, in a
thread of the test process with its own event loop."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sanic import Sanic
from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings
from web.app import create_app

# Several apps in one process, as sanic-testing does it: Sanic rewrites its request handler
# on each app's start-up (TouchUp), from the original only in test mode.
Sanic.test_mode = True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(settings: Settings, factory: sessionmaker[Session], media_dir: Path | None = None) -> Iterator[str]:
    """The base URL (http://127.0.0.1:PORT) while the app serves; stopped on exit."""
    with serving_app(create_app(settings, factory, media_dir=media_dir)) as url:
        yield url


@contextmanager
def serving_app(app: Sanic) -> Iterator[str]:
    """Any Sanic app (the web app, the action server's) served the same way."""
    port = free_port()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []
    stop: list[asyncio.Event] = []

    async def main() -> None:
        server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True,
                                         access_log=False)
        assert server is not None
        await server.startup()
        await server.start_serving()
        stopping = asyncio.Event()
        stop.append(stopping)
        ready.set()
        await stopping.wait()
        await server.before_stop()
        server.close()
        await server.wait_closed()
        await server.after_stop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            failure.append(exc)
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not ready.wait(30) or failure:
        raise RuntimeError(f"the web app did not start: {failure}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(15)
