"""What every action needs from outside, built once when the action server starts.

The server (actions/__main__.py) builds one `Deps` from the settings and gives it to every
action it registers (`GridAction(deps)`); a test builds its own around its database.
Nothing here is a module global.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from rasa_sdk import Action
from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings
from core.db import make_engine, make_session_factory, read_scope, session_scope
from core.places.router import Router, RouterCache


@dataclass(frozen=True)
class Deps:
    settings: Settings
    factory: sessionmaker[Session]
    routers: RouterCache

    @classmethod
    def build(cls, settings: Settings, factory: sessionmaker[Session] | None = None) -> Deps:
        factory = factory or make_session_factory(make_engine(settings.database_url))
        return cls(settings=settings, factory=factory, routers=RouterCache(factory))

    @property
    def tz(self) -> ZoneInfo:
        return self.settings.tz

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A writing session, committed when the block ends."""
        with session_scope(self.factory) as s:
            yield s

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only session: never waits behind the bot's writes (SQLite WAL)."""
        with read_scope(self.factory) as s:
            yield s

    def router(self) -> Router:
        """The registry's router; a re-import is picked up within seconds (RouterCache)."""
        return self.routers.get()


class GridAction(Action):
    """An action with the server's dependencies."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
