"""居民提议: a verified resident proposes a topic in their grid; other verified residents of the
same grid support it; at `proposal_supporters` (the proposer counts) it becomes an agenda item
for the grid's secretary, who has `proposal_answer_days` to answer. The answer goes to the
proposer and the supporters. The scheduler leader's sweep (`overdue`) tells the community's
admins about an agenda item left unanswered past its limit, once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import audit
from core.access.permissions import NotAllowed, require, roles_at, scope_of_grid
from core.consult import buttons as b
from core.consult.residents import is_verified
from core.messages import t
from core.messaging import outbox
from core.models import Branch, Building, Grid, Person, Proposal, ProposalSupport, Role, RoleGrant

TOPIC_MAX = 300


def _grid_of(session: Session, person: Person) -> int | None:
    if person.building_id is None:
        return None
    return session.scalar(select(Building.grid_id).where(Building.id == person.building_id))


def _verified_grid(session: Session, person: Person | None) -> int:
    grid_id = _grid_of(session, person) if person is not None else None
    if person is None or grid_id is None:
        raise NotAllowed(t("proposal.refused_unbound"))
    if not is_verified(session, person):
        raise NotAllowed(t("consult.refused_unverified"))
    return grid_id


def supporters(session: Session, proposal: Proposal) -> int:
    return int(session.scalar(select(func.count()).select_from(ProposalSupport)
                              .where(ProposalSupport.proposal_id == proposal.id)) or 0)


def propose(session: Session, person: Person | None, topic: str, *, now: datetime, needed: int,
            answer_days: int, tz: ZoneInfo) -> Proposal:
    grid_id = _verified_grid(session, person)
    assert person is not None
    topic = topic.strip()
    if not topic:
        raise NotAllowed(t("proposal.usage"))
    p = Proposal(grid_id=grid_id, proposer_id=person.id, topic=topic[:TOPIC_MAX], at=now)
    session.add(p)
    session.flush()
    session.add(ProposalSupport(proposal_id=p.id, person_id=person.id, at=now))
    session.flush()
    audit.record(session, person, "proposal.make", f"proposal:{p.id}", {"grid": grid_id}, at=now)
    _maybe_agenda(session, p, now=now, needed=needed, answer_days=answer_days, tz=tz)
    return p


def support(session: Session, person: Person | None, proposal_id: int, *, now: datetime, needed: int,
            answer_days: int, tz: ZoneInfo) -> str:
    p = session.get(Proposal, proposal_id)
    if p is None:
        raise NotAllowed(t("consult.unknown"))
    if _verified_grid(session, person) != p.grid_id:
        raise NotAllowed(t("proposal.refused_grid"))
    assert person is not None
    if session.scalar(select(ProposalSupport.id).where(ProposalSupport.proposal_id == p.id,
                                                       ProposalSupport.person_id == person.id)):
        raise NotAllowed(t("proposal.refused_again"))
    session.add(ProposalSupport(proposal_id=p.id, person_id=person.id, at=now))
    session.flush()
    audit.record(session, person, "proposal.support", f"proposal:{p.id}", at=now)
    if _maybe_agenda(session, p, now=now, needed=needed, answer_days=answer_days, tz=tz):
        return t("proposal.supported_agenda")
    return t("proposal.supported", n=supporters(session, p), needed=needed)


def _secretaries(session: Session, grid_id: int) -> list[Person]:
    branch = session.scalar(select(Branch).where(Branch.grid_id == grid_id))
    if branch is None:
        return []
    ids = set(session.scalars(select(RoleGrant.person_id).where(RoleGrant.role == Role.secretary,
                                                                RoleGrant.branch_id == branch.id)))
    if branch.secretary_id is not None:
        ids.add(branch.secretary_id)
    return list(session.scalars(select(Person).where(Person.id.in_(ids)))) if ids else []


def _maybe_agenda(session: Session, p: Proposal, *, now: datetime, needed: int, answer_days: int,
                  tz: ZoneInfo) -> bool:
    """Put `p` on the agenda when it has enough supporters (once); whether it went on now."""
    if p.agenda_at is not None or supporters(session, p) < needed:
        return False
    p.agenda_at, p.answer_due = now, now + timedelta(days=answer_days)
    session.flush()
    audit.record(session, None, "proposal.agenda", f"proposal:{p.id}", {"supporters": supporters(session, p)}, at=now)
    text = t("proposal.agenda", topic=p.topic, n=supporters(session, p),
             due=p.answer_due.astimezone(tz).strftime("%m-%d %H:%M"))
    for s in _secretaries(session, p.grid_id):
        if s.telegram_id is not None:
            outbox.enqueue(session, dedupe_key=f"proposal-agenda:{p.id}:{s.id}", kind="notice", chat_id=s.telegram_id,
                           payload={"text": text, "buttons": [[b.button(t("proposal.button_answer"), b.ANSWER, p.id)]]})
    return True


def open_in_grid(session: Session, person: Person | None, limit: int = 5) -> list[Proposal]:
    """Proposals of the person's grid still gathering support."""
    grid_id = _grid_of(session, person) if person is not None else None
    if grid_id is None:
        return []
    return list(session.scalars(select(Proposal).where(Proposal.grid_id == grid_id, Proposal.agenda_at.is_(None))
                                .order_by(Proposal.id.desc()).limit(limit)))


