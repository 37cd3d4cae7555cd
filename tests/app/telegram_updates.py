"""Builders of real `telegram.Update` objects for the tests; they live in `bot/offline.py`.

    updates = UpdateBuilder(app.bot, fake)
    await app.process_update(updates.text(1001, "/start"))
"""

from __future__ import annotations

from bot.offline import JSONDict, UpdateBuilder, command_entities

__all__ = ["JSONDict", "UpdateBuilder", "command_entities"]
