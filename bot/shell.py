"""`gridbot shell`: chat with the real bot in a terminal, or from a script, without Telegram.

The shell builds the same Application as the bot process (`bot.app.build_application`:
the same handlers, Rasa, inbox and outbox) on `bot.offline.FakeTelegram` instead of the
network. Each input line becomes a real Telegram `Update` from the current user in their
private chat and goes through `Application.process_update`; then the outbox is sent
until it is idle (the action server queues ticket cards into the same database), and
everything the bot sent in that turn is printed: a chat label, the text, "[照片]" for a
photo, and the inline buttons numbered across the turn.

Input, one per line::

    你好                     a text message ("/start" is a command, with its entity)
    @press 2                 press button 2 of the last buttons printed (any chat)
    @location 39.93 116.44   share a location
    @photo [说明]             send a photo (a made-up file_id; downloads give a small JPEG)
    @contact [电话]           press 发送我的手机号: the user's own contact (a made-up number by default)
    @as 700000005            speak as another user from now on
    @wait [秒]               let N seconds (default 5) pass, printing what arrives meanwhile
    # ...                    a comment: nothing is sent, nothing is printed

On a terminal the shell prompts "你> "; otherwise it echoes each input after the prompt
(so a script's output reads as a transcript) and exits 0 at the end of input.

Live (`gridbot shell --live`, what `make run` without a token starts): the Application runs its
background work as the bot process does (bot.app.build_application with background=True): the
outbox dispatcher, the broadcast sender and the duty scheduler. What they send between turns
(a notice, its 已发送 n/N and report, a reminder) is printed as it arrives, also while the
prompt waits for input; a script lets time pass with @wait. At the start the shell schedules a
session a few minutes away (core/duties/demo_soon.py, REMINDER_LEAD minutes of lead, 2 by default), so
its reminder arrives about a minute later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TextIO

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from telegram import Update
from telegram.ext import Application

from bot.app import build_application
from bot.dispatcher import OutboxDispatcher
from bot.offline import TINY_JPEG, FakeTelegram, JSONDict, SentCall, UpdateBuilder, buttons
from core.config import Settings
from core.db import session_scope
from core.duties import demo_soon
from core.people import residents
from core.places import directory

log = logging.getLogger("gridbot.shell")

PROMPT = "你> "
HELP = (
    "离线模式：直接输入文字就是发给机器人的消息（/start 等命令也可以）。"
    "@press N 按下第 N 个按钮，@location 纬度 经度 发送位置，@photo [说明] 发送照片，@contact [电话] 发送自己的手机号，"
    "@as 用户ID 换成另一个用户（如领单的党员），@wait 秒数 等一会儿看新消息，# 开头是注释，@help 再看一遍，Ctrl-D 退出。"
)
USAGE = "可用：@press N、@location 纬度 经度、@photo [说明]、@contact [电话]、@as 用户ID、@wait [秒]、@help"
WAIT_SECONDS = 5.0  # @wait without a number
WAIT_LIMIT = 600.0
TICK_SECONDS = 0.3  # live: how often what arrived between turns is looked for
TURN_SECONDS = 5.0  # the longest one turn waits for handler tasks and the outbox
IDLE_GRACE = 0.3  # one short wait for outbox rows another process may still be writing

#: Bot API methods that say nothing worth showing.
_QUIET = {"getme", "getfile", "downloadfile", "sendchataction", "setmycommands",
          "deletewebhook", "getupdates", "getmycommands", "getwebhookinfo", "getchat"}


@dataclass(frozen=True)
class Button:
    """One numbered button: where it is and what pressing it sends."""

    chat_id: int
    message_id: int
    text: str
    callback_data: str | None
    url: str | None


class Shell:
    """One offline chat session over an initialised Application on a FakeTelegram."""

    def __init__(self, app: Application, fake: FakeTelegram,
                 factory: sessionmaker[Session], user_id: int, out: TextIO) -> None:
        self.app = app
        self.fake = fake
        self.factory = factory
        self.user_id = user_id
        self.out = out
        self.updates = UpdateBuilder(app.bot, fake)
        self.dispatcher = OutboxDispatcher(app.bot, factory)
        self.buttons: list[Button] = []
        self._seen = 0
        self._started = False
        self._names: dict[int, str | None] = {}
        self._labels: dict[int, str] = {}
        self.live = False

    @classmethod
    def create(cls, settings: Settings, factory: sessionmaker[Session], user_id: int,
               out: TextIO, *, live: bool = False) -> Shell:
        """The bot's Application (bot.app.build_application) on a FakeTelegram; call start().
        `live`: with the bot process's background work (dispatcher, broadcast sender, scheduler)."""
        offline = settings.model_copy(update={"telegram_bot_token": None})
        fake = FakeTelegram(bot_username="gridbot_offline_bot", bot_first_name="网格小助手",
                            first_message_id=first_message_id())
        app = build_application(offline, factory, request=fake, background=live)
        shell = cls(app, fake, factory, user_id, out)
        shell.live = live
        return shell

    async def start(self) -> None:
        """Initialise the Application as polling would (initialize, then post_init)."""
        await self.app.initialize()
        self._started = True
        if self.app.post_init is not None:
            await self.app.post_init(self.app)
        self._seen = len(self.fake.calls)

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self.app.post_shutdown is not None:
            await self.app.post_shutdown(self.app)
        await self.app.shutdown()

    # -- output ---------------------------------------------------------------------------

    def say(self, *lines: str) -> None:
        for line in lines:
            self.out.write(line + "\n")
        self.out.flush()

    def person_name(self, user_id: int) -> str | None:
        if user_id not in self._names:
            with session_scope(self.factory) as s:
                person = residents.person_by_telegram(s, user_id)
                self._names[user_id] = person.display_name if person is not None else None
        return self._names[user_id]

    def first_name(self, user_id: int) -> str:
        """The name Telegram would carry in `from`: the registry's, else 用户<id>."""
        return self.person_name(user_id) or f"用户{user_id}"

    def label(self, chat_id: int) -> str:
        if chat_id not in self._labels:
            if chat_id > 0:
                name = self.person_name(chat_id)
                self._labels[chat_id] = f"用户 {chat_id}" + (f" {name}" if name else "")
            else:
                with session_scope(self.factory) as s:
                    branch = directory.branch_by_chat(s, chat_id)
                    name = branch.name if branch is not None else None
                self._labels[chat_id] = f"群 {name}" if name else f"群 {chat_id}"
        return self._labels[chat_id]

    def arrived(self) -> bool:
        """Whether a call a person would see was made since the last `show` (live: between turns)."""
        return any(c.method.lower() not in _QUIET for c in self.fake.calls[self._seen:])

    async def wait(self, seconds: float) -> None:
        """Let time pass (the background work runs), printing what arrives as it does."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        numbered: list[Button] = []  # one numbering for the whole wait, as for a turn
        while loop.time() < deadline:
            await asyncio.sleep(min(TICK_SECONDS, max(0.0, deadline - loop.time())))
            if self.arrived():
                self.show(numbered)

    def show(self, numbered: list[Button] | None = None) -> None:
        """Print every Bot API call made since the last turn that a person would see (buttons
        numbered on from `numbered`, when given)."""
        calls, self._seen = self.fake.calls[self._seen:], len(self.fake.calls)
        numbered = [] if numbered is None else numbered
        for call in calls:
            self._show_call(call, numbered)
        if numbered:
            self.buttons = numbered

    def _show_call(self, call: SentCall, numbered: list[Button]) -> None:
        method = call.method.lower()
        if method in _QUIET:
            return
        chat_id = call.params.get("chat_id")
        where = self.label(chat_id) if isinstance(chat_id, int) else "?"
        if not call.ok:
            reason = call.result.get("description") if isinstance(call.result, dict) else call.result
            self.say(f"（{call.method} 失败：{reason}）")
        elif method == "answercallbackquery":
            if call.params.get("text"):
                kind = "弹窗" if call.params.get("show_alert") else "提示"
                self.say(f"（{kind}）{call.params['text']}")
        elif method.startswith("send"):
            if isinstance(call.result, dict):
                self._show_message(f"→ {where}", call.result, numbered)
                keyboard = (call.params.get("reply_markup") or {}).get("keyboard")
                if keyboard:  # a reply keyboard under the input field (发送我的手机号: @contact)
                    self.say("  （键盘）" + "｜".join(str(b.get("text", "")) for row in keyboard for b in row))
            else:
                self.say(f"→ {where}", f"  [{call.method}]")
        elif method == "editmessagereplymarkup":
            if isinstance(call.result, dict):
                keys = list(buttons(call.result.get("reply_markup")))
                self.say(f"→ {where}（按钮{'已更新' if keys else '已收起'}）")
                self._show_buttons(call.result, numbered)
        elif method.startswith("edit"):
            if isinstance(call.result, dict):
                self._show_message(f"→ {where}（修改）", call.result, numbered)
        elif method == "deletemessage":
            self.say(f"→ {where}（删除了一条消息）")

    def _show_message(self, head: str, message: JSONDict, numbered: list[Button]) -> None:
        lines = [head]
        if message.get("photo"):
            lines.append("  [照片]")
        if message.get("document"):
            lines.append(f"  [文件 {message['document'].get('file_name') or ''}]".replace(" ]", "]"))
        if message.get("location"):
            loc = message["location"]
            lines.append(f"  [位置 {loc.get('latitude')}, {loc.get('longitude')}]")
        text = message.get("text") or message.get("caption") or ""
        lines.extend(f"  {line}" for line in text.splitlines())
        self.say(*lines)
        self._show_buttons(message, numbered)

    def _show_buttons(self, message: JSONDict, numbered: list[Button]) -> None:
        for button in buttons(message.get("reply_markup")):
            numbered.append(Button(int(message["chat"]["id"]), int(message["message_id"]),
                                   str(button.get("text", "")), button.get("callback_data"),
                                   button.get("url")))
            extra = f"（链接 {button['url']}）" if button.get("url") else ""
            self.say(f"  [{len(numbered)}] {button.get('text', '')}{extra}")

    # -- input ----------------------------------------------------------------------------

    async def handle(self, line: str) -> None:
        """One input line (not blank, not a comment)."""
        if not line.startswith("@"):
            await self.send(self.updates.text(self.user_id, line, first_name=self.first_name(self.user_id)))
            return
        command, _, rest = line[1:].partition(" ")
        rest = rest.strip()
        if command == "press":
            await self.press(rest)
        elif command == "location":
            await self.location(rest)
        elif command == "photo":
            file_id = f"offline-photo-{uuid.uuid4().hex[:12]}"
            self.fake.file_contents[file_id] = TINY_JPEG
            await self.send(self.updates.photo(self.user_id, caption=rest or None, file_id=file_id,
                                               first_name=self.first_name(self.user_id)))
        elif command == "contact":  # what Telegram sends when 发送我的手机号 (request_contact) is pressed
            user = self.updates.user(self.user_id, self.first_name(self.user_id))
            content = {"contact": {"phone_number": rest or f"1380000{self.user_id % 10000:04d}",
                                   "first_name": self.first_name(self.user_id), "user_id": self.user_id}}
            await self.send(self.updates.update(message=self.updates.message_json(
                user, self.updates.private_chat(user), content)))
        elif command == "as":
            self.switch(rest)
        elif command in ("wait", "等"):
            try:
                seconds = float(rest) if rest else WAIT_SECONDS
            except ValueError:
                seconds = -1.0
            if not 0 <= seconds <= WAIT_LIMIT:
                self.say(f"用法：@wait 秒数（0–{WAIT_LIMIT:.0f}，例如 @wait 5）")
                return
            await self.wait(seconds)
        elif command in ("help", "帮助"):
            self.say(HELP)
        else:
            self.say(f"未知命令：@{command}。{USAGE}")

    def switch(self, arg: str) -> None:
        if not arg.isdigit() or int(arg) <= 0:
            self.say("用法：@as 用户ID（正整数，例如 @as 700000005）")
            return
        self.user_id = int(arg)
        self.say(f"（现在是 {self.label(self.user_id)}）")

    async def location(self, arg: str) -> None:
        parts = arg.replace(",", " ").replace("，", " ").split()
        try:
            lat, lon = (float(p) for p in parts)
        except ValueError:
            lat = lon = float("nan")
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            self.say("用法：@location 纬度 经度（例如 @location 39.9333 116.4446）")
            return
        await self.send(self.updates.location(self.user_id, lat, lon, first_name=self.first_name(self.user_id)))

    async def press(self, arg: str) -> None:
        if not self.buttons:
            self.say("现在没有可以按的按钮。")
            return
        if not arg.isdigit() or not 1 <= int(arg) <= len(self.buttons):
            self.say(f"用法：@press N（N 是上面按钮的编号，1–{len(self.buttons)}）")
            return
        button = self.buttons[int(arg) - 1]
        if button.url:
            self.say(f"（这是链接按钮，打开的是 {button.url}）")
            return
        message = self.fake.message(button.chat_id, button.message_id)
        if message is None:
            self.say("那条消息已经删除了，按不了。")
            return
        if button.callback_data not in [b.get("callback_data") for b in buttons(message.get("reply_markup"))]:
            self.say(f"按钮 {arg} 已经不在那条消息上了（消息已更新）。")
            return
        self.say(f"（按下「{button.text}」）")
        update = self.updates.callback_query(self.user_id, str(button.callback_data), message,
                                             first_name=self.first_name(self.user_id))
        await self.send(update)

    async def send(self, update: Update) -> None:
        """Process one update, wait for what it started, send the outbox, print the turn."""
        before = asyncio.all_tasks()
        try:
            await self.app.process_update(update)
            started = asyncio.all_tasks() - before - {asyncio.current_task()}
            if started:  # handlers that run non-blocking
                await asyncio.wait(started, timeout=TURN_SECONDS)
            await self.drain()
        finally:
            self.show()

    async def drain(self) -> None:
        """Send the outbox until a pass finds nothing, with one short grace wait."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TURN_SECONDS
        waited = False
        while loop.time() < deadline:
            stats = await self.dispatcher.run_once()
            if stats.outcomes:
                continue
            if waited:
                return
            waited = True
            await asyncio.sleep(IDLE_GRACE)


