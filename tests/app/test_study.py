"""党员学习资料库 and 补学.

Through the real Application (fake Telegram): the secretary attaches materials to a session that
took place — from /report's 资料 button, a document and then a link — and those who missed it
(absent, on leave) get each material once with the 已学（补学） button, those who checked in get
nothing; a 心得 that is too short is refused with the count still needed, a long enough one or a
voice note is recorded, a second 补学 is refused politely; /report shows 出席 and 补学 apart. /xuexi
by topic, newest first, paged, searched; a material opened again by its Telegram file_id (never
downloaded); a library-only photo under a new topic; who may not add.

In core with a given clock (SQLite and PostgreSQL): materials attached before the session go once
its check-in closes (the leader's sweep, once each), the 30-day list, the refusals, the search's
scope and escaping, the command centre's split over HTTP, the registry's library with file and line.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.access.permissions import NotAllowed
from core.config import Settings
from core.db import session_scope
from core.duties import attendance, events, reports
from core.messaging import prompts
from core.models import (
    AuditEntry,
    Branch,
    EventKind,
    EventOccurrence,
    MaterialKind,
    OutboxMessage,
    Person,
    StudyCatchUp,
    StudyMaterial,
    utcnow,
)
from core.registry.importer import ImportFailed, import_registry
from core.scheduler import DutyScheduler
from core.study import buttons as study_buttons
from core.study import catchup, library, materials
from core.tickets.rate_reports import month_of
from tests.app.centre_helpers import link_for, sign_in
from tests.app.conftest import DEMO
from tests.app.journey import Journey, journey
from tests.app.web_server import serving

NO_RASA = "http://127.0.0.1:9"  # nothing here reaches Rasa
TZ = Settings().tz
SECRETARY = 700000001  # P-0001, secretary of BR-HPL-01 (和平里第一网格党支部)
CHECKED_IN = (700000001, 700000002, 700000003, 700000004)  # P-0001..P-0004
ON_LEAVE, ABSENT, ABSENT_2 = 700000005, 700000006, 700000007  # P-0005 (请假), P-0006, P-0007
NEIGHBOUR = 700000072  # P-0072, a resident of G-HPL-01, not a party member
QNH_MEMBER = 700000032  # P-0032, member of BR-QNH-01 (青年湖)
ADMIN = 700000069  # P-0069, community admin of 和平里社区
LONG_NOTE = ("通过补学这次学习会的材料，我进一步理解了网格化治理中党员的责任。今后我会主动认领楼栋，"
             "多走访独居老人，及时把居民反映的问题报给网格，做到件件有回音。")


def who(s: Session, telegram_id: int) -> Person:
    return s.scalars(select(Person).where(Person.telegram_id == telegram_id)).one()


def names(factory: sessionmaker[Session], *telegram_ids: int) -> list[str]:
    with session_scope(factory) as s:
        return [who(s, i).display_name for i in telegram_ids]


def held_session(factory: sessionmaker[Session], start: datetime, title: str = "学习会：基层治理") -> int:
    """A study session of BR-HPL-01 at `start`: P-0001..P-0004 checked in, P-0005 on leave,
    P-0006 and P-0007 did not come; its occurrence id."""
    with session_scope(factory) as s:
        secretary = who(s, SECRETARY)
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        event = events.create_event(s, secretary, branch_id=branch.id, kind=EventKind.study, title=title,
                                    place="社区党群服务中心", starts_at=start, tz=TZ.key, now=start - timedelta(days=1),
                                    notify=False)
        occ = s.scalars(select(EventOccurrence).where(EventOccurrence.event_id == event.id)).one()
        attendance.rsvp(s, occ.id, who(s, ON_LEAVE), False, "出差", now=start - timedelta(hours=5))
        for telegram_id in CHECKED_IN:
            attendance.check_in(s, occ.id, who(s, telegram_id), now=start + timedelta(minutes=5))
        return occ.id


def keyboard(j: Journey, chat_id: int) -> list[str]:
    return [b["text"] for b in j.fake.last_keyboard(chat_id)]


def documents_to(j: Journey, chat_id: int) -> list[str]:
    return [str(c.params.get("document")) for c in j.fake.calls_to("sendDocument", chat_id) if c.ok]


# -- through the real Application --------------------------------------------------------------

def test_materials_after_a_session_and_catching_up(sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory
    occurrence_id = held_session(factory, utcnow().replace(second=0, microsecond=0) - timedelta(hours=3))
    leave_name, absent_name, absent_2_name = names(factory, ON_LEAVE, ABSENT, ABSENT_2)

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            # /report: attendance recorded, nobody caught up yet; 资料 under the meeting
            report = "\n".join(await j.say(SECRETARY, "/report"))
            assert f"未出席也未补学：{leave_name}、{absent_name}、{absent_2_name}" in report, report
            assert "补学：无" in report and "没有30天未出席也未补学的党员" in report
            [ask] = await j.press(SECRETARY, SECRETARY, "📎 资料：学习会：基层治理")
            assert ask.startswith("资料附到：学习会：基层治理") and "一个文件" in ask, ask
            # a document, then its topic (the library's topics offered, or none)
            update = j.updates.kind(SECRETARY, "document", caption="会议讲话稿")
            assert update.message is not None and update.message.document is not None
            file_id = update.message.document.file_id
            [topic] = await j.step(update, SECRETARY)
            assert "哪个主题" in topic and {"基层治理", "支部工作", "不放入资料库（只附在这次活动）"} <= set(keyboard(j, SECRETARY))
            [added] = await j.press(SECRETARY, SECRETARY, "基层治理")
            assert "✅ 已添加：会议讲话稿（文件）" in added and "资料库主题：基层治理" in added, added
            assert "已发给未出席和请假的3人补学" in added, added
            for member in (ON_LEAVE, ABSENT, ABSENT_2):
                assert documents_to(j, member) == [file_id]  # the secretary's own file, by its file_id
                assert "【补学】学习会：基层治理" in j.texts(member)[-1] and keyboard(j, member) == ["已学（补学）"]
            for member in CHECKED_IN[1:]:
                assert not documents_to(j, member) and not any("补学" in x for x in j.texts(member))
            # a second material, a link kept out of the library: each absent member gets it, not a second button
            await j.press(SECRETARY, SECRETARY, "再添加一份")
            await j.say(SECRETARY, "参考资料 https://www.12371.cn/")
            [added] = await j.press(SECRETARY, SECRETARY, "不放入资料库（只附在这次活动）")
            assert "参考资料（链接）" in added and "没有放入资料库" in added and "3人" in added, added
            for member in (ON_LEAVE, ABSENT, ABSENT_2):
                assert j.texts(member)[-1] == "🔗 参考资料\nhttps://www.12371.cn/"
                assert sum("【补学】" in x for x in j.texts(member)) == 1
            # 补学: too short is refused with the count needed, the question stays open
            [asked] = await j.press(ON_LEAVE, ON_LEAVE, "已学（补学）")
            assert asked == "请写下这次学习的心得（至少50个字），或直接发一段语音。发“取消”可以稍后再交。"
            [short] = await j.say(ON_LEAVE, "学习了，很有收获")
            assert short == "心得至少要50个字，您写了8个字，还差42个字。请再写一些，或发一段语音。"
            assert j.prompt(ON_LEAVE) is not None
            [done] = await j.say(ON_LEAVE, LONG_NOTE)
            assert done.startswith("✅ 已记录补学：学习会：基层治理"), done
            # a second 补学 of the same session: refused politely, nothing recorded twice
            [again] = await j.press(ON_LEAVE, ON_LEAVE, "已学（补学）")
            assert "补学过这次活动了，不用再交，谢谢！" in again, again
            # a voice note instead of a text
            await j.press(ABSENT, ABSENT, "已学（补学）")
            [voiced] = await j.step(j.updates.kind(ABSENT, "voice"), ABSENT)
            assert voiced.startswith("✅ 已记录补学"), voiced
            # /report: 出席 and 补学 apart
            report = "\n".join(await j.say(SECRETARY, "/report"))
            assert f"补学：{leave_name}、{absent_name}" in report and f"未出席也未补学：{absent_2_name}" in report, report
            assert "出席4人次，补学2人次，未出席也未补学1人次" in report, report
            # the library: a member who came opens the document, sent again by its file_id
            await j.say(CHECKED_IN[2], "/xuexi")
            [page] = await j.press(CHECKED_IN[2], CHECKED_IN[2], "基层治理（3）")
            assert page.splitlines()[1].endswith("会议讲话稿（文件）"), page  # the newest first
            await j.press(CHECKED_IN[2], CHECKED_IN[2], "1. 会议讲话稿")
            assert documents_to(j, CHECKED_IN[2]) == [file_id]
            assert not j.fake.calls_to("getFile")  # never downloaded
        with session_scope(factory) as s:
            rows = {who(s, i).id: i for i in (ON_LEAVE, ABSENT)}
            done = list(s.scalars(select(StudyCatchUp).where(StudyCatchUp.occurrence_id == occurrence_id)))
            assert {rows[r.person_id] for r in done} == {ON_LEAVE, ABSENT}
            by = {rows[r.person_id]: r for r in done}
            assert by[ON_LEAVE].note == LONG_NOTE and by[ABSENT].voice_file_id and by[ABSENT].note is None
            assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "study.add")) == 2
            # one message per material and person, one button per person
            keys = set(s.scalars(select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.like("study-%"))))
            assert len(keys) == 3 * 3

    asyncio.run(scenario())


def test_the_library_by_topic_search_pages_and_who_sees_it(sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory
    member = CHECKED_IN[1]
    with session_scope(factory) as s:  # eight more under one topic: two pages
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        for n in range(8):
            materials.add(s, who(s, SECRETARY), branch_id=branch.id, topic="党史",
                          content=materials.content_of(f"党史学习第{n + 1}讲\n提纲"),
                          now=datetime(2026, 11, 10, tzinfo=timezone.utc) + timedelta(days=n))

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            [menu] = await j.say(member, "/xuexi")
            assert menu.startswith("📚 党员学习资料库（和平里第一网格党支部）：共14份"), menu
            shown = keyboard(j, member)
            assert shown[0] == "党史（8）" and "基层治理（2）" in shown and "🔍 搜索" in shown
            assert "➕ 添加资料" not in shown  # members read, secretaries add
            [first] = await j.press(member, member, "党史（8）")
            assert first.startswith("📚 党史：8份（第1/2页，最新在前）") and "1. 11月17日 党史学习第8讲（文字）" in first, first
            assert "下一页 ▶" in keyboard(j, member) and "◀ 上一页" not in keyboard(j, member)
            [second] = await j.press(member, member, "下一页 ▶")
            assert "（第2/2页" in second and "7. 11月11日 党史学习第2讲" in second and "8. 11月10日 党史学习第1讲" in second
            assert "◀ 上一页" in keyboard(j, member)
            await j.press(member, member, "8. 党史学习第1讲")
            assert j.texts(member)[-1] == "📄 党史学习第1讲\n提纲"
            # search: /xuexi with words, and by the button; only what the branch may read
            [found] = await j.say(member, "/xuexi 走访")
            assert found.startswith("🔍 “走访”：找到1份") and "网格化治理" in found, found
            [home] = await j.press(member, member, "↩ 返回主题")
            assert home.startswith("📚 党员学习资料库")
            [asked] = await j.press(member, member, "🔍 搜索")
            assert asked.startswith("请输入要搜索的词")
            [found] = await j.say(member, "议事 步骤")
            assert "找到1份" in found and "协商议事的六个步骤" in found, found
            [none] = await j.say(member, "/xuexi 区块链")
            assert none.startswith("🔍 “区块链”：没有找到")
            # 青年湖's member finds 青年湖's notes, not 和平里's
            [theirs] = await j.say(QNH_MEMBER, "/xuexi 走访")
            assert "入户走访的五个要点" in theirs and "网格化治理" not in theirs, theirs
            # a resident is not a party member: told how to join
            [told] = await j.say(NEIGHBOUR, "/xuexi")
            assert told.startswith("学习资料库是给党员的")
            # a member may not add, even with a button the bot issued to someone else
            j.fake.clear()
            got = await j.step(j.updates.callback_query(member, j.issue(study_buttons.data(study_buttons.ADD)), None), member)
            assert any("您没有权限" in str(c.params.get("text")) for c in j.fake.calls_to("answerCallbackQuery")), got

    asyncio.run(scenario())


def test_a_library_only_photo_under_a_new_topic_and_refusals(sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory
    held_session(factory, utcnow().replace(second=0, microsecond=0) + timedelta(days=2), title="支部党员大会")

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            await j.say(SECRETARY, "/xuexi")
            assert "➕ 添加资料" in keyboard(j, SECRETARY)
            [pick] = await j.press(SECRETARY, SECRETARY, "➕ 添加资料")
            assert pick == "把资料附到哪次活动？也可以只放入资料库。"
            assert any(b.endswith("支部党员大会") for b in keyboard(j, SECRETARY)), keyboard(j, SECRETARY)
            await j.press(SECRETARY, SECRETARY, "只放入资料库：和平里第一网格党支部")
            [long] = await j.say(SECRETARY, "很" * 3501)  # too long for one message: asked again
            assert "文字太长了（3501字）" in long and j.prompt(SECRETARY) is not None
            [topic] = await j.photo(SECRETARY, "PHOTO-LIB-1", "支部活动照片")
            assert "哪个主题" in topic and "不放入资料库（只附在这次活动）" not in keyboard(j, SECRETARY)
            [bad] = await j.say(SECRETARY, "一" * 21)
            assert bad == "主题请用1到20个字。" and j.prompt(SECRETARY) is not None
            [added] = await j.say(SECRETARY, "活动风采")
            assert "✅ 已添加：支部活动照片（照片）" in added and "资料库主题：活动风采" in added
            assert "补学" not in added  # nobody is sent a library-only material
            # a material for the coming session: it goes once attendance is recorded
            await j.say(SECRETARY, "/xuexi")
            await j.press(SECRETARY, SECRETARY, "➕ 添加资料")
            session_button = next(b for b in keyboard(j, SECRETARY) if b.endswith("支部党员大会"))
            await j.press(SECRETARY, SECRETARY, session_button)
            await j.say(SECRETARY, "会前请阅读：年度工作总结（草稿）")
            [added] = await j.press(SECRETARY, SECRETARY, "不放入资料库（只附在这次活动）")
            assert "签到结束后，会发给未出席和请假的党员补学" in added, added
            assert not any("会前请阅读" in x for x in j.texts(ABSENT))
            # the photo in the library, sent again by its file_id
            await j.say(CHECKED_IN[1], "/xuexi")
            await j.press(CHECKED_IN[1], CHECKED_IN[1], "活动风采（1）")
            await j.press(CHECKED_IN[1], CHECKED_IN[1], "1. 支部活动照片")
            [photo] = j.fake.calls_to("sendPhoto", CHECKED_IN[1])
            assert photo.params["photo"] == "PHOTO-LIB-1" and photo.params["caption"] == "📎 支部活动照片"
            # 取消 leaves nothing behind
            await j.say(SECRETARY, "/xuexi")
            await j.press(SECRETARY, SECRETARY, "➕ 添加资料")
            await j.press(SECRETARY, SECRETARY, "只放入资料库：和平里第一网格党支部")
            assert await j.say(SECRETARY, "取消") == ["好的，没有添加。"] and j.prompt(SECRETARY) is None
        with session_scope(factory) as s:
            assert s.scalar(select(func.count()).select_from(StudyMaterial).where(StudyMaterial.code.is_(None))) == 2

    asyncio.run(scenario())


# -- core, with a given clock (SQLite and PostgreSQL) ----------------------------------------------

T0 = datetime(2026, 11, 20, 11, 0, tzinfo=timezone.utc)  # 19:00 in Beijing


def test_materials_before_the_session_go_once_its_check_in_closes(demo_factory: sessionmaker[Session]) -> None:
    factory = demo_factory
    occurrence_id = held_session(factory, T0)
    with session_scope(factory) as s:
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        materials.add(s, who(s, SECRETARY), branch_id=branch.id, occurrence_id=occurrence_id, topic=None,
                      content=materials.content_of("会前阅读：网格工作手册"), now=T0 - timedelta(days=1))
    assert catchup.leader_round(factory, T0 + timedelta(minutes=59)) == 0  # check-in still open
    assert catchup.leader_round(factory, T0 + timedelta(minutes=61)) == 3  # P-0005, P-0006, P-0007
    assert catchup.leader_round(factory, T0 + timedelta(minutes=62)) == 0  # once
    with session_scope(factory) as s:
        sent = {m.dedupe_key: m for m in s.scalars(select(OutboxMessage).where(OutboxMessage.dedupe_key.like("study-%")))}
        assert len(sent) == 6
        intro = next(m for k, m in sent.items() if k.startswith("study-catchup:"))
        assert intro.payload["text"].startswith("📚【补学】学习会：基层治理（11月20日（周五）19:00）您没有出席")
        # a material attached later goes on its own: no second 已学 button
        materials.add(s, who(s, SECRETARY), branch_id=branch.id, occurrence_id=occurrence_id, topic="基层治理",
                      content=materials.content_of("会后补充：讨论记录"), now=T0 + timedelta(hours=3))
        occ = s.get(EventOccurrence, occurrence_id)
        assert occ is not None
        assert catchup.deliver(s, occ, T0 + timedelta(hours=3)) == 3
        keys = list(s.scalars(select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.like("study-%"))))
        assert len(keys) == 9 and sum(k.startswith("study-catchup:") for k in keys) == 3


def test_the_scheduler_leader_sends_them(engine: Engine, demo_factory: sessionmaker[Session]) -> None:
    """DutyScheduler.sync runs the round (a session ahead of the real clock: the leader's own
    rounds in its thread find nothing to send yet)."""
    start = utcnow().replace(second=0, microsecond=0) + timedelta(days=1)
    occurrence_id = held_session(demo_factory, start)
    with session_scope(demo_factory) as s:
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        materials.add(s, who(s, SECRETARY), branch_id=branch.id, occurrence_id=occurrence_id, topic=None,
                      content=materials.content_of("会前阅读：网格工作手册"), now=start - timedelta(hours=1))
    sched = DutyScheduler(engine.url.render_as_string(hide_password=False), tz=TZ, sync_interval=3600,
                          poll_interval=0.2)
    sched.start()
    try:
        assert sched.wait_until_leader(10)
        sched.sync(start + timedelta(minutes=61))
    finally:
        sched.stop()
    with session_scope(demo_factory) as s:
        keys = set(s.scalars(select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.like("study-%"))))
        assert len(keys) == 6 and s.scalars(select(StudyMaterial.delivered_at)
                                            .where(StudyMaterial.occurrence_id == occurrence_id)).one() is not None


def test_catch_up_rules_and_the_thirty_day_list(demo_factory: sessionmaker[Session]) -> None:
    factory = demo_factory
    occurrence_id = held_session(factory, T0)
    later = T0 + timedelta(days=2)
    with session_scope(factory) as s:
        with pytest.raises(NotAllowed, match="活动还没开始"):
            catchup.check(s, occurrence_id, who(s, ON_LEAVE), T0 - timedelta(minutes=1))
        with pytest.raises(NotAllowed, match="您出席了这次活动"):
            catchup.check(s, occurrence_id, who(s, CHECKED_IN[1]), later)
        with pytest.raises(NotAllowed, match="不在您的安排里"):
            catchup.check(s, occurrence_id, who(s, NEIGHBOUR), later)
        with pytest.raises(catchup.NoteTooShort, match="您写了4个字，还差6个字"):  # spaces are not counted
            catchup.record(s, occurrence_id, who(s, ON_LEAVE), note="学 习 心 得\n", min_chars=10, now=later)
        catchup.record(s, occurrence_id, who(s, ON_LEAVE), note="学习心得写满十个字了", min_chars=10, now=later)
        with pytest.raises(NotAllowed, match="补学过这次活动了"):
            catchup.record(s, occurrence_id, who(s, ON_LEAVE), voice_file_id="VOICE", min_chars=10, now=later)
        # 30 days on: whoever has neither is listed for the secretary
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        assert catchup.overdue(s, branch.id, T0 + timedelta(days=29)) == []
        month_on = T0 + timedelta(days=31)
        listed = [(p.telegram_id, o.id) for p, o in catchup.overdue(s, branch.id, month_on)]
        assert listed == [(ABSENT, occurrence_id), (ABSENT_2, occurrence_id)]
        text = catchup.overdue_text(s, branch.name, branch.id, month_on)
        assert text.startswith("⚠️ 和平里第一网格党支部：30天未出席也未补学（2人次）") and "学习会：基层治理（11月20日" in text
        catchup.record(s, occurrence_id, who(s, ABSENT), voice_file_id="VOICE-2", min_chars=10, now=month_on)
        assert [p.telegram_id for p, _ in catchup.overdue(s, branch.id, month_on)] == [ABSENT_2]
        assert catchup.overdue(s, branch.id, T0 + timedelta(days=121)) == []
        # the month: 出席 and 补学 apart
        summary = reports.summarise(s, branch, 2026, 11, now=month_on, tz=TZ)
        assert (summary.total.attended, summary.total.caught_up, summary.total.neither) == (4, 2, 1)
        # a cancelled session asks for nothing
        occ = s.get(EventOccurrence, occurrence_id)
        assert occ is not None
        occ.cancelled = True
        with pytest.raises(NotAllowed, match="已取消"):
            catchup.check(s, occurrence_id, who(s, ABSENT_2), month_on)


def test_search_is_scoped_and_takes_words_literally(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        materials.add(s, who(s, SECRETARY), branch_id=branch.id, topic="其他",
                      content=materials.content_of("完成率100%_整改清单"), now=T0)
        materials.add(s, who(s, SECRETARY), branch_id=branch.id, topic="其他",
                      content=materials.content_of("完成率1000整改清单"), now=T0)
        shelf = library.shelf_of(s, who(s, CHECKED_IN[1]))
        assert [m.title for m in library.page_of(s, shelf, query="100%_").items] == ["完成率100%_整改清单"]
        assert library.page_of(s, shelf, query="整改 清单").total == 2
        assert library.page_of(s, shelf, query="XUEXI.CN").total == 1  # case-insensitive, the link too
        assert library.page_of(s, library.shelf_of(s, who(s, QNH_MEMBER)), query="整改").total == 0
        admin = library.shelf_of(s, who(s, ADMIN))  # every branch of 和平里, one set of community items
        assert len(admin.branches) == 4 and library.count(s, admin) == 8
        mine = library.page_of(s, shelf, query="整改").items[0]
        with pytest.raises(NotAllowed, match="找不到"):
            library.material_for(s, who(s, QNH_MEMBER), mine.id)
        assert library.material_for(s, who(s, ADMIN), mine.id) is mine


def test_what_a_material_is_made_of() -> None:
    link = materials.content_of("参考：\nhttps://www.12371.cn/2026/zt 学习专题")
    assert (link.kind, link.url, link.title) == (MaterialKind.link, "https://www.12371.cn/2026/zt", "参考")
    text = materials.content_of("  第一行是标题\n第二行是内容  ")
    assert (text.kind, text.title, text.body) == (MaterialKind.text, "第一行是标题", "第一行是标题\n第二行是内容")
    doc = materials.content_of(None, document="DOC-1", file_name="讲话稿.pdf")
    assert (doc.kind, doc.title, doc.file_id) == (MaterialKind.document, "讲话稿.pdf", "DOC-1")
    assert materials.Content.from_dict(json.loads(json.dumps(doc.as_dict()))) == doc
    with pytest.raises(NotAllowed, match="资料不能为空"):
        materials.content_of("   ")
    with pytest.raises(NotAllowed, match="主题请用1到20个字"):
        materials.clean_topic("  ")


# -- the command centre (over HTTP) ----------------------------------------------------------------

@pytest.fixture
def site(demo_factory: sessionmaker[Session], tmp_path: Path) -> Iterator[str]:
    with serving(Settings(web_cookie_secure=False), demo_factory, media_dir=tmp_path / "media") as base:
        yield base


def test_the_centre_shows_attendance_and_catch_up_apart(demo_factory: sessionmaker[Session], site: str) -> None:
    now = utcnow()
    month_start, _ = month_of(now, TZ)
    start = max(now - timedelta(hours=2), month_start + timedelta(minutes=1)).replace(microsecond=0)
    occurrence_id = held_session(demo_factory, start)
    with session_scope(demo_factory) as s:
        catchup.record(s, occurrence_id, who(s, ON_LEAVE), note=LONG_NOTE, min_chars=50, now=start + timedelta(hours=1))
    with httpx.Client(base_url=site, timeout=30, follow_redirects=False) as c:
        sign_in(c, link_for(demo_factory, "P-0069", site))  # the community admin of 和平里
        html = c.get("/centre/cogov").text
    assert "组织生活：出席与补学" in html
    row = html.split("<td>和平里第一网格党支部</td>")[1].split("</tr>")[0]
    assert '<td>1</td><td>7</td><td class="attended">4（57%）</td><td class="caught-up">1（14%）</td>' in row, row
    assert '<td class="neither">2</td>' in row
    assert "青年湖" not in html.split('id="study"')[1]


# -- the registry's library -------------------------------------------------------------------------

def test_the_registry_library_with_file_and_line(factory: sessionmaker[Session], tmp_path: Path) -> None:
    registry = (DEMO / "registry.yml").read_text(encoding="utf-8")
    bad = registry.replace("    kind: link\n    title: 学习强国学习平台\n    url: https://www.xuexi.cn/",
                            "    kind: link\n    title: 学习强国学习平台\n    url: www.xuexi.cn", 1)
    bad = bad.replace("  - code: LIB-QNH-03\n    community: C-QNH\n", "  - code: LIB-QNH-03\n    community: C-QNH\n"
                      "    branch: BR-NOPE\n", 1)
    assert bad != registry
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "registry.yml").write_text(bad, encoding="utf-8")
    (folder / "grids.geojson").write_text((DEMO / "grids.geojson").read_text(encoding="utf-8"), encoding="utf-8")
    with session_scope(factory) as s, pytest.raises(ImportFailed) as failed:
        import_registry(s, [folder])
    lines = bad.splitlines()
    problems = [str(p) for p in failed.value.problems]
    xuexi = lines.index("  - code: LIB-HPL-02") + 1
    qnh = lines.index("  - code: LIB-QNH-03") + 1
    assert f"{folder / 'registry.yml'}:{xuexi}: library item LIB-HPL-02: url 'www.xuexi.cn' is not an http(s) link" in problems
    assert f"{folder / 'registry.yml'}:{qnh}: library item LIB-QNH-03: unknown branch 'BR-NOPE' in branch" in problems
    assert any(p.startswith(f"{folder / 'registry.yml'}:{qnh}: library item LIB-QNH-03: give community") for p in problems)
    with session_scope(factory) as s:
        import_registry(s, [DEMO])
    with session_scope(factory) as s:
        assert import_registry(s, [DEMO]).changes == 0
        rows = {m.code: m for m in s.scalars(select(StudyMaterial))}
        assert len(rows) == 9 and rows["LIB-BR-HPL-01-01"].branch_id is not None
        assert rows["LIB-HPL-05"].created_at == datetime(2026, 11, 2, tzinfo=timezone.utc)
        assert rows["LIB-QNH-01"].kind is MaterialKind.link and rows["LIB-QNH-01"].branch_id is None


def test_prompt_kind_is_known() -> None:
    assert prompts.STUDY in prompts.KINDS
