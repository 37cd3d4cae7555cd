"""战时 mobilisation through the real Application (fake Telegram, no Rasa): a commander declares
an incident over two grids, everyone of the area is called once (a member with /notify off too),
answers 到 / 稍后到 with a typed ETA / 不能到, the leaders get their 作战单元 roster, a task is
posted, taken and done, a member checks in by sharing a location (refused outside the grid), the
scheduler's sweep escalates the unmanned grid to the community and then the street once each, and
the commander closes the incident and gets the report. Every refusal the issue lists: a
non-commander declaring, a check-in outside the grid, a task of another grid, an answer to a closed
incident, closing twice, a task on a grid outside the area; and someone not called answering."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.db import session_scope
from core.mobilise import sweep as mobilise_sweep
from core.models import (
    Answer,
    Incident,
    IncidentCall,
    IncidentCheckIn,
    IncidentEvent,
    IncidentTask,
    OutboxMessage,
    Person,
    TaskState,
    utcnow,
)
from core.registry import grants
from tests.app.journey import Journey, journey

TZ = ZoneInfo("Asia/Shanghai")
NO_RASA = "http://127.0.0.1:9"  # nothing here reaches Rasa
COMMANDER, OTHER_ADMIN = 700000069, 700000070  # P-0069 汤嘉懿 (C-HPL, commander), P-0070 (C-QNH, admin only)
SECRETARY_1, LIANG, WEN, CUI, PAN = 700000001, 700000002, 700000003, 700000004, 700000005  # BR-HPL-01
WORKER_1, VOLUNTEER_1 = 700000061, 700000073  # G-HPL-01's grid worker; 于勇, a volunteer living there
SECRETARY_2, LIAO = 700000008, 700000009  # BR-HPL-02
RESIDENT = 700000071  # 戴春生, a resident of G-HPL-01: not called
IN_GRID_1 = (39.932442, 116.445302)  # B-HPL-01-05, inside 和平里第一网格
IN_GRID_2 = (39.933474, 116.448238)  # B-HPL-02-11, inside 和平里第二网格
GRID_1_2 = [SECRETARY_1, LIANG, WEN, CUI, PAN, 700000006, 700000007, WORKER_1, VOLUNTEER_1,
            SECRETARY_2, LIAO, 700000010, 700000011, 700000012, 700000013, 700000062]


def keyboard(j: Journey, chat_id: int) -> list[str]:
    message = j.fake.last_message(chat_id) or {}
    return [b["text"] for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


def last(j: Journey, chat_id: int) -> str:
    return j.texts(chat_id)[-1] if j.texts(chat_id) else ""


def current(j: Journey, chat_id: int, title: str) -> str:
    """The text, as it reads now (after edits), of the newest message in `chat_id` with the button."""
    message, _ = j.find_button(chat_id, title)
    return str(message.get("text") or "")


async def press_as(j: Journey, user_id: int, chat_id: int, title: str) -> str:
    """Press a button of `chat_id`'s message as `user_id` (a forwarded message); the alert."""
    message, data = j.find_button(chat_id, title)
    before = len(j.fake.calls_to("answerCallbackQuery"))
    await j.step(j.updates.callback_query(user_id, data, message), user_id)
    return str(j.fake.calls_to("answerCallbackQuery")[before:][-1].params.get("text") or "")


def sweep(factory: sessionmaker[Session], minutes: float) -> dict[str, int]:
    """The scheduler leader's mobilisation round, `minutes` from now (the clock given, no waiting)."""
    return mobilise_sweep.leader_round(factory, utcnow() + timedelta(minutes=minutes), TZ, mobilise_sweep.Timing())


