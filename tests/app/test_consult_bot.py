"""议事 through the real Application (fake Telegram), on a frozen clock: a secretary opens a
consultation for a party group's buildings; verified residents vote, change their vote and
comment; a second vote, a vote from outside the scope, from an unverified binding and after the
deadline are refused; comments are hidden, never deleted; the leader's sweep sends the results
(counts only) to the participants; the minutes are published and become a ticket. /queren
confirms a binding; 居民提议 reaches the secretary's agenda and, unanswered, the admins."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.access.permissions import NotAllowed
from core.consult import clock, figures, residents, service
from core.db import session_scope
from core.models import (
    AuditEntry,
    Building,
    Consultation,
    ConsultationComment,
    ConsultationVote,
    Grid,
    Person,
    Proposal,
    Role,
    RoleGrant,
    Ticket,
    utcnow,
)
from core.people.residents import bind_resident
from core.scheduler import DutyScheduler
from tests.app.journey import Journey, journey

TZ = ZoneInfo("Asia/Shanghai")
NO_RASA = "http://127.0.0.1:9"  # none of these flows reaches Rasa
SECRETARY = 700000001  # P-0001, secretary of 和平里第一网格党支部 (G-HPL-01)
ADMIN = 700000069  # P-0069, community admin of 和平里社区
MEMBER_08 = 700000002  # P-0002, registry-listed at B-HPL-01-08 (第二党小组)
RES_09, RES_07, RES_03 = 700000071, 700000072, 700000073  # registry residents; 03 is 第一党小组's
NEWCOMER = 830_000_201  # binds through chat: not verified until confirmed


class Frozen:
    """The consultation clock (core.consult.clock), moved by hand."""

    def __init__(self) -> None:
        self.at = utcnow().replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@pytest.fixture()
def frozen(monkeypatch: pytest.MonkeyPatch) -> Frozen:
    f = Frozen()
    monkeypatch.setattr(clock, "now", f)
    return f


def who(s: Session, telegram_id: int) -> Person:
    return s.scalars(select(Person).where(Person.telegram_id == telegram_id)).one()


def bind(factory: sessionmaker[Session], telegram_id: int, building: str, name: str = "居民乙") -> None:
    with session_scope(factory) as s:
        b = s.scalars(select(Building).where(Building.code == building)).one()
        bind_resident(s, telegram_id, name, b.id, consent=True)


def keyboard(j: Journey, chat_id: int) -> list[str]:
    message = j.fake.last_message(chat_id) or {}
    return [b["text"] for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


async def press_as(j: Journey, user_id: int, chat_id: int, title: str) -> str:
    """Press a button of `chat_id`'s message as someone else (a forwarded or stale card); the alert."""
    message, data = j.find_button(chat_id, title)
    before = len(j.fake.calls_to("answerCallbackQuery"))
    await j.step(j.updates.callback_query(user_id, data, message), user_id)
    return str(j.fake.calls_to("answerCallbackQuery")[before:][-1].params.get("text") or "")


def sweep(factory: sessionmaker[Session], now: datetime) -> int:
    """The scheduler leader's 议事 round (DutyScheduler.consultations), not started as a leader."""
    url = factory.kw["bind"].url.render_as_string(hide_password=False)
    scheduler = DutyScheduler(url, tz=TZ)
    try:
        return scheduler.consultations(now)
    finally:
        scheduler.engine.dispose()


