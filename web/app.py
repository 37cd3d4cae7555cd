"""The web process's app factory: one Sanic app, each area a blueprint in its own package.

`create_app(settings, factory)` takes what the routes need (settings, the session factory)
and keeps them on `app.ctx`, with the registry's router (core.places.router.RouterCache, as the
bot and the action server hold it). Database work runs in worker threads, off the event loop.
Every answer carries `Server-Timing: app;dur=<ms>` (the benchmark reads it); bodies are capped.
`/metrics` (for the shared secret): requests by route name and status.
"""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path
from typing import Any

from sanic import Request, Sanic, response
from sanic.response import HTTPResponse
from sqlalchemy.orm import Session, sessionmaker

from core.config import VAR_DIR, Settings
from core.metrics import CONTENT_TYPE, Metrics, authorised
from core.places.router import RouterCache
from web.centre import routes as centre_routes
from web.open311 import routes as open311_routes

log = logging.getLogger("gridbot.web")

MAX_BODY_BYTES = 1024 * 1024
_names = itertools.count(1)


def create_app(settings: Settings, factory: sessionmaker[Session], *, name: str | None = None,
               media_dir: Path | None = None) -> Sanic:
    # Sanic keeps a registry of apps by name: a process (or a test) that builds several needs
    # a name for each.
    app = Sanic(name or f"gridbot_web_{next(_names)}")
    app.config.REQUEST_MAX_SIZE = MAX_BODY_BYTES
    app.config.KEEP_ALIVE_TIMEOUT = 15
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.ctx.settings = settings
    app.ctx.factory = factory
    app.ctx.routers = RouterCache(factory)
    app.ctx.media_dir = media_dir or VAR_DIR / "media"  # photos fetched for media_url
    metrics = app.ctx.metrics = Metrics()  # requests by route and status, at /metrics

    @app.middleware("request")
    async def _start_clock(request: Request) -> None:
        request.ctx.started = time.perf_counter()

    @app.middleware("response")
    async def _server_timing(request: Request, resp: HTTPResponse) -> None:
        started: Any = getattr(request.ctx, "started", None)
        if started is not None:
            resp.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        route = request.route.name.split(".", 1)[-1] if request.route is not None else "unmatched"
        metrics.http_requests.labels(route, str(resp.status)).inc()  # a route's name, never its path

    @app.get("/health")
    async def _health(request: Request) -> HTTPResponse:
        return response.json({"ok": True})

    @app.get("/metrics")
    async def _metrics(request: Request) -> HTTPResponse:
        """Prometheus text format (core/metrics.py), for the shared secret only."""
        if not authorised(request.headers, settings.shared_secret()):
            log.warning("refused GET /metrics from %s: no or wrong secret", request.ip)
            return response.json({"error": "unauthorized"}, status=401)
        return response.raw(metrics.exposition(), content_type=CONTENT_TYPE)

    open311_routes.register(app)
    centre_routes.register(app)
    return app
