"""战时 mobilisation's core on SQLite and PostgreSQL: who is called (members, grid leaders, 在职党员,
volunteers, each once, /notify off too) and the call-out's outbox rows; answers, the rosters, the
check-in against the grid polygon, the roll's figures, escalation once per level, closing and the
report's hours; the ETA words; the commander grant on top of an admin role (`gridbot grant`, the
registry's `commanders:` with FILE:LINE errors); `gridbot mobilise report --csv`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from core.access.permissions import NotAllowed, Scope, allowed, roles_at
from core.db import session_scope
from core.messaging import buttons as issued
from core.mobilise import answers, area, checkins, declare, report, roll, sweep, tasks
from core.models import (
    Answer,
    AreaLevel,
    AuditEntry,
    Branch,
    Community,
    Grid,
    IncidentCall,
    IncidentEvent,
    IncidentKind,
    OutboxMessage,
    Person,
    Role,
    RoleGrant,
    TaskKind,
)
from core.places.router import Router
from core.registry import grants
from core.registry.importer import ImportFailed, import_registry
from tests.app.conftest import DEMO
from tests.app.test_rates import gridbot

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)  # 18:00 in Beijing
IN_GRID_1 = (39.932442, 116.445302)  # B-HPL-01-05
IN_GRID_2 = (39.933474, 116.448238)  # B-HPL-02-11
NOWHERE = (39.9300, 116.4300)  # in no grid of the demo


def who(s: Session, code: str) -> Person:
    return s.scalars(select(Person).where(Person.code == code)).one()


def code_id(s: Session, model: type, code: str) -> int:
    return s.scalars(select(model.id).where(model.code == code)).one()  # type: ignore[attr-defined]


def declare_hpl(s: Session, now: datetime = T0) -> int:
    incident, _ = declare.declare(s, who(s, "P-0069"), IncidentKind.flood, AreaLevel.community,
                                  ident=code_id(s, Community, "C-HPL"), order="今晚暴雨，到本网格集合", now=now, tz=TZ)
    return incident.id


def test_who_is_called_once_each_and_the_call_out(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        grid_1, grid_2 = code_id(s, Grid, "G-HPL-01"), code_id(s, Grid, "G-HPL-02")
        # a 在职党员 registered in grid 1, a volunteer scoped to grid 2 who lives elsewhere, a member
        # who is a volunteer too, a member with /notify off, a member the bot cannot reach
        s.add(RoleGrant(person_id=who(s, "P-0072").id, role=Role.dual_member, grid_id=grid_1,
                        branch_id=code_id(s, Branch, "BR-HPL-01")))
        s.add(RoleGrant(person_id=who(s, "P-0081").id, role=Role.volunteer, grid_id=grid_2))
        s.add(RoleGrant(person_id=who(s, "P-0002").id, role=Role.volunteer))
        who(s, "P-0003").notify_off = True
        who(s, "P-0004").telegram_id = None
        s.flush()
        incident_id = declare_hpl(s)
        calls = {c.person_id: c for c in s.scalars(select(IncidentCall).where(IncidentCall.incident_id == incident_id))}
        by_code = {p.code: calls.get(p.id) for p in s.scalars(select(Person))}
        assert by_code["P-0001"].source == "member" and by_code["P-0002"].source == "member"  # type: ignore[union-attr]
        assert by_code["P-0061"].source == "leader" and by_code["P-0061"].grid_id == grid_1  # type: ignore[union-attr]
        assert by_code["P-0072"].source == "dual_member" and by_code["P-0072"].grid_id == grid_1  # type: ignore[union-attr]
        assert by_code["P-0073"].source == "volunteer" and by_code["P-0073"].grid_id == grid_1  # type: ignore[union-attr]
        assert by_code["P-0081"].source == "volunteer" and by_code["P-0081"].grid_id == grid_2  # type: ignore[union-attr]
        assert by_code["P-0003"] is not None  # /notify off: called all the same
        assert by_code["P-0004"] is None  # no Telegram: nobody to call
        # residents, the commander, and 青年湖社区's people are not called
        for code in ("P-0071", "P-0069", "P-0070", "P-0065"):  # P-0065: 青年湖第一网格's grid worker
            assert by_code[code] is None, code
        hpl_grids = set(s.scalars(select(Grid.id).where(Grid.community_id == code_id(s, Community, "C-HPL"))))
        assert {c.grid_id for c in calls.values()} == hpl_grids
        # one outbox message per person, kind mobilise.call, keyed by (incident, person), with the answers
        rows = list(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == declare.CALL_KIND)))
        assert len(rows) == len(calls) == 38  # the demo's 37, a 在职党员 and a volunteer, less one without Telegram
        assert {r.dedupe_key for r in rows} == {declare.call_key(incident_id, pid) for pid in calls}
        chats = {r.chat_id for r in rows}
        assert len(chats) == len(rows) and who(s, "P-0003").telegram_id in chats
        shown = issued.plain(s, rows[0].payload)
        assert shown["text"].startswith("【紧急动员】防汛 · 和平里社区（动员#") and "指挥长：汤嘉懿（18:00发布）" in shown["text"]
        assert [b["callback_data"] for b in shown["buttons"][0]] == [
            ["mb", "ans", incident_id, "coming"], ["mb", "ans", incident_id, "late"], ["mb", "ans", incident_id, "cannot"]]
        [called] = s.scalars(select(IncidentEvent).where(IncidentEvent.kind == "called")).all()
        assert called.detail["people"] == 38 and called.detail["dual_member"] == 1
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "mobilise.declare")) == 1


def test_answers_rosters_checkins_escalation_close_and_report(demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        incident_id = declare_hpl(s)
        incident = area.find(s, incident_id)
        grid_1, grid_2 = code_id(s, Grid, "G-HPL-01"), code_id(s, Grid, "G-HPL-02")
        router = Router.from_session(s)
        # grid 2 answers completely: its roster goes at once to its secretary (a member, P-0008) and worker
        two = [c for c in s.scalars(select(IncidentCall).where(IncidentCall.grid_id == grid_2))]
        for i, call in enumerate(two):
            person = s.get(Person, call.person_id)
            answers.answer(s, person, incident_id, Answer.cannot if i else Answer.coming, now=T0 + timedelta(minutes=1),
                           tz=TZ)
        rosters = list(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == roll.ROSTER_KIND)))
        assert {r.chat_id for r in rosters} == {who(s, "P-0008").telegram_id, who(s, "P-0062").telegram_id}
        assert "不能到（6）" in rosters[0].payload["text"] and "未回复（0）：无" in rosters[0].payload["text"]
        # grid 1: 到, 稍后到 30 minutes, someone not called
        answers.answer(s, who(s, "P-0002"), incident_id, Answer.coming, now=T0 + timedelta(minutes=2), tz=TZ)
        late = answers.answer(s, who(s, "P-0003"), incident_id, Answer.late, eta_minutes=30,
                              now=T0 + timedelta(minutes=2), tz=TZ)
        assert late.eta_at == T0 + timedelta(minutes=32)
        with pytest.raises(NotAllowed, match="不在这次动员的呼叫名单里"):
            answers.answer(s, who(s, "P-0071"), incident_id, Answer.coming, now=T0, tz=TZ)
        # check-ins: nowhere and in the wrong grid refused; inside, then twice refused; the answer follows
        for point in (NOWHERE, IN_GRID_2):
            with pytest.raises(NotAllowed, match="不在和平里第一网格内"):
                checkins.check_in(s, router, who(s, "P-0002"), incident_id, *point, now=T0 + timedelta(minutes=9), tz=TZ)
        checkins.check_in(s, router, who(s, "P-0002"), incident_id, *IN_GRID_1, now=T0 + timedelta(minutes=10), tz=TZ)
        with pytest.raises(NotAllowed, match="已经签到了"):
            checkins.check_in(s, router, who(s, "P-0002"), incident_id, *IN_GRID_1, now=T0 + timedelta(minutes=11), tz=TZ)
        checkins.check_in(s, router, who(s, "P-0005"), incident_id, *IN_GRID_1, now=T0 + timedelta(minutes=20), tz=TZ)
        assert answers.call_of(s, incident_id, who(s, "P-0005")).answer is Answer.coming  # checked in: 到
        # the roll now
        figures = {r.code: r for r in roll.figures(s, incident_id)}
        assert (figures["G-HPL-01"].called, figures["G-HPL-01"].coming, figures["G-HPL-01"].late,
                figures["G-HPL-01"].on_site) == (9, 2, 1, 2)
        assert (figures["G-HPL-02"].coming, figures["G-HPL-02"].cannot, figures["G-HPL-02"].on_site) == (1, 6, 0)
        assert roll.on_site_grids(s, incident_id) == {grid_1}
        # 15 minutes: the unmanned grids go to the community admin, once; 30: to the street (none here)
        timing = sweep.Timing()
        assert sweep.run(s, T0 + timedelta(minutes=14), TZ, timing) == {"rosters": 6, "escalated": 0}  # grids 1, 3, 4: secretary and worker each
        assert sweep.run(s, T0 + timedelta(minutes=16), TZ, timing) == {"rosters": 0, "escalated": 3}
        assert sweep.run(s, T0 + timedelta(minutes=17), TZ, timing)["escalated"] == 0
        [alert] = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == sweep.ESCALATION_KIND)).all()
        assert alert.chat_id == who(s, "P-0069").telegram_id
        assert "和平里第二网格、和平里第三网格、和平里第四网格" in alert.payload["text"], alert.payload
        assert sweep.run(s, T0 + timedelta(minutes=31), TZ, timing)["escalated"] == 3
        assert s.scalar(select(func.count()).select_from(IncidentEvent).where(IncidentEvent.kind == "escalated")) == 6
        # a task, taken by a member of grid 1, done; one for grid 1 refused to grid 2's member
        task, told = tasks.post(s, who(s, "P-0069"), incident_id, grid_1, TaskKind.sandbags, "低洼处码沙袋",
                                now=T0 + timedelta(minutes=25))
        assert told == 3  # 梁海涛 到, 文爱华 稍后到, 潘树林 到 by checking in
        with pytest.raises(NotAllowed, match="这是和平里第一网格的任务"):
            tasks.take(s, who(s, "P-0008"), task.id, now=T0 + timedelta(minutes=26))
        tasks.take(s, who(s, "P-0005"), task.id, now=T0 + timedelta(minutes=26))
        with pytest.raises(NotAllowed, match="已经有人领了"):
            tasks.take(s, who(s, "P-0002"), task.id, now=T0 + timedelta(minutes=27))
        tasks.done(s, who(s, "P-0005"), task.id, now=T0 + timedelta(minutes=50))
        checkins.check_out(s, who(s, "P-0002"), incident_id, now=T0 + timedelta(minutes=70))  # 1 h on site
        # closing: not by a secretary; then by the commander; not twice; P-0005 checked out at the close
        with pytest.raises(NotAllowed, match="您没有权限指挥这次动员"):
            report.close(s, who(s, "P-0001"), incident_id, now=T0 + timedelta(minutes=80), tz=TZ)
        report.close(s, who(s, "P-0069"), incident_id, now=T0 + timedelta(minutes=110), tz=TZ)  # P-0005: 1.5 h
        with pytest.raises(NotAllowed, match="已经在12-07 19:50结束了"):
            report.close(s, who(s, "P-0069"), incident_id, now=T0 + timedelta(minutes=120), tz=TZ)
        with pytest.raises(NotAllowed, match="已经结束了"):
            answers.answer(s, who(s, "P-0006"), incident_id, Answer.coming, now=T0 + timedelta(minutes=121), tz=TZ)
        closed = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == report.CLOSED_KIND)).all()
        assert [m.chat_id for m in closed] == [who(s, "P-0005").telegram_id]
        assert "本次在岗1小时30分" in closed[0].payload["text"]
        rows = {r.code: r for r in report.figures(s, incident, None, T0 + timedelta(hours=5))}
        one = rows["G-HPL-01"]
        assert (one.called, one.answered, one.coming, one.late, one.on_site, one.tasks, one.tasks_done) == (
            9, 3, 2, 1, 2, 1, 1)
        assert one.hours == pytest.approx(2.5) and one.people == [("潘树林", 1.5), ("梁海涛", 1.0)]
        assert report.total(list(rows.values())).hours == pytest.approx(2.5)
        text = report.report_text(s, incident, None, T0 + timedelta(hours=5), TZ)
        assert "12-07 18:00 至 12-07 19:50（1小时50分）" in text and "工时：潘树林 1.5小时、梁海涛 1.0小时" in text, text
        csv = report.csv_text(s, incident, None, T0).splitlines()
        assert csv[0].startswith("incident,grid_code,grid,person,called")
        assert f"{incident_id},G-HPL-01,和平里第一网格,,9,3,2,1,0,2,2.50,1,1" in csv
        assert f"{incident_id},G-HPL-01,和平里第一网格,潘树林,,,,,,1,1.50,," in csv
        kinds = {e.kind for e in s.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == incident_id))}
        assert kinds == {"declared", "called", "answered", "roster", "checked_in", "checked_out", "escalated",
                         "task_posted", "task_taken", "task_done", "closed"}


@pytest.mark.parametrize(("typed", "minutes"), [
    ("20", 20), ("20分钟", 20), ("大约20分钟", 20), ("二十分钟", 20), ("半小时", 30), ("1小时", 60),
    ("一个小时", 60), ("1.5小时", 90), ("一个半小时", 90), ("两小时", 120), ("18:30", 30), ("18点半", 30),
    ("19点", 60), ("１８：４５", 45), ("17:00", 23 * 60),
    ("马上", None), ("", None), ("0", None), ("3000分钟", None), ("25:00", None)])
def test_eta_words(typed: str, minutes: int | None) -> None:
    assert answers.parse_eta(typed, T0, TZ) == minutes  # T0 is 18:00 in Beijing


def test_the_commander_grant_stands_on_an_admin_role(sqlite_demo_factory: sessionmaker[Session],
                                                      sqlite_engine: Engine, tmp_path: Path) -> None:
    with session_scope(sqlite_demo_factory) as s:
        hpl, qnh = code_id(s, Community, "C-HPL"), code_id(s, Community, "C-QNH")
        demo_commander, other_admin = who(s, "P-0069"), who(s, "P-0070")
        assert allowed(s, demo_commander, "mobilise.declare", Scope(community_id=hpl))  # the demo's commander
        assert not allowed(s, demo_commander, "mobilise.declare", Scope(community_id=qnh))
        assert not allowed(s, other_admin, "mobilise.declare", Scope(community_id=qnh))
        with pytest.raises(grants.GrantError, match="on top of community_admin or street_admin"):
            grants.grant(s, grants.resolve(s, "P-0001", "commander", community="C-HPL"))
        with pytest.raises(grants.GrantError, match="commander needs --community CODE or --street CODE"):
            grants.resolve(s, "P-0070", "commander", grid="G-QNH-01")
        assert grants.grant(s, grants.resolve(s, "P-0070", "commander", community="C-QNH"))
        assert Role.commander in roles_at(s, other_admin, Scope(community_id=qnh))
        # a commander grant whose admin role is gone counts for nothing; revoking the admin revokes it
        lone = RoleGrant(person_id=who(s, "P-0001").id, role=Role.commander, community_id=hpl)
        s.add(lone)
        s.flush()
        s.expire(who(s, "P-0001"), ["grants"])
        assert Role.commander not in roles_at(s, who(s, "P-0001"), Scope(community_id=hpl))
        assert grants.revoke(s, grants.resolve(s, "P-0070", "community_admin", community="C-QNH"))
        assert not s.scalars(select(RoleGrant).where(RoleGrant.person_id == other_admin.id,
                                                     RoleGrant.role == Role.commander)).all()
        actions = [e.action for e in s.scalars(select(AuditEntry).where(AuditEntry.action.like("role.%"))
                                               .order_by(AuditEntry.id))]
        assert actions == ["role.grant", "role.revoke", "role.revoke"]
        # a street admin's street-wide grant: every community of the street
        grants.grant(s, grants.resolve(s, "P-0071", "street_admin", street="ST-HP"))
        grants.grant(s, grants.resolve(s, "P-0071", "commander", street="ST-HP"))
        resident = who(s, "P-0071")
        assert all(allowed(s, resident, "mobilise.declare", Scope(community_id=c)) for c in (hpl, qnh))
        assert [st.code for st in area.streets_commanded(s, resident)] == ["ST-HP"]
        # declaring with a community commander over a grid of another community is refused
        with pytest.raises(NotAllowed, match="您没有权限发布战时动员"):
            declare.declare(s, demo_commander, IncidentKind.fire, AreaLevel.grids, grid_ids=[code_id(s, Grid, "G-QNH-01")],
                            order="x", now=T0, tz=TZ)
        with pytest.raises(NotAllowed, match="不在您指挥的社区"):
            declare.declare(s, demo_commander, IncidentKind.fire, AreaLevel.street,
                            ident=s.scalars(select(Community.street_id)).first(), order="x", now=T0, tz=TZ)
    # the command line: refused without the admin role (exit 2), granted with it
    url = sqlite_engine.url.render_as_string(hide_password=False)
    refused = gridbot(["grant", "P-0002", "commander", "--community", "C-HPL"], url)
    assert refused.returncode == 2 and "on top of community_admin" in refused.stderr, refused.stderr
    assert gridbot(["grant", "P-0002", "community_admin", "--community", "C-HPL"], url).returncode == 0
    given = gridbot(["grant", "P-0002", "commander", "--community", "C-HPL"], url)
    assert given.returncode == 0 and "granted: P-0002 commander @ community:C-HPL" in given.stdout, given.stdout
    # the registry: commanders must be admins, with FILE:LINE
    bad = tmp_path / "registry.yml"
    bad.write_text("communities:\n  - code: C-HPL\n    street: ST-HP\n    name: 和平里社区\n    admins: [P-0069]\n"
                   "    commanders: [P-0069, P-0001, P-9999]\n", encoding="utf-8")
    with session_scope(sqlite_demo_factory) as s, pytest.raises(ImportFailed) as failed:
        import_registry(s, [bad])
    assert [str(p) for p in failed.value.problems] == [
        f"{bad}:2: community C-HPL: commander P-0001 is not one of its admins (a commander is an admin with the "
        "commander grant)",
        f"{bad}:2: community C-HPL: commander P-9999 is not one of its admins (a commander is an admin with the "
        "commander grant)",
        f"{bad}:2: community C-HPL: unknown person 'P-9999' in commanders"]
    with session_scope(sqlite_demo_factory) as s:  # a re-import of the demo keeps its commander
        import_registry(s, [DEMO])
        assert Role.commander in roles_at(s, who(s, "P-0069"), Scope(community_id=code_id(s, Community, "C-HPL")))


def test_gridbot_mobilise_report_list_and_events(engine: Engine, demo_factory: sessionmaker[Session]) -> None:
    with session_scope(demo_factory) as s:
        incident_id = declare_hpl(s)
        answers.answer(s, who(s, "P-0002"), incident_id, Answer.coming, now=T0 + timedelta(minutes=1), tz=TZ)
        checkins.check_in(s, Router.from_session(s), who(s, "P-0002"), incident_id, *IN_GRID_1,
                          now=T0 + timedelta(minutes=5), tz=TZ)
        report.close(s, who(s, "P-0069"), incident_id, now=T0 + timedelta(minutes=65), tz=TZ)
    url = engine.url.render_as_string(hide_password=False)
    csv = gridbot(["mobilise", "report", str(incident_id), "--csv"], url)
    assert csv.returncode == 0, csv.stderr
    lines = csv.stdout.splitlines()
    assert lines[0] == ",".join(report.CSV_COLUMNS)
    assert f"{incident_id},G-HPL-01,和平里第一网格,梁海涛,,,,,,1,1.00,," in lines, lines
    assert lines[-1] == f"{incident_id},,合计,,37,1,1,0,0,1,1.00,0,0", lines
    text = gridbot(["mobilise", "report", str(incident_id)], url)
    assert text.returncode == 0 and text.stdout.startswith(f"【动员总结】动员#{incident_id} 防汛 · 和平里社区"), text.stdout
    data = json.loads(gridbot(["mobilise", "report", str(incident_id), "--json"], url).stdout)
    assert data["total"]["hours"] == 1.0 and data["grids"][0]["people"] == [{"name": "梁海涛", "hours": 1.0}]
    listed = json.loads(gridbot(["mobilise", "list", "--json"], url).stdout)
    assert listed[0]["id"] == incident_id and listed[0]["called"] == 37 and listed[0]["closed_at"]
    steps = json.loads(gridbot(["mobilise", "events", str(incident_id), "--json"], url).stdout)
    assert [e["kind"] for e in steps] == ["declared", "called", "answered", "checked_in", "checked_out", "closed"]
    assert steps[2]["actor"] == "梁海涛" and steps[2]["grid"] == "G-HPL-01"
    assert gridbot(["mobilise", "report", "999"], url).returncode == 1
    with session_scope(demo_factory) as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "mobilise.export")) == 3