def first_message_id(now: float | None = None) -> int:
    """Where this session's message ids start in every chat: above any earlier session's.

    The database outlives a shell, and bot code may key things on (chat, message id), so
    ids must not repeat: 100 ids per second since the session start, below 2**31 (wraps
    every ~230 days).
    """
    return (int(time.time() if now is None else now) % 20_000_000) * 100 + 1


def schema_problem(engine: Engine) -> str | None:
    """Why the database cannot serve the bot yet (not migrated to head), or None."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from core.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current == head:
        return None
    return (f"数据库 {engine.url.render_as_string(hide_password=True)} 还没有迁移到最新版本"
            f"（当前 {current or '空'}，需要 {head}）。请先运行 `gridbot demo`（或 `gridbot migrate`）。")


def _read_line(stdin: TextIO, stdout: TextIO, interactive: bool) -> str | None:
    """The next input line without its newline; None at the end of input."""
    if interactive:
        if stdin is sys.stdin and stdout is sys.stdout:
            with contextlib.suppress(ImportError):
                import readline  # noqa: F401 - line editing and history for input()
            try:
                return input(PROMPT)
            except EOFError:
                stdout.write("\n")
                return None
        stdout.write(PROMPT)
        stdout.flush()
    line = stdin.readline()
    if not line:
        if interactive:
            stdout.write("\n")
        return None
    return line.rstrip("\r\n")


def _soon(shell: Shell, settings: Settings) -> None:
    """Live: the demo session whose reminder arrives in about a minute (core/duties/demo_soon.py)."""
    lead = settings.reminder_lead or demo_soon.DEFAULT_LEAD
    with session_scope(shell.factory) as s:
        occurrence = demo_soon.schedule_soon(s, lead_minutes=lead, tz=settings.tz)
        if occurrence is None:
            return
        remind_at = (occurrence.starts_at - timedelta(minutes=lead)).astimezone(settings.tz).strftime("%H:%M")
    shell.say(f"（离线演示：{demo_soon.TITLE}将在{lead}分钟后开始的提醒约在 {remind_at} 发给支部党员；"
              "通知和提醒到达时会直接显示）")


async def _chat(shell: Shell, stdin: TextIO, stdout: TextIO) -> None:
    """Live and on a terminal: input is read in a thread while the loop runs the background work;
    what arrives while the prompt waits is printed above a fresh prompt."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    ready = threading.Event()  # the turn is printed: prompt again
    ready.set()

    def reader() -> None:
        while True:
            ready.wait()
            ready.clear()
            line = _read_line(stdin, stdout, True)
            loop.call_soon_threadsafe(lines.put_nowait, line)
            if line is None:
                return

    threading.Thread(target=reader, name="gridbot-shell-input", daemon=True).start()
    while True:
        try:
            line = await asyncio.wait_for(lines.get(), timeout=TICK_SECONDS)
        except asyncio.TimeoutError:
            if shell.arrived():  # clear the prompt line, print, prompt again with what was typed
                stdout.write("\r\033[K")
                shell.show()
                stdout.write(PROMPT + _typed())
                stdout.flush()
            continue
        if line is None:
            return
        text = line.strip()
        try:
            if text and not text.startswith("#"):
                await shell.handle(text)
        except Exception as exc:  # noqa: BLE001 - report and keep chatting
            log.exception("shell input failed: %s", text)
            shell.say(f"（出错了：{type(exc).__name__}: {exc}）")
        finally:
            ready.set()


