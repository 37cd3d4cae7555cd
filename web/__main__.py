"""`python -m web`: serve the web process on WEB_HOST:WEB_PORT (127.0.0.1:8080 by default)."""

from __future__ import annotations

import logging

from core.config import get_settings
from core.db import make_engine, make_session_factory
from core.logs import install_redaction
from web.app import create_app


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Photos for media_url are fetched from the Bot API, whose URLs carry the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    install_redaction(settings.telegram_bot_token)
    factory = make_session_factory(make_engine(settings.database_url))
    app = create_app(settings, factory, name="gridbot_web")
    logging.getLogger("gridbot.web").info("web process on %s:%d (Open311 at /open311/v2)",
                                          settings.web_host, settings.web_port)
    app.run(host=settings.web_host, port=settings.web_port, access_log=False, motd=False, workers=1)


if __name__ == "__main__":
    main()
