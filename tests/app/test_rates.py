"""The three rates and the figures beside them, against a month worked out by hand (docs/rates.md).

Twenty tickets in December 2026 (Asia/Shanghai) and around it, in two grids of 和平里 and one of
青年湖, each an edge case: on time and late, exactly at the limit, rejected, escalated, a
duplicate, untouched, reopened and answered twice, urgent and emergency limits, auto-closed
without an answer, filed in November with a limit in December, filed on the last evening.
The return visits (回访) answer the two questions apart: both, split (已解决 + 不满意, 未解决 + 满意),
one only (已解决 alone, 满意 alone and auto-closed, 未解决 alone), and answers of the old single
question (满意, 不满意) written as the old flow wrote them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from core.config import PROJECT_ROOT
from core.db import session_scope
from core.messages import t as T
from core.models import Branch, Building, Grid, Person, Ticket, TicketStatus
from core.tickets import lifecycle, rates, transfer, visit
from core.tickets import service as ticket_service
from core.tickets.lifecycle import NewTicket, change_status

TZ = ZoneInfo("Asia/Shanghai")
S = TicketStatus
D = datetime(2026, 12, 10, 2, 0, tzinfo=timezone.utc)  # 10:00 on 10 December in Shanghai
MIN, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
START = datetime(2026, 12, 1, tzinfo=TZ)
END = datetime(2027, 1, 1, tzinfo=TZ)
A, B, Q = "B-HPL-01-07", "B-HPL-02-12", "B-QNH-01-01"  # buildings in G-HPL-01, G-HPL-02, G-QNH-01


def who(s: Session, code: str) -> Person:
    return s.scalars(select(Person).where(Person.code == code)).one()


def secretary(s: Session, branch: str) -> Person:
    found = s.scalars(select(Branch).where(Branch.code == branch)).one()
    person = s.get(Person, found.secretary_id)
    assert person is not None
    return person


def file(s: Session, building: str, at: datetime, category: str = "parking") -> Ticket:
    b = s.scalars(select(Building).where(Building.code == building)).one()
    return ticket_service.submit_report(s, NewTicket(
        category, "测试工单的描述文字", community_id=b.grid.community_id, grid_id=b.grid_id, building_id=b.id,
        reporter_id=who(s, "P-0071").id), tz=TZ, now=at)


def month(s: Session) -> None:
    """The hand-worked month. Comments: what each ticket adds (响应 / 办结 / answers)."""
    member, sec_a, worker_a = who(s, "P-0002"), who(s, "P-0001"), who(s, "P-0061")
    sec_b, sec_q, reporter = secretary(s, "BR-HPL-02"), secretary(s, "BR-QNH-01"), who(s, "P-0071")

    def claim(t: Ticket, at: datetime, person: Person = member) -> None:
        ticket_service.claim(s, t.id, person, now=at)

    def resolve(t: Ticket, at: datetime, person: Person = member) -> None:
        ticket_service.resolve(s, t.id, person, "已处理", now=at)

    def answer(t: Ticket, at: datetime, **given: Any) -> None:
        visit.answer(s, t.id, reporter, now=at, tz=TZ, **given)

    def old_answer(t: Ticket, score: int, at: datetime) -> None:
        """The single question before the visit asked two: 满意/基本满意 closed, 不满意 reopened."""
        change_status(s, t, S.closed if score >= 2 else S.reopened, actor=reporter, note=T(f"rating.{score}"), now=at)
        t.rating, t.rated_at = score, at

    t1 = file(s, A, D)  # on time, on time; 已解决 + 满意
    claim(t1, D + HOUR), resolve(t1, D + 2 * DAY), answer(t1, D + 3 * DAY, solved=True, score=3)
    t2 = file(s, A, D)  # late, late; 已解决, then 基本满意 an hour later
    claim(t2, D + 25 * HOUR), resolve(t2, D + 8 * DAY)
    answer(t2, D + 9 * DAY, solved=True), answer(t2, D + 9 * DAY + HOUR, score=2)
    t3 = file(s, A, D)  # rejected by the community (final): a response; not counted for 办结
    ticket_service.reject(s, t3.id, who(s, "P-0069"), "不属于网格事项，请拨打12345", now=D + 2 * HOUR, tz=TZ)
    t4 = file(s, A, D)  # escalated in time: a response; never resolved
    ticket_service.escalate(s, t4.id, worker_a, "涉及多个部门", now=D + 3 * HOUR, tz=TZ)
    t5 = file(s, A, D)  # a duplicate of t1: not counted anywhere
    change_status(s, t5, S.duplicate, actor=sec_a, duplicate_of=t1, now=D + HOUR)
    file(s, A, D)  # t6 untouched: late, late
    t7 = file(s, A, D)  # on time, on time; visit 1: 未解决 (reopened) + 满意 after it; visit 2: 已解决 + 满意
    claim(t7, D + HOUR), resolve(t7, D + DAY), answer(t7, D + 2 * DAY, solved=False)
    answer(t7, D + 2 * DAY + MIN, score=3)
    claim(t7, D + 2 * DAY + HOUR), resolve(t7, D + 3 * DAY), answer(t7, D + 4 * DAY, score=3, solved=True)
    t8 = file(s, A, D, "heating")  # urgent 2 h / 24 h: claimed after 3 h (late), resolved in 20 h;
    claim(t8, D + 3 * HOUR), resolve(t8, D + 20 * HOUR)  # answered the old way: 不满意 (reopened)
    old_answer(t8, 1, D + DAY)
    t9 = file(s, A, D, "emergency")  # dispatch limit 60 min: claimed in 30, resolved in 50; 未解决 only
    claim(t9, D + 30 * MIN), resolve(t9, D + 50 * MIN), answer(t9, D + 2 * HOUR, solved=False)
    t10 = file(s, A, D, "emergency")  # claimed after 90 min: late, and never resolved
    claim(t10, D + 90 * MIN)
    t11 = file(s, B, D)  # B: on time, on time; 满意 only, then closed after 3 days keeping it
    claim(t11, D + 2 * HOUR, sec_b), resolve(t11, D + DAY, sec_b), answer(t11, D + 2 * DAY, score=3)
    t12 = file(s, B, D)  # B: on time, on time, no answer: closed unrated (not an answer)
    claim(t12, D + 2 * HOUR, sec_b), resolve(t12, D + DAY, sec_b)
    nov = datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc)
    t13 = file(s, B, nov)  # filed in November; its resolve limit (2 Dec) and its old-style 满意 (3 Dec) count
    claim(t13, nov + HOUR, sec_b), resolve(t13, nov + 2 * DAY, sec_b)
    old_answer(t13, 3, datetime(2026, 12, 3, 2, 0, tzinfo=timezone.utc))
    file(s, B, datetime(2026, 12, 31, 4, 0, tzinfo=timezone.utc))  # t14 filed 31 Dec 12:00: limits in January
    file(s, B, datetime(2026, 11, 30, 15, 0, tzinfo=timezone.utc))  # t15 filed 30 Nov 23:00: late limits in Dec
    t16 = file(s, B, D, "noise")  # B: on time, on time; 已解决 only (still resolved: not 3 days yet)
    claim(t16, D + HOUR, sec_b), resolve(t16, D + 3 * DAY, sec_b), answer(t16, D + 4 * DAY, solved=True)
    t17 = file(s, Q, D)  # another community: on time, never resolved
    claim(t17, D + HOUR, sec_q)
    t18 = file(s, A, D + 20 * DAY)  # 30 Dec: on time; its resolve limit is in January
    claim(t18, D + 20 * DAY + HOUR)
    t19 = file(s, A, D + DAY)  # claimed exactly at its limit: on time; never resolved
    claim(t19, D + 2 * DAY)
    t20 = file(s, A, D + 2 * DAY)  # on time, on time; 已解决 + 不满意: closed, solved, not satisfied
    claim(t20, D + 2 * DAY + HOUR), resolve(t20, D + 2 * DAY + 2 * HOUR)
    answer(t20, D + 3 * DAY, score=1), answer(t20, D + 3 * DAY + MIN, solved=True)
    assert ticket_service.close_unrated(s, now=D + 5 * DAY) == 2  # t12 (no answer), t11 (满意 only)


@pytest.fixture
def worked(demo_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    with session_scope(demo_factory) as s:
        month(s)
    return demo_factory


def grid_id(s: Session, code: str) -> int:
    return s.scalars(select(Grid.id).where(Grid.code == code)).one()


def test_each_grid_and_the_whole_month_as_worked_out_by_hand(worked: sessionmaker[Session]) -> None:
    with session_scope(worked) as s:
        per_grid = rates.figures(s, START, END)
        a, b, q = (per_grid[grid_id(s, c)] for c in ("G-HPL-01", "G-HPL-02", "G-QNH-01"))
    assert (a.filed, a.response_due, a.responded_in_time, a.resolve_due, a.resolved_in_time) == (12, 12, 8, 10, 5)
    # visits: t1, t2, t7 twice, t8 (old), t9, t20; 已解决 of 7 solved answers (t1 t2 t7 t20);
    # 满意/基本满意 of 6 satisfaction answers (t1 t2 t7 t7; not t8's old 不满意 nor t20's 不满意)
    assert (a.answers, a.solved_answers, a.solved, a.satisfaction_answers, a.satisfied) == (7, 7, 4, 6, 4)
    assert a.by_category == {"parking": 9, "heating": 1, "emergency": 2}
    assert (a.response_rate, a.resolve_rate, a.solved_rate, a.satisfaction_rate) == (
        round(8 / 12, 4), 0.5, round(4 / 7, 4), round(4 / 6, 4))
    assert sorted(a.claim_minutes) == [30, 60, 60, 60, 60, 90, 180, 1440, 1500]
    assert (b.filed, b.response_due, b.responded_in_time, b.resolve_due, b.resolved_in_time) == (4, 4, 3, 5, 4)
    # t11 (满意 only), t13 (old 满意: both), t16 (已解决 only)
    assert (b.answers, b.solved_answers, b.solved, b.satisfaction_answers, b.satisfied) == (3, 2, 2, 2, 2)
    assert b.as_dict()["median_claim_minutes"] == 120 and b.as_dict()["median_resolve_minutes"] == 1440
    assert (q.filed, q.response_due, q.responded_in_time, q.resolve_due, q.resolved_in_time, q.answers) == \
        (1, 1, 1, 1, 0, 0)
    everything = rates.total(per_grid)
    assert (everything.responded_in_time, everything.response_due) == (12, 17)
    assert (everything.resolved_in_time, everything.resolve_due) == (9, 16)
    assert (everything.answers, everything.solved, everything.solved_answers) == (10, 6, 9)
    assert (everything.satisfied, everything.satisfaction_answers) == (6, 8)
    assert everything.overdue == 0  # no deadline sweep ran in this month


def test_november_sees_only_what_fell_in_november(worked: sessionmaker[Session]) -> None:
    with session_scope(worked) as s:
        nov = rates.total(rates.figures(s, datetime(2026, 11, 1, tzinfo=TZ), START))
    # t13 (filed, claimed in time) and t15 (filed 23:00 on the 30th, its limit on 1 Dec)
    assert (nov.filed, nov.response_due, nov.responded_in_time, nov.resolve_due, nov.answers) == (2, 1, 1, 0, 0)


def test_a_ticket_counts_for_the_grid_it_is_in_now(worked: sessionmaker[Session]) -> None:
    with session_scope(worked) as s:
        t1 = s.scalars(select(Ticket).where(Ticket.grid_id == grid_id(s, "G-HPL-01")).order_by(Ticket.id)).first()
        assert t1 is not None
        t1.grid_id = grid_id(s, "G-HPL-02")  # as a transfer would leave it
    with session_scope(worked) as s:
        per_grid = rates.figures(s, START, END)
        a, b = per_grid[grid_id(s, "G-HPL-01")], per_grid[grid_id(s, "G-HPL-02")]
    assert (a.filed, a.responded_in_time, a.answers, a.solved_answers) == (11, 7, 6, 6)
    assert (b.filed, b.responded_in_time, b.answers, b.solved_answers) == (5, 4, 4, 3)


def test_transfers_the_triage_queue_and_merges_count_as_docs_rates_says(demo_factory: sessionmaker[Session]) -> None:
    """docs/rates.md: a branch's 退回 is a response but no end; a transfer is no response, keeps the
    limits as filed and counts for the grid it went to; a merged duplicate counts nowhere; only the
    community's 退回 leaves 办结率. Parking: 24 h to respond, 7 days to resolve."""
    with session_scope(demo_factory) as s:
        sec_a, admin, sec_b = who(s, "P-0001"), who(s, "P-0069"), secretary(s, "BR-HPL-02")
        to_b = grid_id(s, "G-HPL-02")
        ta = file(s, A, D)  # 退回 by the branch in 2 h (a response), placed in B, resolved in time there
        ticket_service.reject(s, ta.id, sec_a, "是第二网格商户的车", tz=TZ, now=D + 2 * HOUR)
        transfer.transfer(s, ta.id, admin, to_b, "商户在第二网格", tz=TZ, now=D + 3 * HOUR)
        ticket_service.claim(s, ta.id, sec_b, now=D + 30 * HOUR)
        ticket_service.resolve(s, ta.id, sec_b, "已挪车", now=D + 2 * DAY)
        tb = file(s, A, D)  # transferred by the branch in 1 h (no response), claimed in B after 30 h: late
        transfer.transfer(s, tb.id, sec_a, to_b, "不在我们网格", tz=TZ, now=D + HOUR)
        ticket_service.claim(s, tb.id, sec_b, now=D + 30 * HOUR)
        tc = file(s, A, D)  # merged into ta: nowhere
        transfer.merge(s, tc.id, admin, ta.number, tz=TZ, now=D + HOUR)
        td = file(s, A, D)  # 退回 by the branch, then by the community (final): a response, no 办结
        ticket_service.reject(s, td.id, sec_a, "不是网格的事", tz=TZ, now=D + 2 * HOUR)
        ticket_service.reject(s, td.id, admin, "属于市政，请拨打12345", tz=TZ, now=D + 3 * HOUR)
        assert (ta.status, tb.status, tc.status, td.status) == (S.resolved, S.claimed, S.duplicate, S.rejected)
    with session_scope(demo_factory) as s:
        per_grid = rates.figures(s, START, END)
        a, b = per_grid[grid_id(s, "G-HPL-01")], per_grid[grid_id(s, "G-HPL-02")]
    assert (a.filed, a.response_due, a.responded_in_time, a.resolve_due, a.resolved_in_time) == (1, 1, 1, 0, 0)
    assert (b.filed, b.response_due, b.responded_in_time, b.resolve_due, b.resolved_in_time) == (2, 2, 1, 2, 1)
    assert (a.response_rate, b.response_rate, b.resolve_rate) == (1.0, 0.5, 0.5)


