"""Rasa's conversations are kept in a database of their own (endpoints.yml: SQLTrackerStore), so a
report form in the middle of its questions carries on after Rasa restarts."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from core.db import make_engine
from core.messages import t
from tests.app.journey import journey
from tests.app.stack import prepare_db, start_stack, stop_stack, wait_until_ready

RESIDENT = 740000001  # not bound: the form asks where


def test_a_form_in_progress_survives_a_rasa_restart(tmp_path: Path) -> None:
    db = tmp_path / "gridbot.db"
    prepare_db(db)
    factory = sessionmaker(make_engine(f"sqlite:///{db}"), expire_on_commit=False)

    stack = start_stack(db)
    try:
        wait_until_ready(stack)

        async def before() -> None:
            async with journey(factory, stack.rasa_url) as j:
                asked = await j.say(RESIDENT, "小区里的路灯坏了好几个，晚上黑乎乎的")
                assert any(t("report.ask_place")[:8] in x for x in asked), asked

        asyncio.run(before())
    finally:
        stop_stack(stack, signal.SIGTERM)
    assert (tmp_path / "rasa-tracker.db").exists()  # where the conversation was kept

    stack = start_stack(db)  # a new Rasa process, the same tracker database
    try:
        wait_until_ready(stack)

        async def after() -> None:
            async with journey(factory, stack.rasa_url) as j:
                # The answer to the question asked before the restart: the form goes on with it.
                summary = await j.say(RESIDENT, "和平里7号楼")
                assert any("请核对" in x and "和平里小区7号楼" in x and "路灯" in x for x in summary), summary

        asyncio.run(after())
    finally:
        stop_stack(stack, signal.SIGTERM)
