"""Two Rasa servers serve one bot: the tracker store in a PostgreSQL database of its own and Rasa's
lock store in Redis (deploy/endpoints.yml, chosen by `make run` when REDIS_URL is set). A report
form started on one Rasa server goes on from the other, and still does after the first is gone."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.orm import sessionmaker

from cli.run import PROJECT_ROOT, endpoints_file, rasa_lock_env
from core.db import make_engine
from core.messages import t
from tests.app.journey import journey
from tests.app.stack import prepare_db, start_stack, stop_stack, wait_until_ready

RESIDENT = 740000077  # not bound: the form asks where
REDIS_DB = 7  # a Redis database of the tests' own


def test_the_lock_store_settings_come_from_redis_url() -> None:
    assert endpoints_file(None) == PROJECT_ROOT / "endpoints.yml"
    assert endpoints_file("redis://127.0.0.1:6379/0") == PROJECT_ROOT / "deploy" / "endpoints.yml"
    assert rasa_lock_env("redis://:s%40cret@redis.internal:6380/3") == {
        "RASA_LOCK_REDIS_HOST": "redis.internal", "RASA_LOCK_REDIS_PORT": "6380",
        "RASA_LOCK_REDIS_DB": "3", "RASA_LOCK_REDIS_PASSWORD": "s@cret"}
    assert rasa_lock_env("redis://localhost")["RASA_LOCK_REDIS_PORT"] == "6379"
    with pytest.raises(ValueError):
        rasa_lock_env("localhost:6379")


def rasa_argv(port: int) -> list[str]:
    """The command line of the Rasa server listening on `port`."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
        if "nlu.server" in argv and str(port) in argv:
            return argv
    raise AssertionError(f"no Rasa server on port {port}")


@pytest.fixture
def tracker_db(postgres_server: str) -> Iterator[str]:
    """A PostgreSQL database for Rasa's tracker store alone; its URL."""
    admin = create_engine(make_url(postgres_server).set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = f"gridbot_rasa_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    # Rasa (SQLAlchemy 1.4) speaks psycopg2: postgresql://, not our postgresql+psycopg://
    yield make_url(postgres_server).set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_a_form_goes_on_from_another_rasa_server(tmp_path: Path, tracker_db: str) -> None:
    db = tmp_path / "gridbot.db"
    prepare_db(db)
    factory = sessionmaker(make_engine(f"sqlite:///{db}"), expire_on_commit=False)
    shared = {"REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}", "RASA_TRACKER_DIALECT": "postgresql",
              "RASA_TRACKER_HOST": tracker_db, "RASA_TRACKER_DB": make_url(tracker_db).database or ""}
    first = start_stack(db, {**shared, "LOG_DIR": str(tmp_path / "log-1")})
    second = start_stack(db, {**shared, "LOG_DIR": str(tmp_path / "log-2")})
    try:
        wait_until_ready(first)
        wait_until_ready(second)
        for stack in (first, second):  # both Rasa servers run on deploy/endpoints.yml (Redis locks)
            assert str(endpoints_file("redis://")) in rasa_argv(stack.rasa_port)

        async def talk() -> None:
            async with journey(factory, first.rasa_url) as j:
                asked = await j.say(RESIDENT, "小区里的路灯坏了好几个，晚上黑乎乎的")
                assert any(t("report.ask_place")[:8] in x for x in asked), asked
            stop_stack(first, signal.SIGTERM)  # the first Rasa server (its whole stack) is gone
            async with journey(factory, second.rasa_url) as j:
                # The answer to the question the first server asked: the form goes on with it.
                summary = await j.say(RESIDENT, "和平里7号楼")
                assert any("请核对" in x and "和平里小区7号楼" in x and "路灯" in x for x in summary), summary

        asyncio.run(talk())
    finally:
        for stack in (first, second):
            if stack.process.poll() is None:
                stop_stack(stack, signal.SIGTERM)
    engine = create_engine(make_url(tracker_db).set(drivername="postgresql+psycopg"))
    with engine.connect() as conn:  # the conversation is in the tracker's own database
        assert conn.execute(text("SELECT count(*) FROM events WHERE sender_id = :s"),
                            {"s": str(RESIDENT)}).scalar_one() > 0
    engine.dispose()
