"""Run the Rasa action server bound to gridbot's BIND_HOST (rasa_sdk's own CLI binds 0.0.0.0)."""

from __future__ import annotations

import logging

from rasa_sdk.endpoint import create_app

from core.config import get_settings


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app("actions", cors_origins=None)
    app.run(host=settings.bind_host, port=settings.action_server_port, workers=1,
            access_log=False, motd=False)


if __name__ == "__main__":
    main()
