"""Roles and permissions: every role × every action, at its own scope and across branches,
grids and communities; the ticket workflow and the duties on top of the table; ticket
buttons pressed by the wrong person, with forged, tampered or stale callback data; the
audit of a resident's contact.

The matrix runs on one demo database (two communities, C-HPL and C-QNH) per module;
each test works in its own transaction and rolls back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.access import tickets as ticket_access
from core.access.permissions import (
    PERMISSIONS,
    NotAllowed,
    Scope,
    allowed,
    require,
    roles_at,
    scope_of_branch,
)
from core.db import make_engine, make_session_factory, session_scope
from core.duties import common
from core.messages import t
from core.migrate import upgrade
from core.models import (
    AuditEntry,
    Branch,
    Building,
    Community,
    Grid,
    OutboxMessage,
    Person,
    Role,
    RoleGrant,
    Shift,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from core.registry import grants
from core.registry.importer import import_registry
from core.tickets import service as ticket_service
from core.tickets import visit
from core.tickets.categories import sync_categories
from core.tickets.lifecycle import NewTicket
from tests.app.conftest import DEMO
from tests.app.journey import Journey, journey

R = Role
S = TicketStatus
TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)
NO_RASA = "http://127.0.0.1:9"

HOME = "BR-HPL-01"  # grid G-HPL-01 in community C-HPL: where each test person holds their role
# where an action may happen, relative to HOME
PLACES = ("home", "other_branch", "other_community", "home_community", "other_community_only")
# where each role (held at HOME, or in C-HPL for the community-scoped ones) counts
HOLDS: dict[Role, frozenset[str]] = {
    R.resident: frozenset({"home", "other_branch", "home_community"}),
    R.volunteer: frozenset({"home", "other_branch", "home_community"}),
    R.member: frozenset({"home"}),
    R.dual_member: frozenset({"home"}),  # 在职党员: the grid (and its branch) of their /baodao
    R.secretary: frozenset({"home"}),
    R.grid_worker: frozenset({"home"}),
    R.community_admin: frozenset({"home", "other_branch", "home_community"}),
    R.street_admin: frozenset(PLACES),  # 和平里 and 青年湖 are both on 和平街道
    R.operator: frozenset(PLACES),
    R.commander: frozenset({"home", "other_branch", "home_community"}),  # 和平里社区's 指挥长
}
# The roles each test person holds: their own, and for a commander the admin role it stands on.
WITH: dict[Role, frozenset[Role]] = {role: frozenset({role}) for role in Role} | {
    R.commander: frozenset({R.commander, R.community_admin})}


def may(role: Role, action: str) -> bool:
    """Whether the test person holding `role` (WITH) may take `action` where their roles hold."""
    return bool(WITH[role] & PERMISSIONS[action])


TG = {role: 910000000 + i for i, role in enumerate(Role)}  # the test person holding exactly `role`

# The table in words (docs/operator.md "Roles and permissions"), pinned so a change to it is deliberate.
PINNED: dict[str, set[Role]] = {
    "ticket.claim": {R.member, R.dual_member, R.secretary, R.grid_worker, R.community_admin, R.street_admin},
    "ticket.resolve": {R.secretary, R.grid_worker, R.community_admin, R.street_admin},
    "ticket.escalate": {R.secretary, R.grid_worker, R.community_admin},
    "ticket.reject": {R.secretary, R.grid_worker, R.community_admin, R.street_admin},
    "ticket.contact": {R.secretary, R.grid_worker, R.community_admin, R.street_admin},
    "ticket.urge": {R.community_admin, R.street_admin},
    "ticket.list": {R.secretary, R.grid_worker, R.community_admin, R.street_admin},
    "ticket.assign": {R.secretary, R.grid_worker, R.community_admin},
    "ticket.return": {R.community_admin, R.street_admin},
    "callback.handle": {R.grid_worker, R.community_admin},
    "event.manage": {R.secretary, R.community_admin},
    "event.report": {R.secretary, R.community_admin, R.street_admin},
    "shift.manage": {R.secretary, R.community_admin},
    "invite.create": {R.secretary},
    "role.grant": {R.operator},
    "audit.read": {R.operator, R.community_admin, R.street_admin},
    "web.login": {R.secretary, R.grid_worker, R.community_admin, R.street_admin},
    "baodao.decide": {R.secretary, R.community_admin},
    "roster.view": {R.secretary, R.grid_worker, R.community_admin, R.street_admin},
    "space.book": {R.resident},
    "space.book_party": {R.member, R.secretary, R.community_admin},
    "space.book_unit": {R.dual_member},
    "space.manage": {R.community_admin},
    "mobilise.declare": {R.commander},
    "mobilise.command": {R.commander},
    "mobilise.roll": {R.commander, R.secretary, R.grid_worker, R.community_admin, R.street_admin},
    "study.read": {R.member, R.dual_member, R.secretary, R.community_admin, R.street_admin},
    "study.manage": {R.secretary, R.community_admin},
}


@pytest.fixture(scope="module")
def matrix_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sessionmaker[Session]]:
    """The demo registry plus one person per role, each holding only that role."""
    engine: Engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('perm') / 'gridbot.db'}")
    upgrade(engine)
    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        sync_categories(s)
        import_registry(s, [DEMO])
        for role, tg in TG.items():
            s.add(Person(telegram_id=tg, display_name=f"测试{role.value}"))
        s.flush()
        scoped = {R.secretary: {"branch": HOME}, R.member: {"branch": HOME}, R.grid_worker: {"grid": "G-HPL-01"},
                  R.community_admin: {"community": "C-HPL"}, R.street_admin: {"street": "ST-HP"},
                  R.resident: {"community": "C-HPL"},
                  R.volunteer: {"community": "C-HPL"}, R.operator: {}}
        for role, scope in scoped.items():
            grants.grant(s, grants.resolve(s, str(TG[role]), role.value, **scope))
        # a commander: a community admin with the commander grant on top
        for role in (R.community_admin, R.commander):
            grants.grant(s, grants.resolve(s, str(TG[R.commander]), role.value, community="C-HPL"))
        home = s.scalars(select(Branch).where(Branch.code == HOME)).one()  # as /baodao's approval grants it
        s.add(RoleGrant(person_id=s.scalars(select(Person.id).where(Person.telegram_id == TG[R.dual_member])).one(),
                        role=R.dual_member, community_id=code_id(s, Community, "C-HPL"), grid_id=home.grid_id,
                        branch_id=home.id))
    yield factory
    engine.dispose()


def code_id(s: Session, model: type, code: str) -> int:
    return s.scalars(select(model.id).where(model.code == code)).one()  # type: ignore[attr-defined]


def place(s: Session, where: str) -> Scope:
    branch = {"home": HOME, "other_branch": "BR-HPL-02", "other_community": "BR-QNH-01"}.get(where)
    if branch is not None:
        return scope_of_branch(s, s.scalars(select(Branch).where(Branch.code == branch)).one())
    return Scope(community_id=code_id(s, Community, "C-HPL" if where == "home_community" else "C-QNH"))


def holder(s: Session, role: Role) -> Person:
    return s.scalars(select(Person).where(Person.telegram_id == TG[role])).one()


def who(s: Session, code: str) -> Person:
    return s.scalars(select(Person).where(Person.code == code)).one()


def count(s: Session, model: type) -> int:
    return s.scalar(select(func.count()).select_from(model)) or 0


# -- the table ------------------------------------------------------------------------

def test_the_table_says_what_the_readme_says() -> None:
    for action, roles in PINNED.items():
        assert PERMISSIONS[action] == roles, action
    for action in PERMISSIONS:  # every action has its refusal text
        assert t(f"action.{action}")


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
@pytest.mark.parametrize("action", sorted(PERMISSIONS))
def test_every_role_and_action_at_home_and_across(matrix_db: sessionmaker[Session], role: Role,
                                                   action: str) -> None:
    with matrix_db() as s:
        person = holder(s, role)
        for where in PLACES:
            scope = place(s, where)
            expected = may(role, action) and where in HOLDS[role]
            assert allowed(s, person, action, scope) is expected, (role.value, action, where)
            if expected:
                assert require(s, person, action, scope) is person
            else:
                with pytest.raises(NotAllowed, match="您没有权限"):
                    require(s, person, action, scope)
        s.rollback()


def test_each_test_person_holds_only_their_role(matrix_db: sessionmaker[Session]) -> None:
    with matrix_db() as s:
        for role in Role:
            assert roles_at(s, holder(s, role), place(s, "home")) == WITH[role]
            held_away = roles_at(s, holder(s, role), place(s, "other_community"))
            assert held_away == ({role} if role in (R.operator, R.street_admin) else set())


def test_nobody_and_unknown_actions_are_refused(matrix_db: sessionmaker[Session]) -> None:
    with matrix_db() as s:
        stranger = Person(telegram_id=919999999, display_name="路人")
        s.add(stranger)
        s.flush()
        for action in PERMISSIONS:
            for where in PLACES:
                assert not allowed(s, stranger, action, place(s, where))
                assert not allowed(s, None, action, place(s, where))
            with pytest.raises(NotAllowed, match="请先发送 /start 登记"):
                require(s, None, action, place(s, "home"))
        with pytest.raises(ValueError, match="unknown action"):
            allowed(s, stranger, "ticket.delete", place(s, "home"))
        s.rollback()


# -- the ticket workflow and the duties use the table ------------------------------------

def report(s: Session, building: str, reporter: str = "P-0071", **extra: object) -> Ticket:
    b = s.scalars(select(Building).where(Building.code == building)).one()
    data = NewTicket("parking", "楼下有车堵了消防通道", reporter_id=who(s, reporter).id,
                     community_id=b.grid.community_id, grid_id=b.grid_id, building_id=b.id, **extra)  # type: ignore[arg-type]
    return ticket_service.submit_report(s, data, tz=TZ, now=T0)


TICKET_ACTIONS = ("claim", "resolve", "escalate", "reject", "contact")


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
@pytest.mark.parametrize("action", TICKET_ACTIONS)
def test_ticket_actions_by_role_in_the_grid_and_elsewhere(matrix_db: sessionmaker[Session], role: Role,
                                                          action: str) -> None:
    """A ticket in the home grid, one in the same community's other grid, one in the other community."""
    with matrix_db() as s:
        person = holder(s, role)
        for building, where in (("B-HPL-01-07", "home"), ("B-HPL-02-12", "other_branch"),
                                ("B-QNH-01-01", "other_community")):
            ticket = report(s, building)
            if action == "resolve":  # needs a claimed ticket, claimed by someone else
                ticket_service.claim(s, ticket.id, who(s, "P-0069" if where != "other_community" else "P-0070"))
            expected = may(role, f"ticket.{action}") and where in HOLDS[role]
            if expected:
                ticket_access.check(s, person, action, ticket)
            else:
                with pytest.raises(NotAllowed, match="只有"):
                    ticket_access.check(s, person, action, ticket)
        s.rollback()


