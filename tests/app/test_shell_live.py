"""`gridbot shell --live` (what `make run` without a token starts): the real Application with its
background work — the outbox dispatcher, the broadcast sender and the duty scheduler — on the
offline Bot API. A notice is delivered to every recipient, the secretary sees 已发送 n/N and the
report, a recipient's 已读 shows in /broadcasts, and a reminder arrives while the shell waits."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.shell import PROMPT, Shell, run_shell
from core.config import Settings
from core.db import session_scope
from core.duties import demo_soon, events
from core.models import Branch, Event, EventKind, Person, utcnow
from tests.app.stack import free_port

SECRETARY, MEMBER = 700000001, 700000002


def _settings(factory: sessionmaker[Session], **extra: object) -> Settings:
    url = factory.kw["bind"].url.render_as_string(hide_password=False)
    return Settings(_env_file=None, database_url=url, rasa_url=f"http://127.0.0.1:{free_port()}",  # type: ignore[call-arg]
                    **extra)


def _session_soon(factory: sessionmaker[Session], title: str, reminder_in: timedelta) -> None:
    """A session of BR-HPL-01 whose one reminder (1 minute before) is due in `reminder_in`."""
    with session_scope(factory) as s:
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        secretary = s.scalars(select(Person).where(Person.telegram_id == SECRETARY)).one()
        events.create_event(s, secretary, branch_id=branch.id, kind=EventKind.group_meeting, title=title,
                            place="社区党群服务中心", starts_at=utcnow() + timedelta(minutes=1) + reminder_in,
                            reminder_offsets=[1], notify=False, tz="Asia/Shanghai")


def _button(output: str, chat_label: str, title: str) -> int:
    """The number of the newest button `title` printed under a message to `chat_label`."""
    found, inside = None, False
    for line in output.splitlines():
        if line.startswith("→ "):
            inside = line[2:].split("（")[0].strip() == chat_label
        elif inside and (m := re.match(rf"\s+\[(\d+)\] {title}$", line)):
            found = int(m.group(1))
    assert found is not None, output
    return found


def test_live_shell_delivers_a_notice_with_progress_read_count_and_a_reminder(
        sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory
    _session_soon(factory, "党小组会（提醒测试）", timedelta(seconds=8))

    async def scenario() -> str:
        out = io.StringIO()
        shell = Shell.create(_settings(factory), factory, SECRETARY, out, live=True)
        assert shell.app.bot_data["services"].broadcasts is None  # started by post_init

        async def type_(line: str) -> None:  # what run_shell does with a script line
            shell.say(PROMPT + line)
            await shell.handle(line)

        await shell.start()
        svc = shell.app.bot_data["services"]
        assert svc.broadcasts is not None and svc.scheduler is not None
        try:
            for line in ("/broadcast", "本周六上午9点到12点小区停水检修，请提前储水。",
                         "@press 1", "@press 1", "@press 2", "@press 1", "@wait 4"):
                await type_(line)
            await type_(f"@as {MEMBER}")
            await type_(f"@press {_button(out.getvalue(), '用户 700000002 梁海涛', '已读')}")
            await type_(f"@as {SECRETARY}")
            await type_("/broadcasts")
            for _ in range(20):  # the reminder is due ~8 s after the session was set up
                if "⏰ 提醒：党小组会（提醒测试）" in out.getvalue():
                    break
                await type_("@wait 1")
        finally:
            await shell.stop()
        return out.getvalue()

    output = asyncio.run(scenario())
    delivered = re.findall(r"→ 用户 (\d+)[^\n]*\n  【和平里第一网格党支部通知】\n  本周六上午9点到12点", output)
    assert sorted(delivered) == [str(700000000 + i) for i in range(1, 8)], output  # every member, once
    assert "已发送 7/7" in output and "通知发送完毕：共 7 人，已送达 7 人" in output, output
    assert output.index("已发送 7/7") < output.index("通知发送完毕"), output
    assert "（提示）已记录，谢谢！" in output
    listing = output.split(PROMPT + "/broadcasts")[1]
    assert "【最近发出】" in listing and "已读 1/7" in listing, listing
    reminder = output.split("⏰ 提醒：党小组会（提醒测试）")
    assert len(reminder) >= 2, output
    assert "→ 用户 700000002 梁海涛\n  ⏰ 提醒：党小组会（提醒测试）" in output, output


def test_live_script_schedules_the_demo_session_once(sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory
    settings = _settings(factory, reminder_lead=3)
    for _ in range(2):
        out = io.StringIO()
        assert run_shell(settings, factory, SECRETARY, io.StringIO("@wait 0\n"), out, False, live=True) == 0
        assert f"{demo_soon.TITLE}将在3分钟后开始的提醒约在" in out.getvalue(), out.getvalue()
    with factory() as s:
        [event] = s.scalars(select(Event).where(Event.title == demo_soon.TITLE)).all()
        assert event.reminder_offsets_minutes == [3]
        lead = event.starts_at - utcnow()
        assert timedelta(minutes=3) < lead <= timedelta(minutes=5)
        assert s.scalar(select(func.count()).select_from(Event).where(Event.title == demo_soon.TITLE)) == 1
    # without --live nothing is scheduled and the background work does not run
    out = io.StringIO()
    assert run_shell(settings, factory, SECRETARY, io.StringIO("@wait 0\n"), out, False) == 0
    assert "离线演示" not in out.getvalue()


def test_live_terminal_prints_what_arrives_while_the_prompt_waits(sqlite_demo_factory: sessionmaker[Session]) -> None:
    """On a terminal input is read in a thread: a reminder that arrives while nobody types is
    printed over the prompt, and the prompt comes back; a line typed then is still answered."""
    import os
    import threading

    factory = sqlite_demo_factory
    _session_soon(factory, "党小组会（终端测试）", timedelta(seconds=4))
    read_fd, write_fd = os.pipe()
    stdin = os.fdopen(read_fd, "r", encoding="utf-8")
    out = io.StringIO()

    def type_later() -> None:  # nothing for a while, then one command, then Ctrl-D
        with os.fdopen(write_fd, "w", encoding="utf-8") as pipe:
            for _ in range(60):
                if "⏰ 提醒：党小组会（终端测试）" in out.getvalue():
                    break
                threading.Event().wait(0.5)
            pipe.write("/notify\n")
            pipe.flush()
            threading.Event().wait(2.0)

    typist = threading.Thread(target=type_later, daemon=True)
    typist.start()
    assert run_shell(_settings(factory), factory, MEMBER, stdin, out, True, live=True) == 0
    typist.join(timeout=5)
    output = out.getvalue()
    assert PROMPT + "\r\x1b[K→ 用户 700000001 董国华\n  ⏰ 提醒：党小组会（终端测试）" in output, output  # over the prompt
    after = output.split("⏰ 提醒：党小组会（终端测试）", 1)[1]
    assert "→ 用户 700000002 梁海涛\n  ⏰ 提醒：党小组会（终端测试）" in after, output
    assert "\n" + PROMPT in after and "/notify off 关闭普通通知" in after, output  # prompted again, answered