async def declare(j: Journey, grids: tuple[str, ...] = ("和平里第一网格", "和平里第二网格"),
                  order: str = "今晚暴雨，各网格党员到本网格集合，排查低洼住户") -> str:
    """/dongyuan to the end as the commander; the last answer."""
    [ask] = await j.say(COMMANDER, "/dongyuan")
    assert "第1步" in ask and {"防汛", "火灾", "疫情防控", "除雪", "停电", "突发事件"} <= set(keyboard(j, COMMANDER))
    got = await j.press(COMMANDER, COMMANDER, "防汛")
    assert got[0] == "事件：防汛" and "第2步" in got[-1], got
    assert "全社区：和平里社区" in keyboard(j, COMMANDER) and "青年湖第一网格" not in keyboard(j, COMMANDER)
    nothing = await j.press(COMMANDER, COMMANDER, "下一步")
    assert "请至少选一个网格。" in nothing, nothing
    for grid in grids:
        await j.press(COMMANDER, COMMANDER, grid)
    assert all(f"✅{g}" in keyboard(j, COMMANDER) for g in grids)
    got = await j.press(COMMANDER, COMMANDER, "下一步")
    assert got[0] == "范围：" + "、".join(grids) and "第3步" in got[-1], got
    [confirm] = await j.say(COMMANDER, order)
    assert f"命令：{order}" in confirm and "将呼叫" in confirm, confirm
    [done] = await j.press(COMMANDER, COMMANDER, "确认发布")
    return done


