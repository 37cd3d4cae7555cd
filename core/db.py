"""Engine and unit-of-work helpers.

Engines are built on demand (never at import time); callers own the session
for one unit of work and `session_scope` commits or rolls back.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain `postgresql://` URLs (psycopg2 is not installed)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`. It never shows bound values: a failing statement's error (and any
    SQL echo) says "[SQL parameters hidden ...]" instead of the names, phones and texts in it,
    and PostgreSQL's own error text loses the values it quotes (quiet_server_message)."""
    kwargs["hide_parameters"] = True
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": 30})
        # A connection reads the planner's statistics when it opens and never again: recycled hourly,
        # a long-running process (the web's pool) plans with the leader's daily ANALYZE.
        kwargs.setdefault("pool_recycle", 3600)
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "handle_error", _quiet_server_error)
    return engine


_QUOTED = re.compile(r'"[^"]*"')


def quiet_server_message(text: str, sqlstate: str | None) -> str:
    """A PostgreSQL error message without the data it quotes: no DETAIL line ("Key
    (phone)=(139...) already exists", "Failing row contains (...)"), no CONTEXT line, and
    for data errors (SQLSTATE class 22: 'invalid input syntax for type bigint: "..."') the
    quoted values masked. The primary message, constraint and column names stay."""
    lines = [line for line in text.splitlines() if not line.startswith(("DETAIL:", "CONTEXT:"))]
    quiet = "\n".join(lines)
    if sqlstate and sqlstate.startswith("22"):
        quiet = _QUOTED.sub('"***"', quiet)
    return quiet


def _quiet_server_error(context: Any) -> None:
    """handle_error: what hide_parameters does for the bound values, for the server's message."""
    orig, wrapped = context.original_exception, context.sqlalchemy_exception
    if not orig.args or not isinstance(orig.args[0], str):
        return
    text = orig.args[0]
    quiet = quiet_server_message(text, getattr(orig, "sqlstate", None))
    if quiet == text:
        return
    orig.args = (quiet, *orig.args[1:])
    if wrapped is not None and wrapped.args and isinstance(wrapped.args[0], str):
        wrapped.args = (wrapped.args[0].replace(text, quiet), *wrapped.args[1:])


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself so that BEGIN IMMEDIATE works.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Take the write lock at the start of every writing transaction: SQLite
        # then serialises writers instead of failing them with "database is
        # locked" when two transactions upgrade read locks at once. Read-only
        # scopes (read_scope) begin deferred: in WAL mode they never wait for a writer.
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            _begin_immediate(conn.connection.dbapi_connection)


# SQLite's own busy handler sleeps 1, 2, 5, 10, ... up to 100 ms between tries and is
# not woken when the lock frees, so a writer that finds the lock taken for a
# millisecond can sleep 50 ms: under concurrency those sleeps are the reply-time tail.
# Writers therefore wait for the write lock here, trying again every millisecond or
# two; once BEGIN IMMEDIATE succeeds a WAL writer waits for nothing else.
_BEGIN_RETRY_SLEEPS = (0.0005, 0.001, 0.001, 0.002)
BEGIN_TIMEOUT = 30.0


def _begin_immediate(dbapi_connection: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=0")
        deadline = time.monotonic() + BEGIN_TIMEOUT
        attempt = 0
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(_BEGIN_RETRY_SLEEPS[min(attempt, len(_BEGIN_RETRY_SLEEPS) - 1)])
            attempt += 1
    finally:
        cursor.execute(f"PRAGMA busy_timeout={int(BEGIN_TIMEOUT * 1000)}")
        cursor.close()


READ_ONLY = "gridbot_read_only"


def refresh_statistics(engine: Engine) -> bool:
    """Give SQLite's planner statistics (ANALYZE; PostgreSQL's autovacuum keeps its own): without them
    it reads a month's tickets and events through the grid index, the command centre's figures about
    five times slower at 100,000 tickets. A whole ANALYZE (a sampled one misjudged the grid index):
    0.3 s at 100,000 tickets, on the leader once a day. False on PostgreSQL."""
    if engine.dialect.name != "sqlite":
        return False
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return True


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def trial_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A writing session whose work is always rolled back: a dry run sees what it would change."""
    session = factory()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


@contextmanager
def read_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for reading only: on SQLite it does not take the write lock, so it never
    waits behind a writer (WAL). Anything it writes is rolled back."""
    session = factory()
    try:
        session.connection(execution_options={READ_ONLY: True})
        yield session
    finally:
        session.rollback()
        session.close()
