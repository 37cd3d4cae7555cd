"""`gridbot shell`: the real bot offline, driven by a script.

The end-to-end test runs the command against the shared stack (its Rasa, its action
server and its database). The others drive `bot.shell` in process without Rasa: they
check the shell's own behaviour (numbered buttons, presses with the callback data the
bot sent, comments, errors), not the dialogue.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from telegram import Update
from telegram.ext import ApplicationHandlerStop, CallbackQueryHandler, ContextTypes

from bot.shell import PROMPT, Shell, run_shell
from core.config import PROJECT_ROOT, Settings
from core.db import session_scope
from core.messaging import buttons, outbox
from core.models import Branch
from core.people import residents
from tests.app.stack import Stack, free_port, greetings

RESIDENT, NEIGHBOUR = 700000201, 700000202  # not in the demo registry: fresh conversations


def turns(output: str) -> list[tuple[str, list[str]]]:
    """The script's output as (input, lines printed for it); lines before any input under ""."""
    result: list[tuple[str, list[str]]] = [("", [])]
    for line in output.splitlines():
        if line.startswith(PROMPT):
            result.append((line[len(PROMPT):], []))
        else:
            result[-1][1].append(line)
    return result


def replies_to(lines: list[str], chat_label: str) -> str:
    """The text of the messages in `lines` sent to the chat labelled `chat_label`."""
    out, inside = [], False
    for line in lines:
        if line.startswith("→ "):
            inside = line[2:].split("（")[0].strip() == chat_label
        elif inside:
            out.append(line.strip())
    return "\n".join(out)


def test_gridbot_shell_script_against_the_stack(rasa_stack: Stack, stack_db_url: str) -> None:
    script = "\n".join([
        "# 这一行是注释，不发送",
        "@press 1",
        "你好",
        "@bogus 123",
        f"@as {NEIGHBOUR}",
        "你好",
        "",
    ])
    env = {**os.environ, "DATABASE_URL": stack_db_url, "RASA_URL": rasa_stack.rasa_url,
           "TELEGRAM_BOT_TOKEN": "", "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run([sys.executable, "-m", "cli.main", "shell", "--as", str(RESIDENT)],
                          cwd=PROJECT_ROOT, env=env, input=script, capture_output=True, text=True,
                          timeout=120)
    report = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-3000:]}"
    assert done.returncode == 0, report
    assert "注释" not in done.stdout, report
    steps = turns(done.stdout)
    assert [step for step, _ in steps] == ["", "@press 1", "你好", "@bogus 123", f"@as {NEIGHBOUR}", "你好"], report
    assert steps[0][1] == [], report  # nothing before the first input
    _, no_keyboard = steps[1]
    assert len(no_keyboard) == 1 and "按钮" in no_keyboard[0], report
    greeting = greetings()
    first = replies_to(steps[2][1], f"用户 {RESIDENT}")
    assert any(g in first for g in greeting), report
    assert len(steps[3][1]) == 1 and "未知命令" in steps[3][1][0] and "@bogus" in steps[3][1][0], report
    assert steps[4][1] == [f"（现在是 用户 {NEIGHBOUR}）"], report
    second = replies_to(steps[5][1], f"用户 {NEIGHBOUR}")
    assert any(g in second for g in greeting), report
    assert replies_to(steps[5][1], f"用户 {RESIDENT}") == "", report


def _settings(db_url: str) -> Settings:
    dead = f"http://127.0.0.1:{free_port()}"  # no Rasa: these tests are about the shell
    return Settings(_env_file=None, database_url=db_url, rasa_url=dead)  # type: ignore[call-arg]


def test_comments_blank_lines_and_the_end_of_input(sqlite_demo_factory: sessionmaker[Session]) -> None:
    out = io.StringIO()
    code = run_shell(_settings("sqlite://"), sqlite_demo_factory, RESIDENT,
                     io.StringIO("# 只是注释\n\n   \n#@press 1\n"), out, interactive=False)
    assert code == 0 and out.getvalue() == ""

    out = io.StringIO()
    code = run_shell(_settings("sqlite://"), sqlite_demo_factory, RESIDENT,
                     io.StringIO("@as 700000005\n@as 张三\n@location 北京\n@press x\n@help\n"), out,
                     interactive=False)
    steps = dict(turns(out.getvalue()))
    assert code == 0
    assert steps["@as 700000005"] == ["（现在是 用户 700000005 潘树林）"]  # the registry's name
    assert all(line.startswith("用法") for key in ("@as 张三", "@location 北京") for line in steps[key])
    assert steps["@press x"] == ["现在没有可以按的按钮。"]
    assert "@press" in steps["@help"][0] and "Ctrl-D" in steps["@help"][0]


