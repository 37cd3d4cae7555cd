"""Consultations (协商议事): opened by a secretary or admin for a grid, a building or a party
group's buildings; one vote per verified resident in scope, changeable until the deadline;
comments moderated by hiding (the text is kept); results after the deadline (or live, when the
opener chose so) as counts only; minutes (决议) published to the participants, and a ticket
made of them when the secretary asks.

Who voted is stored (ConsultationVote.person_id) and every vote is audited; nothing here that
shows results or minutes reads who chose what.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import audit
from core.access.permissions import NotAllowed, allowed, require, scope_of_grid
from core.consult import buttons as b
from core.consult.residents import is_verified, verified_in
from core.messages import t
from core.messaging import outbox
from core.models import (
    Building,
    Consultation,
    ConsultationComment,
    ConsultationVote,
    Grid,
    Person,
)
from core.tickets import service as ticket_service
from core.tickets.lifecycle import NewTicket

MAX_OPTIONS = 6
TICKET_CATEGORY = "other"  # a ticket made of minutes: the branch files it, the category is its own words


def scope_buildings(session: Session, c: Consultation) -> list[int]:
    if c.building_ids is not None:
        return list(c.building_ids)
    return list(session.scalars(select(Building.id).where(Building.grid_id == c.grid_id)))


def in_scope(session: Session, c: Consultation, person: Person | None) -> bool:
    return person is not None and person.building_id in scope_buildings(session, c)


def is_over(c: Consultation, now: datetime) -> bool:
    return now >= c.deadline


def _local(when: datetime, tz: ZoneInfo) -> str:
    return when.astimezone(tz).strftime("%m-%d %H:%M")


def get(session: Session, consultation_id: int) -> Consultation:
    c = session.get(Consultation, consultation_id)
    if c is None:
        raise NotAllowed(t("consult.unknown"))
    return c


# -- opening -----------------------------------------------------------------------------------

def clean_options(text: str) -> list[str]:
    """Options as typed: separated by 、，, ; or new lines; blanks and repeats dropped."""
    parts = [p.strip() for p in text.replace("，", "\n").replace(",", "\n").replace("、", "\n")
             .replace("；", "\n").replace(";", "\n").split("\n")]
    seen: list[str] = []
    for p in parts:
        if p and p not in seen:
            seen.append(p[:40])
    return seen


def open_consultation(session: Session, actor: Person | None, *, grid_id: int, building_ids: list[int] | None,
                      scope_label: str, question: str, options: list[str], live: bool, deadline: datetime,
                      now: datetime, tz: ZoneInfo) -> Consultation:
    """Open it and tell every verified resident in scope, with the options as buttons."""
    require(session, actor, "consult.open", scope_of_grid(session, grid_id))
    assert actor is not None
    if not question.strip():
        raise NotAllowed(t("consult.question_needed"))
    if len(options) == 1 or len(options) > MAX_OPTIONS:
        raise NotAllowed(t("consult.options_count", most=MAX_OPTIONS))
    if deadline <= now:
        raise NotAllowed(t("consult.deadline_past"))
    if building_ids is not None:
        grids = set(session.scalars(select(Building.grid_id).where(Building.id.in_(building_ids))))
        if not building_ids or grids != {grid_id}:
            raise NotAllowed(t("consult.scope_outside"))
    c = Consultation(grid_id=grid_id, building_ids=building_ids, scope_label=scope_label, question=question.strip(),
                     options=options, live=live, deadline=deadline, opened_by_id=actor.id, opened_at=now)
    session.add(c)
    session.flush()
    audit.record(session, actor, "consult.open", f"consultation:{c.id}",
                 {"grid": grid_id, "buildings": len(building_ids) if building_ids is not None else None,
                  "options": len(options), "live": live}, at=now)
    voters = verified_in(session, scope_buildings(session, c))
    text, keyboard = card(session, c, None, now, tz)
    outbox.enqueue_many(session, [{"dedupe_key": f"consult-open:{c.id}:{p.id}", "chat_id": p.telegram_id,
                                   "payload": {"text": text, "buttons": keyboard}}
                                  for p in voters if p.telegram_id is not None])
    return c


# -- what a resident sees and does ---------------------------------------------------------------

def card(session: Session, c: Consultation, person: Person | None, now: datetime,
         tz: ZoneInfo) -> tuple[str, list[list[dict[str, Any]]]]:
    """The consultation as a resident sees it: the question, their choice, the buttons."""
    mine = _vote_of(session, c, person)
    lines = [t("consult.card", scope=c.scope_label, question=c.question, deadline=_local(c.deadline, tz))]
    if not c.options:
        lines.append(t("consult.card_comments_only"))
    if mine is not None:
        lines.append(t("consult.card_mine", option=c.options[mine.choice]))
    if is_over(c, now):
        return "\n".join([*lines, t("consult.card_over")]), []
    rows = [[b.button(("✓ " if mine is not None and mine.choice == i else "") + o, b.VOTE, c.id, i)]
            for i, o in enumerate(c.options)]
    tail = [b.button(t("consult.button_comment"), b.COMMENT, c.id)]
    if c.live:
        tail.append(b.button(t("consult.button_results"), b.RESULTS, c.id))
    return "\n".join(lines), [*rows, tail]


def _vote_of(session: Session, c: Consultation, person: Person | None) -> ConsultationVote | None:
    if person is None:
        return None
    return session.scalar(select(ConsultationVote).where(ConsultationVote.consultation_id == c.id,
                                                         ConsultationVote.person_id == person.id))


def may_take_part(session: Session, c: Consultation, person: Person | None, now: datetime) -> Person:
    """The person, if they may vote or comment now; else NotAllowed with the reason."""
    if is_over(c, now):
        raise NotAllowed(t("consult.refused_over"))
    if person is None or not in_scope(session, c, person):
        raise NotAllowed(t("consult.refused_scope"))
    if not is_verified(session, person):
        raise NotAllowed(t("consult.refused_unverified"))
    return person


def vote(session: Session, person: Person | None, consultation_id: int, choice: int, *, now: datetime) -> str:
    """Record or change a vote; the answer to show. The same choice again is a second vote: refused."""
    c = get(session, consultation_id)
    voter = may_take_part(session, c, person, now)
    if not 0 <= choice < len(c.options):
        raise NotAllowed(t("consult.unknown"))
    mine = _vote_of(session, c, voter)
    if mine is not None and mine.choice == choice:
        audit.record(session, voter, "consult.vote_refused", f"consultation:{c.id}", {"reason": "again"}, at=now)
        raise NotAllowed(t("consult.refused_again", option=c.options[choice]))
    if mine is None:
        session.add(ConsultationVote(consultation_id=c.id, person_id=voter.id, choice=choice, voted_at=now))
    else:
        mine.choice, mine.voted_at, mine.changes = choice, now, mine.changes + 1
    session.flush()
    audit.record(session, voter, "consult.vote", f"consultation:{c.id}", {"changed": mine is not None}, at=now)
    return t("consult.voted_changed" if mine is not None else "consult.voted", option=c.options[choice])


def comment(session: Session, person: Person | None, consultation_id: int, text: str, *, now: datetime) -> str:
    c = get(session, consultation_id)
    author = may_take_part(session, c, person, now)
    session.add(ConsultationComment(consultation_id=c.id, person_id=author.id, text=text.strip()[:1000], at=now))
    session.flush()
    audit.record(session, author, "consult.comment", f"consultation:{c.id}", at=now)
    return t("consult.commented")


def open_for(session: Session, person: Person | None, now: datetime) -> list[Consultation]:
    """Open consultations whose scope holds the person's building."""
    if person is None or person.building_id is None:
        return []
    grid_id = session.scalar(select(Building.grid_id).where(Building.id == person.building_id))
    found = session.scalars(select(Consultation).where(Consultation.grid_id == grid_id, Consultation.deadline > now)
                            .order_by(Consultation.deadline))
    return [c for c in found if in_scope(session, c, person)]


