"""core.db on SQLite: writers serialise, readers never wait behind them."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text

from core.db import make_engine, make_session_factory, read_scope, session_scope


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
