"""双报到 (/baodao) and 附近的党组织 (/dangzuzhi) through the real Application (fake Telegram):
registration by buttons and typed names, approval by the grid's secretary, decline with a reason
by a community admin, every refusal; the 在职党员 role afterwards (claims the grid's tickets, signs
up for shifts, receives member notices, on the roster, not a branch member, kept by a re-import);
the ledger in `gridbot stats`; navigation by place name and by shared location; the registry's
units, organisations and service centres with FILE:LINE errors."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.access.permissions import NotAllowed, roles_at, scope_of_grid
from core.baodao import ledger, navigation, registration
from core.broadcasts import service as broadcasts
from core.db import session_scope
from core.duties import shifts
from core.models import (
    AuditEntry,
    BaodaoRegistration,
    Branch,
    BranchMember,
    BroadcastAudience,
    Building,
    PartyOrganisation,
    Person,
    RegistrationStatus,
    Role,
    ServiceCentre,
    Shift,
    Ticket,
    TicketStatus,
    WorkUnit,
    utcnow,
)
from core.registry.importer import ImportFailed, import_registry
from core.tickets import service as ticket_service
from tests.app.conftest import DEMO
from tests.app.journey import Journey, journey
from tests.app.test_rates import gridbot
from tests.app.test_secretary_bot import BRANCH_CHAT, NEWCOMER, new_ticket

NO_RASA = "http://127.0.0.1:9"  # none of these flows reaches Rasa
SECRETARY, MEMBER = 700000001, 700000002  # P-0001 secretary, P-0002 member of BR-HPL-01 (G-HPL-01)
ADMIN = 700000069  # P-0069, community admin of 和平里社区
OTHER_ADMIN = 700000070  # P-0070, community admin of 青年湖社区
RESIDENT = 700000071  # P-0071 戴春生, lives in B-HPL-01-09 (G-HPL-01)
NEIGHBOUR = 700000072  # P-0072, lives in B-HPL-01-07 (G-HPL-01)


def who(s: Session, telegram_id: int) -> Person:
    return s.scalars(select(Person).where(Person.telegram_id == telegram_id)).one()


def keyboard(j: Journey, chat_id: int) -> list[str]:
    message = j.fake.last_message(chat_id) or {}
    return [b["text"] for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


async def register(j: Journey, user: int) -> None:
    """/baodao to the end: an organisation by button, the unit typed, two tags, 提交."""
    [ask] = await j.say(user, "/baodao")
    assert "第1步" in ask and "居住地：" in ask, ask
    assert "和平医院党委" in keyboard(j, user) and "取消" in keyboard(j, user)
    got = await j.press(user, user, "和平医院党委")
    assert got[0] == "和平医院党委" and "第2步" in got[-1], got  # the step shows its answer, loses its buttons
    assert "和平医院" in keyboard(j, user)
    [tags] = await j.say(user, "  和平医院  ")  # typed, not the button
    assert "第3步" in tags and {"医疗", "法律", "周末", "提交"} <= set(keyboard(j, user))
    await j.press(user, user, "医疗")
    await j.press(user, user, "法律")
    assert "✅医疗" in keyboard(j, user) and "✅法律" in keyboard(j, user)
    await j.press(user, user, "✅法律")  # pressed again: off
    await j.press(user, user, "周末")
    [done] = await j.press(user, user, "提交")
    assert "已提交报到申请" in done and "党组织：和平医院党委" in done and "工作单位：和平医院" in done, done
    assert "服务：医疗、周末" in done, done
    assert j.prompt(user) is None


def test_register_approve_and_what_the_member_may_do(sqlite_demo_factory: sessionmaker[Session],
                                                       sqlite_engine: Engine) -> None:
    factory = sqlite_demo_factory
    ticket_id, number = new_ticket(factory)

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            await j.drain()
            await register(j, RESIDENT)
            # the grid's secretary and the community's admin are asked, with 同意 / 不同意
            for decider in (SECRETARY, ADMIN):
                assert "【双报到待审核】" in j.texts(decider)[-1] and "戴春生" in j.texts(decider)[-1]
                assert keyboard(j, decider) == ["同意", "不同意"]
            assert not any("双报到" in x for x in j.texts(OTHER_ADMIN))  # another community's admin is not
            # a second /baodao while it waits
            assert await j.say(RESIDENT, "/baodao") == ["您的报到申请正在审核，请耐心等待结果。"]
            # a member of the branch may not decide (a press on the secretary's button)
            refused = await j.press(MEMBER, SECRETARY, "同意")
            assert any("您没有权限" in x for x in refused), refused
            got = await j.press(SECRETARY, SECRETARY, "同意")
            assert any("已同意：戴春生 成为本网格的在职党员（报到）" in x for x in got), got
            assert "您的双报到已通过" in j.texts(RESIDENT)[-1]
            # the admin's copy is now stale: refused with the state
            late = await j.press(ADMIN, ADMIN, "不同意")
            assert any("已经处理过了（已通过）" in x for x in late), late
            assert await j.say(RESIDENT, "/baodao") == ["您已经在居住地报到过了，不用重复报到。"]
            # the roster shows them as 在职党员（报到）
            [roster] = await j.say(SECRETARY, "/roster")
            assert "和平里第一网格党支部 党员名单" in roster and "董国华（书记）" in roster, roster
            assert "戴春生（在职党员（报到））和平医院党委；服务：医疗、周末" in roster, roster
            assert await j.say(RESIDENT, "/roster") == ["您没有可查看的支部名单。"]
            # 领单 on the grid's ticket card in the branch group
            await j.press(RESIDENT, BRANCH_CHAT, "领单")
        with session_scope(factory) as s:
            person = who(s, RESIDENT)
            assert s.get(Ticket, ticket_id).status is TicketStatus.claimed
            assert s.get(Ticket, ticket_id).claimed_by_id == person.id
            home = s.get(Building, person.building_id)
            held = roles_at(s, person, scope_of_grid(s, home.grid_id))
            assert Role.dual_member in held and Role.member not in held
            # not a branch member: not in 三会一课 attendance
            assert s.scalar(select(func.count()).select_from(BranchMember).where(
                BranchMember.person_id == person.id)) == 0
            branch = s.scalars(select(Branch).where(Branch.grid_id == home.grid_id)).one()
            # the grid's member notices reach them
            scope = scope_of_grid(s, home.grid_id)
            assert person.id in {pid for pid, _ in broadcasts.recipients(s, BroadcastAudience.members, scope,
                                                                         essential=False)}
            # a volunteer shift of the branch: eligible, signs up
            now = utcnow()
            shift = Shift(community_id=scope.community_id, branch_id=branch.id, title="卡口执勤", place="东门",
                          starts_at=now + timedelta(hours=2), ends_at=now + timedelta(hours=5), capacity=3)
            s.add(shift)
            s.flush()
            assert person in shifts.eligible_for_shift(s, shift)
            shifts.sign_up(s, shift.id, person, now=now)
            ticket_service.resolve(s, ticket_id, person, "已联系车主挪车")
            # the audit: submitted and approved, by whom
            actions = {(e.action, e.actor_id) for e in s.scalars(select(AuditEntry).where(
                AuditEntry.action.like("baodao.%")))}
            assert actions == {("baodao.submit", person.id), ("baodao.approve", who(s, SECRETARY).id)}
            # the ledger: 3 h of shift and one resolved ticket (1 h)
            per_grid, per_community = ledger.ledger(s, now - timedelta(days=1), now + timedelta(days=1))
            [g1] = [e for e in per_grid if e.code == "G-HPL-01"]
            assert (g1.members, g1.shift_hours, g1.tickets, g1.hours) == (1, 3.0, 1, 4.0)
            [hpl] = [e for e in per_community if e.code == "C-HPL"]
            assert (hpl.members, hpl.hours) == (1, 4.0)
            assert all(e.members == 0 for e in per_grid if e.code != "G-HPL-01")
            # a registry re-import keeps the 在职党员 (they joined by 报到, not through the registry)
            import_registry(s, [DEMO])
            assert Role.dual_member in roles_at(s, person, scope_of_grid(s, home.grid_id))
        # `gridbot stats`: the ledger per grid and community
        url = sqlite_engine.url.render_as_string(hide_password=False)
        month = utcnow().strftime("%Y-%m")
        result = gridbot(["stats", "--month", month, "--community", "C-HPL", "--json"], url)
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)["baodao"]
        assert [c["code"] for c in data["communities"]] == ["C-HPL"]
        [row] = [g for g in data["grids"] if g["code"] == "G-HPL-01"]
        assert row["members"] == 1 and row["tickets_resolved"] == 1 and row["hours"] >= 1.0
        table = gridbot(["stats", "--month", month], url)
        assert table.returncode == 0 and "双报到" in table.stdout and "C-QNH" in table.stdout

    asyncio.run(scenario())


def test_decline_with_a_reason_and_every_refusal(sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            # unknown to the bot; known but bound to no building; already a member of the branch
            assert await j.say(NEWCOMER, "/baodao") == ["系统里还没有您的信息，请先发送 /start 登记。"]
            assert await j.say(ADMIN, "/baodao") == ["请先发送 /start 登记您住的楼栋，再来报到。"]
            assert await j.say(MEMBER, "/baodao") == ["您已是和平里第一网格党支部的党员，不需要双报到。"]
            # typed names: too long is asked again; 取消 ends it
            await j.say(NEIGHBOUR, "/baodao")
            [long] = await j.say(NEIGHBOUR, "某" * 61)
            assert "名称太长了" in long and j.prompt(NEIGHBOUR) is not None
            assert await j.say(NEIGHBOUR, "取消") == ["已取消报到。需要时再发 /baodao。"]
            assert j.prompt(NEIGHBOUR) is None
            # the 取消 button, and a stale button of the cancelled draft
            await j.say(NEIGHBOUR, "/baodao")
            got = await j.press(NEIGHBOUR, NEIGHBOUR, "取消")
            assert "已取消报到" in got[0], got
            # a full registration, typed organisation, no tags
            await j.say(NEIGHBOUR, "/baodao")
            await j.say(NEIGHBOUR, "市交通委机关党委")
            await j.press(NEIGHBOUR, NEIGHBOUR, "和平里小学")
            [typed] = await j.say(NEIGHBOUR, "随便写点")  # the last step takes buttons
            assert "请点上面的按钮" in typed
            [done] = await j.press(NEIGHBOUR, NEIGHBOUR, "提交")
            assert "市交通委机关党委" in done and "服务：未选" in done, done
            # the admin declines: a reason is asked; 取消 leaves it pending
            await j.press(ADMIN, ADMIN, "不同意")
            assert j.texts(ADMIN)[-1] == "请输入不同意的理由（会告诉申请人）："
            assert await j.say(ADMIN, "取消") == ["好的，这条报到先不处理。"]
            await j.press(ADMIN, ADMIN, "不同意")
            [declined] = await j.say(ADMIN, "经核实不住本小区")
            assert "已不同意" in declined
            assert "理由：经核实不住本小区" in j.texts(NEIGHBOUR)[-1]
            # the secretary's copy of the same registration is decided now
            late = await j.press(SECRETARY, SECRETARY, "同意")
            assert any("已经处理过了（未通过）" in x for x in late), late
        with session_scope(factory) as s:
            row = s.scalars(select(BaodaoRegistration).where(
                BaodaoRegistration.person_id == who(s, NEIGHBOUR).id)).one()
            assert row.status is RegistrationStatus.declined and row.reason == "经核实不住本小区"
            assert row.organisation_id is None  # typed: not in the registry
            assert row.work_unit_id == s.scalars(select(WorkUnit.id).where(WorkUnit.code == "U-HPS")).one()
            assert Role.dual_member not in roles_at(s, who(s, NEIGHBOUR), scope_of_grid(s, row.grid_id))
            assert s.scalars(select(AuditEntry.action).where(AuditEntry.subject == f"baodao:{row.id}")).all() == [
                "baodao.submit", "baodao.decline"]
            # core refusals the buttons cannot reach: no reason, an unknown tag, another community's admin
            with pytest.raises(NotAllowed, match="没有“游泳”"):
                registration.submit(s, who(s, NEIGHBOUR), organisation="甲", work_unit="乙", tags=["游泳"])
            again = registration.submit(s, who(s, NEIGHBOUR), organisation="甲", work_unit="乙", tags=[])
            with pytest.raises(NotAllowed, match="请写明理由"):
                registration.decide(s, who(s, ADMIN), again.id, approve=False, reason="  ")
            with pytest.raises(NotAllowed, match="您没有权限"):
                registration.decide(s, who(s, OTHER_ADMIN), again.id, approve=True)

    asyncio.run(scenario())


def test_nearest_party_organisations_by_name_and_by_location(sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            # the words alone: asked for a place; a shared location answers
            assert await j.say(RESIDENT, "附近的党组织") == [
                "想找哪里附近的党组织？请发送位置（📎 → 位置），或输入地名，比如“和平里东门”。"]
            [near] = await j.step(j.updates.location(RESIDENT, 39.9343, 116.4468), RESIDENT)
            assert near.startswith("离您最近的党组织和党群服务中心") and "【党组织】" in near, near
            first = near.split("【党组织】")[1].split("\n")[1]
            assert "和平里社区党委" in first and "地址：和平里东街11号" in near, near
            assert "和平里社区党群服务中心" in near and "电话：010-6420-0002" in near and "时间：每天 8:30-20:00" in near
            assert j.prompt(RESIDENT) is None
            # /dangzuzhi with a place name, and the words with a place
            [by_name] = await j.say(RESIDENT, "/dangzuzhi 青年湖")
            assert by_name.startswith("青年湖社区党群服务中心附近"), by_name  # the registry's names first
            assert "青年湖社区党委（约20米）" in by_name.split("【党群服务中心】")[0]
            [by_landmark] = await j.say(RESIDENT, "附近的党组织 安德里南门")
            assert "青年湖第三网格党支部" in by_landmark, by_landmark
            # a place nobody knows: said so, and asked again; the answer may be a unit's name
            [unknown] = await j.say(RESIDENT, "/dangzuzhi 火星基地")
            assert unknown.startswith("没找到“火星基地”") and j.prompt(RESIDENT) is not None
            [after] = await j.say(RESIDENT, "和平里小学")
            assert "和平里小学党支部" in after and j.prompt(RESIDENT) is None
            # 取消 closes the question
            await j.say(RESIDENT, "附近的党组织")
            assert await j.say(RESIDENT, "取消") == ["好的，不找了。"] and j.prompt(RESIDENT) is None
            # a text that names no place while asked goes on as a message (to Rasa: here down)
            await j.say(RESIDENT, "附近的党组织")
            got = await j.say(RESIDENT, "楼道里的灯坏了好几天")
            assert got and not any("没找到" in x or "党组织" in x for x in got), got
            assert j.prompt(RESIDENT) is None

    asyncio.run(scenario())
    with session_scope(factory) as s:
        # the demo registry has a few of each; distances are great-circle
        assert s.scalar(select(func.count()).select_from(PartyOrganisation)) == 7
        assert s.scalar(select(func.count()).select_from(ServiceCentre)) == 3
        assert s.scalar(select(func.count()).select_from(WorkUnit)) == 4
        assert round(navigation.haversine_m(39.93, 116.44, 39.94, 116.44)) == 1112


def test_registry_units_organisations_and_centres(sqlite_demo_factory: sessionmaker[Session], tmp_path: Path) -> None:
    bad = tmp_path / "orgs.yml"
    bad.write_text(
        "units:\n"
        "  - code: U-X\n"
        "    name: 某公司\n"
        "    lat: 39.93\n"
        "organisations:\n"
        "  - code: O-X\n"
        "    name: 某公司党支部\n"
        "    kind: club\n"
        "    unit: U-NOPE\n"
        "  - code: O-Y\n"
        "    name: 某支部\n"
        "    branch: BR-NOPE\n"
        "    lat: 139.9\n"
        "    lon: 116.4\n"
        "service_centres:\n"
        "  - code: SC-X\n"
        "    name: 某中心\n"
        "    community: C-NOPE\n", encoding="utf-8")
    with session_scope(sqlite_demo_factory) as s, pytest.raises(ImportFailed) as failed:
        import_registry(s, [bad])
    problems = [str(p) for p in failed.value.problems]
    assert problems == [
        f"{bad}:2: unit U-X: give both lat and lon, or neither",
        f"{bad}:6: organisation O-X: unknown kind 'club' (allowed: branch, committee, unit)",
        f"{bad}:6: organisation O-X: unknown unit 'U-NOPE' in unit",
        f"{bad}:10: organisation O-Y: lat 139.9 out of range -90..90",
        f"{bad}:10: organisation O-Y: unknown branch 'BR-NOPE' in branch",
        f"{bad}:16: service centre SC-X: missing address",
        f"{bad}:16: service centre SC-X: unknown community 'C-NOPE' in community",
    ], problems
    with session_scope(sqlite_demo_factory) as s:
        report = import_registry(s, [DEMO])  # the demo again: nothing changes
        assert report.unchanged["organisations"] == 7 and report.unchanged["service_centres"] == 3
        assert "organisations" not in report.updated and "units" not in report.created
        org = s.scalars(select(PartyOrganisation).where(PartyOrganisation.code == "O-BR-HPL-01")).one()
        assert org.branch_id == s.scalars(select(Branch.id).where(Branch.code == "BR-HPL-01")).one()
        assert org.kind == "branch" and org.lat is not None and org.hours == "每周六 9:00-11:00"