def test_open_vote_refusals_moderation_results_minutes_ticket(sqlite_demo_factory: sessionmaker[Session],
                                                              frozen: Frozen) -> None:
    factory = sqlite_demo_factory
    bind(factory, NEWCOMER, "B-HPL-01-07")

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            menu = await j.say(SECRETARY, "/yishi")
            assert "议事管理" in menu[-1] and "发起议事" in keyboard(j, SECRETARY)
            scopes = await j.press(SECRETARY, SECRETARY, "发起议事")
            assert scopes[-1] == "请选择参加范围："
            assert {"和平里第一网格全体居民", "第二党小组所辖楼栋"} <= set(keyboard(j, SECRETARY))
            asked = await j.press(SECRETARY, SECRETARY, "第二党小组所辖楼栋")
            assert "请输入要大家商量的问题" in asked[-1]
            assert "请输入选项" in (await j.say(SECRETARY, "7号楼旁的空地改成停车位还是小花园？"))[-1]
            assert "2 到 6 个" in (await j.say(SECRETARY, "停车位"))[-1]  # one option is no choice
            assert (await j.say(SECRETARY, "停车位、小花园"))[-1] == "多久截止？"
            await j.press(SECRETARY, SECRETARY, "3天")
            preview = await j.press(SECRETARY, SECRETARY, "截止后公布")
            assert "选项：停车位、小花园" in preview[-1] and "结果：截止后公布" in preview[-1]
            # five registry residents live in 05-09: P-0002, P-0004, P-0006, P-0071, P-0072
            assert (await j.press(SECRETARY, SECRETARY, "发起"))[-1] == "已发起，已通知 5 位核实过的居民。"
            assert not j.fake.sent_messages(RES_03) and not j.fake.sent_messages(NEWCOMER)
            card = j.texts(RES_09)[-1]
            assert "7号楼旁的空地" in card and "第二党小组所辖楼栋" in card
            assert "查看结果" not in keyboard(j, RES_09)  # not live: no results before the deadline

            assert "已记录：停车位" in (await j.press(RES_09, RES_09, "停车位"))[-1]
            assert "不能重复投票" in (await j.press(RES_09, RES_09, "✓ 停车位"))[-1]
            assert "已改为：小花园" in (await j.press(RES_09, RES_09, "小花园"))[-1]
            assert "已记录：停车位" in (await j.press(RES_07, RES_07, "停车位"))[-1]
            # the same card pressed by someone outside the scope, or by an unconfirmed binding
            assert "只限所涉楼栋" in await press_as(j, RES_03, RES_09, "停车位")
            assert "还没有核实" in await press_as(j, NEWCOMER, RES_09, "停车位")

            assert "请写下您的意见" in (await j.press(RES_07, RES_07, "写意见"))[-1]
            assert (await j.say(RES_07, "停车位太少了，晚上都停到消防通道上。"))[-1] == "意见已收到，谢谢！"
            await j.press(MEMBER_08, MEMBER_08, "写意见")
            await j.say(MEMBER_08, "谁同意小花园谁就是傻子")

            # moderation: the secretary hides the second comment; its text stays for the record
            await j.say(SECRETARY, "/yishi")
            listing = await j.press(SECRETARY, SECRETARY, "意见 #1")
            assert "共 2 条意见" in listing[-1] and "戴春生" not in listing[-1]
            assert "已隐藏" in (await j.press(SECRETARY, SECRETARY, "隐藏第2条"))[-1]
            shown = j.fake.last_message(SECRETARY) or {}
            assert "隐藏第2条" not in keyboard(j, SECRETARY) and "2. 谁同意小花园谁就是傻子（已隐藏，原文保留）" in shown["text"]
            assert "写决议 #1" not in str(j.find_button(SECRETARY, "意见 #1")[0])  # not before the deadline

            frozen.advance(days=3, minutes=1)
            assert "已截止" in await press_as(j, RES_09, RES_09, "✓ 小花园")
            assert sweep(factory, frozen.at) == 1
            assert sweep(factory, frozen.at) == 0  # once
            await j.drain()
            results = j.texts(RES_09)[-1]
            assert "【议事结果】" in results and "· 停车位：1 票" in results and "· 小花园：1 票" in results
            assert "消防通道" in results and "傻子" not in results and "参与 3 人 / 可参与 5 人" in results
            assert not any("议事结果" in text for text in j.texts(RES_03))
            assert all(name not in results for name in ("戴春生", "曹丹", "梁海涛"))

            assert "请输入" in (await j.press(SECRETARY, SECRETARY, "写决议"))[-1]
            done = await j.say(SECRETARY, "增设12个停车位，明年再议小花园。")
            assert done[-1].startswith("决议已发布给 3 位")
            assert j.texts(RES_07)[-1] == "【议事决议】7号楼旁的空地改成停车位还是小花园？\n增设12个停车位，明年再议小花园。"
            # 三张清单: the minutes become a listed need (once), for the admin to match into a project
            need = await j.press(SECRETARY, SECRETARY, "转为需求（可撮合成项目）")
            assert "已列入需求清单" in need[-1] and "其他" in need[-1] and "待撮合" in need[-1], need
            twice = await j.press(SECRETARY, SECRETARY, "转为需求（可撮合成项目）")
            assert any("已经转为需求" in x for x in twice), twice
            made = await j.press(SECRETARY, SECRETARY, "转为工单")
            assert made[-1].startswith("已转为工单 ")

    asyncio.run(scenario())
    with session_scope(factory) as s:
        c = s.scalars(select(Consultation)).one()
        assert (c.eligible, c.participants) == (5, 3) and c.minutes is not None
        ticket = s.get(Ticket, c.ticket_id)
        assert ticket is not None and "增设12个停车位" in ticket.description
        hidden = s.scalars(select(ConsultationComment).where(ConsultationComment.hidden_at.is_not(None))).one()
        assert hidden.text == "谁同意小花园谁就是傻子"  # hidden, never deleted
        mine = s.scalars(select(ConsultationVote).where(ConsultationVote.person_id == who(s, RES_09).id)).one()
        assert (mine.choice, mine.changes) == (1, 1)  # a change is not a second vote
        actions = [e.action for e in audit.entries(s)]
        for action in ("consult.open", "consult.vote", "consult.vote_refused", "consult.comment_hide",
                       "consult.close", "consult.minutes", "consult.ticket"):
            assert action in actions, action
        changed = s.scalars(select(AuditEntry).where(AuditEntry.action == "consult.vote",
                                                     AuditEntry.actor_id == who(s, RES_09).id)).all()
        assert [e.detail["changed"] for e in changed] == [False, True]
        held = figures.figures(s, frozen.at - timedelta(days=30), frozen.at + timedelta(days=1))
        assert (held.held, held.participants, held.eligible) == (1, 3, 5)
        assert held.participation_rate == pytest.approx(0.6)