# -- results -----------------------------------------------------------------------------------

def counts(session: Session, c: Consultation) -> list[int]:
    rows: dict[int, int] = {int(choice): int(n) for choice, n in session.execute(
        select(ConsultationVote.choice, func.count()).where(ConsultationVote.consultation_id == c.id)
        .group_by(ConsultationVote.choice)).all()}
    return [int(rows.get(i, 0)) for i in range(len(c.options))]


def results_text(session: Session, c: Consultation, now: datetime) -> str:
    """Counts per option and the visible comments (no names); refused before the deadline unless live."""
    if not is_over(c, now) and not c.live:
        raise NotAllowed(t("consult.results_later"))
    tally = counts(session, c)
    lines = [t("consult.results_head" if is_over(c, now) else "consult.results_live", question=c.question)]
    lines += [t("consult.results_line", option=o, n=n) for o, n in zip(c.options, tally, strict=True)]
    shown = list(session.scalars(select(ConsultationComment.text).where(
        ConsultationComment.consultation_id == c.id, ConsultationComment.hidden_at.is_(None))
        .order_by(ConsultationComment.id)))
    if shown:
        lines.append(t("consult.results_comments", n=len(shown)))
        lines += [f"· {text}" for text in shown[:20]]
    if c.eligible is not None:
        lines.append(t("consult.results_turnout", n=c.participants or 0, of=c.eligible))
    return "\n".join(lines)