def test_overdue_marks_are_counted_in_the_month_they_were_made(engine: Engine, demo_factory: sessionmaker[Session]
                                                               ) -> None:
    from core.scheduler import DutyScheduler  # the leader's round makes the marks

    with session_scope(demo_factory) as s:
        file(s, A, D)
    leader = DutyScheduler(engine.url.render_as_string(hide_password=False), tz=TZ)
    try:
        leader.deadlines(D)
        leader.deadlines(D + 8 * DAY)  # past both limits: two marks
    finally:
        leader.stop()
    with session_scope(demo_factory) as s:
        assert rates.total(rates.figures(s, START, END)).overdue == 2
        assert lifecycle.events_of(s, s.scalars(select(Ticket)).one())[-1].note == "已超期：超过办结时限仍未办结"


def gridbot(args: list[str], url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_gridbot_stats_json_table_and_bad_input(worked: sessionmaker[Session], engine: Engine,
                                                tmp_path: Path) -> None:
    url = engine.url.render_as_string(hide_password=False)
    result = gridbot(["stats", "--month", "2026-12", "--community", "C-HPL", "--json"], url)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [g["grid"] for g in data["grids"]] == ["G-HPL-01", "G-HPL-02"]
    assert data["total"]["response_rate"] == round(11 / 16, 4) and data["total"]["resolve_rate"] == 0.6
    assert data["total"]["satisfaction_rate"] == 0.75 and data["total"]["solved_rate"] == round(6 / 9, 4)
    assert (data["total"]["answers"], data["total"]["solved_answers"], data["total"]["satisfaction_answers"]) == (10, 9, 8)
    table = gridbot(["stats", "--month", "2026-12"], url)
    assert table.returncode == 0 and "G-QNH-01" in table.stdout and "total" in table.stdout
    for bad, message in ((["--month", "2026-13"], "must be a month"), (["--month", "12/2026"], "must be a month"),
                         (["--month", "2026-12", "--community", "C-NOPE"], "unknown community")):
        refused = gridbot(["stats", *bad], url)
        assert refused.returncode == 2 and message in refused.stderr


def test_what_each_role_reads_in_chat(worked: sessionmaker[Session]) -> None:
    from core.tickets import rate_reports

    with session_scope(worked) as s:
        secretary_a = rate_reports.report_text(s, who(s, "P-0001"), START, END, TZ, min_tickets=5)
        admin = rate_reports.report_text(s, who(s, "P-0069"), START, END, TZ, min_tickets=5)
        resident = rate_reports.report_text(s, who(s, "P-0071"), START, END, TZ, min_tickets=5)
    assert resident is None
    assert secretary_a is not None and secretary_a.startswith("📊 2026-12")
    # their grid, then the community's whole (和平里: 16 filed, 11 of 16 on time, 9 of 15, 6 of 9, 6 of 8)
    assert "和平里第一网格：受理12件｜响应率67%｜办结率50%｜解决率57%｜满意率67%" in secretary_a
    assert "和平里社区（全社区）：受理16件｜响应率69%｜办结率60%｜解决率67%｜满意率75%" in secretary_a
    assert "青年湖" not in secretary_a
    assert admin is not None and "和平里第二网格：受理4件" in admin
    # ranked by 满意率, only the grids with at least 5 tickets: the second grid has 4
    assert "1. 和平里第一网格 67%" in admin and "2. 和平里第二网格" not in admin


def test_the_monthly_report_goes_out_once_in_the_first_round_of_the_month(
        worked: sessionmaker[Session]) -> None:
    from core.models import OutboxMessage
    from core.tickets import rate_reports

    january = datetime(2027, 1, 1, 1, 0, tzinfo=timezone.utc)  # 09:00 on 1 January in Shanghai
    with session_scope(worked) as s:
        assert not rate_reports.monthly_sent(s, january, TZ)
        sent = rate_reports.send_monthly(s, january, TZ, min_tickets=5)
        assert sent >= 3  # the branch secretaries and the two community admins
        assert rate_reports.monthly_sent(s, january, TZ)
        assert rate_reports.send_monthly(s, january + DAY, TZ, min_tickets=5) == 0  # once
        admin = who(s, "P-0069").telegram_id
        [row] = s.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == admin,
                                                      OutboxMessage.dedupe_key.startswith("stats-month:"))).all()
        assert row.payload["text"].startswith("📊 2026-12 月度工单情况") and "和平里第一网格" in row.payload["text"]
        # nothing happened in November 2025: no report for it
        assert rate_reports.send_monthly(s, datetime(2025, 12, 1, 1, 0, tzinfo=timezone.utc), TZ, min_tickets=5) == 0


def test_stats_in_telegram_for_a_secretary_and_a_resident(worked: sessionmaker[Session], engine: Engine) -> None:
    """Through the real Application (this month: the worked month is December 2026, today's date
    in these tests may be any; the figures are checked above, here who gets what)."""
    import asyncio

    from tests.app.journey import journey

    async def scenario() -> None:
        async with journey(worked, "http://127.0.0.1:9") as j:
            got = await j.say(700000001, "/stats")  # the secretary of 和平里第一网格党支部
            assert any(x.startswith("📊 ") and "和平里第一网格：受理" in x and "（全社区）" in x for x in got), got
            got = await j.say(700000071, "/stats")  # a resident
            assert got == ["只有支部书记、社区和街道管理员可以查看工单统计。"]

    asyncio.run(scenario())