def test_ticket_relations_on_top_of_the_table(matrix_db: sessionmaker[Session]) -> None:
    """The claimer (a member) may resolve; only the reporter and followers rate; roles do not rate."""
    with matrix_db() as s:
        ticket = report(s, "B-HPL-01-07")
        member = holder(s, R.member)
        with pytest.raises(NotAllowed, match="可以办结"):
            ticket_access.check(s, member, "resolve", ticket)  # a member without the claim
        ticket_service.claim(s, ticket.id, member)
        ticket_access.check(s, member, "resolve", ticket)
        ticket_service.resolve(s, ticket.id, member, "已挪车")
        for role in Role:
            with pytest.raises(NotAllowed, match="只有报告人"):
                ticket_access.check(s, holder(s, role), "rate", ticket)
        ticket_access.check(s, who(s, "P-0071"), "rate", ticket)
        with pytest.raises(ValueError):
            ticket_access.check(s, member, "delete", ticket)
        s.rollback()


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_event_and_shift_management_by_role(matrix_db: sessionmaker[Session], role: Role) -> None:
    with matrix_db() as s:
        person = holder(s, role)
        for branch_code, where in ((HOME, "home"), ("BR-HPL-02", "other_branch"), ("BR-QNH-01", "other_community")):
            branch = s.scalars(select(Branch).where(Branch.code == branch_code)).one()
            manages = may(role, "event.manage") and where in HOLDS[role]
            assert common.may_manage_branch(s, person, branch) is manages, (role, where)
            shift = Shift(branch_id=branch.id, community_id=branch_community(s, branch), title="值守",
                          place="东门", starts_at=T0, ends_at=T0 + timedelta(hours=2), capacity=2)
            assert common.may_manage_shift(s, person, shift) is (may(role, "shift.manage")
                                                                 and where in HOLDS[role])
        for community, where in (("C-HPL", "home_community"), ("C-QNH", "other_community_only")):
            community_shift = Shift(branch_id=None, community_id=code_id(s, Community, community), title="值守",
                                    place="东门", starts_at=T0, ends_at=T0 + timedelta(hours=2), capacity=2)
            # a community's shift: its admins, and the secretaries of its branches
            expected = where == "home_community" and bool(WITH[role] & {R.community_admin, R.secretary})
            assert common.may_manage_shift(s, person, community_shift) is expected, (role, where)
        s.rollback()