def participants(session: Session, c: Consultation) -> list[Person]:
    ids = set(session.scalars(select(ConsultationVote.person_id).where(ConsultationVote.consultation_id == c.id)))
    ids |= set(session.scalars(select(ConsultationComment.person_id)
                               .where(ConsultationComment.consultation_id == c.id)))
    return list(session.scalars(select(Person).where(Person.id.in_(ids)).order_by(Person.id))) if ids else []


def close_due(session: Session, now: datetime) -> int:
    """The sweep (the scheduler leader's): close every consultation past its deadline, once; the
    results go to the participants and, with a 写决议 button, to the opener. How many closed."""
    due = list(session.scalars(select(Consultation).where(Consultation.closed_at.is_(None),
                                                          Consultation.deadline <= now)
                               .order_by(Consultation.id).with_for_update(skip_locked=True)))
    for c in due:
        people = participants(session, c)
        eligible = {p.id for p in verified_in(session, scope_buildings(session, c))} | {p.id for p in people}
        c.closed_at, c.eligible, c.participants = now, len(eligible), len(people)
        session.flush()
        text = results_text(session, c, now)
        outbox.enqueue_many(session, [{"dedupe_key": f"consult-results:{c.id}:{p.id}", "chat_id": p.telegram_id,
                                       "payload": {"text": text}} for p in people if p.telegram_id is not None])
        opener = session.get(Person, c.opened_by_id) if c.opened_by_id is not None else None
        if opener is not None and opener.telegram_id is not None:
            outbox.enqueue(session, dedupe_key=f"consult-closed:{c.id}", kind="notice", chat_id=opener.telegram_id,
                           payload={"text": t("consult.closed_to_opener") + "\n" + text,
                                    "buttons": [[b.button(t("consult.button_minutes"), b.MINUTES, c.id)],
                                                [b.button(t("consult.button_comments"), b.COMMENTS, c.id)]]})
        audit.record(session, None, "consult.close", f"consultation:{c.id}",
                     {"eligible": c.eligible, "participants": c.participants}, at=now)
    return len(due)


# -- the secretary's side ----------------------------------------------------------------------