def _typed() -> str:
    try:
        import readline
    except ImportError:  # pragma: no cover - not on this platform
        return ""
    return readline.get_line_buffer()


def run_shell(settings: Settings, factory: sessionmaker[Session], as_user: int,
              stdin: TextIO, stdout: TextIO, interactive: bool, *, live: bool = False) -> int:
    """Chat until the end of input (Ctrl-D) or Ctrl-C; the exit status (0). `live`: see the module."""
    shell = Shell.create(settings, factory, as_user, stdout, live=live)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(shell.start())
        if interactive:
            shell.say(HELP, f"（你现在是 {shell.label(as_user)}）")
        if live:
            _soon(shell, settings)
        if live and interactive:
            loop.run_until_complete(_chat(shell, stdin, stdout))
            return 0
        while True:
            line = _read_line(stdin, stdout, interactive)
            if line is None:
                return 0
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            if not interactive:
                shell.say(PROMPT + text)
            try:
                loop.run_until_complete(shell.handle(text))
            except Exception as exc:  # noqa: BLE001 - report and keep chatting
                log.exception("shell input failed: %s", text)
                shell.say(f"（出错了：{type(exc).__name__}: {exc}）")
    except KeyboardInterrupt:
        stdout.write("\n")
        stdout.flush()
        return 0
    finally:
        with _signals_ignored():  # a second Ctrl-C or the supervisor's SIGTERM must not cut the cleanup
            _close(loop, shell)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _close(loop: asyncio.AbstractEventLoop, shell: Shell) -> None:
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    with contextlib.suppress(BaseException):
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    with contextlib.suppress(BaseException):
        loop.run_until_complete(shell.stop())
    loop.close()
