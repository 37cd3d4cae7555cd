"""Who hears of a new ticket: core/tickets/destinations.py's table, each kind of recipient, and the
cards submit_report queues from it."""

from __future__ import annotations

import itertools
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.db import session_scope
from core.models import Branch, Grid, OutboxMessage, Person, Role, RoleGrant
from core.tickets import destinations
from core.tickets import service as ticket_service
from core.tickets.destinations import Situation, To
from core.tickets.lifecycle import NewTicket

TZ = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(("routed", "urgent", "group", "community"),
                         list(itertools.product([True, False], repeat=4)))
def test_the_table_names_who_gets_a_new_ticket(routed: bool, urgent: bool, group: bool, community: bool) -> None:
    to = [d.to for d in destinations.for_new_ticket(Situation(routed, urgent, group, community))]
    assert (To.branch_group in to) == (routed and group)  # the branch claims what it can see
    assert (To.grid_workers in to) == (routed and (urgent or not group))
    assert (To.community_admins in to) == ((routed and (urgent or not group)) or (not routed and community))
    assert (To.every_admin in to) == (not routed and not community and urgent)  # no emergency unheard
    assert routed or urgent or community or to == []  # a plain ticket nobody can place waits in the queue


def _grid(s: Session, code: str) -> Grid:
    return s.scalars(select(Grid).where(Grid.code == code)).one()


def _file(factory: sessionmaker[Session], category: str, grid: str | None, *, community: bool = True) -> list[tuple[str, int]]:
    with session_scope(factory) as s:
        g = _grid(s, grid) if grid else None
        ticket = ticket_service.submit_report(s, NewTicket(
            category_code=category, description="测试", grid_id=g.id if g else None,
            community_id=(g.community_id if g else _grid(s, "G-HPL-01").community_id) if community else None,
        ), tz=TZ, notify_reporter=False)
        return [(row.dedupe_key.split(":")[0], row.chat_id) for row in s.scalars(
            select(OutboxMessage).where(OutboxMessage.dedupe_key.contains(f":{ticket.id}:")))]


def _people(factory: sessionmaker[Session], role: Role, **scope: int) -> set[int]:
    with session_scope(factory) as s:
        where = [RoleGrant.role == role] + [getattr(RoleGrant, k) == v for k, v in scope.items()]
        return {p.telegram_id for p in s.scalars(select(Person).join(Person.grants).where(*where))
                if p.telegram_id is not None}


def test_branch_group_gets_an_ordinary_ticket_and_nobody_else(sqlite_demo_factory: sessionmaker[Session]) -> None:
    with session_scope(sqlite_demo_factory) as s:
        group = s.scalars(select(Branch).where(Branch.grid_id == _grid(s, "G-HPL-01").id)).one().telegram_chat_id
    assert _file(sqlite_demo_factory, "parking", "G-HPL-01") == [("branch_group", group)]


def test_grid_workers_and_admins_also_get_an_urgent_one(sqlite_demo_factory: sessionmaker[Session]) -> None:
    with session_scope(sqlite_demo_factory) as s:
        grid = _grid(s, "G-HPL-01")
        grid_id, community_id = grid.id, grid.community_id
    sent = _file(sqlite_demo_factory, "emergency", "G-HPL-01")
    by_kind = {kind: {chat for k, chat in sent if k == kind} for kind in {k for k, _ in sent}}
    assert by_kind["grid_workers"] == _people(sqlite_demo_factory, Role.grid_worker, grid_id=grid_id) != set()
    assert by_kind["community_admins"] == _people(sqlite_demo_factory, Role.community_admin,
                                                  community_id=community_id) != set()
    assert len(by_kind["branch_group"]) == 1


def test_community_admins_place_a_ticket_without_a_grid(sqlite_demo_factory: sessionmaker[Session]) -> None:
    sent = _file(sqlite_demo_factory, "parking", None)
    assert {k for k, _ in sent} == {"community_admins"} and sent


def test_every_admin_hears_of_an_emergency_nobody_can_place(sqlite_demo_factory: sessionmaker[Session]) -> None:
    assert _file(sqlite_demo_factory, "parking", None, community=False) == []  # waits in the queue
    sent = _file(sqlite_demo_factory, "emergency", None, community=False)
    assert {k for k, _ in sent} == {"every_admin"}
    assert {chat for _, chat in sent} == _people(sqlite_demo_factory, Role.community_admin)


def test_a_submission_retried_after_a_crash_files_and_tells_once(sqlite_demo_factory: sessionmaker[Session]) -> None:
    def submit() -> int:
        with session_scope(sqlite_demo_factory) as s:
            grid = _grid(s, "G-HPL-01")
            return ticket_service.submit_report(s, NewTicket(
                category_code="parking", description="门口被堵", grid_id=grid.id, community_id=grid.community_id,
                submission_key="700000101:42"), tz=TZ, notify_reporter=False).id

    first, again = submit(), submit()
    assert first == again
    with session_scope(sqlite_demo_factory) as s:
        assert len(list(s.scalars(select(OutboxMessage).where(
            OutboxMessage.dedupe_key.contains(f":{first}:"))))) == 1  # one card to the branch group
