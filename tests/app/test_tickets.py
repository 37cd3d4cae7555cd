"""The ticket service: legal transitions only, an event for every change, unique numbers."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.db import session_scope
from core.models import Person, Ticket, TicketEvent, TicketStatus
from core.tickets.lifecycle import (
    LEGAL_TRANSITIONS,
    IllegalTransition,
    NewTicket,
    change_status,
    file_ticket,
)

TZ = ZoneInfo("Asia/Shanghai")
S = TicketStatus

# A path from `new` to every status, using only legal moves.
PATH_TO = {
    S.new: [],
    S.accepted: [S.accepted],
    S.claimed: [S.accepted, S.claimed],
    S.resolved: [S.accepted, S.claimed, S.resolved],
    S.closed: [S.accepted, S.claimed, S.resolved, S.closed],
    S.reopened: [S.accepted, S.claimed, S.resolved, S.reopened],
    S.escalated: [S.escalated],
    S.rejected: [S.rejected],
    S.duplicate: [S.duplicate],
    S.withdrawn: [S.accepted, S.withdrawn],  # 撤回 by the reporter (core.ticket_changes)
    S.triage: [S.accepted, S.triage],  # 退回 by the branch, to the community
}


def _person(session: Session) -> Person:
    person = Person(display_name="测试员")
    session.add(person)
    session.flush()
    return person


def _ticket(session: Session, reporter: Person | None = None) -> Ticket:
    return file_ticket(session, NewTicket("parking", "楼下有车乱停", reporter_id=reporter.id if reporter else None), tz=TZ)


def _move(session: Session, ticket: Ticket, to: TicketStatus, actor: Person, original: Ticket | None = None) -> None:
    change_status(session, ticket, to, actor=actor, note="处理说明", duplicate_of=original)


def test_filing_sets_number_due_times_and_first_event(factory: sessionmaker[Session]) -> None:
    now = datetime(2026, 12, 31, 17, 30, tzinfo=timezone.utc)  # already 2027 in Shanghai
    with session_scope(factory) as s:
        ticket = file_ticket(s, NewTicket("elevator", "电梯坏了"), tz=TZ, now=now)
        assert re.fullmatch(r"2027-\d{6}", ticket.number)
        assert ticket.status is S.new
        assert ticket.respond_due_at is not None and (ticket.respond_due_at - now).total_seconds() == 2 * 3600
        assert ticket.resolve_due_at is not None and (ticket.resolve_due_at - now).total_seconds() == 24 * 3600
        assert [(e.from_status, e.to_status) for e in ticket.events] == [(None, S.new)]


def test_full_loop_records_every_step(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as s:
        actor = _person(s)
        ticket = _ticket(s, actor)
        for to in PATH_TO[S.closed]:
            _move(s, ticket, to, actor)
        s.refresh(ticket)
        steps = [(e.from_status, e.to_status, e.actor_id) for e in ticket.events]
        assert steps == [(None, S.new, actor.id), (S.new, S.accepted, actor.id), (S.accepted, S.claimed, actor.id),
                         (S.claimed, S.resolved, actor.id), (S.resolved, S.closed, actor.id)]
        assert all(e.at.tzinfo is not None for e in ticket.events)


ILLEGAL = [(f, t) for f in S for t in S if t not in LEGAL_TRANSITIONS[f]]


@pytest.mark.parametrize(("start", "target"), ILLEGAL, ids=[f"{f.value}->{t.value}" for f, t in ILLEGAL])
def test_every_illegal_transition_is_rejected_and_changes_nothing(
    sqlite_engine, start: TicketStatus, target: TicketStatus  # type: ignore[no-untyped-def]
) -> None:
    factory = sessionmaker(sqlite_engine, expire_on_commit=False)
    with session_scope(factory) as s:
        actor = _person(s)
        original = _ticket(s, actor)
        ticket = _ticket(s, actor)
        for to in PATH_TO[start]:
            _move(s, ticket, to, actor, original)
        ticket_id, events_before = ticket.id, len(ticket.events)
    with session_scope(factory) as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None and ticket.status is start
        with pytest.raises(IllegalTransition, match=f"cannot go from {start.value} to {target.value}"):
            change_status(s, ticket, target, actor=s.get(Person, actor.id), note="x", duplicate_of=original)
    with session_scope(factory) as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None and ticket.status is start
        count = s.scalar(select(func.count()).select_from(TicketEvent).where(TicketEvent.ticket_id == ticket_id))
        assert count == events_before


def test_illegal_transitions_are_rejected_on_postgresql_too(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as s:
        actor = _person(s)
        ticket = _ticket(s, actor)
        with pytest.raises(IllegalTransition):
            change_status(s, ticket, S.closed, actor=actor)
        assert ticket.status is S.new


@pytest.mark.parametrize(
    ("path", "target", "message"),
    [
        ([S.accepted, S.claimed], S.resolved, "a note is required"),
        ([], S.rejected, "a note is required"),
        ([], S.duplicate, "must point at another ticket"),
    ],
)
def test_moves_that_need_more_information(
    factory: sessionmaker[Session], path: list[TicketStatus], target: TicketStatus, message: str
) -> None:
    with session_scope(factory) as s:
        actor = _person(s)
        ticket = _ticket(s, actor)
        for to in path:
            _move(s, ticket, to, actor)
        before = ticket.status
        with pytest.raises(IllegalTransition, match=message):
            change_status(s, ticket, target, actor=actor, note=None)
        assert ticket.status is before


def test_concurrent_filing_gives_unique_consecutive_numbers(factory: sessionmaker[Session]) -> None:
    threads, per_thread = 8, 15
    numbers: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def worker() -> None:
        barrier.wait()
        for _ in range(per_thread):
            try:
                with session_scope(factory) as s:
                    number = _ticket(s).number
                with lock:
                    numbers.append(number)
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    assert len(numbers) == threads * per_thread
    assert len(set(numbers)) == len(numbers)
    seqs = sorted(int(n.split("-")[1]) for n in numbers)
    assert seqs == list(range(1, threads * per_thread + 1))