def test_interactive_mode_greets_prompts_and_ends_at_ctrl_d(sqlite_demo_factory: sessionmaker[Session]) -> None:
    out = io.StringIO()
    code = run_shell(_settings("sqlite://"), sqlite_demo_factory, RESIDENT, io.StringIO("# 注释\n"), out,
                     interactive=True)
    text = out.getvalue()
    assert code == 0
    assert "@press" in text and "@location" in text and "@photo" in text and "@as" in text and "Ctrl-D" in text
    assert text.count(PROMPT) == 2 and text.endswith(PROMPT + "\n")


def test_buttons_are_numbered_and_a_press_sends_the_bots_callback_data(
        sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory
    with session_scope(factory) as s:
        branch = s.scalars(select(Branch).where(Branch.telegram_chat_id.is_not(None))).first()
        assert branch is not None
        group, branch_name = int(branch.telegram_chat_id), branch.name  # type: ignore[arg-type]
        outbox.enqueue(s, dedupe_key="shell-test:1", kind="notice", chat_id=RESIDENT,
                       payload={"text": "第一行\n第二行", "buttons": [[{"text": "是", "callback_data": "/affirm"}],
                                                                 [{"text": "否", "callback_data": "/deny"}]]})
        outbox.enqueue(s, dedupe_key="shell-test:2", kind="ticket_card", chat_id=group,
                       payload={"text": "新工单", "buttons": [[{"text": "领单", "callback_data": "t:claim:424242"}]]})
    pressed: list[tuple[int, int, int, object]] = []

    async def record(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and query.message is not None
        with session_scope(factory) as s:  # the data behind the button's token
            issued, data = buttons.resolve(s, query.data)
        assert issued, query.data
        pressed.append((query.from_user.id, query.message.chat.id, query.message.message_id, data))
        await query.answer("收到", show_alert=True)
        raise ApplicationHandlerStop  # keep the bot's own handlers out of this test

    async def scenario() -> tuple[str, list[int]]:
        out = io.StringIO()
        shell = Shell.create(_settings("sqlite://"), factory, RESIDENT, out)
        shell.app.add_handler(CallbackQueryHandler(record), group=-1)

        async def type_(line: str) -> None:  # what run_shell does with a script line
            shell.say(PROMPT + line)
            await shell.handle(line)

        await shell.start()
        try:
            await type_("@photo 楼道里堆满了杂物")  # a turn: the outbox is sent and printed
            keyboard_ids = sorted({b.message_id for b in shell.buttons})
            await type_("@press 2")
            await type_("@as 700000005")
            await type_("@press 3")
            wire = [b["callback_data"] for c in shell.fake.calls_to("sendMessage")
                    for row in (c.params.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]
        finally:
            await shell.stop()
        assert "/deny" not in wire and "t:claim:424242" not in wire  # tokens on the wire (core.messaging.buttons)
        assert all(data.startswith("b:") for data in wire), wire
        return out.getvalue(), keyboard_ids

    output, keyboard_ids = asyncio.run(scenario())
    steps = dict(turns(output))
    photo_turn = steps["@photo 楼道里堆满了杂物"]
    assert "  [1] 是" in photo_turn and "  [2] 否" in photo_turn and "  [3] 领单" in photo_turn, output
    assert f"→ 群 {branch_name}" in photo_turn and f"→ 用户 {RESIDENT}" in photo_turn, output
    assert "  第一行" in photo_turn and "  第二行" in photo_turn, output
    assert steps["@press 2"][0] == "（按下「否」）" and "（弹窗）收到" in steps["@press 2"], output
    assert "（按下「领单」）" in steps["@press 3"], output
    member_chat_card = [p for p in pressed if p[1] == group]
    assert pressed[0][0] == RESIDENT and pressed[0][1] == RESIDENT and pressed[0][3] == "/deny"
    assert pressed[0][2] in keyboard_ids
    assert member_chat_card and member_chat_card[0][0] == 700000005 and member_chat_card[0][3] == "t:claim:424242"


def test_contact_sends_the_users_own_number(sqlite_demo_factory: sessionmaker[Session]) -> None:
    out = io.StringIO()
    code = run_shell(_settings("sqlite://"), sqlite_demo_factory, RESIDENT,
                     io.StringIO("@contact 13912345678\n"), out, interactive=False)
    steps = dict(turns(out.getvalue()))
    assert code == 0
    assert "已记下您的手机号 ****5678" in replies_to(steps["@contact 13912345678"], f"用户 {RESIDENT}"), out.getvalue()
    with session_scope(sqlite_demo_factory) as s:
        person = residents.person_by_telegram(s, RESIDENT)
        assert person is not None and person.phone == "13912345678"