def branch_community(s: Session, branch: Branch) -> int:
    grid = s.get(Grid, branch.grid_id)
    assert grid is not None
    return grid.community_id


# -- the audit of a resident's contact ----------------------------------------------------

def test_contact_details_are_audited_and_a_refusal_records_nothing(matrix_db: sessionmaker[Session]) -> None:
    with matrix_db() as s:
        ticket = report(s, "B-HPL-01-07")
        before = count(s, AuditEntry)
        for role in (R.member, R.resident, R.operator):
            with pytest.raises(NotAllowed):
                ticket_service.contact_details(s, ticket.id, holder(s, role))
        with pytest.raises(NotAllowed):
            ticket_service.contact_details(s, ticket.id, who(s, "P-0008"))  # secretary of another branch
        assert count(s, AuditEntry) == before
        shown = ticket_service.contact_details(s, ticket.id, holder(s, R.grid_worker))
        assert "13800000071" in shown
        [entry] = audit.entries(s, action="ticket.contact")
        assert (entry.actor_id, entry.subject) == (holder(s, R.grid_worker).id, f"ticket:{ticket.id}")
        assert entry.detail["number"] == ticket.number and entry.detail["phone"] is True
        assert "13800000071" not in str(entry.detail) and "戴春生" not in str(entry.detail)
        anonymous = report(s, "B-HPL-01-07", anonymous=True)
        assert "不能查看联系方式" in ticket_service.contact_details(s, anonymous.id, holder(s, R.grid_worker))
        assert count(s, AuditEntry) == before + 1  # nothing shown, nothing recorded
        s.rollback()


