"""The 接诉即办 loop README shows, run for real: a ticket goes overdue, is escalated to the
community, 督办 is pressed, the branch transfers it (改派), the next branch claims and resolves it.

The real Application on the fake Telegram, the deadline steps swept with the clock given; every
message the bot sends is rendered as README renders it, and README must hold this transcript as
it is (so the documentation cannot drift from what the bot says)."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.config import PROJECT_ROOT
from core.db import session_scope
from core.messages import t
from core.models import Building, Person, Ticket
from core.tickets import deadlines
from core.tickets import service as ticket_service
from core.tickets.lifecycle import NewTicket
from tests.app.journey import Journey, journey

TZ = ZoneInfo("Asia/Shanghai")
NO_RASA = "http://127.0.0.1:9"
T0 = datetime(2026, 12, 7, 1, 0, tzinfo=timezone.utc)  # Monday 09:00 in Beijing
GROUP_1, GROUP_2 = -1001000000001, -1001000000002
SECRETARY_1, SECRETARY_2, WORKER_1 = 700000001, 700000008, 700000061
ADMIN, RESIDENT = 700000069, 700000071
NAMES = {GROUP_1: "群 和平里第一网格党支部", GROUP_2: "群 和平里第二网格党支部", SECRETARY_1: "书记 董国华（第一网格）",
         SECRETARY_2: "书记 薛雨桐（第二网格）", WORKER_1: "网格员 史振华（第一网格）", ADMIN: "社区管理员 汤嘉懿",
         RESIDENT: "居民 戴春生"}
BEGIN, END = "<!-- loop transcript: tests/app/test_loop_transcript.py -->", "<!-- end of loop transcript -->"


def render(j: Journey) -> list[str]:
    """The messages sent since the last call, as README shows a chat: who gets it, the text, the buttons."""
    out = []
    for message in j.new_messages():
        out.append(f"→ {NAMES.get(message['chat_id'], str(message['chat_id']))}")
        text = str(message.get("text") or message.get("caption") or "")
        out += [f"  {line}" for line in text.splitlines() if line.strip()]
        rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
        if rows:
            out.append("  " + "  ".join(f"[{b['text']}]" for row in rows for b in row))
    return out


def sweep(factory: sessionmaker[Session], at: datetime) -> list[str]:
    """The leader's round at `at`: the due steps, then the groups' digests."""
    limits = deadlines.Limits()
    with session_scope(factory) as s:
        outcomes = deadlines.run(s, [i for i, _ in deadlines.due(s, at)], deadlines.Pass(at, TZ, limits))
        for chat_id in deadlines.digest_chats(s):
            deadlines.digest(s, chat_id, deadlines.Pass(at, TZ, limits))
    return outcomes


def when(at: datetime) -> str:
    return at.astimezone(TZ).strftime("%m-%d %H:%M")


def the_loop(factory: sessionmaker[Session]) -> list[str]:
    lines: list[str] = []

    def step(title: str, got: list[str]) -> None:
        lines.append(f"# {title}")
        lines.extend(got)

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            with session_scope(factory) as s:
                b = s.scalars(select(Building).where(Building.code == "B-HPL-01-07")).one()
                reporter = s.scalars(select(Person).where(Person.telegram_id == RESIDENT)).one()
                ticket = ticket_service.submit_report(s, NewTicket(
                    "parking", "7号楼门口消防通道被一辆白色面包车堵了", reporter_id=reporter.id,
                    community_id=b.grid.community_id, grid_id=b.grid_id, building_id=b.id), tz=TZ, now=T0)
                deadlines.plan(s, ticket, limits=deadlines.Limits())
                ticket_id, respond_due = ticket.id, ticket.respond_due_at
            assert respond_due is not None
            await j.drain()
            step(f"{when(T0)} a resident reports; the branch group gets the card", render(j))
            for fraction in (0.5, 0.8):
                at = T0 + (respond_due - T0) * fraction
                assert sweep(factory, at) == ["sent"]
                await j.drain()
                step(f"{when(at)} nobody has claimed it ({fraction:.0%} of the response limit): a reminder to "
                     "the grid worker, and in the group's digest", render(j))
            at = respond_due + timedelta(minutes=1)
            assert sweep(factory, at) == ["sent"]
            await j.drain()
            step(f"{when(at)} past the response limit: 已超期, escalated to the community (吹哨)", render(j))
            await j.press(ADMIN, ADMIN, t("deadline.button_urge"))
            step("the community admin presses 督办", render(j))
            await j.press(SECRETARY_1, GROUP_1, t("card.button_transfer"))
            await j.press(SECRETARY_1, SECRETARY_1, "和平里第二网格（和平里社区）")
            step("the first branch's secretary presses 改派 and picks the grid", render(j))
            await j.say(SECRETARY_1, "面包车是第二网格商户的，商户在第二网格")
            step("and gives the reason: the second branch gets the card, the resident is told", render(j))
            await j.press(SECRETARY_2, GROUP_2, t("card.button_claim"))
            await j.press(SECRETARY_2, GROUP_2, t("card.button_resolve"))
            step("the second branch's secretary claims it and presses 办结", render(j))
            await j.say(SECRETARY_2, "已联系商户把车挪走，并在通道口加装了禁停标识")
            step("the result reaches the resident, who is asked the return visit", render(j))
            with factory() as s:
                done = s.get(Ticket, ticket_id)
                assert done is not None and done.status.value == "resolved" and done.overdue_at is not None

    asyncio.run(scenario())
    return lines


def test_readme_shows_the_loop_as_the_bot_runs_it(sqlite_demo_factory: sessionmaker[Session]) -> None:
    lines = the_loop(sqlite_demo_factory)
    got = "\n".join(lines)
    # what the loop must contain, whatever the wording
    for part in ("【超期吹哨】", "督办", "【改派】", "已受理", "领单", "办结"):
        assert part in got, part
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(re.escape(BEGIN) + r"\n```\n(.*?)\n```\n" + re.escape(END), readme, re.S)
    assert match is not None, f"README has no loop transcript between {BEGIN} and {END}; it should read:\n{got}"
    assert match.group(1) == got, f"README's loop transcript differs from what the bot says now:\n{got}"
