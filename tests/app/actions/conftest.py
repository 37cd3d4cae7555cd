"""The actions read and write a demo-loaded SQLite database made for each test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from actions.deps import Deps
from core.config import PROJECT_ROOT, get_settings
from core.db import make_engine, make_session_factory, session_scope
from core.migrate import upgrade
from core.registry.importer import import_registry
from core.tickets.categories import sync_categories

DEMO = PROJECT_ROOT / "data" / "reference" / "demo"


@pytest.fixture(scope="session")
def demo_db_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file with the categories and the demo registry, built once; each
    test works on a copy (as tests/app/conftest.py's sqlite_demo_factory, without paying
    the second of migrating and importing per test)."""
    path = tmp_path_factory.mktemp("actions-template") / "gridbot.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with session_scope(make_session_factory(engine)) as session:
        sync_categories(session)
    with session_scope(make_session_factory(engine)) as session:
        import_registry(session, [DEMO])
    engine.dispose()  # checkpoints the WAL into the file
    return path


@pytest.fixture(autouse=True)
def db(demo_db_file: Path, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """This test's database: a copy of the template."""
    path = tmp_path / "gridbot.db"
    shutil.copyfile(demo_db_file, path)
    engine = make_engine(f"sqlite:///{path}")
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def deps(db: sessionmaker[Session]) -> Deps:
    """What the action server gives every action, built around this test's database."""
    return Deps.build(get_settings(), db)