# -- through the bot: buttons pressed by the wrong person, forged, tampered, stale ---------------

BRANCH_CHAT, SECRETARY, MEMBER = -1001000000001, 700000001, 700000002
OTHER_SECRETARY = 700000008  # P-0008, secretary of BR-HPL-02
QNH_SECRETARY = 700000031  # P-0031, secretary of BR-QNH-01


def state(factory: sessionmaker[Session], ticket_id: int) -> tuple[S, int | None, int, int]:
    with factory() as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None
        events = s.scalar(select(func.count()).where(TicketEvent.ticket_id == ticket_id)) or 0
        return ticket.status, ticket.claimed_by_id, events, count(s, AuditEntry)


def new_ticket(factory: sessionmaker[Session], building: str = "B-HPL-01-07") -> int:
    with session_scope(factory) as s:
        return report(s, building).id


def outbox_size(factory: sessionmaker[Session]) -> int:
    with factory() as s:
        return count(s, OutboxMessage)


async def press_data(j: Journey, user_id: int, data: object, chat_id: int = BRANCH_CHAT) -> list[str]:
    """Press a button carrying `data` that the bot issued (core.messaging.buttons), i.e. data the server
    accepts as its own, on the newest message in `chat_id`."""
    return await press_raw(j, user_id, j.issue(data), chat_id)


async def press_raw(j: Journey, user_id: int, raw: str, chat_id: int = BRANCH_CHAT) -> list[str]:
    """Press with raw callback data, as a client could send anything."""
    message = j.fake.last_message(chat_id)
    answers = len(j.fake.calls_to("answerCallbackQuery"))
    got = await j.step(j.updates.callback_query(user_id, raw, message), user_id)
    return got + [str(c.params.get("text") or "") for c in j.fake.calls_to("answerCallbackQuery")[answers:]]