def managed(session: Session, actor: Person | None, limit: int = 10) -> list[Consultation]:
    """Recent consultations in grids where `actor` may moderate, newest first."""
    if actor is None:
        return []
    grids = [g.id for g in session.scalars(select(Grid))
             if allowed(session, actor, "consult.moderate", scope_of_grid(session, g.id))]
    if not grids:
        return []
    return list(session.scalars(select(Consultation).where(Consultation.grid_id.in_(grids))
                                .order_by(Consultation.id.desc()).limit(limit)))


def comments(session: Session, actor: Person | None, consultation_id: int) -> list[ConsultationComment]:
    """Every comment, hidden ones too, for the moderator (their authors are not shown)."""
    c = get(session, consultation_id)
    require(session, actor, "consult.moderate", scope_of_grid(session, c.grid_id))
    return list(session.scalars(select(ConsultationComment).where(ConsultationComment.consultation_id == c.id)
                                .order_by(ConsultationComment.id)))


def hide(session: Session, actor: Person | None, comment_id: int, *, now: datetime) -> ConsultationComment:
    """Hide a comment from the results; its text stays in the table for the record."""
    row = session.get(ConsultationComment, comment_id)
    if row is None:
        raise NotAllowed(t("consult.unknown"))
    c = get(session, row.consultation_id)
    require(session, actor, "consult.moderate", scope_of_grid(session, c.grid_id))
    assert actor is not None
    if row.hidden_at is None:
        row.hidden_at, row.hidden_by_id = now, actor.id
        session.flush()
        audit.record(session, actor, "consult.comment_hide", f"comment:{row.id}", {"consultation": c.id}, at=now)
    return row


def write_minutes(session: Session, actor: Person | None, consultation_id: int, text: str, *,
                  now: datetime) -> Consultation:
    """The 决议, after the deadline only; published to every participant (counts, never names)."""
    c = get(session, consultation_id)
    require(session, actor, "consult.minutes", scope_of_grid(session, c.grid_id))
    assert actor is not None
    if not is_over(c, now):
        raise NotAllowed(t("consult.minutes_early"))
    if not text.strip():
        raise NotAllowed(t("consult.minutes_needed"))
    c.minutes, c.minutes_by_id, c.minutes_at = text.strip(), actor.id, now
    session.flush()
    audit.record(session, actor, "consult.minutes", f"consultation:{c.id}", {"length": len(c.minutes)}, at=now)
    published = t("consult.minutes_published", question=c.question, minutes=c.minutes)
    version = int(now.timestamp())  # minutes rewritten: published again
    outbox.enqueue_many(session, [{"dedupe_key": f"consult-minutes:{c.id}:{version}:{p.id}",
                                   "chat_id": p.telegram_id, "payload": {"text": published}}
                                  for p in participants(session, c) if p.telegram_id is not None])
    return c


def minutes_to_ticket(session: Session, actor: Person | None, consultation_id: int, *, now: datetime,
                      tz: ZoneInfo) -> str:
    """File the minutes as a ticket of the grid (once); its number."""
    c = get(session, consultation_id)
    require(session, actor, "consult.minutes", scope_of_grid(session, c.grid_id))
    assert actor is not None
    if c.minutes is None:
        raise NotAllowed(t("consult.minutes_needed"))
    if c.ticket_id is not None:
        raise NotAllowed(t("consult.ticket_exists"))
    grid = session.get(Grid, c.grid_id)
    assert grid is not None
    ticket = ticket_service.submit_report(session, NewTicket(
        TICKET_CATEGORY, t("consult.ticket_text", question=c.question, minutes=c.minutes), reporter_id=actor.id,
        community_id=grid.community_id, grid_id=grid.id, location_text=c.scope_label,
        submission_key=f"consultation:{c.id}"), tz=tz, now=now, notify_reporter=False)
    c.ticket_id = ticket.id
    session.flush()
    audit.record(session, actor, "consult.ticket", f"consultation:{c.id}", {"ticket": ticket.number}, at=now)
    return ticket.number