def test_live_results_comments_only_and_who_may_open(sqlite_demo_factory: sessionmaker[Session],
                                                     frozen: Frozen) -> None:
    factory = sqlite_demo_factory
    with session_scope(factory) as s:
        grid = s.scalars(select(Grid).where(Grid.code == "G-HPL-01")).one()
        b09 = s.scalars(select(Building).where(Building.code == "B-HPL-01-09")).one()
        with pytest.raises(NotAllowed):  # a resident opens nothing
            service.open_consultation(s, who(s, RES_09), grid_id=grid.id, building_ids=None, scope_label="x",
                                      question="?", options=[], live=False, deadline=frozen.at + timedelta(days=1),
                                      now=frozen.at, tz=TZ)
        live = service.open_consultation(s, who(s, ADMIN), grid_id=grid.id, building_ids=[b09.id],
                                         scope_label=b09.address, question="9号楼单元门换成刷卡门？",
                                         options=["同意", "不同意"], live=True, deadline=frozen.at + timedelta(days=1),
                                         now=frozen.at, tz=TZ)
        talk = service.open_consultation(s, who(s, SECRETARY), grid_id=grid.id, building_ids=None,
                                         scope_label="全网格", question="楼道堆物怎么管？", options=[], live=False,
                                         deadline=frozen.at + timedelta(days=1), now=frozen.at, tz=TZ)
        live_id, talk_id = live.id, talk.id

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            await j.drain()
            await j.press(RES_09, RES_09, "同意")
            shown = await j.press(RES_09, RES_09, "查看结果")
            assert "【实时结果】" in shown[-1] and "· 同意：1 票" in shown[-1] and "· 不同意：0 票" in shown[-1]
            talk_card = j.texts(RES_03)[-1]  # 03 is in the grid, not in building 09
            assert "楼道堆物" in talk_card and "不设选项" in talk_card and keyboard(j, RES_03) == ["写意见"]
            assert "没有进行中的议事" in (await j.say(NEWCOMER, "/yishi"))[-1]

    asyncio.run(scenario())
    with session_scope(factory) as s:
        with pytest.raises(NotAllowed, match="截止后公布"):
            service.results_text(s, s.get(Consultation, talk_id), frozen.at)
        with pytest.raises(NotAllowed, match="截止后才能写决议"):
            service.write_minutes(s, who(s, SECRETARY), live_id, "早了", now=frozen.at)
        with pytest.raises(NotAllowed):  # minutes are the secretary's or an admin's
            service.write_minutes(s, who(s, RES_09), live_id, "我说了算", now=frozen.at + timedelta(days=2))


def test_queren_confirms_a_binding_and_moving_undoes_it(sqlite_demo_factory: sessionmaker[Session],
                                                        frozen: Frozen) -> None:
    factory = sqlite_demo_factory
    bind(factory, NEWCOMER, "B-HPL-01-07", "新居民")
    with session_scope(factory) as s:
        worker = s.scalars(select(Person).join(RoleGrant).join(Grid, RoleGrant.grid_id == Grid.id)
                           .where(RoleGrant.role == Role.grid_worker, Grid.code == "G-HPL-01")).first()
        assert worker is not None and worker.telegram_id is not None
        worker_tg = worker.telegram_id

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            assert "只有网格员" in (await j.say(RES_09, "/queren"))[-1]
            listing = await j.say(worker_tg, "/queren")
            assert "待确认的新登记居民（1 位）" in listing[-1]
            [title] = keyboard(j, worker_tg)
            assert title.startswith("确认 新居民·")
            assert "已确认 新居民" in (await j.press(worker_tg, worker_tg, title))[-1]
            assert (j.fake.last_message(worker_tg) or {}).get("text") == "没有待确认的新登记居民。"

    asyncio.run(scenario())
    with session_scope(factory) as s:
        assert residents.is_verified(s, who(s, NEWCOMER))
        assert any(e.action == "resident.verify" for e in audit.entries(s))
    bind(factory, NEWCOMER, "B-HPL-01-08", "新居民")  # moved: the confirmation was for 07
    with session_scope(factory) as s:
        assert not residents.is_verified(s, who(s, NEWCOMER))


