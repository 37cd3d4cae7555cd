"""Fixtures for the application tests: real SQLite and real PostgreSQL databases."""

from __future__ import annotations

import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from core.config import PROJECT_ROOT
from core.db import make_engine, make_session_factory, normalise_url, session_scope
from core.migrate import upgrade
from core.registry.importer import import_registry
from core.tickets.categories import sync_categories
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


def _build(url: str, demo: bool) -> None:
    """Migrate the database at `url`, load the categories and, with `demo`, the demo community."""
    eng = _migrated(url)
    if demo:
        with session_scope(make_session_factory(eng)) as session:
            import_registry(session, [DEMO])
    eng.dispose()


class SqliteTemplates:
    """Migrated databases built once per session and copied per test (a file copy is ~1 ms,
    migrating and importing the demo ~1 s)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.built: dict[bool, Path] = {}

    def copy(self, demo: bool, dest: Path) -> str:
        if demo not in self.built:
            path = self.root / ("demo.db" if demo else "migrated.db")
            _build(f"sqlite:///{path}", demo)  # the last connection closed: no WAL file is left
            self.built[demo] = path
        shutil.copyfile(self.built[demo], dest)
        return f"sqlite:///{dest}"


class PostgresTemplates:
    """The same on PostgreSQL: each test gets `CREATE DATABASE … TEMPLATE` of a migrated one."""

    def __init__(self, server_url: str) -> None:
        self.server = make_url(server_url)
        self.admin = create_engine(self.server.set(database="postgres"), isolation_level="AUTOCOMMIT")
        self.prefix = f"gridbot_tpl_{uuid.uuid4().hex[:8]}"
        self.built: dict[bool, str] = {}
        self.made: list[str] = []

    def _url(self, name: str) -> str:
        return self.server.set(database=name).render_as_string(hide_password=False)

    def _create(self, name: str, template: str | None = None) -> str:
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
        self.made.append(name)
        return self._url(name)

    def create(self, demo: bool) -> str:
        if demo not in self.built:
            name = f"{self.prefix}_{'demo' if demo else 'migrated'}"
            _build(self._create(name), demo)  # disposed: a template must have no connections
            self.built[demo] = name
        return self._create(f"{self.prefix}_{uuid.uuid4().hex[:8]}", self.built[demo])

    def drop(self, url: str) -> None:
        name = make_url(url).database
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.made.remove(str(name))

    def close(self) -> None:
        with self.admin.connect() as conn:
            for name in reversed(self.made):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplates:
    return SqliteTemplates(tmp_path_factory.mktemp("templates"))


@pytest.fixture(scope="session")
def postgres_templates(postgres_server: str) -> Iterator[PostgresTemplates]:
    templates = PostgresTemplates(postgres_server)
    yield templates
    templates.close()


def _wants_demo(request: pytest.FixtureRequest, name: str) -> bool:
    """Whether the test also asks for `name` (a demo-loaded factory on this same database)."""
    return name in request.fixturenames


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path,
           sqlite_templates: SqliteTemplates) -> Iterator[Engine]:
    """A migrated database (SQLite and PostgreSQL), categories loaded; the demo community too
    when the test asks for `demo_factory`."""
    demo = _wants_demo(request, "demo_factory")
    if request.param == "sqlite":
        eng = make_engine(sqlite_templates.copy(demo, tmp_path / "gridbot.db"))
        yield eng
        eng.dispose()
        return
    templates: PostgresTemplates = request.getfixturevalue("postgres_templates")
    url = templates.create(demo)
    eng = make_engine(url)
    yield eng
    eng.dispose()
    templates.drop(url)


@pytest.fixture
def sqlite_engine(request: pytest.FixtureRequest, tmp_path: Path,
                  sqlite_templates: SqliteTemplates) -> Iterator[Engine]:
    eng = make_engine(sqlite_templates.copy(_wants_demo(request, "sqlite_demo_factory"), tmp_path / "gridbot.db"))
    yield eng
    eng.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def demo_factory(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """`factory`, whose database was copied with the demo community loaded (see `engine`)."""
    return factory


@pytest.fixture
def sqlite_demo_factory(sqlite_engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(sqlite_engine)


@pytest.fixture(scope="session")
def stack_db_url(tmp_path_factory: pytest.TempPathFactory, sqlite_templates: SqliteTemplates) -> str:
    """The SQLite database of the shared stack: migrated, demo community loaded.

    The action server files tickets into it; tests that drive the bot in-process
    against the stack use the same URL. Tests sharing it pick different
    categories and buildings so their tickets do not meet.
    """
    return sqlite_templates.copy(True, tmp_path_factory.mktemp("stack") / "gridbot.db")


@pytest.fixture(scope="session")
def rasa_stack(stack_db_url: str) -> Iterator[Stack]:
    """The real Rasa server, action server and bot process, shared by the tests that talk to Rasa."""
    running = start_stack(Path(make_url(stack_db_url).database or ""))
    try:
        wait_until_ready(running)
        yield running
    finally:
        stop_stack(running, signal.SIGTERM)


# Files that take a minute or more each (they start Rasa, restart processes, or evaluate the
# NLU). With `-n auto --dist loadfile` (make test) a file runs whole on one worker, in
# collection order: starting these first keeps one of them from being the last thing left.
SLOW_FIRST = ("test_eval_nlu.py", "test_tracker_store.py", "test_telegram_link.py", "test_run.py",
              "test_resident_journeys.py", "test_reporter_followup.py", "test_scheduler.py", "test_broadcasts.py",
              "test_limits.py", "test_duty_words.py", "test_shell_live.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FIRST)))  # stable: the rest keep their order