def test_card_buttons_pressed_by_another_branchs_secretary_are_refused(
        sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory
    ticket_id = new_ticket(factory)
    before = state(factory, ticket_id)

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            await j.drain()  # the card reaches the branch group
            for button, refusal in (("领单", "可以领单"), ("上报社区", "上报社区"), ("退回", "退回工单"),
                                    ("联系人", "查看联系人"), ("办结", "可以办结")):
                for user in (OTHER_SECRETARY, QNH_SECRETARY):
                    got = await j.press(user, BRANCH_CHAT, button)
                    assert any(refusal in x for x in got), (button, user, got)
                    assert not any("13800000071" in x for x in got)
                    assert j.prompt(user) is None
            assert state(factory, ticket_id) == before
            # the branch's own secretary sees the contact, and that is audited
            got = await j.press(SECRETARY, BRANCH_CHAT, "联系人")
            assert any("13800000071" in x for x in got), got

    asyncio.run(scenario())
    with factory() as s:
        [entry] = audit.entries(s, action="ticket.contact")
        assert entry.actor_id == who(s, "P-0001").id and entry.subject == f"ticket:{ticket_id}"


def test_forged_tampered_and_stale_callback_data_are_refused(sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory
    ticket_id = new_ticket(factory)
    qnh_ticket = new_ticket(factory, "B-QNH-01-01")
    with factory() as s:
        qnh_branch = s.scalars(select(Branch.id).where(Branch.code == "BR-QNH-01")).one()

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            await j.drain()
            before, qnh_before, queued = state(factory, ticket_id), state(factory, qnh_ticket), outbox_size(factory)
            # forged: data the bot never sent (a random string, a plain "t:claim:<id>" a client made up)
            for raw in ("8f14e45fceea167a5a36dedd4bea2543", f"t:claim:{ticket_id}", "invite"):
                got = await press_raw(j, SECRETARY, raw)
                assert t("button_invalid") in got, (raw, got)
            # tampered: well-formed data the server accepts as its own, naming what the presser may not touch
            got = await press_data(j, SECRETARY, f"t:claim:{qnh_ticket}")  # a ticket of another community
            assert any("可以领单" in x for x in got), got
            got = await press_data(j, SECRETARY, f"t:contact:{qnh_ticket}")
            assert any("查看联系人" in x for x in got) and not any("13800000081" in x for x in got), got
            got = await press_data(j, SECRETARY, "t:claim:999999")  # no such ticket
            assert any(t("ticket.not_found") in x for x in got), got
            got = await press_data(j, SECRETARY, f"t:claim:{ticket_id}x")  # malformed id
            assert t("button_invalid") in got, got
            got = await press_data(j, 700000071, f"r:{ticket_id}:3")  # rating before it is resolved
            assert any(t("deny.not_resolved") in x for x in got), got
            got = await press_data(j, SECRETARY, ["invite", qnh_branch], chat_id=SECRETARY)  # another branch's invite
            assert any("您没有权限生成这个支部的邀请码" in x for x in got), got
            assert state(factory, ticket_id) == before and state(factory, qnh_ticket) == qnh_before
            assert outbox_size(factory) == queued

            # stale: the card's 领单 after a member claimed it, 办结/退回 after it was closed
            assert any(t("ticket.claimed_toast") in x for x in await j.press(MEMBER, BRANCH_CHAT, "领单"))
            after_claim = state(factory, ticket_id)
            got = await j.press(700000003, BRANCH_CHAT, "领单")
            assert any(t("deny.state_claimed") in x for x in got), got
            assert state(factory, ticket_id) == after_claim
            with session_scope(factory) as s:
                ticket_service.resolve(s, ticket_id, who(s, "P-0002"), "已挪车")
                visit.answer(s, ticket_id, who(s, "P-0071"), solved=True, score=3, tz=TZ)
            closed = state(factory, ticket_id)
            assert closed[0] is S.closed
            for button in ("领单", "上报社区", "退回"):
                got = await j.press(SECRETARY, BRANCH_CHAT, button)
                assert any(t("deny.state_closed") in x for x in got), (button, got)
            assert state(factory, ticket_id) == closed

    asyncio.run(scenario())


def test_unregistered_presser_is_refused(sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory
    ticket_id = new_ticket(factory)

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            await j.drain()
            before = state(factory, ticket_id)
            got = await j.press(719999999, BRANCH_CHAT, "领单")
            assert t("ticket.unknown_person") in got, got
            assert state(factory, ticket_id) == before
            with factory() as s:
                assert s.scalar(select(Person).where(Person.telegram_id == 719999999)) is None

    asyncio.run(scenario())
