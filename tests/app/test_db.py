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
