"""Fixtures for the application tests: real SQLite and real PostgreSQL databases."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from core.categories import sync_categories
from core.config import PROJECT_ROOT
from core.db import make_engine, make_session_factory, normalise_url, session_scope
from core.migrate import upgrade
from core.registry_import import import_registry
from tests.app.stack import TEST_SECRET, Stack, start_stack, stop_stack, wait_until_ready

# The stacks run with TEST_SECRET (tests/app/stack.py); so does what the tests build in-process
# (Settings read GRIDBOT_SECRET from the environment).
os.environ["GRIDBOT_SECRET"] = TEST_SECRET
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
DEMO = PROJECT_ROOT / "data" / "reference" / "demo"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throw-away database on the machine's PostgreSQL; its URL.

    PostgreSQL is part of this project's test platform: when it cannot be
    reached the tests fail (not skip) with the reason.
    """
    admin_url = normalise_url(POSTGRES_URL)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"gridbot_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure here means: no PostgreSQL
        pytest.fail(
            f"PostgreSQL is required for these tests and could not be reached at {POSTGRES_URL} "
            f"(set TEST_POSTGRES_URL): {exc}",
            pytrace=False,
        )
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def _reset_postgres(url: str) -> None:
    engine = create_engine(normalise_url(url))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gridbot.db'}"
    url = request.getfixturevalue("postgres_server")
    _reset_postgres(url)
    return url


def _migrated(url: str) -> Engine:
    eng = make_engine(url)
    upgrade(eng)
    with session_scope(make_session_factory(eng)) as session:
        sync_categories(session)
    return eng


@pytest.fixture
def engine(empty_db_url: str) -> Iterator[Engine]:
    """A migrated database (SQLite and PostgreSQL), categories loaded."""
    eng = _migrated(empty_db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    eng = _migrated(f"sqlite:///{tmp_path / 'gridbot.db'}")
    yield eng
    eng.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def demo_factory(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    with session_scope(factory) as session:
        import_registry(session, [DEMO])
    return factory


@pytest.fixture
def sqlite_demo_factory(sqlite_engine: Engine) -> sessionmaker[Session]:
    factory = make_session_factory(sqlite_engine)
    with session_scope(factory) as session:
        import_registry(session, [DEMO])
    return factory


@pytest.fixture(scope="session")
def stack_db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The SQLite database of the shared stack: migrated, demo community loaded.

    The action server files tickets into it; tests that drive the bot in-process
    against the stack use the same URL. Tests sharing it pick different
    categories and buildings so their tickets do not meet.
    """
    url = f"sqlite:///{tmp_path_factory.mktemp('stack') / 'gridbot.db'}"
    engine = _migrated(url)
    with session_scope(make_session_factory(engine)) as session:
        import_registry(session, [DEMO])
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def rasa_stack(stack_db_url: str) -> Iterator[Stack]:
    """The real Rasa server, action server and bot process, shared by the tests that talk to Rasa."""
    running = start_stack(Path(make_url(stack_db_url).database or ""))
    try:
        wait_until_ready(running)
        yield running
    finally:
        stop_stack(running, signal.SIGTERM)