def test_an_incident_from_declaration_to_report(sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory
    with session_scope(factory) as s:  # /notify off: the call still comes (it is essential)
        s.scalars(select(Person).where(Person.telegram_id == WEN)).one().notify_off = True
        # a street admin of 和平街道, to hear the second escalation
        admin = Person(telegram_id=700000099, display_name="街道值班")
        s.add(admin)
        s.flush()
        grants.grant(s, grants.resolve(s, "700000099", "street_admin", street="ST-HP"))

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            # refusals: an admin without the grant, a secretary, a resident
            for who in (OTHER_ADMIN, SECRETARY_1, RESIDENT):
                assert await j.say(who, "/dongyuan") == ["您没有权限发布战时动员。"], who
            assert await j.say(RESIDENT, "/zhanshi") == ["您没有权限查看这次动员的战况。"]
            assert await j.say(COMMANDER, "/zhanshi") == ["现在没有进行中的动员。"]
            done = await declare(j)
            assert done == "已发布动员#1，正在呼叫 16 人。发 /zhanshi 看实时战况、发布任务。", done
            await j.drain()
            # everyone of the two grids is called once, with the three answers; nobody else
            for who in GRID_1_2:
                calls = [x for x in j.texts(who) if x.startswith("【紧急动员】防汛")]
                assert len(calls) == 1, (who, j.texts(who))
                assert "今晚暴雨" in calls[0] and "指挥长：汤嘉懿" in calls[0]
                assert keyboard(j, who) == ["到", "稍后到", "不能到"], who
            assert not any("紧急动员" in x for x in j.texts(RESIDENT) + j.texts(COMMANDER) + j.texts(700000014))

            # 到: the call reads as answered, with 到岗签到
            await j.press(LIANG, LIANG, "到")
            assert "您的回复：到。请到和平里第一网格报到" in current(j, LIANG, "到岗签到")
            # 稍后到: the ETA asked, typed
            got = await j.press(WEN, WEN, "稍后到")
            assert "大约多久能到" in current(j, WEN, "30分钟"), got
            assert await j.say(WEN, "等一会儿") == ["没看懂到达时间。请回复如“20分钟”“半小时”“18:30”，或点上面的按钮。"]
            got = await j.say(WEN, "20分钟")
            assert got[-1].startswith("您的回复：稍后到（约") and got[-1].endswith("到）"), got
            assert "您的回复：稍后到（约" in current(j, WEN, "到岗签到")  # the call itself, its ETA buttons gone
            await j.press(700000006, 700000006, "稍后到")  # the ETA by button this time
            await j.press(700000006, 700000006, "30分钟")
            assert "您的回复：稍后到（约" in current(j, 700000006, "到岗签到") and j.prompt(700000006) is None
            await j.press(CUI, CUI, "不能到")
            assert "收到，您这次不能到" in current(j, CUI, "到")
            await j.press(LIAO, LIAO, "到")
            await j.press(SECRETARY_1, SECRETARY_1, "到")
            # someone not called presses a forwarded call
            alert = await press_as(j, RESIDENT, LIANG, "不能到")
            assert alert == "您不在这次动员的呼叫名单里。", alert

            # the commander's roll: totals, the grids with nobody on site, no tasks
            [roll] = await j.say(COMMANDER, "/zhanshi")
            assert "【战况】动员#1 防汛 · 和平里第一网格、和平里第二网格" in roll, roll
            assert "呼叫 16 人：到 3 · 稍后到 2 · 不能到 1 · 未回复 10；在岗 0 人" in roll, roll
            assert "⚠ 还没有人在岗：和平里第一网格、和平里第二网格" in roll and "待办任务：无" in roll, roll
            assert keyboard(j, COMMANDER) == ["发布任务", "结束动员", "刷新"]
            # a grid leader sees their grid only, and may not command
            [mine] = await j.say(SECRETARY_2, "/zhanshi")
            assert "和平里第二网格：呼叫7，到1" in mine and "和平里第一网格：" not in mine, mine
            assert keyboard(j, SECRETARY_2) == ["刷新"]

            # a task on a grid outside the area, typed: refused; then one on grid 1 by the buttons
            await j.press(COMMANDER, COMMANDER, "发布任务")
            [outside] = await j.say(COMMANDER, "青年湖第一网格")
            assert outside == "青年湖第一网格不在这次动员的范围（和平里第一网格、和平里第二网格）内，不能派任务。", outside
            await j.press(COMMANDER, COMMANDER, "和平里第一网格")
            await j.press(COMMANDER, COMMANDER, "卡口执勤")
            [posted] = await j.say(COMMANDER, "东门卡口，两人一班")
            assert "#1 卡口执勤 · 和平里第一网格：东门卡口，两人一班（待领取）" in posted, posted
            assert "已通知该网格回复“到”或“稍后到”的 4 人" in posted, posted  # 梁海涛, 文爱华, 董国华, 史红霞
            assert last(j, LIANG).startswith("【任务】#1 卡口执勤") and keyboard(j, LIANG) == ["领取"]
            assert not any("【任务】" in x for x in j.texts(CUI) + j.texts(LIAO))  # 不能到; another grid
            # a member of grid 2 tries grid 1's task (a forwarded notice)
            alert = await press_as(j, LIAO, LIANG, "领取")
            assert alert == "这是和平里第一网格的任务，您在和平里第二网格作战单元，请领本网格的任务。", alert
            # one who answered 不能到 may not take it either
            assert await press_as(j, CUI, LIANG, "领取") == "请先回复“到”或“稍后到”，再领取任务。"
            got = await j.press(LIANG, LIANG, "领取")
            assert any("已领取：" in x for x in got) and keyboard(j, LIANG) == ["到岗签到", "完成"], got
            assert "【任务已领取】#1 卡口执勤" in last(j, COMMANDER) and "梁海涛已领取" in last(j, COMMANDER)
            assert await press_as(j, SECRETARY_1, LIANG, "完成") == "只有领取任务的人可以点完成。"

            # check-in: outside the grid refused (naming it), then inside
            [ask] = await j.press(LIANG, LIANG, "到岗签到")
            assert "发送我的位置" in ask
            share = j.fake.calls_to("sendMessage", LIANG)[-1].params["reply_markup"]  # one tap: request_location
            assert share["keyboard"] == [[{"text": "📍发送我的位置", "request_location": True}]], share
            [refused] = await j.step(j.updates.location(LIANG, *IN_GRID_2), LIANG)
            assert refused == "您的位置不在和平里第一网格内，签到没有成功。请到和平里第一网格范围内再发送位置。", refused
            [checked] = await j.step(j.updates.location(LIANG, *IN_GRID_1), LIANG)
            assert checked.startswith("已签到：和平里第一网格，") and "（任务#1）" in checked, checked
            assert keyboard(j, LIANG) == ["离开"]

            # the rosters: 5 minutes on, the sweep sends each grid's to its secretary and grid worker
            assert sweep(factory, 6)["rosters"] == 4
            await j.drain()
            roster = last(j, WORKER_1)
            assert roster.startswith("【作战单元名单】和平里第一网格 · 防汛（动员#1"), roster
            assert "到（2）：董国华、梁海涛" in roster and "不能到（1）：崔浩然" in roster, roster
            assert "稍后到（2）：文爱华（约" in roster and "在岗（1）：梁海涛" in roster, roster
            assert keyboard(j, WORKER_1) == ["刷新"] and last(j, SECRETARY_1).startswith("【作战单元名单】和平里第一网格")
            assert last(j, SECRETARY_2).startswith("【作战单元名单】和平里第二网格")
            assert sweep(factory, 7)["rosters"] == 0  # once
            # 刷新 on a roster: it reads as now, in place
            [fresh] = await j.press(WORKER_1, WORKER_1, "刷新")
            assert fresh.startswith("【作战单元名单】和平里第一网格") and "在岗（1）：梁海涛" in fresh, fresh

            # escalation: grid 2 has nobody on site after 15 minutes: the community admin, once
            assert sweep(factory, 16)["escalated"] == 1
            await j.drain()
            assert last(j, COMMANDER).startswith("【无人在岗·吹哨】动员#1 防汛") and "和平里第二网格。" in last(j, COMMANDER)
            assert "和平里第一网格" not in last(j, COMMANDER).split("签到：")[1]
            assert sweep(factory, 17)["escalated"] == 0
            # after 2 × 15 minutes, the street admin
            assert sweep(factory, 31)["escalated"] == 1
            await j.drain()
            assert last(j, 700000099).startswith("【无人在岗·街道吹哨】动员#1") and "和平里第二网格" in last(j, 700000099)
            assert sweep(factory, 45)["escalated"] == 0

            # the task done, the check-out
            got = await j.press(LIANG, LIANG, "完成")  # the 完成 under the taken task
            assert any(x.startswith("已完成：") for x in got), got
            assert "【任务已完成】#1 卡口执勤" in last(j, COMMANDER)
            got = await j.press(LIANG, LIANG, "离开")
            assert any(x.startswith("已签退，本次在岗") for x in got), got
            assert await press_as(j, LIANG, LIANG, "离开") == "您现在没有签到，不用离开。"

            # closing: 结束动员, 确认结束 → the report
            await j.press(COMMANDER, COMMANDER, "刷新")
            await j.press(COMMANDER, COMMANDER, "结束动员")
            [report] = await j.press(COMMANDER, COMMANDER, "确认结束")
            assert report.startswith("【动员总结】动员#1 防汛"), report
            assert "· 和平里第一网格：呼叫9，回复5（到2，稍后到2，不能到1），在岗1人" in report, report
            assert "任务完成1/1" in report and "工时：梁海涛" in report, report
            assert "合计：呼叫16，回复6，在岗1人" in report, report
            # closing twice; answering, checking in, taking after the close
            alert = await press_as(j, COMMANDER, COMMANDER, "结束动员")
            assert alert.startswith("这次动员已经在") and alert.endswith("结束了，不用再结束。"), alert
            assert await press_as(j, PAN, PAN, "到") == "这次动员已经结束了。"
            assert await press_as(j, WEN, WEN, "到岗签到") == "这次动员已经结束了。"
            # a grid leader may refresh a forwarded roll (their grid) but not close it
            assert await press_as(j, SECRETARY_2, COMMANDER, "结束动员") == "您没有权限指挥这次动员（发布任务、结束动员）。"
            assert await press_as(j, SECRETARY_2, COMMANDER, "刷新") == ""
            # answered in the presser's own chat, with their grid only; the commander's message is left alone
            assert "和平里第二网格：" in last(j, SECRETARY_2) and "和平里第一网格：" not in last(j, SECRETARY_2)
            assert "和平里第一网格：" in current(j, COMMANDER, "结束动员")

        with session_scope(factory) as s:
            incident = s.get(Incident, 1)
            assert incident is not None and incident.closed_at is not None
            calls = s.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "mobilise.call"))
            assert calls == 16
            answers = dict(s.execute(select(Person.telegram_id, IncidentCall.answer)
                                     .join(Person, Person.id == IncidentCall.person_id)).tuples().all())
            assert (answers[LIANG], answers[WEN], answers[CUI], answers[PAN]) == (Answer.coming, Answer.late,
                                                                                  Answer.cannot, None)
            wen = s.scalars(select(IncidentCall).join(Person, Person.id == IncidentCall.person_id)
                            .where(Person.telegram_id == WEN)).one()
            assert wen.eta_at is not None and 19 <= (wen.eta_at - wen.answered_at).total_seconds() / 60 <= 21
            [task] = s.scalars(select(IncidentTask)).all()
            assert task.state is TaskState.done
            [checkin] = s.scalars(select(IncidentCheckIn)).all()
            assert checkin.checked_out_at is not None and checkin.task_id == task.id
            kinds = [e.kind for e in s.scalars(select(IncidentEvent).order_by(IncidentEvent.id))]
            for kind in ("declared", "called", "answered", "roster", "task_posted", "task_taken", "checked_in",
                         "escalated", "task_done", "checked_out", "closed"):
                assert kind in kinds, kind
            assert kinds.count("closed") == 1 and kinds.count("escalated") == 2

    asyncio.run(scenario())