def agenda(session: Session, actor: Person | None) -> list[Proposal]:
    """Unanswered agenda items in grids where `actor` may answer, the most urgent first."""
    if actor is None:
        return []
    grids = [g.id for g in session.scalars(select(Grid))
             if roles_at(session, actor, scope_of_grid(session, g.id)) & {Role.secretary, Role.community_admin}]
    if not grids:
        return []
    return list(session.scalars(select(Proposal).where(Proposal.grid_id.in_(grids), Proposal.agenda_at.is_not(None),
                                                       Proposal.answered_at.is_(None)).order_by(Proposal.answer_due)))


def answer(session: Session, actor: Person | None, proposal_id: int, text: str, *, now: datetime) -> Proposal:
    p = session.get(Proposal, proposal_id)
    if p is None or p.agenda_at is None:
        raise NotAllowed(t("consult.unknown"))
    require(session, actor, "proposal.answer", scope_of_grid(session, p.grid_id))
    assert actor is not None
    if p.answered_at is not None:
        raise NotAllowed(t("proposal.answered_already"))
    if not text.strip():
        raise NotAllowed(t("proposal.answer_needed"))
    p.answer, p.answered_by_id, p.answered_at = text.strip(), actor.id, now
    session.flush()
    audit.record(session, actor, "proposal.answer", f"proposal:{p.id}", {"late": now > (p.answer_due or now)}, at=now)
    ids = list(session.scalars(select(ProposalSupport.person_id).where(ProposalSupport.proposal_id == p.id)))
    people = session.scalars(select(Person).where(Person.id.in_(ids)))
    published = t("proposal.answer_published", topic=p.topic, answer=p.answer)
    outbox.enqueue_many(session, [{"dedupe_key": f"proposal-answer:{p.id}:{person.id}", "chat_id": person.telegram_id,
                                   "payload": {"text": published}} for person in people if person.telegram_id])
    return p


def overdue(session: Session, now: datetime) -> int:
    """The sweep: agenda items past their limit with no answer go to the community's admins, once."""
    late = list(session.scalars(select(Proposal).where(Proposal.answered_at.is_(None), Proposal.overdue_at.is_(None),
                                                       Proposal.answer_due <= now)))
    for p in late:
        p.overdue_at = now
        grid = session.get(Grid, p.grid_id)
        assert grid is not None
        admins = session.scalars(select(Person).join(RoleGrant, RoleGrant.person_id == Person.id).where(
            RoleGrant.role == Role.community_admin, RoleGrant.community_id == grid.community_id))
        for admin in admins:
            if admin.telegram_id is not None:
                outbox.enqueue(session, dedupe_key=f"proposal-overdue:{p.id}:{admin.id}", kind="notice",
                               chat_id=admin.telegram_id,
                               payload={"text": t("proposal.overdue", grid=grid.name, topic=p.topic),
                                        "buttons": [[b.button(t("proposal.button_answer"), b.ANSWER, p.id)]]})
        audit.record(session, None, "proposal.overdue", f"proposal:{p.id}", at=now)
    session.flush()
    return len(late)
