"""core.db: on SQLite writers serialise and readers never wait behind them; no engine shows bound values."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from core.db import (
    make_engine,
    make_session_factory,
    quiet_server_message,
    read_scope,
    session_scope,
)
from core.models import Person


def test_read_scope_does_not_wait_for_a_writer_and_writes_nothing(tmp_path: Path) -> None:
    factory = make_session_factory(make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    with session_scope(factory) as s:
        s.execute(text("CREATE TABLE t (x INTEGER)"))
        s.execute(text("INSERT INTO t VALUES (1)"))
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with session_scope(factory) as s:
            s.execute(text("INSERT INTO t VALUES (2)"))
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    assert holding.wait(10)
    started = time.monotonic()
    with read_scope(factory) as s:
        seen = s.execute(text("SELECT count(*) FROM t")).scalar()
        s.execute(text("SELECT 1"))
    waited = time.monotonic() - started
    release.set()
    thread.join()
    assert seen == 1 and waited < 0.5  # the writer's row is not visible yet, and no wait
    with read_scope(factory) as s:
        s.execute(text("INSERT INTO t VALUES (3)"))  # deferred BEGIN: allowed, but rolled back
    with read_scope(factory) as s:
        assert s.execute(text("SELECT count(*) FROM t")).scalar() == 2


def test_writers_wait_for_the_write_lock_and_give_up_after_the_timeout(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    import pytest

    from core import db

    factory = make_session_factory(make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    with session_scope(factory) as s:
        s.execute(text("CREATE TABLE t (x INTEGER)"))
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with session_scope(factory) as s:
            s.execute(text("INSERT INTO t VALUES (1)"))
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    assert holding.wait(10)
    # While the lock is held past the timeout, a second writer fails with SQLite's own error.
    monkeypatch.setattr(db, "BEGIN_TIMEOUT", 0.05)
    with pytest.raises(Exception) as failed, session_scope(factory) as s:
        s.execute(text("INSERT INTO t VALUES (2)"))
    assert isinstance(failed.value.__cause__ or failed.value, sqlite3.OperationalError) or "locked" in str(failed.value)
    monkeypatch.setattr(db, "BEGIN_TIMEOUT", 30.0)
    # With time to wait, the second writer gets the lock once the first commits.
    threading.Timer(0.1, release.set).start()
    with session_scope(factory) as s:
        s.execute(text("INSERT INTO t VALUES (3)"))
        busy = s.execute(text("PRAGMA busy_timeout")).scalar()
    thread.join()
    with read_scope(factory) as s:
        assert sorted(s.scalars(text("SELECT x FROM t"))) == [1, 3]
    assert busy == 30000  # SQLite's own wait is back for everything after BEGIN


def test_a_failing_statement_does_not_show_its_values(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    """SQLite and PostgreSQL: the error of a statement that fails (and its logged traceback)
    names the statement but none of the values in it: no description, name or phone, neither
    as bound parameters nor quoted back by the server (PostgreSQL's DETAIL, data errors)."""
    factory = make_session_factory(engine)
    name, phone, tg = "保密的名字王小明", "13912345678", 730000099
    with session_scope(factory) as s:
        s.add(Person(display_name=name, phone=phone, telegram_id=tg))
    failures: list[DBAPIError] = []
    with pytest.raises(IntegrityError) as unique, session_scope(factory) as s:  # telegram_id is unique
        s.add(Person(display_name=name, phone=phone, telegram_id=tg))
        s.flush()
    failures.append(unique.value)
    with pytest.raises(IntegrityError) as not_null, session_scope(factory) as s:  # PostgreSQL: "Failing row contains"
        s.execute(text("INSERT INTO people (telegram_id, display_name, phone, contact_consent, notify_off) "
                       "VALUES (:tg, NULL, :phone, true, false)"), {"tg": tg + 1, "phone": phone})
    failures.append(not_null.value)
    with pytest.raises(DBAPIError) as bad_sql, session_scope(factory) as s:
        s.execute(text("SELECT no_such_column FROM people WHERE display_name = :name"), {"name": name})
    failures.append(bad_sql.value)
    if engine.dialect.name == "postgresql":  # a data error quotes the value it could not read
        with pytest.raises(DBAPIError) as bad_value, session_scope(factory) as s:
            s.execute(text("SELECT id FROM people WHERE telegram_id = CAST(:v AS BIGINT)"), {"v": name})
        failures.append(bad_value.value)
    for failure in failures:
        logging.getLogger("gridbot.test").error("database error", exc_info=failure)
        assert "SQL parameters hidden" in str(failure), str(failure)
        for shown in (str(failure), repr(failure), str(failure.orig)):
            assert name not in shown and phone not in shown and str(tg) not in shown, shown
    assert "INSERT INTO people" in str(unique.value)  # the statement itself is still named
    assert "uq_people_telegram_id" in str(unique.value) or "UNIQUE constraint failed: people.telegram_id" in str(
        unique.value)  # and which constraint failed
    assert caplog.text.count("database error") == len(failures)
    assert name not in caplog.text and phone not in caplog.text and str(tg) not in caplog.text
    assert engine.hide_parameters
    assert make_engine("sqlite://", hide_parameters=False).hide_parameters  # no way around it


def test_quiet_server_message() -> None:
    assert quiet_server_message('duplicate key value violates unique constraint "uq_people_phone"\n'
                                'DETAIL:  Key (phone)=(13912345678) already exists.', "23505") == \
        'duplicate key value violates unique constraint "uq_people_phone"'
    assert quiet_server_message('invalid input syntax for type bigint: "王小明"\nCONTEXT:  unnamed portal '
                                'parameter $1 = \'...\'', "22P02") == 'invalid input syntax for type bigint: "***"'
    assert quiet_server_message('column "no_such_column" does not exist', "42703") == \
        'column "no_such_column" does not exist'
