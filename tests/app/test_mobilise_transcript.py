"""The 战时 mobilisation README shows, run for real: a commander declares a flood over two grids,
everyone of them is called, they answer (到, 稍后到 with a typed ETA, 不能到), the leaders get their
rosters, a task is posted and taken, a member checks in (first outside the grid), the unmanned
grid is escalated, the task is done and the commander closes the incident and gets the report.

The real Application on the fake Telegram, the mobilisation clock (core.mobilise.clock) frozen and
moved by hand, the scheduler's round run with that clock; every message the bot sends or edits is
rendered as README renders it, and README must hold this transcript as it is."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.config import PROJECT_ROOT
from core.mobilise import clock
from core.mobilise import sweep as mobilise_sweep
from core.models import Person
from tests.app.journey import Journey, journey

TZ = ZoneInfo("Asia/Shanghai")
NO_RASA = "http://127.0.0.1:9"
T0 = datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)  # 18:00 in Beijing
COMMANDER, LIANG, WEN, CUI = 700000069, 700000002, 700000003, 700000004
NAMES = {COMMANDER: "指挥长 汤嘉懿", LIANG: "党员 梁海涛", WEN: "党员 文爱华", CUI: "党员 崔浩然",
         700000001: "书记 董国华（第一网格）", 700000061: "网格员 史振华（第一网格）",
         700000008: "书记 薛雨桐（第二网格）", 700000062: "网格员 赵燕（第二网格）"}
IN_GRID_1 = (39.932442, 116.445302)  # B-HPL-01-05
IN_GRID_2 = (39.933474, 116.448238)  # B-HPL-02-11
BEGIN, END = "<!-- mobilise transcript: tests/app/test_mobilise_transcript.py -->", "<!-- end of mobilise transcript -->"
SHOWN = {"sendmessage": "→", "editmessagetext": "✎"}


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        return self.at


class Transcript:
    """What the bot sent (→) or edited (✎) since the last call, as README shows a chat; the same
    message to several people once, with how many got it."""

    def __init__(self, j: Journey, factory: sessionmaker[Session]) -> None:
        self.j, self.seen, self.lines = j, 0, []
        with factory() as s:
            self.names = {int(tg): name for tg, name in s.execute(
                select(Person.telegram_id, Person.display_name).where(Person.telegram_id.is_not(None)))}

    def who(self, chat_id: int) -> str:
        return NAMES.get(chat_id, self.names.get(chat_id, str(chat_id)))

    def step(self, title: str, *said: str) -> None:
        self.lines.append(f"# {title}")
        self.lines.extend(said)
        calls = self.j.fake.calls[self.seen:]
        self.seen = len(self.j.fake.calls)
        groups: list[tuple[tuple[str, str, str], list[int]]] = []
        for call in calls:
            arrow = SHOWN.get(call.method.lower())
            if arrow is None or not call.ok:
                continue
            rows = (call.params.get("reply_markup") or {}).get("inline_keyboard", [])
            buttons = "  ".join(f"[{b['text']}]" for row in rows for b in row)
            key = (arrow, str(call.params.get("text") or ""), buttons)
            if groups and groups[-1][0] == key:
                groups[-1][1].append(int(call.params["chat_id"]))
            else:
                groups.append((key, [int(call.params["chat_id"])]))
        for (arrow, text, buttons), chats in groups:
            if len(chats) > 3:
                head = f"{arrow} {len(chats)} 人（{'、'.join(self.names.get(c, str(c)) for c in chats[:3])}……）"
            else:
                head = f"{arrow} " + "、".join(self.who(c) for c in chats)
            self.lines.append(head)
            self.lines += [f"  {line}" for line in text.splitlines() if line.strip()]
            if buttons:
                self.lines.append(f"  {buttons}")


def sweep(factory: sessionmaker[Session], at: datetime) -> dict[str, int]:
    return mobilise_sweep.leader_round(factory, at, TZ, mobilise_sweep.Timing())


def the_incident(factory: sessionmaker[Session], now: Clock) -> list[str]:
    out: list[str] = []

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            await j.drain()
            tr = Transcript(j, factory)
            tr.seen = len(j.fake.calls)

            async def press(user: int, title: str, chat: int | None = None) -> None:
                got: Any = await j.press(user, user if chat is None else chat, title)
                assert got is not None

            def at(minutes: int) -> str:
                now.at = T0 + timedelta(minutes=minutes)
                return now.at.astimezone(TZ).strftime("%H:%M")

            await j.say(COMMANDER, "/dongyuan")
            await press(COMMANDER, "防汛")
            await press(COMMANDER, "和平里第一网格")
            await press(COMMANDER, "和平里第二网格")
            await press(COMMANDER, "下一步")
            order = "暴雨红色预警，各网格党员30分钟内到本网格集合，排查低洼住户"
            await j.say(COMMANDER, order)
            tr.step(f"{at(0)} the commander declares: /dongyuan, [防汛], two grids, [下一步], the order",
                    f"指挥长 汤嘉懿 > /dongyuan  [防汛]  [和平里第一网格]  [和平里第二网格]  [下一步]  {order}")
            await press(COMMANDER, "确认发布")
            await j.drain()
            tr.step("[确认发布]: everyone of the two grids is called at once (members, grid workers, "
                    "volunteers; /notify off too)")
            at(2)
            await press(LIANG, "到")
            await press(WEN, "稍后到")
            await j.say(WEN, "20分钟")
            await press(CUI, "不能到")
            tr.step(f"{at(2)} they answer: 梁海涛 [到]; 文爱华 [稍后到] and types 20分钟; 崔浩然 [不能到]")
            assert sweep(factory, T0 + timedelta(minutes=5))["rosters"] == 4
            await j.drain()
            tr.step(f"{at(5)} five minutes on: each grid's leaders get its 作战单元 roster")
            at(8)
            await j.say(COMMANDER, "/zhanshi")
            await press(COMMANDER, "发布任务")
            await press(COMMANDER, "和平里第一网格")
            await press(COMMANDER, "沙袋")
            await j.say(COMMANDER, "3号楼地下车库入口码沙袋")
            tr.step(f"{at(8)} the commander's live roll, and a task for the first grid: /zhanshi, [发布任务], "
                    "[和平里第一网格], [沙袋], what and where",
                    "指挥长 汤嘉懿 > /zhanshi  [发布任务]  [和平里第一网格]  [沙袋]  3号楼地下车库入口码沙袋")
            at(10)
            await press(LIANG, "领取")
            await press(LIANG, "到岗签到")
            await j.step(j.updates.location(LIANG, *IN_GRID_2), LIANG)
            await j.step(j.updates.location(LIANG, *IN_GRID_1), LIANG)
            tr.step(f"{at(10)} 梁海涛 takes it, presses [到岗签到] and shares his location: first from the "
                    "second grid (refused), then from the first")
            assert sweep(factory, T0 + timedelta(minutes=15))["escalated"] == 1
            await j.drain()
            tr.step(f"{at(15)} fifteen minutes on, nobody is on site in the second grid: the community is told")
            at(40)
            await press(LIANG, "完成")
            tr.step(f"{at(40)} 梁海涛 presses [完成]")
            at(90)
            await j.say(COMMANDER, "/zhanshi")
            tr.seen = len(j.fake.calls)  # the roll again: shown at 18:08 already
            await press(COMMANDER, "结束动员")
            await press(COMMANDER, "确认结束")
            await j.drain()
            tr.step(f"{at(90)} the commander: /zhanshi, [结束动员], [确认结束]; those on site are signed out, and "
                    "the report")
            out.extend(tr.lines)

    asyncio.run(scenario())
    return out


def test_readme_shows_a_mobilisation_as_the_bot_runs_it(sqlite_demo_factory: sessionmaker[Session],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    now = Clock()
    monkeypatch.setattr(clock, "now", now)
    lines = the_incident(sqlite_demo_factory, now)
    got = "\n".join(lines)
    for part in ("【紧急动员】防汛", "【作战单元名单】", "【任务】", "不在和平里第一网格内", "已签到：和平里第一网格",
                 "【无人在岗·吹哨】", "【动员总结】", "工时：梁海涛"):
        assert part in got, part
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(re.escape(BEGIN) + r"\n```\n(.*?)\n```\n" + re.escape(END), readme, re.S)
    assert match is not None, f"README has no mobilise transcript between {BEGIN} and {END}; it should read:\n{got}"
    assert match.group(1) == got, f"README's mobilise transcript differs from what the bot says now:\n{got}"
