"""三张清单 (/qingdan) through the real Application (fake Telegram): a 双报到 liaison and a community
admin offer resources, a resident proposes a need that the grid reviews, the secretary lists one at
once, the admin matches a need with a suggested resource into a project that goes planned → under
way → done (a note with a photo) → evaluated, the grid's residents rate it; every refusal (a
resource offered twice for the same time, a need already met, a second rating, a rating before
completion, a stranger's review, no home); the counts in `gridbot stats`."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.access.permissions import NotAllowed
from core.baodao import registration
from core.db import session_scope
from core.lists import entries, figures, projects
from core.models import (
    AuditEntry,
    Need,
    NeedStatus,
    Person,
    Project,
    ProjectRating,
    ProjectStatus,
    Resource,
    utcnow,
)
from core.registry.importer import ImportFailed, import_registry
from tests.app.journey import Journey, journey
from tests.app.test_rates import gridbot
from tests.app.test_secretary_bot import NEWCOMER

NO_RASA = "http://127.0.0.1:9"  # none of these flows reaches Rasa
SECRETARY, MEMBER = 700000001, 700000002  # P-0001 secretary, P-0002 member of BR-HPL-01 (G-HPL-01)
ADMIN = 700000069  # P-0069, community admin of 和平里社区
OTHER_ADMIN = 700000070  # P-0070, community admin of 青年湖社区
LIAISON = 700000071  # P-0071, lives in G-HPL-01; made a 在职党员 of 和平医院党委 below
NEIGHBOUR = 700000072  # P-0072, lives in B-HPL-01-07 (G-HPL-01)


def who(s: Session, telegram_id: int) -> Person:
    return s.scalars(select(Person).where(Person.telegram_id == telegram_id)).one()


def keyboard(j: Journey, chat_id: int) -> list[str]:
    message = j.fake.last_message(chat_id) or {}
    return [b["text"] for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


def make_liaison(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as s:
        row = registration.submit(s, who(s, LIAISON), organisation="和平医院党委", work_unit="和平医院", tags=[])
        registration.decide(s, who(s, SECRETARY), row.id, approve=True)


async def offer(j: Journey, user: int, content: str, period: str = "本月") -> list[str]:
    await j.say(user, "/qingdan")
    await j.press(user, user, "提供资源")
    if "替哪个单位党组织登记？" in j.texts(user)[-1]:
        await j.press(user, user, "和平里小学党支部")
    assert "第1步" in j.texts(user)[-1] and {"场地", "志愿者", "资金", "专业服务", "物资"} <= set(keyboard(j, user))
    await j.press(user, user, "志愿者" if "志愿者" in content else "场地")
    [ask] = await j.say(user, content)
    assert "第3步" in ask and "本月" in keyboard(j, user), ask
    return await j.press(user, user, period)


def test_resources_needs_matching_and_a_project_to_the_end(sqlite_demo_factory: sessionmaker[Session],
                                                            sqlite_engine: Engine) -> None:
    factory = sqlite_demo_factory
    make_liaison(factory)

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            # the liaison offers for their organisation: kind, content typed, period
            [menu] = await j.say(LIAISON, "/qingdan")
            assert menu == "三张清单：您要做什么？" and "提供资源" in keyboard(j, LIAISON)
            got = await offer(j, LIAISON, "助老志愿者 5")
            assert "已登记资源" in got[0] and "和平医院党委：志愿者 · 助老志愿者 ×5" in got[0], got
            # the same resource for overlapping days: refused with the reason
            twice = await offer(j, LIAISON, "助老志愿者 3", "本周")
            assert any("已经登记过了，不能重复提供" in x for x in twice), twice
            # a community admin offers for a registry organisation
            got = await offer(j, ADMIN, "活动室 1", "长期")
            assert "和平里小学党支部：场地 · 活动室 ×1" in got[0], got
            # a resident may not offer: no button; a resident proposes a need, reviewed by the grid
            await j.say(NEIGHBOUR, "/qingdan")
            assert "提供资源" not in keyboard(j, NEIGHBOUR) and "撮合项目" not in keyboard(j, NEIGHBOUR)
            await j.press(NEIGHBOUR, NEIGHBOUR, "提出需求")
            await j.press(NEIGHBOUR, NEIGHBOUR, "老人助餐")
            got = await j.press(NEIGHBOUR, NEIGHBOUR, "我的楼栋")
            assert "第3步" in got[-1] and "老年人" in keyboard(j, NEIGHBOUR), got
            [pending] = await j.press(NEIGHBOUR, NEIGHBOUR, "老年人")
            assert "网格审核后列入清单" in pending and "老人助餐" in pending and "待审核" in pending, pending
            assert "居民提出的需求，请审核" in j.texts(SECRETARY)[-1] and keyboard(j, SECRETARY) == ["同意", "不同意"]
            assert not any("请审核" in x for x in j.texts(OTHER_ADMIN))
            refused = await j.press(MEMBER, SECRETARY, "同意")  # a branch member may not review
            assert any("您没有权限" in x for x in refused), refused
            await j.press(SECRETARY, SECRETARY, "同意")
            assert "您提出的需求已列入清单：老人助餐" in j.texts(NEIGHBOUR)[-1]
            late = await j.press(ADMIN, ADMIN, "同意")  # the admin's copy is stale
            assert any("已经审核过了" in x for x in late), late
            # the secretary lists a need at once, the place typed
            await j.say(SECRETARY, "/qingdan")
            await j.press(SECRETARY, SECRETARY, "提出需求")
            await j.press(SECRETARY, SECRETARY, "楼道照明")
            await j.say(SECRETARY, "5号楼楼道")
            [listed] = await j.press(SECRETARY, SECRETARY, "全体居民")
            assert "需求已列入清单" in listed and "5号楼楼道" in listed, listed
            # the admin matches: needs, then suggestions ranked (志愿者 first for 老人助餐)
            await j.say(ADMIN, "/qingdan")
            await j.press(ADMIN, ADMIN, "撮合项目")
            assert "2条待撮合" in j.texts(ADMIN)[-1], j.texts(ADMIN)[-1]
            need_button = next(b for b in keyboard(j, ADMIN) if b.startswith("老人助餐"))
            [suggested] = await j.press(ADMIN, ADMIN, need_button)
            assert "建议的资源" in suggested, suggested
            # 志愿者 serves 老人助餐 best; then the 场地 (the demo registry's 课后活动教室 and the admin's 活动室)
            assert keyboard(j, ADMIN)[0] == "和平医院党委·助老志愿者", keyboard(j, ADMIN)
            assert "和平里小学党支部·活动室" in keyboard(j, ADMIN)
            [matched] = await j.press(ADMIN, ADMIN, "和平医院党委·助老志愿者")
            assert "已撮合成项目" in matched and "状态：计划中" in matched, matched
            assert keyboard(j, ADMIN) == ["开始实施"]
            [going] = await j.press(ADMIN, ADMIN, "开始实施")
            assert "状态：实施中" in going and keyboard(j, ADMIN) == ["已完成"], going
            [ask] = await j.press(ADMIN, ADMIN, "已完成")
            assert "完成情况" in ask
            [done] = await j.photo(ADMIN, "PHOTO-1", "每周三次助餐，已服务12位老人")
            assert "状态：已完成" in done and keyboard(j, ADMIN) == ["评估结项"], done
            # the grid's residents are asked for stars
            assert "项目已完成：老人助餐" in j.texts(NEIGHBOUR)[-1]
            [thanks] = await j.press(NEIGHBOUR, NEIGHBOUR, "⭐⭐⭐⭐⭐")
            assert thanks == "谢谢评分（5星）！"
            assert "⭐⭐⭐⭐⭐" not in keyboard(j, NEIGHBOUR)  # the stars went with the answer
            [evaluated] = await j.press(ADMIN, ADMIN, "评估结项")
            assert "状态：已评估" in evaluated
            # 看清单
            await j.say(NEIGHBOUR, "/qingdan")
            [view] = await j.press(NEIGHBOUR, NEIGHBOUR, "看清单")
            assert "资源清单（4条）" in view and "需求清单（2条）" in view and "项目（1个）" in view, view
        with session_scope(factory) as s:
            project = s.scalars(select(Project)).one()
            assert project.status is ProjectStatus.evaluated and project.photos == ["PHOTO-1"]
            assert project.note == "每周三次助餐，已服务12位老人" and project.owner_id == who(s, ADMIN).id
            assert s.get(Need, project.need_id).status is NeedStatus.met
            assert [r.stars for r in s.scalars(select(ProjectRating))] == [5]
            # a project matched to a need already met: refused with the reason
            other = s.scalars(select(Resource).where(Resource.title == "活动室")).one()
            with pytest.raises(NotAllowed, match="已经有项目在办了"):
                projects.match(s, who(s, ADMIN), project.need_id, other.id)
            with pytest.raises(NotAllowed, match="评过分"):
                projects.rate(s, who(s, NEIGHBOUR), project.id, 4)
            actions = [e.action for e in s.scalars(select(AuditEntry).where(AuditEntry.action.like("lists.%"))
                                                  .order_by(AuditEntry.id))]
            assert actions == ["lists.offer", "lists.offer", "lists.need", "lists.approve", "lists.need",
                               "lists.match", "lists.advance", "lists.advance", "lists.rate", "lists.advance"]
            now = utcnow()
            [hpl], [street] = figures.counts(s, now - timedelta(days=1), now + timedelta(days=1),
                                             project.community_id)
            assert (hpl.resources, hpl.needs, hpl.projects, hpl.completed) == (4, 2, 1, 1)  # 2 from the registry
            assert street.projects == 1
        url = sqlite_engine.url.render_as_string(hide_password=False)
        month = utcnow().strftime("%Y-%m")
        result = gridbot(["stats", "--month", month, "--community", "C-HPL", "--json"], url)
        assert result.returncode == 0, result.stderr
        [row] = json.loads(result.stdout)["lists"]["communities"]
        assert (row["code"], row["resources"], row["needs"], row["projects"], row["completed"]) == ("C-HPL", 4, 2, 1, 1)
        table = gridbot(["stats", "--month", month], url)
        assert table.returncode == 0 and "三张清单" in table.stdout and "C-HPL" in table.stdout

    asyncio.run(scenario())


def test_refusals_in_chat(sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            # no binding: a need cannot be placed
            await j.say(ADMIN, "/qingdan")
            refused = await j.press(ADMIN, ADMIN, "提出需求")
            assert any("请先发 /start 绑定您住的楼栋" in x for x in refused), refused
            # nothing to match yet
            assert any("没有待撮合的需求" in x for x in await j.press(ADMIN, ADMIN, "撮合项目"))
            # a resident's need declined with a reason, told to the resident
            await j.say(NEIGHBOUR, "/qingdan")
            await j.press(NEIGHBOUR, NEIGHBOUR, "提出需求")
            await j.press(NEIGHBOUR, NEIGHBOUR, "无障碍坡道")
            [long] = await j.say(NEIGHBOUR, "某" * 101)  # too long: asked again
            assert "太长了" in long and j.prompt(NEIGHBOUR) is not None
            await j.say(NEIGHBOUR, "7号楼门口")
            [typed] = await j.say(NEIGHBOUR, "随便")  # the last step takes buttons
            assert "请点上面的按钮" in typed
            await j.press(NEIGHBOUR, NEIGHBOUR, "残障人士")
            [ask] = await j.press(SECRETARY, SECRETARY, "不同意")
            assert "理由" in ask
            await j.say(SECRETARY, "7号楼门口已有坡道")
            assert j.texts(NEIGHBOUR)[-1] == "您提出的需求未列入清单。理由：7号楼门口已有坡道"
            # 取消 by word and by button
            await j.say(NEIGHBOUR, "/qingdan")
            await j.press(NEIGHBOUR, NEIGHBOUR, "提出需求")
            got = await j.press(NEIGHBOUR, NEIGHBOUR, "取消")
            assert "已取消" in got[0] and j.prompt(NEIGHBOUR) is None
        with session_scope(factory) as s:
            need = s.scalars(select(Need)).one()
            assert need.status is NeedStatus.declined and need.reason == "7号楼门口已有坡道"
            # a declined need cannot be matched; a resident may not offer, nor rate before completion
            admin = who(s, ADMIN)
            org_resource = entries.offer(s, admin, kind="物资", title="灯泡", quantity=20,
                                         available_from=date(2026, 1, 1), available_to=date(2026, 1, 31),
                                         organisation_id=s.scalar(select(Resource.organisation_id)) or 1,
                                         community_id=need.community_id)
            with pytest.raises(NotAllowed, match="还没列入清单"):
                projects.match(s, admin, need.id, org_resource.id)
            with pytest.raises(NotAllowed, match="单位党组织的联络人"):
                entries.offer(s, who(s, NEIGHBOUR), kind="物资", title="灯泡", quantity=1,
                              available_from=date(2026, 1, 1), available_to=date(2026, 1, 2))
            with pytest.raises(NotAllowed, match="不能重复提供"):
                entries.offer(s, admin, kind="物资", title="灯泡", quantity=5, available_from=date(2026, 1, 31),
                              available_to=date(2026, 2, 10), organisation_id=org_resource.organisation_id,
                              community_id=need.community_id)
            need.status = NeedStatus.listed
            project = projects.match(s, admin, need.id, org_resource.id)
            with pytest.raises(NotAllowed, match="完成后才能评分"):
                projects.rate(s, who(s, NEIGHBOUR), project.id, 3)
            with pytest.raises(NotAllowed, match="完成情况"):
                projects.advance(s, admin, projects.advance(s, admin, project.id).id)  # under way → done, no note
            with pytest.raises(NotAllowed, match="您没有权限"):
                projects.advance(s, who(s, NEIGHBOUR), project.id)
        assert NEWCOMER

    asyncio.run(scenario())


def test_registry_resources(sqlite_demo_factory: sessionmaker[Session], tmp_path: Path) -> None:
    with session_scope(sqlite_demo_factory) as s:  # the demo registry's
        demo = {r.code: r for r in s.scalars(select(Resource))}
        assert set(demo) == {"R-HPH-01", "R-HPS-01", "R-QLF-01"}
        assert (demo["R-HPH-01"].organisation, demo["R-HPH-01"].kind) == ("和平医院党委", "专业服务")
        assert demo["R-HPS-01"].available_to == date(2027, 12, 31)
    bad = tmp_path / "resources.yml"
    bad.write_text(
        "resources:\n"
        "  - code: R-X\n"
        "    organisation: O-NOPE\n"
        "    community: C-HPL\n"
        "    kind: 房子\n"
        "    title: 某物\n"
        "    from: 2026-02-01\n"
        "    to: 2026-01-01\n"
        "  - code: R-Y\n"
        "    organisation: O-U-HPH\n"
        "    community: C-HPL\n"
        "    kind: 物资\n"
        "    title: 口罩\n"
        "    quantity: 很多\n"
        "    from: 明天\n"
        "    to: 2026-01-01\n", encoding="utf-8")
    with session_scope(sqlite_demo_factory) as s, pytest.raises(ImportFailed) as failed:
        import_registry(s, [bad])
    problems = [str(p) for p in failed.value.problems]
    assert f"{bad}:2: resource R-X: unknown kind '房子' (allowed: 场地, 志愿者, 资金, 专业服务, 物资)" in problems, problems
    assert f"{bad}:2: resource R-X: to is before from" in problems, problems
    assert f"{bad}:2: resource R-X: unknown organisation 'O-NOPE' in organisation" in problems, problems
    assert f"{bad}:9: resource R-Y: from '明天' is not a date (YYYY-MM-DD)" in problems, problems
    assert any(p.startswith(f"{bad}:9:") and "quantity" in p for p in problems), problems