def test_proposal_reaches_the_agenda_is_answered_and_overdue_goes_up(sqlite_demo_factory: sessionmaker[Session],
                                                                      frozen: Frozen) -> None:
    factory = sqlite_demo_factory
    bind(factory, NEWCOMER, "B-HPL-01-07")
    other_grid = 830_000_202
    bind(factory, other_grid, "B-HPL-02-10", "邻居丙")
    with session_scope(factory) as s:  # a registry-listed resident of the next grid
        who(s, other_grid).code = "P-TEST-202"

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            svc = j.app.bot_data["services"]
            svc.settings = svc.settings.model_copy(update={"proposal_supporters": 3, "proposal_answer_days": 7})
            assert "/tiyi 后面写上" in (await j.say(RES_03, "/tiyi"))[-1]
            assert "还没有核实" in (await j.say(NEWCOMER, "/tiyi 装个快递柜"))[-1]
            assert "（1/3 人支持）" in (await j.say(RES_03, "/tiyi 在3号楼旁加装电动车充电桩"))[-1]
            await j.say(RES_09, "/yishi")
            assert "已附议（2/3）" in (await j.press(RES_09, RES_09, "附议"))[-1]
            assert "已经附议过了" in (await j.press(RES_09, RES_09, "附议"))[-1]
            assert "同一网格" in await press_as(j, other_grid, RES_09, "附议")
            await j.say(RES_07, "/yishi")
            assert "提议已交支部书记答复" in (await j.press(RES_07, RES_07, "附议"))[-1]
            agenda = j.texts(SECRETARY)[-1]
            assert "【居民提议已够人数】在3号楼旁加装电动车充电桩" in agenda and "3 位居民支持" in agenda

            frozen.advance(days=7, minutes=1)
            sweep(factory, frozen.at)
            await j.drain()
            assert "【提议超时未答复】" in j.texts(ADMIN)[-1]
            assert "请输入对" in (await j.press(SECRETARY, SECRETARY, "答复"))[-1]
            assert "答复已发给" in (await j.say(SECRETARY, "已联系供电所，下月安装。"))[-1]
            for resident in (RES_03, RES_09, RES_07):
                assert j.texts(resident)[-1] == "【提议答复】在3号楼旁加装电动车充电桩\n已联系供电所，下月安装。"

    asyncio.run(scenario())
    with session_scope(factory) as s:
        p = s.scalars(select(Proposal)).one()
        assert p.agenda_at is not None and p.answered_at is not None and p.overdue_at is not None
        assert {"proposal.make", "proposal.support", "proposal.agenda", "proposal.overdue", "proposal.answer"} \
            <= {e.action for e in audit.entries(s)}


def test_gridbot_stats_reports_consultations_and_participation(sqlite_demo_factory: sessionmaker[Session]) -> None:
    import json
    import os
    import subprocess
    import sys

    from core.config import PROJECT_ROOT

    factory = sqlite_demo_factory
    opened = datetime(2026, 12, 3, 2, 0, tzinfo=ZoneInfo("UTC"))
    with session_scope(factory) as s:
        grid = s.scalars(select(Grid).where(Grid.code == "G-HPL-01")).one()
        b09 = s.scalars(select(Building).where(Building.code == "B-HPL-01-09")).one()
        c = service.open_consultation(s, who(s, SECRETARY), grid_id=grid.id, building_ids=[b09.id], scope_label="9号楼",
                                      question="加装电梯？", options=["同意", "不同意"], live=False,
                                      deadline=opened + timedelta(days=2), now=opened, tz=TZ)
        service.vote(s, who(s, RES_09), c.id, 0, now=opened + timedelta(hours=1))
        assert service.close_due(s, opened + timedelta(days=3)) == 1
    url = factory.kw["bind"].url.render_as_string(hide_password=False)
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
    run = subprocess.run([sys.executable, "-m", "cli.main", "stats", "--month", "2026-12", "--json"], cwd=PROJECT_ROOT,
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    held = json.loads(run.stdout)["consultations"]
    assert held["held"] == 1 and held["participants"] == 1 and held["eligible"] == 1  # P-0071 alone lives in 09
    assert held["participation_rate"] == 1.0
    table = subprocess.run([sys.executable, "-m", "cli.main", "stats", "--month", "2026-11"], cwd=PROJECT_ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert table.returncode == 0 and "议事 held 0, participation -" in table.stdout