def test_declaring_a_whole_community_and_leaving_the_steps(sqlite_demo_factory: sessionmaker[Session]) -> None:
    """全社区 in one press; words where a button is wanted; 取消 by word and by button; an empty and a
    too long order; a stale button of a cancelled draft."""
    factory = sqlite_demo_factory

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            await j.say(COMMANDER, "/dongyuan")
            assert await j.say(COMMANDER, "防汛") == ["请点上面的按钮，或发“取消”。"]
            await j.press(COMMANDER, COMMANDER, "火灾")
            got = await j.press(COMMANDER, COMMANDER, "全社区：和平里社区")
            assert got[0] == "范围：和平里社区" and "第3步" in got[-1], got
            [long] = await j.say(COMMANDER, "令" * 301)
            assert long == "命令太长了，请不超过300个字。" and j.prompt(COMMANDER) is not None
            [confirm] = await j.say(COMMANDER, "5号楼起火，和平里社区全体党员到东门集合疏散")
            assert "类型：火灾" in confirm and "范围：和平里社区" in confirm and "将呼叫 37 人" in confirm, confirm
            got = await j.press(COMMANDER, COMMANDER, "取消")
            assert got == ["已取消，没有发布。"] and j.prompt(COMMANDER) is None
            # the draft is gone: its 确认发布 does nothing
            stale = j.updates.callback_query(COMMANDER, j.issue(["mb", "go"]), j.fake.last_message(COMMANDER))
            before = len(j.fake.calls_to("answerCallbackQuery"))
            await j.step(stale, COMMANDER)
            alert = j.fake.calls_to("answerCallbackQuery")[before:][-1].params.get("text")
            assert alert == "这个按钮已失效或无法识别，请重新操作。", alert
            await j.say(COMMANDER, "/dongyuan")
            assert await j.say(COMMANDER, "取消") == ["已取消，没有发布。"]
        with factory() as s:
            assert s.scalar(select(func.count()).select_from(Incident)) == 0
            assert s.scalar(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.kind == "mobilise.call")) == 0

    asyncio.run(scenario())
